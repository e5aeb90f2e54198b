"""Reading run directories, also while they are being written (partial last line skipped).

Never imports Keras or torch: the TUI and ``kvision show`` / ``kvision ls`` use it.
"""

from __future__ import annotations

import contextlib
import json
import os
import socket
import tomllib
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from kvision.errors import KvisionError, printable
from kvision.runs.events import (
    ARTIFACT,
    EPOCH_END,
    EVALUATION,
    RUN_RESUMED,
    RUN_STARTED,
    TERMINAL,
    TRIAL_STARTED,
)
from kvision.runs.lock import probe

EVENTS = "events.jsonl"


def is_run_dir(path: str | os.PathLike) -> bool:
    """A run directory has a meta.json and an events.jsonl."""
    p = Path(path)
    return (p / "meta.json").is_file() and (p / EVENTS).is_file()


def find_runs(runs_dir: str | os.PathLike) -> list[Path]:
    """Run directories directly under ``runs_dir``, oldest first (names start with a timestamp)."""
    root = Path(runs_dir)
    if not root.is_dir():
        return []
    return sorted(p for p in root.iterdir() if p.is_dir() and is_run_dir(p))


@dataclass(frozen=True)
class TrialIdentity:
    """What a trial is, as the runner recorded it: never parsed from the trial's name
    (model and arm names may contain '-')."""

    model: str
    arm: str
    repeat: int


@dataclass
class RunReader:
    """Incremental reader of one run directory.

    ``poll()`` reads only the bytes appended since the last call and keeps an incomplete
    last line for the next call, so it is cheap to call many times a second.
    """

    path: Path
    events: list[dict] = field(default_factory=list)
    _offset: int = 0
    _pending: bytes = b""

    def __init__(self, path: str | os.PathLike) -> None:
        self.path = Path(path)
        self.events = []
        self._offset = 0
        self._pending = b""
        self.foreign = 0
        self.poll()

    def poll(self) -> list[dict]:
        """Read newly appended events; returns just the new ones."""
        file = self.path / EVENTS
        try:
            with open(file, "rb") as fh:
                fh.seek(self._offset)
                chunk = fh.read()
        except FileNotFoundError:
            return []
        self._offset += len(chunk)
        data = self._pending + chunk
        lines = data.split(b"\n")
        self._pending = lines.pop()  # b"" when the data ended with a newline
        new = []
        for line in lines:
            try:
                record = json.loads(line)
            except (json.JSONDecodeError, UnicodeDecodeError, RecursionError):
                continue  # a torn line from a killed writer: skip it, keep reading
            if isinstance(record, dict):
                new.append(record)
            else:
                self.foreign += 1  # valid JSON no writer of kvision writes: damage
        self.events.extend(new)
        return new

    def meta(self) -> dict:
        """meta.json, or {} when missing, unreadable or not a JSON object."""
        return _read_json(self.path / "meta.json")

    def problems(self) -> list[str]:
        """What in the run's files kvision did not write (lines skipped, a damaged
        meta.json), one sentence each, for readers to warn about; [] for an intact run."""
        found = []
        if self.foreign:
            found.append(f"{self.foreign} line(s) of events.jsonl are not JSON objects (skipped)")
        if (self.path / "meta.json").is_file() and not self.meta():
            found.append("meta.json is damaged (not a JSON object)")
        return found

    def recipe(self) -> dict:
        """The resolved recipe.toml as a dict, or {} when missing or unreadable."""
        try:
            return tomllib.loads((self.path / "recipe.toml").read_text("utf-8"))
        except (OSError, tomllib.TOMLDecodeError):
            return {}

    def split_manifest(self) -> dict | None:
        """split.json: the ids of every split, to rebuild them exactly (resume, export
        --check); None for a run killed before it was written."""
        path = self.path / "split.json"
        return json.loads(path.read_text("utf-8")) if path.exists() else None

    def of(self, *kinds: str) -> list[dict]:
        """Events of the given kinds, in order."""
        return [e for e in self.events if e.get("event") in kinds]

    def last_word(self) -> str | None:
        """finished | failed | interrupted, from the run's last word since it last (re)started;
        None while it has none (running, or its writer died)."""
        for e in reversed(self.events):
            kind = e.get("event")
            if kind in TERMINAL:
                return TERMINAL[kind]
            if kind in (RUN_STARTED, RUN_RESUMED):
                break
        return None

    def status(self) -> str:
        """running | finished | failed | interrupted | stale (writer gone without a last word).

        "running" means a process holds the run's writer lock (kvision.runs.lock).
        """
        word = self.last_word()
        if word:
            return word
        return "running" if writer_alive(self.meta(), self.path) else "stale"

    def evaluations(self) -> list[dict]:
        """All evaluation events (condition x split accuracy matrices)."""
        return self.of(EVALUATION)

    def epochs(self, trial: str | None = None) -> list[dict]:
        """epoch_end events, optionally of one trial; after a resume the latest wins."""
        latest: dict[tuple, dict] = {}
        for e in self.of(EPOCH_END):
            if trial is None or e.get("trial") == trial:
                latest[(e.get("trial"), e.get("stage"), e.get("epoch"))] = e
        return list(latest.values())

    def artifacts(self) -> list[dict]:
        """artifact events (relative path + kind)."""
        return self.of(ARTIFACT)

    def trials(self) -> list[str]:
        """Trial names in the order they started."""
        seen: dict[str, None] = {}
        for e in self.of(TRIAL_STARTED):
            seen.setdefault(e["trial"], None)
        return list(seen)

    def identities(self) -> dict[str, TrialIdentity]:
        """trial -> (model, arm, repeat), from run_started's trial list and trial_started.

        Runs written before ``repeat`` was recorded give it as the trial's seed minus the
        experiment's seed (repeat r is seeded seed + r).
        """
        base = int(self.recipe().get("experiment", {}).get("seed", 0))
        out: dict[str, TrialIdentity] = {}
        for e in [t for s in self.of("run_started") for t in s.get("trials") or []] + self.of(
            "trial_started"
        ):
            repeat = e.get("repeat")
            if repeat is None:
                repeat = int(e["seed"]) - base if "seed" in e else 0
            out[e["trial"]] = TrialIdentity(str(e.get("model")), str(e.get("arm")), int(repeat))
        return out


@contextlib.contextmanager
def damage_guard(path: str | os.PathLike) -> Iterator[None]:
    """Reading a run whose files hold what kvision never writes (a hand-edited or damaged
    meta.json or events.jsonl: wrong types, missing fields) raises one KvisionError naming
    the run, instead of a traceback; ``ls`` uses it to list such a run as damaged."""
    try:
        yield
    except (KeyError, TypeError, ValueError, AttributeError, IndexError) as exc:
        raise KvisionError(
            f"The run in '{printable(path)}' cannot be read: its events.jsonl or meta.json "
            f"hold something kvision did not write ({type(exc).__name__}: "
            f"{printable(exc)}). Its other files are untouched."
        ) from None


def writer_alive(meta: dict, folder: str | os.PathLike | None = None) -> bool:
    """Whether a process writes the run: one holds ``folder``'s writer lock (asked without
    disturbing it), or, for a writer on another host or a folder without a lock file
    (an older kvision), the process named by meta.json's ``pid`` and ``host`` still runs.

    For readers that track the run's last word themselves (the TUI digests events
    incrementally) and so need only this half of :meth:`RunReader.status`.
    """
    host = meta.get("host")
    held = probe(folder) if folder is not None else None
    if held or (held is False and host in (None, socket.gethostname())):
        return bool(held)
    pid = meta.get("pid")
    return bool(pid) and _alive(pid, host)


#: The second epoch metric shown beside the loss: accuracy for classification, else a
#: regression's mean absolute error (a function-fitting run has no accuracy).
SECOND_METRICS = ("accuracy", "mae")


def second_metric(keys: set[str] | list[str]) -> str:
    """The first of SECOND_METRICS among epoch metric ``keys`` (accuracy when none is)."""
    return next((m for m in SECOND_METRICS if m in keys or f"val_{m}" in keys), "accuracy")


def _read_json(path: Path) -> dict[str, Any]:
    try:
        found = json.loads(path.read_text("utf-8"))
    except (OSError, ValueError, RecursionError):  # ValueError: also bad UTF-8
        return {}
    return found if isinstance(found, dict) else {}


def _alive(pid: int, host: str | None) -> bool:
    """Whether the writer process still runs (only knowable on the same host)."""
    if host and host != socket.gethostname():
        return True  # another machine's run: assume alive until it writes its last word
    try:
        os.kill(int(pid), 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True
