"""What every insight hook writes through: files inside the run directory, each recorded as an
artifact event, and the recipe's [insight] section however it is handed over."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from kvision.insight._names import slug
from kvision.recipe.schema_insight import InsightSection
from kvision.runs import RunWriter


def insight_section(cfg: Any) -> InsightSection:
    """The InsightSection in ``cfg``: a Recipe (its ``insight``), the section itself, or None."""
    if cfg is None:
        return InsightSection()
    return cfg if isinstance(cfg, InsightSection) else cfg.insight


class Emitter:
    """Writes files inside the run directory and records their artifact events."""

    def __init__(self, writer: RunWriter, trial: str | None) -> None:
        self.writer, self.trial, self.events = writer, trial, []

    def path(self, kind: str, name: str) -> Path:
        """Absolute path of ``images/<kind>/<name>.png``."""
        return self.writer.dir / "images" / kind / f"{slug(name)}.png"

    def emit(self, path: Path | None, kind: str) -> None:
        """Record an artifact event for a file just written (None: nothing was drawn)."""
        if path is not None:
            self.events.append(self.writer.artifact(path, kind, trial=self.trial))

    def trial_file(self, name: str) -> Path:
        """Absolute path of ``trials/<trial>/<name>``."""
        return self.writer.dir / "trials" / str(self.trial) / name


__all__ = ["Emitter", "insight_section"]
