"""Setting names shown as flags: below the command line a message names a setting in backticks (`` `dev_ratio` ``),
and a script shows each name its parser knows as that flag (`--dev_ratio`)."""

import argparse
import re

SETTING_NAME = re.compile(r"`([a-z][a-z0-9_]*)`")


def known_flags(parser: argparse.ArgumentParser) -> set[str]:
    return {action.dest for action in parser._actions if action.option_strings}


def as_flags(message: str, parser: argparse.ArgumentParser | None) -> str:
    """A message from below the command line with each setting it names in backticks shown as its flag.

    Without a parser every backticked setting name is taken as a flag (help texts of the settings themselves).
    """
    flags = known_flags(parser) if parser is not None else None
    return SETTING_NAME.sub(lambda match: f"--{match.group(1)}" if flags is None or match.group(1) in flags
                            else match.group(0), message)
