"""Flags generated from a job's settings dataclasses (`finetune.settings`), as transformers' HfArgumentParser does.

One flag per field, `--<field name>`, in one argument group per settings group: the field's default,
help and choices; a bool is a switch with its `--no-` form (`--fp16`, `--no-augment_with_answers`).
Parsing gives the job's frozen settings; a value the settings refuse (`SettingError`) exits 2 with usage,
the setting named as its flag.
"""

import argparse
import math
import types
import typing
from dataclasses import MISSING, fields

from reranker_kit.basics.errors import SettingError
from reranker_kit.commands.common import setup_logging
from reranker_kit.commands.flag_names import as_flags
from reranker_kit.commands.tracking import check_tracker_installed
from reranker_kit.finetune.cpu_sizing import cpu_sized
from reranker_kit.finetune.settings import JobSettings


def add_settings_flags(parser: argparse.ArgumentParser, settings_class: type[JobSettings]) -> None:
    """One argument group per settings group (named by the group's docstring), one flag per field."""
    for group in fields(settings_class):
        arguments = parser.add_argument_group(group.type.__doc__.strip())
        for item in fields(group.type):
            _add_flag(arguments, item)


def _add_flag(group, item) -> None:
    help_text = as_flags(item.metadata["help"], None)
    if item.metadata["on_cpu"] is not MISSING:
        help_text += f" On a CPU without a GPU, unless given: {item.metadata['on_cpu']}."
    kind = _value_type(item.type)
    if kind is bool:  # Both forms, so a setting a CPU would size can be given either way (--no-freeze_word_embeddings).
        group.add_argument(f"--{item.name}", action=argparse.BooleanOptionalAction, default=item.default, help=help_text)
        return
    group.add_argument(f"--{item.name}", type=kind, default=item.default, choices=item.metadata["choices"],
                       help=help_text)


def _value_type(annotation) -> type:
    """str for `str | None`, float for `float`: the type argparse converts the text to."""
    if isinstance(annotation, str):
        annotation = eval(annotation, {"str": str, "int": int, "float": float, "bool": bool, "None": None})  # noqa: S307
    if isinstance(annotation, types.UnionType) or typing.get_origin(annotation) is typing.Union:
        return next(arg for arg in typing.get_args(annotation) if arg is not type(None))
    return annotation


def settings_from_namespace(settings_class: type[JobSettings], namespace: argparse.Namespace) -> JobSettings:
    names = settings_class.setting_fields()
    return settings_class.from_arguments({name: value for name, value in vars(namespace).items() if name in names})


def parse_settings(parser: argparse.ArgumentParser, settings_class: type[JobSettings], argv: list[str] | None
                   ) -> tuple[JobSettings, set[str]]:
    """(the checked settings, the flags the user typed); a refused value exits 2 with usage naming its flag."""
    namespace = parser.parse_args(argv)
    for name, value in vars(namespace).items():
        # argparse's float() takes "nan" and "inf", which no setting means; each checks its own range.
        if isinstance(value, float) and not math.isfinite(value):
            parser.error(f"--{name} must be a finite number, got {value}")
    given = flags_on_command_line(parser, argv)
    settings = settings_from_namespace(settings_class, namespace)
    try:
        settings.validate()
    except SettingError as error:
        parser.error(as_flags(str(error), parser))
    for name, why in settings.ignored().items():
        if name in given:
            parser.error(as_flags(f"`{name}` {why}: drop it, or add what it needs", parser))
    return settings, given


def job_parser(settings_class: type[JobSettings], description: str) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=description, formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    add_settings_flags(parser, settings_class)
    return parser


def parse_job_settings(parser: argparse.ArgumentParser, settings_class: type[JobSettings], argv: list[str] | None):
    """A training CLI's settings: logging set up, flags checked (bad ones exit 2 with usage), a tracker that is
    not installed refused, then sized for a CPU where no GPU is found."""
    setup_logging(parser)
    settings, given = parse_settings(parser, settings_class, argv)
    check_tracker_installed(parser, settings.output.report_to)
    return cpu_sized(settings, given)


def flags_on_command_line(parser: argparse.ArgumentParser, argv: list[str] | None) -> set[str]:
    """The flags the user typed, even at their default value: the parse again with every default suppressed."""
    import copy

    bare = copy.deepcopy(parser)
    for action in bare._actions:  # argparse has no public way to suppress every default at once.
        action.default = argparse.SUPPRESS
    return set(vars(bare.parse_known_args(argv)[0]))
