"""Pausing the drawing worker at once (SIGSTOP) while the trainer evaluates, where that is
safe.

A held worker used to finish the figure it was drawing (0.1-0.4 s) beside the evaluation's
start, which runs on both cores. Stopped with SIGSTOP it yields the core at once, and SIGCONT
resumes the figure where it was. A stopped process cannot notice that its trainer died,
though, and the worker runs in its own session, so nothing else would ever continue it: a
trainer killed (``kill -9``, out of memory) during an evaluation would leave it stopped for
good. So the worker first asks Linux to send it SIGCONT when its parent dies
(``prctl(PR_SET_PDEATHSIG, SIGCONT)``), then says so on its stdout; only after reading that
line does the trainer ever stop it. Continued after the trainer's death, the worker finds its
input closed and ends after the current figure, as it always did. Elsewhere (no ``prctl``),
or before the worker has said it, a hold is only the ``hold`` word the worker reads between
figures.
"""

from __future__ import annotations

import contextlib
import os
import select
import signal
import subprocess
import sys

#: The worker's one line on its stdout once its parent's death will continue it.
STOPPABLE = b"stoppable\n"
_PR_SET_PDEATHSIG = 1  # <linux/prctl.h>


def continue_when_parent_dies() -> None:
    """In the worker: have the kernel send SIGCONT when the trainer dies and, if it will,
    tell the trainer (the line above); then stdout goes to /dev/null, so nothing else lands
    in that pipe. Not on Linux, or if ``prctl`` fails: say nothing."""
    armed = False
    if sys.platform.startswith("linux"):
        with contextlib.suppress(OSError, AttributeError):
            import ctypes

            libc = ctypes.CDLL(None, use_errno=True)
            armed = libc.prctl(_PR_SET_PDEATHSIG, int(signal.SIGCONT), 0, 0, 0) == 0
    with contextlib.suppress(OSError):
        if armed:
            os.write(sys.stdout.fileno(), STOPPABLE)
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        os.close(devnull)


class Pause:
    """The trainer's side: stops and continues one worker process once it may."""

    def __init__(self, proc: subprocess.Popen) -> None:
        self.proc = proc
        self.stoppable: bool | None = None  # None: the worker has not said yet
        self.stopped = False

    def may_stop(self) -> bool:
        """Whether the worker has said that its trainer's death continues it (read without
        waiting; a worker that ended or said something else never is)."""
        out = self.proc.stdout
        if self.stoppable is None and out is not None and select.select([out], [], [], 0)[0]:
            self.stoppable = out.readline() == STOPPABLE
        return bool(self.stoppable)

    def stop(self) -> None:
        """SIGSTOP the worker, if it may be stopped."""
        if not self.stopped and self.may_stop():
            self.stopped = self._signal(signal.SIGSTOP)

    def resume(self) -> None:
        """SIGCONT the worker if this stopped it."""
        if self.stopped:
            self._signal(signal.SIGCONT)
            self.stopped = False

    def _signal(self, sig: int) -> bool:
        try:
            os.kill(self.proc.pid, sig)
            return True
        except ProcessLookupError:  # it died: the drain draws what it left
            return False


__all__ = ["STOPPABLE", "Pause", "continue_when_parent_dies"]
