"""What every script shares: logging setup, a `KitError` as one line and exit status 2, Ctrl-C as 130."""

import argparse
import logging
import math
import signal
import sys
import threading
from collections.abc import Callable

from reranker_kit.distributed import is_main_process
from reranker_kit.errors import KitError

USAGE_EXIT_CODE = 2
INTERRUPTED_EXIT_CODE = 130  # 128 + SIGINT, as shells report a Ctrl-C.
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


# Set by the first Ctrl-C. Python raises KeyboardInterrupt wherever the main thread is; raised inside a
# `__del__` or a garbage-collector callback it is printed and dropped, and the script would go on as if
# never interrupted. The flag keeps the Ctrl-C, so `raise_if_interrupted` can act on it later.
_INTERRUPTED = threading.Event()


def _record_interrupt(signum, frame) -> None:
    _INTERRUPTED.set()
    raise KeyboardInterrupt


def raise_if_interrupted() -> None:
    """Raises KeyboardInterrupt if a Ctrl-C came since the script started, even one something swallowed."""
    if _INTERRUPTED.is_set():
        raise KeyboardInterrupt


def run_cli(main: Callable[[], None]) -> None:
    """Runs a script's `main`: a `KitError` becomes one logged line and exit status 2, Ctrl-C one line and 130."""
    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGINT, _record_interrupt)
    try:
        main()
    except KitError as error:
        logging.getLogger("reranker-kit").error("%s", error)
        sys.exit(USAGE_EXIT_CODE)
    except KeyboardInterrupt as interrupt:  # Its message, when the job gave one, says what was kept or removed.
        logging.getLogger("reranker-kit").error("%s", str(interrupt) or "interrupted by Ctrl-C")
        sys.exit(INTERRUPTED_EXIT_CODE)
