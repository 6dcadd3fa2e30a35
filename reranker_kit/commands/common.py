"""What every script shares: logging, checked flags, and how a script ends (`basics.exits`' statuses).

Below the command line, messages name settings in backticks (`` `dev_ratio` ``); a script shows each name
its parser knows as that flag (`--dev_ratio`), in its log lines and in its one-line errors alike.
"""

import argparse
import logging
import math
import sys
from collections.abc import Callable

from reranker_kit.basics.distributed import is_main_process
from reranker_kit.basics.errors import KitError
from reranker_kit.basics.exits import (
    INTERRUPTED_EXIT_CODE,
    USAGE_EXIT_CODE,
    install_interrupt_handlers,
    interruption_message,
)
from reranker_kit.commands.flag_names import as_flags

LOG_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"
# The parser of the script that runs: its flag names are what backticked setting names become.
_parser: argparse.ArgumentParser | None = None


class _FlagFormatter(logging.Formatter):
    def formatMessage(self, record: logging.LogRecord) -> str:
        return as_flags(super().formatMessage(record), _parser) if _parser is not None else super().formatMessage(record)


def setup_logging(parser: argparse.ArgumentParser | None = None) -> None:
    """Timestamped log lines on stderr, settings shown as `parser`'s flags; only a torchrun's main process logs INFO."""
    global _parser
    _parser = parser
    level = logging.INFO if is_main_process() else logging.WARNING
    logging.basicConfig(format=LOG_FORMAT, datefmt="%H:%M:%S", level=level, force=True)
    for handler in logging.getLogger().handlers:
        handler.setFormatter(_FlagFormatter(LOG_FORMAT, datefmt="%H:%M:%S"))


def parse_arguments(parser: argparse.ArgumentParser, validate: Callable, argv: list[str] | None):
    """Sets up logging, then parses and checks a script's flags (bad ones exit 2 with usage).

    Logging comes first so the checks can warn about flags they accept but adjust.
    """
    setup_logging(parser)
    args = parser.parse_args(argv)
    for name, value in vars(args).items():
        # argparse's float() takes "nan" and "inf", which no flag means; each flag then checks its range.
        if isinstance(value, float) and not math.isfinite(value):
            parser.error(f"--{name} must be a finite number, got {value}")
    validate(args, parser)
    return args


def given_flags(args: argparse.Namespace, parser: argparse.ArgumentParser) -> set[str]:
    """The flags whose value differs from the parser's default: what the user asked for (and may be ignored)."""
    return {name for name, value in vars(args).items() if value != parser.get_default(name)}


def run_cli(main: Callable[[], None]) -> None:
    """Runs a script's `main`: a `KitError` ends it with one logged line and status 2, a stop signal with 130."""
    install_interrupt_handlers()
    log = logging.getLogger("reranker-kit")
    try:
        main()
    except KitError as error:
        log.error("%s", str(error))
        sys.exit(USAGE_EXIT_CODE)
    except KeyboardInterrupt as interrupt:  # Its message, when the job gave one, says what was kept or removed.
        log.error("%s", interruption_message(interrupt))
        sys.exit(INTERRUPTED_EXIT_CODE)
