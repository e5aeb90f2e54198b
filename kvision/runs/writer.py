"""Writing a run directory: events appended and flushed per line, files written atomically."""

from __future__ import annotations

import contextlib
import json
import os
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from kvision.runs.atomic import atomic_write_json, atomic_write_text, file_digest
from kvision.runs.lock import release

EVENTS = "events.jsonl"


def now_iso() -> str:
    """UTC time, ISO 8601 with milliseconds."""
    return datetime.now(UTC).isoformat(timespec="milliseconds")


class RunWriter:
    """Appends events to ``events.jsonl`` and writes the run's files.

    Each event is one JSON line, written with a single ``write`` and fsync'd, so a reader
    sees whole lines (or a partial last line it can skip) and a crash loses at most one line.
    A write that fails (a full disk) is cut back off the file, so the next event starts on a
    line of its own; a torn last line left by a killed writer is closed with a newline on open.
    """

    def __init__(self, run_dir: str | os.PathLike) -> None:
        self.dir = Path(run_dir)
        self.dir.mkdir(parents=True, exist_ok=True)
        self._fd: int | None = os.open(
            self.dir / EVENTS, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o666
        )
        self._end_torn_line()

    def _end_torn_line(self) -> None:
        size = os.fstat(self._fd).st_size
        if size:
            with open(self.dir / EVENTS, "rb") as fh:
                fh.seek(size - 1)
                if fh.read(1) != b"\n":
                    self._append(b"\n")

    def _append(self, data: bytes) -> None:
        start = os.lseek(self._fd, 0, os.SEEK_END)
        try:
            view = memoryview(data)
            while view:
                view = view[os.write(self._fd, view) :]
            os.fsync(self._fd)
        except OSError:
            with contextlib.suppress(OSError):
                os.ftruncate(self._fd, start)  # no half line stays behind
            raise

    def event(
        self, event: str, *, trial: str | None = None, stage: str | None = None, **fields: Any
    ) -> dict:
        """Append one event; every line has event, time, trial and stage."""
        record = {"event": event, "time": now_iso(), "trial": trial, "stage": stage, **fields}
        self._append((json.dumps(record, default=_jsonable) + "\n").encode("utf-8"))
        return record

    def artifact(
        self,
        path: str | os.PathLike,
        kind: str,
        *,
        trial: str | None = None,
        stage: str | None = None,
        **fields: Any,
    ) -> dict:
        """Record a file just written in the run directory with its size and SHA-256, so a
        resume can tell an intact file from a damaged one."""
        try:  # a path built from self.dir, or one relative to the run directory
            rel = Path(path).relative_to(self.dir).as_posix()
        except ValueError:
            rel = Path(path).as_posix()
        full = self.dir / rel
        return self.event(
            "artifact", trial=trial, stage=stage, path=rel, kind=kind, **file_digest(full), **fields
        )

    def warning(
        self,
        kind: str,
        message: str,
        *,
        trial: str | None = None,
        stage: str | None = None,
        details: dict | None = None,
    ) -> dict:
        """A ``warning`` event: a short ``kind`` id and one paragraph for people."""
        extra = {"details": details} if details else {}
        return self.event("warning", trial=trial, stage=stage, kind=kind, message=message, **extra)

    def write_json(self, relpath: str, obj: Any) -> Path:
        """Atomically write a JSON file inside the run directory."""
        return atomic_write_json(self.dir / relpath, obj)

    def write_text(self, relpath: str, text: str) -> Path:
        """Atomically write a text file inside the run directory."""
        return atomic_write_text(self.dir / relpath, text)

    def close(self) -> None:
        """Close the events file and let go of the run's writer lock (kvision.runs.lock)."""
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None
        release(self.dir)


def _jsonable(value: Any) -> Any:
    """JSON fallback for numpy scalars and arrays, paths and the like."""
    if hasattr(value, "item") and getattr(value, "ndim", 1) == 0:
        return value.item()
    if hasattr(value, "tolist"):
        return value.tolist()
    return str(value)
