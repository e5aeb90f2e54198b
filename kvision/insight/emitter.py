"""What every insight hook writes through: files inside the run directory, each recorded as an
artifact event, and the recipe's [insight] section however it is handed over."""

from __future__ import annotations

import contextlib
from pathlib import Path
from typing import Any

from kvision.insight._names import slug
from kvision.insight.render_worker import InlineRenderer, Job
from kvision.recipe.schema_insight import InsightSection
from kvision.runs import RunWriter


def insight_section(cfg: Any) -> InsightSection:
    """The InsightSection in ``cfg``: a Recipe (its ``insight``), the section itself, or None."""
    if cfg is None:
        return InsightSection()
    return cfg if isinstance(cfg, InsightSection) else cfg.insight


class Emitter:
    """Writes files inside the run directory and records their artifact events; figures go
    through a renderer (kvision.insight.render_worker): drawn here at once by default, or
    queued for the run's worker, whose artifact events the trainer records later."""

    def __init__(self, writer: RunWriter, trial: str | None, renderer: Any = None) -> None:
        self.writer, self.trial, self.events = writer, trial, []
        self.renderer = renderer if renderer is not None else InlineRenderer(writer)

    def draw(self, kind: str, name: str, plot: str, **args: Any) -> None:
        """``images/<kind>/<name>.png``, drawn by the plot function ``plot`` (a key of
        render_worker.PLOTS) from ``args``: JSON-able values and NumPy arrays."""
        path = f"images/{kind}/{slug(name)}.png"
        self.events.extend(self.renderer.submit(Job.of(plot, kind, self.trial, path, args)))

    def held_while(self) -> contextlib.AbstractContextManager:
        """Around work that wants both cores: the renderer's worker, if any, waits."""
        return self.renderer.held_while()

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
