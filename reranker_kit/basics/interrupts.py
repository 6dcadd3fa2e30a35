"""Ctrl-C and SIGTERM as the scripts see them: one flag that survives a swallowed KeyboardInterrupt, one exit status.

A SIGTERM (a scheduler or `kill` stopping the job) is handled exactly as a Ctrl-C: the same cleanup, the
same message and the same exit status, so a run stopped either way leaves the same state behind.
"""

import signal
import threading

INTERRUPTED_EXIT_CODE = 130  # 128 + SIGINT, as shells report a Ctrl-C.
STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM)

# Set by the first stop signal. Python raises KeyboardInterrupt wherever the main thread is; raised inside
# a `__del__` or a garbage-collector callback it is printed and dropped, and the script would go on as if
# never interrupted. The flag keeps the signal, so `raise_if_interrupted` can act on it later.
_INTERRUPTED = threading.Event()


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
