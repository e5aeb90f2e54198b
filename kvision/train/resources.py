"""What a run lends each of its trials: its recipe, output, stop flag, data and evaluations."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from kvision.data.feed import Feed
    from kvision.recipe import Recipe
    from kvision.train.evaluate import Evaluator
    from kvision.train.insight_points import InsightOff
    from kvision.train.output import RunOutput
    from kvision.train.signals import StopFlag


@dataclass(frozen=True)
class RunResources:
    """Shared, read-only for the trials (the evaluator keeps its own cache)."""

    recipe: Recipe
    out: RunOutput
    stop: StopFlag
    feed: Feed
    evaluator: Evaluator
    insight: InsightOff
    mean_std: tuple[list[float], list[float]] | None  # None: a regression's raw features
    class_weights: dict[int, float] | None = None

    @property
    def regression(self) -> bool:
        """Whether the run fits a function (float targets) rather than classifying images."""
        return self.recipe.data.regression


__all__ = ["RunResources"]
