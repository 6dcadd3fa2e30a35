"""How a script ends: its exit statuses, and Ctrl-C and SIGTERM as the scripts see them.

The one module that owns both. A `KitError` (bad input) ends a script with status 2 and one line; a stop
signal with 130 (128 + SIGINT, as shells report a Ctrl-C) and one line saying what was kept. A SIGTERM (a
scheduler or `kill` stopping the job) is handled exactly as a Ctrl-C: the same cleanup, the same message
and the same status, so a run stopped either way leaves the same state behind.
"""

import signal
import threading

USAGE_EXIT_CODE = 2  # A KitError: the input can be fixed; argparse uses 2 for bad flags too.
INTERRUPTED_EXIT_CODE = 130
STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM)

# Set by the first stop signal. Python raises KeyboardInterrupt wherever the main thread is; raised inside
# a `__del__` or a garbage-collector callback it is printed and dropped, and the script would go on as if
# never interrupted. The flag keeps the signal, so `raise_if_interrupted` can act on it later.
_INTERRUPTED = threading.Event()


class StoppedWithCheckpoint(KeyboardInterrupt):
    """A stop signal ended training after a checkpoint was saved; the message says how to resume."""


def _record_interrupt(signum, frame) -> None:
    _INTERRUPTED.set()
    raise KeyboardInterrupt(f"interrupted by {signal.Signals(signum).name}" if signum != signal.SIGINT else "")


def install_interrupt_handlers() -> None:
    """Makes Ctrl-C and SIGTERM raise KeyboardInterrupt and set the flag (main thread only, as Python requires)."""
    if threading.current_thread() is threading.main_thread():
        for signum in STOP_SIGNALS:
            signal.signal(signum, _record_interrupt)


def raise_if_interrupted() -> None:
    """Raises KeyboardInterrupt if a stop signal came since the script started, even one something swallowed."""
    if _INTERRUPTED.is_set():
        raise KeyboardInterrupt


def interruption_message(interrupt: KeyboardInterrupt) -> str:
    """The one line a stop ends with: what the job said it kept or removed, else a plain Ctrl-C."""
    return str(interrupt) or "interrupted by Ctrl-C"
