"""Errors that the command-line scripts turn into a clear message and exit status 2.

Anything raised as a `KitError` is a problem with the user's input (a file, a row, a flag, a model name)
that the user can fix; its message says what is wrong and how to fix it. Other exceptions are bugs and
keep their traceback.
"""

import logging
import sys
from typing import Callable

USAGE_EXIT_CODE = 2


class KitError(Exception):
    """Base class for input problems the user can fix."""


class DataError(KitError):
    """A corpus or query file is missing, unreadable or breaks the club's schema."""


class ModelLoadError(KitError):
    """A model name or path cannot be resolved or loaded."""


class CheckpointError(KitError):
    """A path given to resume from is not a Trainer checkpoint."""


def run_cli(main: Callable[[], None]) -> None:
    """Runs a script's `main`, turning a `KitError` into a logged message and exit status 2."""
    try:
        main()
    except KitError as error:
        logging.getLogger("reranker-kit").error("%s", error)
        sys.exit(USAGE_EXIT_CODE)
