"""Errors that the command-line scripts turn into a clear message and exit status 2.

Anything raised as a `KitError` is a problem with the user's input (a file, a row, a setting, a model name)
that the user can fix; its message says what is wrong and how to fix it. Other exceptions are bugs and
keep their traceback.

Below the command line a message names a setting by its name in backticks (`` `dev_ratio` ``): a Python
caller reads the argument's name, and the command line shows the same message with the flag
(`--dev_ratio`) for every name its parser knows (`commands.common`).
"""


class KitError(Exception):
    """Base class for input problems the user can fix."""


class SettingError(KitError, ValueError):
    """A setting's value is refused; `setting` names it, the message says what would be accepted."""

    def __init__(self, setting: str, message: str):
        super().__init__(message)
        self.setting = setting


class DataError(KitError):
    """A corpus or query file is missing, unreadable or breaks the club's schema."""


class ModelLoadError(KitError):
    """A model name or path cannot be resolved or loaded."""


class CheckpointError(KitError):
    """A path given to resume from is not a Trainer checkpoint."""


class DiskFullError(KitError):
    """The disk filled up while a run saved its weights; the message names the folder and the space needed."""
