"""Writing a run directory: events appended and flushed per line, files written atomically."""

from __future__ import annotations

import json
import os
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from kvision.runs.atomic import atomic_write_json, atomic_write_text

EVENTS = "events.jsonl"


def now_iso() -> str:
    """UTC time, ISO 8601 with milliseconds."""
    return datetime.now(UTC).isoformat(timespec="milliseconds")


class RunWriter:
    """Appends events to ``events.jsonl`` and writes the run's files.

    Each event is one JSON line, written with a single ``write`` and fsync'd, so a reader
    sees whole lines (or a partial last line it can skip) and a crash loses at most one line.
    """

    def __init__(self, run_dir: str | os.PathLike) -> None:
        self.dir = Path(run_dir)
        self.dir.mkdir(parents=True, exist_ok=True)
        self._events = open(self.dir / EVENTS, "a", encoding="utf-8")  # noqa: SIM115 - kept open for the run

    def event(self, event: str, *, trial: str | None = None, stage: str | None = None,
              **fields: Any) -> dict:
        """Append one event; every line has event, time, trial and stage."""
        record = {"event": event, "time": now_iso(), "trial": trial, "stage": stage, **fields}
        self._events.write(json.dumps(record, default=_jsonable) + "\n")
        self._events.flush()
        os.fsync(self._events.fileno())
        return record

    def write_json(self, relpath: str, obj: Any) -> Path:
        """Atomically write a JSON file inside the run directory."""
        return atomic_write_json(self.dir / relpath, obj)

    def write_text(self, relpath: str, text: str) -> Path:
        """Atomically write a text file inside the run directory."""
        return atomic_write_text(self.dir / relpath, text)

    def close(self) -> None:
        """Close the events file."""
        if not self._events.closed:
            self._events.close()


def _jsonable(value: Any) -> Any:
    """JSON fallback for numpy scalars and arrays, paths and the like."""
    if hasattr(value, "item") and getattr(value, "ndim", 1) == 0:
        return value.item()
    if hasattr(value, "tolist"):
        return value.tolist()
    return str(value)
