"""What a run's events add up to: epoch rows, curves, evaluation matrices, progress, errors.

Pure Python on top of :class:`kvision.runs.RunReader`, so the screens stay thin and the
digest is testable without a terminal. Events are fed incrementally (``add``), which keeps
a live run with thousands of epochs cheap to follow.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from kvision.errors import printable
from kvision.runs import RunReader, events, is_run_dir
from kvision.runs.events import TERMINAL
from kvision.runs.reader import writer_alive
from kvision.runs.summary import RunClock, best_final_test
from kvision.runs.summary import format_seconds as format_seconds

#: Metric columns shown in the epoch table, in order.
METRICS = ("loss", "accuracy", "val_loss", "val_accuracy", "lr")


@dataclass
class EpochRow:
    """One epoch_end event, flattened for the table and the charts."""

    trial: str
    stage: str
    epoch: int
    global_epoch: int
    metrics: dict[str, float]
    seconds: float | None


@dataclass
class TrialState:
    """Everything known about one trial (model x arm)."""

    name: str
    model: str = ""
    arm: str = ""
    #: the error of a trial stopped on its own (non-finite loss); the run went on
    failed: str | None = None
    finished: bool = False
    # keyed by (stage, epoch) so a resumed run's repeated epoch replaces the old one
    epochs: dict[tuple[str, int], EpochRow] = field(default_factory=dict)
    # global epoch at which each stage starts: the charts draw these as boundaries
    stage_starts: dict[str, int] = field(default_factory=dict)
    #: bumped by every epoch: a view redraws a trial only when this changed
    version: int = 0
    #: every metric name any epoch reported
    metric_keys: set[str] = field(default_factory=set)
    # rows in training order and each metric's (epochs, values), kept up to date as epochs
    # arrive (a live view asks for them every poll; re-sorting thousands of epochs each time
    # would dominate its cost); rebuilt only after an epoch arrives out of order (resume)
    _ordered: list[EpochRow] = field(default_factory=list, repr=False)
    _lines: dict[str, tuple[list[float], list[float]]] = field(default_factory=dict, repr=False)
    _stale: bool = field(default=False, repr=False)

    def add(self, row: EpochRow) -> None:
        """Record one epoch (a repeated (stage, epoch) replaces the earlier one)."""
        key = (row.stage, row.epoch)
        in_order = key not in self.epochs and (
            not self._ordered or row.global_epoch > self._ordered[-1].global_epoch
        )
        self.epochs[key] = row
        self.metric_keys.update(row.metrics)
        self.version += 1
        if in_order and not self._stale:
            self._index(row)
        else:
            self._stale = True

    def _index(self, row: EpochRow) -> None:
        self._ordered.append(row)
        for name, value in row.metrics.items():
            xs, ys = self._lines.setdefault(name, ([], []))
            xs.append(float(row.global_epoch))
            ys.append(value)

    def _rebuild(self) -> None:
        if not self._stale:
            return
        self._ordered, self._lines, self._stale = [], {}, False
        for row in sorted(self.epochs.values(), key=lambda r: r.global_epoch):
            self._index(row)

    def rows(self) -> list[EpochRow]:
        """Epoch rows in training order."""
        self._rebuild()
        return list(self._ordered)

    def points(self, metric: str) -> tuple[tuple[float, ...], tuple[float, ...]]:
        """(global epochs, values) of one metric, epochs without it left out."""
        self._rebuild()
        xs, ys = self._lines.get(metric, ((), ()))
        return tuple(xs), tuple(ys)

    def series(self, metric: str) -> list[float]:
        """One metric over global epochs (missing values skipped)."""
        return list(self.points(metric)[1])

    def boundaries(self) -> list[int]:
        """0-based epoch indices where a stage after the first one begins."""
        return sorted(g - 1 for g in self.stage_starts.values() if g > 1)


@dataclass
class Progress:
    """The current epoch's progress, from the latest progress event."""

    trial: str | None
    stage: str | None
    epoch: int
    step: int
    steps: int


@dataclass
class Loading:
    """A cache entry being built before training, from the latest data_progress event."""

    done: int
    total: int
    rate: float
    eta_s: float | None

    def line(self) -> str:
        """'loading 400/2,000 images (20%) · 31 img/s · 52 s left'."""
        pct = 100 * self.done / max(self.total, 1)
        eta = f" · {format_seconds(self.eta_s)} left" if self.eta_s is not None else ""
        return (
            f"loading {self.done:,}/{self.total:,} images ({pct:.0f}%) · {self.rate:.0f} img/s{eta}"
        )


@dataclass
class Evaluating:
    """An evaluation in progress (between evaluation_started and its evaluation event)."""

    trial: str | None
    checkpoint: str


#: Events that say which trial the run is busy with right now (follow mode tracks them).
ACTIVE_EVENTS = (
    events.TRIAL_STARTED,
    events.TRIAL_RESUMED,
    events.STAGE_STARTED,
    events.PROGRESS,
    events.EPOCH_END,
    events.EVALUATION_STARTED,
    events.EVALUATION,
)


class RunState:
    """Incremental digest of one run directory's events."""

    def __init__(self, path: str | os.PathLike) -> None:
        self.path = Path(path)
        self.reader = RunReader(self.path)
        self.trials: dict[str, TrialState] = {}
        # (trial, checkpoint) -> evaluation event; a later evaluation of the same pair wins
        self.evaluations: dict[tuple[str | None, str], dict] = {}
        self.progress: Progress | None = None
        self.evaluating: Evaluating | None = None
        #: the data being loaded, while data_progress is the latest event
        self.loading: Loading | None = None
        #: the trial the run is busy with (the live view follows it); None before any
        self.active: str | None = None
        self.messages: list[tuple[str, str]] = []  # (level, text), errors and warnings
        self.artifacts: list[dict] = []
        self.recipe_name = ""
        self.started: str | None = None
        self.ended: str | None = None
        self.clock = RunClock()
        # finished/failed/interrupted once the run said so; None while it has not
        self.last_word: str | None = None
        self._skipped: list[dict] = []
        #: index in messages of the last interruption, until a resume makes it history
        self._interrupted: int | None = None
        self.ended_before: str | None = None  # when the session before a resume ended
        self._digest(self.reader.events)

    @property
    def name(self) -> str:
        """The run directory's name, control characters escaped."""
        return printable(self.path.name)

    def poll(self) -> list[dict]:
        """Read and digest newly appended events; returns them (strings escaped)."""
        return self._digest(self.reader.poll())

    def _digest(self, read: list[dict]) -> list[dict]:
        """Add events read from events.jsonl with every string's control characters escaped:
        the screens show names and messages from the run's files, and a terminal would obey
        an escape sequence in them (set its title, clear the screen)."""
        new = [_printable_values(event) for event in read]
        for event in new:
            self.add(event)
        self._flush_skipped()
        return new

    def _flush_skipped(self) -> None:
        """data_loaded's skipped files as messages, for runs that did not say it in a
        skipped_files warning (written right after it, so usually read in the same batch)."""
        for skipped in self._skipped:
            self.messages.append(
                ("warning", f"skipped {skipped.get('path')}: {skipped.get('reason')}")
            )
        self._skipped = []

    def status(self) -> str:
        """running | finished | failed | interrupted | stale, as RunReader.status says, but
        from the digested last word instead of a scan of all events (cheap when polled)."""
        return self.last_word or (
            "running" if writer_alive(self.reader.meta(), self.reader.path) else "stale"
        )

    def add(self, e: dict) -> None:
        """Digest one event; unknown or malformed events are ignored, never fatal."""
        kind = e.get("event")
        self.clock.add(e)
        if kind != events.DATA_PROGRESS:
            self.loading = None  # any later event: the load is over
        if kind in TERMINAL:
            self.last_word = TERMINAL[kind]
        elif kind in ("run_started", "run_resumed"):
            self.last_word = None
        if kind in ACTIVE_EVENTS and e.get("trial"):
            self.active = str(e["trial"])
        handler = getattr(self, f"_on_{kind}", None)
        if handler is None:
            return
        try:
            handler(e)
        except (KeyError, TypeError, ValueError, AttributeError):
            self.messages.append(("warning", f"Could not read a {kind} event: {e!r:.120}"))

    def _trial(self, name: str | None) -> TrialState:
        key = name or "-"
        if key not in self.trials:
            self.trials[key] = TrialState(key)
        return self.trials[key]

    def _on_run_started(self, e: dict) -> None:
        self.recipe_name = e.get("recipe_name") or ""
        self.started = self.started or e.get("time")
        for t in e.get("trials") or []:
            trial = self._trial(t.get("trial"))
            trial.model, trial.arm = t.get("model", ""), t.get("arm", "")

    def _on_trial_started(self, e: dict) -> None:
        trial = self._trial(e.get("trial"))
        trial.model = e.get("model", trial.model)
        trial.arm = e.get("arm", trial.arm)

    def _on_trial_finished(self, e: dict) -> None:
        self._trial(e.get("trial")).finished = True

    def _on_trial_failed(self, e: dict) -> None:
        trial = self._trial(e.get("trial"))
        trial.failed = str(e.get("error") or "failed")
        self.messages.append(
            (
                "error",
                f"Trial {trial.name} failed: {trial.failed} (the run goes on with the next trial)",
            )
        )
        self.progress = self.evaluating = None

    def _on_stage_started(self, e: dict) -> None:
        trial = self._trial(e.get("trial"))
        # the stage begins after the epochs already run in this trial
        trial.stage_starts.setdefault(e.get("stage") or "", _next_epoch(trial))

    def _on_epoch_end(self, e: dict) -> None:
        trial = self._trial(e.get("trial"))
        stage = e.get("stage") or ""
        metrics = {k: float(v) for k, v in (e.get("metrics") or {}).items() if _is_number(v)}
        row = EpochRow(
            trial.name,
            stage,
            int(e["epoch"]),
            int(e.get("global_epoch") or e["epoch"]),
            metrics,
            e.get("seconds"),
        )
        trial.add(row)
        trial.stage_starts.setdefault(stage, row.global_epoch - row.epoch + 1)
        self.progress = None

    def _on_progress(self, e: dict) -> None:
        self.progress = Progress(
            e.get("trial"),
            e.get("stage"),
            int(e.get("epoch") or 0),
            int(e["step"]),
            int(e["steps"]),
        )

    def _on_data_progress(self, e: dict) -> None:
        eta = e.get("eta_s")
        self.loading = Loading(
            int(e["done"]), int(e["total"]), float(e.get("rate") or 0.0), _number_or_none(eta)
        )

    def _on_evaluation_started(self, e: dict) -> None:
        self.evaluating = Evaluating(e.get("trial"), str(e.get("checkpoint")))
        self.progress = None

    def _on_evaluation(self, e: dict) -> None:
        self.evaluations[(e.get("trial"), str(e.get("checkpoint")))] = e
        self.evaluating = None

    def _on_artifact(self, e: dict) -> None:
        self.artifacts.append(e)

    def _on_warning(self, e: dict) -> None:
        if e.get("kind") == "skipped_files":
            self._skipped = []  # said here, with the count and where the full list is
        where = " ".join(str(e[k]) for k in ("trial", "stage") if e.get(k))
        head = f"[{e['kind']}] " if e.get("kind") else ""
        self.messages.append(
            ("warning", f"{head}{where + ': ' if where else ''}{e.get('message')}")
        )

    def _on_data_loaded(self, e: dict) -> None:
        self._skipped = list(e.get("skipped") or [])

    def _on_run_failed(self, e: dict) -> None:
        where = f" (traceback in {e['traceback_file']})" if e.get("traceback_file") else ""
        self.messages.append(("error", f"Run failed: {e.get('error')}{where}"))
        self._end(e)

    def _on_run_interrupted(self, e: dict) -> None:
        self.messages.append(("error", f"Run interrupted ({e.get('signal')}): {e.get('message')}"))
        self._interrupted = len(self.messages) - 1
        self._end(e)

    def _on_run_finished(self, e: dict) -> None:
        self._end(e)

    def _on_run_resumed(self, e: dict) -> None:
        self.ended = None
        if self._interrupted is not None:  # over now: history, not an error of this session
            _, text = self.messages[self._interrupted]
            self.messages[self._interrupted] = (
                "history",
                f"{text.replace('Run interrupted', 'Interrupted', 1)} (at "
                f"{format_time(self.ended_before)}; resumed at {format_time(e.get('time'))})",
            )
            self._interrupted = None
        if e.get("lost_partial_epoch"):
            self.messages.append(
                ("warning", "Resumed; the epoch in progress was lost and is run again.")
            )

    def _end(self, e: dict) -> None:
        self.ended = self.ended_before = e.get("time")
        self.progress = self.evaluating = None

    def final_matrices(self) -> dict[str, dict]:
        """Per trial, the latest evaluation event (the one after its last stage)."""
        latest: dict[str, dict] = {}
        for (trial, _checkpoint), event in self.evaluations.items():
            latest[trial or "-"] = event  # dict keeps insertion order: later ones win
        return latest

    def best_test(self) -> tuple[float | None, str]:
        """The headline `kvision ls` shows too: best final test score, and its metric."""
        return best_final_test(self.evaluations.values())

    def duration(self, running: bool = False) -> float | None:
        """Total run time across resumes (the same figure as `kvision ls`); ``running``
        counts up to now, so a live clock moves during a long epoch too."""
        return self.clock.seconds(datetime.now(UTC) if running else None)


def _printable_values(value: Any) -> Any:
    """``value`` (an event read from events.jsonl) with the control characters of every string
    in it escaped (line breaks kept: messages may span lines)."""
    if isinstance(value, str):
        return printable(value, one_line=False)
    if isinstance(value, dict):
        return {printable(k): _printable_values(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_printable_values(v) for v in value]
    return value


def open_run(path: str | os.PathLike) -> RunState:
    """A RunState for ``path``; a KvisionError naming the problem when it is not a run."""
    from kvision.errors import KvisionError

    p = Path(path).expanduser()
    if not p.is_dir():
        raise KvisionError(
            f"Run directory '{p}' does not exist. Give a directory made by "
            "'kvision run' (it holds meta.json and events.jsonl)."
        )
    if not is_run_dir(p):
        raise KvisionError(
            f"'{p}' is not a kvision run directory: it lacks meta.json or "
            "events.jsonl. Give a directory made by 'kvision run', or a runs "
            "folder with --runs-dir."
        )
    return RunState(p)


def format_time(iso: str | None) -> str:
    """'2026-01-01 12:00' from an ISO timestamp, or '-'."""
    t = _parse_time(iso)
    return t.strftime("%Y-%m-%d %H:%M") if t else "-"


def _next_epoch(trial: TrialState) -> int:
    return max((r.global_epoch for r in trial.epochs.values()), default=0) + 1


def _number_or_none(value: object) -> float | None:
    return float(value) if _is_number(value) else None


def _is_number(value: object) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and value == value


def _parse_time(iso: str | None) -> datetime | None:
    try:
        return datetime.fromisoformat(iso) if iso else None
    except ValueError:
        return None
