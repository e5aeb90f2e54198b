"""Turning Ctrl-C and SIGTERM into a clean stop at the next batch boundary.

The handler only sets a flag: whatever is being written (a checkpoint, an event) finishes,
the training loop sees the flag after the current batch, and the run ends with a
``run_interrupted`` event and a resumable directory. A second Ctrl-C stops at once.
"""

from __future__ import annotations

import signal
from collections.abc import Iterator
from contextlib import contextmanager


class StopRequested(Exception):
    """Raised by the runner once the current batch/checkpoint is done."""

    def __init__(self, signame: str) -> None:
        self.signame = signame
        super().__init__(f"stopped by {signame}")


class StopFlag:
    """Set by the signal handlers, polled by the training loop."""

    def __init__(self) -> None:
        self.signame: str | None = None

    def __bool__(self) -> bool:
        return self.signame is not None

    def raise_if_set(self) -> None:
        """Raise StopRequested when a stop was asked for."""
        if self.signame:
            raise StopRequested(self.signame)


@contextmanager
def stop_on_signals() -> Iterator[StopFlag]:
    """Install SIGINT/SIGTERM handlers for the duration of a run."""
    flag = StopFlag()

    def handler(signum: int, _frame: object) -> None:
        if flag.signame and signum == signal.SIGINT:
            raise KeyboardInterrupt  # second Ctrl-C: the user really wants out now
        flag.signame = signal.Signals(signum).name

    previous = {s: signal.signal(s, handler) for s in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield flag
    finally:
        for s, h in previous.items():
            signal.signal(s, h)
