"""What every script shares: logging setup, and turning a `KitError` into one line and exit status 2."""

import argparse
import logging
import sys
from collections.abc import Callable

from reranker_kit.distributed import is_main_process
from reranker_kit.errors import KitError

USAGE_EXIT_CODE = 2
LOG_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"


def setup_logging() -> None:
    """Timestamped log lines on stderr; only the main process of a torchrun launch logs INFO."""
    level = logging.INFO if is_main_process() else logging.WARNING
    logging.basicConfig(format=LOG_FORMAT, datefmt="%H:%M:%S", level=level, force=True)


def parse_arguments(parser: argparse.ArgumentParser, validate: Callable, argv: list[str] | None):
    """Parses and checks a script's flags (bad ones exit 2 with usage), then sets up logging."""
    args = parser.parse_args(argv)
    validate(args, parser)
    setup_logging()
    return args


def run_cli(main: Callable[[], None]) -> None:
    """Runs a script's `main`, turning a `KitError` into a logged message and exit status 2."""
    try:
        main()
    except KitError as error:
        logging.getLogger("reranker-kit").error("%s", error)
        sys.exit(USAGE_EXIT_CODE)
