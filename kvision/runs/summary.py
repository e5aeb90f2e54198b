"""The few numbers that sum up a run, computed one way for `kvision ls` and kvision-tui.

Both show the same headline under the same label (:data:`HEADLINE`): the best *final test*
score, i.e. over every trial's last evaluation, the highest value on the test split (any
condition) — accuracy, or R² for a function-fitting run. Durations are the total run time
across resumes: each run_started / run_resumed segment counts until its last event.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime

#: Column label of the headline score, in `kvision ls` and the TUI's history.
HEADLINE = "best test"
#: Where the headline comes from, for help texts and docs.
HEADLINE_HELP = (
    "the highest test-split score (accuracy, or R² for a function fit) among "
    "the trials' final evaluations, in any condition"
)


@dataclass
class RunClock:
    """Total run time across resumes, fed one event at a time (cheap for live readers).

    A segment starts at run_started or run_resumed. A run_finished with ``seconds`` closes
    it with that figure (the runner's own clock); otherwise the segment lasts until the
    latest event seen in it (a killed run's last line, or now-ish for a live run).
    """

    closed: float = 0.0
    _start: datetime | None = None
    _last: datetime | None = None
    _segments: int = field(default=0)

    def add(self, event: dict) -> None:
        """Account for one event."""
        kind = event.get("event")
        when = _parse(event.get("time"))
        if kind in ("run_started", "run_resumed"):
            self._close()
            self._start = self._last = when
            self._segments += 1
            return
        if self._start is None:
            return
        if kind == "run_finished" and isinstance(event.get("seconds"), (int, float)):
            self.closed += float(event["seconds"])
            self._start = self._last = None
            return
        if when is not None:
            self._last = when

    def seconds(self, now: datetime | None = None) -> float | None:
        """Total seconds so far, or None before any run_started. ``now`` (an aware time)
        extends the open segment to it: a viewer of a run that is still running."""
        if not self._segments:
            return None
        return self.closed + self._open_seconds(now)

    def _open_seconds(self, now: datetime | None = None) -> float:
        if self._start is None or self._last is None:
            return 0.0
        comparable = now is not None and (now.tzinfo is None) == (self._last.tzinfo is None)
        end = max(self._last, now) if comparable else self._last
        return max((end - self._start).total_seconds(), 0.0)

    def _close(self) -> None:
        self.closed += self._open_seconds()
        self._start = self._last = None


def run_seconds(events: Iterable[dict]) -> float | None:
    """Total run time of these events across resumes (see :class:`RunClock`)."""
    clock = RunClock()
    for e in events:
        clock.add(e)
    return clock.seconds()


def final_evaluations(evaluations: Iterable[dict]) -> dict[str, dict]:
    """Per trial, its latest evaluation after training (a later one replaces an earlier one;
    the "before" evaluation of an untrained model never counts)."""
    latest: dict[str, dict] = {}
    for e in evaluations:
        if e.get("checkpoint") != "before":
            latest[str(e.get("trial") or "-")] = e
    return latest


def best_final_test(evaluations: Iterable[dict]) -> tuple[float | None, str]:
    """(headline value or None, metric name "accuracy" or "r2"), as :data:`HEADLINE` says."""
    best, metric, _where = best_final_test_where(evaluations)
    return best, metric


def best_final_test_where(
    evaluations: Iterable[dict],
) -> tuple[float | None, str, tuple[str, str] | None]:
    """The headline as :func:`best_final_test`, and where it was measured: (trial,
    condition), so a reader knows which trial and which images the figure belongs to."""
    best, metric, where = None, "accuracy", None
    for trial, e in final_evaluations(evaluations).items():
        if e.get("metric") == "r2":
            metric = "r2"
        for condition, per_split in (e.get("matrix") or {}).items():
            value = (per_split or {}).get("test")
            if _number(value) and (best is None or value > best):
                best, where = float(value), (trial, str(condition))
    return best, metric, where


def format_score(value: float | None, metric: str) -> str:
    """'75.30%' for accuracy, '0.9512' for R², '-' when there is none."""
    if value is None:
        return "-"
    return f"{value:.4f}" if metric == "r2" else f"{100 * value:.2f}%"


def format_seconds(seconds: float | None) -> str:
    """'1h02m', '3m05s', '12s' or '-'."""
    if seconds is None:
        return "-"
    s = int(round(seconds))
    if s >= 3600:
        return f"{s // 3600}h{s % 3600 // 60:02d}m"
    if s >= 60:
        return f"{s // 60}m{s % 60:02d}s"
    return f"{s}s"


def _number(value: object) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and value == value


def _parse(iso: object) -> datetime | None:
    try:
        return datetime.fromisoformat(iso) if isinstance(iso, str) else None
    except ValueError:
        return None
