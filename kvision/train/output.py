"""Where a run's words go: events into the run directory, lines onto the console."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from kvision.errors import printable
from kvision.train.console import Console


@dataclass
class RunOutput:
    """The run directory's writer (a no-op one on ranks > 0) and the console."""

    writer: Any  # RunWriter, or kvision.train.ranks.FollowerWriter on ranks > 0
    console: Console

    def event(self, event: str, **fields: Any) -> None:
        """One event in events.jsonl."""
        self.writer.event(event, **fields)

    def line(self, text: str) -> None:
        """One line for people."""
        self.console.line(text)

    def warn(
        self,
        kind: str,
        message: str,
        *,
        trial: str | None = None,
        stage: str | None = None,
        details: dict | None = None,
    ) -> None:
        """A warning the user should see: a ``warning`` event and a console line."""
        self.writer.warning(kind, message, trial=trial, stage=stage, details=details)
        self.console.line(f"warning: {printable(message, one_line=False)}")


__all__ = ["RunOutput"]
