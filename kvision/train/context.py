"""Everything a trial needs from the run: recipe, data views, writer, console, stop flag."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import keras
import numpy as np

from kvision.recipe import Recipe
from kvision.recipe.schema import StageSection
from kvision.recipe.schema_training import TrainingSection
from kvision.runs import RunWriter
from kvision.train.console import Console
from kvision.runs.phases import timed
from kvision.train.signals import StopFlag

if TYPE_CHECKING:
    from kvision.data import Dataset
    from kvision.train.trial import TrialPlan

#: `weights` values meaning random initialisation ("none" lets --set turn pretrained weights off).
NO_WEIGHTS = (None, "", "none")
#: Pixels per prediction batch (see RunContext.eval_batch_size).
EVAL_PIXELS = 256 * 64 * 64
PROGRESS_EVERY_S = 1.0  # progress events for live viewers, throttled so events.jsonl stays small


@dataclass
class RunContext:
    """Shared, read-mostly state of one run."""

    recipe: Recipe
    writer: RunWriter
    console: Console
    stop: StopFlag
    dataset: Dataset
    mean_std: tuple[list[float], list[float]] | None  # None: a regression's raw features
    class_weights: dict[int, float] | None = None
    _eval_index: dict[str, np.ndarray] = field(default_factory=dict)
    #: Per trial, the latest evaluation's predicted test classes per condition.
    predicted: dict[str, dict[str, np.ndarray]] = field(default_factory=dict)
    #: Evaluations by weights digest (kvision.train.evaluate), so equal weights predict once.
    eval_cache: dict[str, tuple] = field(default_factory=dict)

    @property
    def regression(self) -> bool:
        """Whether the run fits a function (float targets) rather than classifying images."""
        return self.recipe.data.regression

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
        self.console.line(f"warning: {message}")

    # -- data ------------------------------------------------------------------------
    @timed("blur")
    def view(self, condition: str, split: str) -> tuple[np.ndarray, np.ndarray]:
        """(uint8 images, labels) of a split under a condition (computed once, cached)."""
        from kvision.data import condition_view

        images = condition_view(self.dataset, split, condition, self.recipe.conditions[condition])
        return images, self.dataset.splits[split].labels

    def has_split(self, split: str) -> bool:
        """Whether the dataset has a non-empty split of that name."""
        s = self.dataset.splits.get(split)
        return s is not None and len(s.labels) > 0

    def batches(
        self,
        plan: TrialPlan,
        condition: str,
        split: str,
        training: TrainingSection,
        *,
        shuffle: bool | None = None,
    ) -> Any:
        """Training or validation batches (raw pixel values; the model normalises)."""
        from kvision.data import make_batches

        if not self.has_split(split):
            return None
        mix = self.recipe.conditions[condition].mix
        if mix:  # a mix stage: each batch draws from these conditions in these proportions
            images = [self.view(name, split)[0] for name in mix]
            labels = self.dataset.splits[split].labels
        else:
            images, labels = self.view(condition, split)
        augment = self.recipe.data.augment
        # Validation only predicts: the larger evaluation batches, the same numbers.
        size = (
            training.batch_size
            if split == "train"
            else max(training.batch_size, self.eval_batch_size())
        )
        return make_batches(
            images,
            labels,
            batch_size=size,
            seed=plan.seed,
            shuffle=training.shuffle if shuffle is None else shuffle,
            augment=augment.dynamic if split in augment.splits else None,
            workers=training.workers,
            mix=list(mix.values()) if mix else None,
        )

    def eval_conditions(self) -> list[str]:
        """Conditions in the accuracy matrix (default: all but mixes, which are not views)."""
        return list(
            self.recipe.evaluate.conditions
            or [n for n, c in self.recipe.conditions.items() if not c.mix]
        )

    def eval_batches(self, condition: str, split: str) -> tuple[Any, np.ndarray] | None:
        """(batches, labels) for evaluation: fixed order, optionally a seeded subset."""
        from kvision.data import make_batches

        if not self.has_split(split):
            return None
        images, labels = self.view(condition, split)
        limit = self.recipe.evaluate.max_images
        # The test split is always evaluated whole: its accuracy is the number reported.
        if limit and split != "test" and len(labels) > limit:
            if split not in self._eval_index:
                rng = np.random.default_rng(self.recipe.experiment.seed)
                self._eval_index[split] = np.sort(rng.choice(len(labels), limit, replace=False))
            idx = self._eval_index[split]
            images, labels = images[idx], labels[idx]
        batches = make_batches(
            images, labels, batch_size=self.eval_batch_size(), seed=0, shuffle=False
        )
        return batches, labels

    def eval_batch_size(self) -> int:
        """Images per prediction batch: as many pixels as EVAL_PIXELS (256 images of 64x64,
        at most 512 images), never fewer than 128 or the training batch.

        Prediction costs less per image in larger batches (each batch pays Keras' and the
        thread pool's overheads once), and its activations cost memory: AlexNet/2 and VGG11/8
        predicting 1,536 64x64 images on the loaded 2-core machine took 59 s at 128 a batch,
        41 s at 256 and 28 s at 512, for peaks of 701, 809 and 978 MiB. 256 keeps most of
        the time saved for a third of the memory; the pixel budget keeps large images small.
        """
        pixels = (
            int(np.prod(self.dataset.image_shape[:2])) if len(self.dataset.image_shape) > 1 else 1
        )
        budget = 2 ** int(np.log2(max(EVAL_PIXELS // max(pixels, 1), 1)))
        return max(self.recipe.training.batch_size, 128, min(budget, 512))

    # -- models ----------------------------------------------------------------------
    @timed("build")
    def build_model(self, plan: TrialPlan) -> keras.Model:
        """The trial's model from the registry, normalising inside (raw pixels in)."""
        from kvision.models import create_model

        options = dict(plan.model.options)
        if plan.model.weights not in NO_WEIGHTS:
            options["weights"] = plan.model.weights
        outputs = 1 if self.regression else self.dataset.num_classes
        return create_model(
            plan.model.arch,
            input_shape=self.dataset.image_shape,
            num_classes=outputs,
            preprocess=self.mean_std,
            **options,
        )

    @timed("train")
    def fit_one_epoch(
        self,
        model: keras.Model,
        train: Any,
        val: Any,
        plan: TrialPlan,
        stage: StageSection,
        epoch: int,
        training: TrainingSection,
        rng_seed: int,
    ) -> dict[str, float]:
        """One epoch of ``model.fit``; returns its metrics (float)."""
        callback = _Progress(self, plan, stage, epoch, rng_seed, training.batch_size)
        from kvision.train.ranks import is_distributed

        if is_distributed():
            from kvision.train import distributed

            metrics = distributed.fit_one_epoch(
                model,
                train,
                val,
                class_weight=self.class_weights,
                steps_per_epoch=training.steps_per_epoch,
                callbacks=[callback],
                stop=self.stop,
            )
            self.stop.raise_if_set()
            return metrics
        # shuffle=False: the batches' order is set by train.set_epoch (seeded, resumable).
        history = model.fit(
            train,
            validation_data=val,
            epochs=1,
            verbose=0,
            shuffle=False,
            callbacks=[callback],
            class_weight=self.class_weights,
            steps_per_epoch=training.steps_per_epoch,
        )
        self.stop.raise_if_set()  # a stop mid-epoch: the partial epoch is not recorded
        return {
            k: round(float(v[-1]), 6) for k, v in history.history.items() if k != "learning_rate"
        }

    # -- pictures --------------------------------------------------------------------
    @timed("insight")
    def checkpoint_artifacts(self, plan: TrialPlan, label: str, model: keras.Model) -> None:
        """Filters and activations at an evaluation checkpoint (images only)."""
        if not self.recipe.insight.enabled or self.regression:
            return
        from kvision.insight.hooks import checkpoint_artifacts

        checkpoint_artifacts(
            self.writer,
            trial=plan.name,
            label=label,
            model=model,
            samples=self.samples(),
            cfg=self.recipe.insight,
        )

    @timed("insight")
    def trial_artifacts(self, plan: TrialPlan, model: keras.Model) -> None:
        """Curves, confusion matrices, CAM and robustness for a finished trial."""
        if not self.recipe.insight.enabled:
            return
        if self.regression:
            from kvision.insight.fit import fit_artifacts

            fit_artifacts(
                self.writer,
                trial=plan.name,
                model=model,
                data=self.recipe.data,
                train=self.dataset.splits["train"],
                cfg=self.recipe.insight,
            )
            return
        from kvision.insight.hooks import trial_artifacts

        test_sets = {
            c: self.view(c, "test") for c in self.eval_conditions() if self.has_split("test")
        }
        trial_artifacts(
            self.writer,
            trial=plan.name,
            model=model,
            test_sets=test_sets,
            class_names=self.dataset.class_names,
            samples=self.samples(),
            cfg=self.recipe.insight,
            predicted=self.predicted.get(plan.name),
        )

    def samples(self) -> Any:
        """Sample test images (one per class by default) for activations and CAM."""
        from kvision.insight.hooks import Samples, pick_samples

        split = "test" if self.has_split("test") else "train"
        labels = self.dataset.splits[split].labels
        idx = pick_samples(
            labels,
            per_class=self.recipe.insight.samples_per_class,
            seed=self.recipe.experiment.seed,
        )
        images = self.dataset.splits[split].images[idx]
        return Samples(images=images, labels=labels[idx], class_names=self.dataset.class_names)


class _Progress(keras.callbacks.Callback):
    """Progress for people (TTY bar) and viewers (throttled events); honours stop requests."""

    def __init__(
        self,
        ctx: RunContext,
        plan: TrialPlan,
        stage: StageSection,
        epoch: int,
        rng_seed: int,
        batch_size: int = 0,
    ) -> None:
        super().__init__()
        self.ctx, self.plan, self.stage, self.epoch = ctx, plan, stage, epoch
        self.rng_seed, self.batch_size = rng_seed, batch_size
        self.started = self.last = time.monotonic()
        self.steps = 0

    def on_train_begin(self, logs: dict | None = None) -> None:
        self.steps = int(self.params.get("steps") or 0)
        # After Keras' build pass (which draws from the global generators on a model's first
        # fit), so an epoch's random draws depend on (seed, epoch) alone: exact resume.
        keras.utils.set_random_seed(self.rng_seed)

    def on_train_batch_end(self, batch: int, logs: dict | None = None) -> None:
        if self.ctx.stop:
            self.model.stop_training = True
            return
        now = time.monotonic()
        label = f"{self.plan.name} {self.stage.name} epoch {self.epoch + 1}/{self.stage.epochs}"
        loss = (logs or {}).get("loss")
        self.ctx.console.progress(
            label,
            batch + 1,
            self.steps,
            self.started,
            loss=float(loss) if loss is not None else None,
            batch_size=self.batch_size,
        )
        if now - self.last >= PROGRESS_EVERY_S:
            self.last = now
            self.ctx.writer.event(
                "progress",
                trial=self.plan.name,
                stage=self.stage.name,
                epoch=self.epoch + 1,
                step=batch + 1,
                steps=self.steps,
            )
