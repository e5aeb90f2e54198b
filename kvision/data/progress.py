"""Progress of the slowest part of a first run: decoding a folder into the cache.

On a terminal a bar redrawn in place (files done, images/s, time left); without one (nohup,
CI, the TUI's subprocess) a plain line every few seconds, so a load that is killed or runs out
of memory has said how far it got. A ``sink`` (e.g. a run writer's event) receives the same
figures as ``data_progress`` events.
"""

from __future__ import annotations

import sys
import threading
import time
from collections.abc import Callable
from typing import TextIO

#: Seconds between plain lines (no terminal).
EVERY_S = 5.0
#: Seconds between redraws of the terminal bar.
BAR_EVERY_S = 0.2
#: Seconds between sink events (a run's ``data_progress`` events: small, but fsynced each).
SINK_EVERY_S = 2.0


class Progress:
    """Counts finished files and reports them; ``step`` is called once per file."""

    def __init__(
        self,
        total: int,
        label: str = "decoding",
        *,
        stream: TextIO | None = None,
        sink: Callable[..., None] | None = None,
    ) -> None:
        self.total, self.label, self.sink = total, label, sink
        self.stream = stream if stream is not None else sys.stderr
        self.tty = bool(getattr(self.stream, "isatty", lambda: False)())
        self.done = 0
        self.started = self.last = self.last_sink = time.monotonic()
        self._lock = threading.Lock()
        if sink is not None:  # at once: a viewer knows a load began and how big it is
            sink(**self.figures(self.started))

    def step(self, n: int = 1) -> None:
        """``n`` more files done."""
        with self._lock:
            self.done += n
            now = time.monotonic()
            if now - self.last >= (BAR_EVERY_S if self.tty else EVERY_S):
                self.last = now
                self._report(now)
            if self.sink is not None and now - self.last_sink >= SINK_EVERY_S:
                self.last_sink = now
                self.sink(**self.figures(now))

    def close(self) -> None:
        """The final figures (and a newline after a bar)."""
        now = time.monotonic()
        # Without a terminal a load shorter than one interval says nothing: logs stay quiet.
        if self.total and (self.tty or now - self.started >= EVERY_S):
            self._report(now, final=True)
        if self.sink is not None:
            self.sink(**self.figures(now))

    def figures(self, now: float | None = None) -> dict:
        """done, total, images per second and seconds left (None until measurable)."""
        elapsed = (now or time.monotonic()) - self.started
        rate = self.done / elapsed if elapsed > 0 else 0.0
        left = (self.total - self.done) / rate if rate > 0 else None
        return {
            "done": self.done,
            "total": self.total,
            "rate": round(rate, 1),
            "eta_s": round(left, 1) if left is not None else None,
        }

    def line(self, now: float | None = None) -> str:
        """'decoding 4,000/20,000 files (20%), 310 img/s, 52 s left'."""
        f = self.figures(now)
        pct = 100 * f["done"] / max(f["total"], 1)
        eta = f" {_duration(f['eta_s'])} left" if f["eta_s"] is not None else ""
        return (
            f"{self.label} {f['done']:,}/{f['total']:,} files ({pct:.0f}%), "
            f"{f['rate']:.0f} img/s,{eta}"
        ).rstrip(",")

    def _report(self, now: float, *, final: bool = False) -> None:
        if self.tty:
            width = 24
            filled = int(width * self.done / max(self.total, 1))
            bar = "#" * filled + "-" * (width - filled)
            self.stream.write(f"\r[{bar}] {self.line(now)}\x1b[K" + ("\n" if final else ""))
        else:
            self.stream.write(self.line(now) + "\n")
        self.stream.flush()


def _duration(seconds: float) -> str:
    minutes, secs = divmod(int(seconds), 60)
    return f"{minutes} min {secs:02d} s" if minutes else f"{secs} s"
