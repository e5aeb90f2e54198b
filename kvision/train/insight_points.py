"""The points of a run where kvision.insight draws its pictures and tables.

Whether insight is on is asked once, when the run starts (:func:`insight_points`); a run with
it off gets :class:`InsightOff`, whose points do nothing (and starts no drawing worker).
Only rank 0 draws: the numbers here, the PNGs in a low-priority worker process
(kvision.insight.render_worker), started with the first figure, held while the trainer
evaluates or sweeps blurs (:meth:`InsightPoints.held_while`) and drained at the run's end.
"""

from __future__ import annotations

import contextlib
from typing import TYPE_CHECKING, Any

from kvision.runs.phases import phase, timed
from kvision.train.ranks import main_only

if TYPE_CHECKING:
    import keras
    import numpy as np

    from kvision.data.feed import Feed
    from kvision.runs import RunWriter


class InsightOff:
    """A run with ``[insight] enabled = false``: every point does nothing."""

    def check_model(self, model: keras.Model) -> None:
        """Nothing to check."""

    def held_while(self) -> contextlib.AbstractContextManager:
        """Around an evaluation: nothing is drawn anyway."""
        return contextlib.nullcontext()

    def at_checkpoint(self, trial: str, label: str, model: keras.Model) -> None:
        """Nothing to draw."""

    def at_trial_end(self, trial: str, model: keras.Model, predicted: dict | None) -> None:
        """Nothing to draw."""

    def at_run_end(self) -> None:
        """Nothing to draw."""

    def close(self) -> None:
        """Nothing to stop."""


class InsightPoints(InsightOff):
    """Filters and activations at each evaluation checkpoint, curves, confusion matrices,
    CAM and robustness at a trial's end, the run's comparisons at its end."""

    def __init__(self, writer: RunWriter, feed: Feed) -> None:
        from kvision.insight.render_worker import renderer

        self.writer, self.feed = writer, feed
        self.cfg = feed.recipe.insight
        self.regression = feed.recipe.data.regression
        self.renderer = renderer(writer)  # the worker starts with the first figure

    def held_while(self) -> contextlib.AbstractContextManager:
        """Around an evaluation: the drawing worker waits, so the evaluation keeps both cores
        (render_worker's docstring); the robustness sweep holds it the same way."""
        return self.renderer.held_while()

    def check_model(self, model: keras.Model) -> None:
        """A layer named in [insight] must exist: fail before training, on every rank."""
        from kvision.insight.hooks import check_model

        check_model(model, self.cfg)

    @main_only
    @timed("insight")
    def at_checkpoint(self, trial: str, label: str, model: keras.Model) -> None:
        """Filters and activations at an evaluation checkpoint (images only)."""
        if self.regression:
            return
        from kvision.insight.hooks import checkpoint_artifacts

        self.renderer.collect()
        checkpoint_artifacts(
            self.writer,
            trial=trial,
            label=label,
            model=model,
            samples=self.samples(),
            cfg=self.cfg,
            renderer=self.renderer,
        )

    @main_only
    @timed("insight")
    def at_trial_end(self, trial: str, model: keras.Model, predicted: dict | None) -> None:
        """Curves, confusion matrices, CAM and robustness for a finished trial; ``predicted``:
        the last evaluation's predicted test classes per condition (reused, not predicted
        again)."""
        if self.regression:
            from kvision.insight.fit import fit_artifacts

            data = self.feed.dataset
            fit_artifacts(
                self.writer,
                trial=trial,
                model=model,
                data=self.feed.recipe.data,
                train=data.splits["train"],
                cfg=self.cfg,
            )
            return
        from kvision.insight.hooks import trial_artifacts

        self.renderer.collect()
        feed = self.feed
        test_sets = {
            c: feed.view(c, "test") for c in feed.eval_conditions() if feed.has_split("test")
        }
        trial_artifacts(
            self.writer,
            trial=trial,
            model=model,
            test_sets=test_sets,
            class_names=feed.dataset.class_names,
            samples=self.samples(),
            cfg=self.cfg,
            predicted=predicted,
            renderer=self.renderer,
        )

    @main_only
    def at_run_end(self) -> None:
        """The run's own pictures (comparisons across its trials), then every figure drawn
        and recorded: the report and run_finished come after."""
        from kvision.insight.hooks import run_artifacts

        with phase("insight"):
            run_artifacts(self.writer, cfg=self.cfg, renderer=self.renderer)
            self.renderer.drain()

    def close(self) -> None:
        """Stop the drawing worker after its current figure; what it has not drawn stays
        queued in the run directory (``kvision viz pending`` or a resume draws it)."""
        self.renderer.close()

    def samples(self) -> Any:
        """Sample test images (one per class by default) for activations and CAM."""
        from kvision.insight.hooks import Samples, pick_samples

        dataset = self.feed.dataset
        split = "test" if self.feed.has_split("test") else "train"
        labels: np.ndarray = dataset.splits[split].labels
        idx = pick_samples(
            labels,
            per_class=self.cfg.samples_per_class,
            seed=self.feed.recipe.experiment.seed,
        )
        images = dataset.splits[split].images[idx]
        return Samples(images=images, labels=labels[idx], class_names=dataset.class_names)


def insight_points(writer: RunWriter, feed: Feed) -> InsightOff:
    """The run's insight points: drawing ones if the recipe turns insight on."""
    return InsightPoints(writer, feed) if feed.recipe.insight.enabled else InsightOff()


__all__ = ["InsightOff", "InsightPoints", "insight_points"]
