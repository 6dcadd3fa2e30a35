"""What every script shares: logging setup, a `KitError` as one line and exit status 2, Ctrl-C as 130."""

import argparse
import logging
import math
import sys
from collections.abc import Callable

from reranker_kit.basics.distributed import is_main_process
from reranker_kit.basics.errors import KitError
from reranker_kit.basics.interrupts import INTERRUPTED_EXIT_CODE, install_interrupt_handlers

USAGE_EXIT_CODE = 2
LOG_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"


def setup_logging() -> None:
    """Timestamped log lines on stderr; only the main process of a torchrun launch logs INFO."""
    level = logging.INFO if is_main_process() else logging.WARNING
    logging.basicConfig(format=LOG_FORMAT, datefmt="%H:%M:%S", level=level, force=True)


def parse_arguments(parser: argparse.ArgumentParser, validate: Callable, argv: list[str] | None):
    """Sets up logging, then parses and checks a script's flags (bad ones exit 2 with usage).

    Logging comes first so the checks can warn about flags they accept but adjust.
    """
    setup_logging()
    args = parser.parse_args(argv)
    for name, value in vars(args).items():
        # argparse's float() takes "nan" and "inf", which no flag means; each flag then checks its range.
        if isinstance(value, float) and not math.isfinite(value):
            parser.error(f"--{name} must be a finite number, got {value}")
    validate(args, parser)
    return args








def flags_on_command_line(parser: argparse.ArgumentParser, argv: list[str] | None) -> set[str]:
    """The flags the user typed, even at their default value: the parse again with every default suppressed."""
    import copy

    bare = copy.deepcopy(parser)
    for action in bare._actions:
        action.default = argparse.SUPPRESS
    return set(vars(bare.parse_known_args(argv)[0]))


def given_flags(args: argparse.Namespace, parser: argparse.ArgumentParser) -> set[str]:
    """The flags whose value differs from the parser's default: what the user asked for (and may be ignored)."""
    return {name for name, value in vars(args).items() if value != parser.get_default(name)}


def run_cli(main: Callable[[], None]) -> None:
    """Runs a script's `main`: a `KitError` becomes one logged line and exit status 2, Ctrl-C one line and 130."""
    install_interrupt_handlers()
    try:
        main()
    except KitError as error:
        logging.getLogger("reranker-kit").error("%s", error)
        sys.exit(USAGE_EXIT_CODE)
    except KeyboardInterrupt as interrupt:  # Its message, when the job gave one, says what was kept or removed.
        logging.getLogger("reranker-kit").error("%s", str(interrupt) or "interrupted by Ctrl-C")
        sys.exit(INTERRUPTED_EXIT_CODE)
