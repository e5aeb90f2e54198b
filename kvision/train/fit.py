"""One epoch of ``model.fit``, on one process or data-parallel, with its seeding and progress."""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import keras
import numpy as np

from kvision.runs.phases import timed
from kvision.train.ranks import is_distributed, stop_together

if TYPE_CHECKING:
    from kvision.recipe.schema_training import TrainingSection
    from kvision.train.resources import RunResources

PROGRESS_EVERY_S = 1.0  # progress events for live viewers, throttled so events.jsonl stays small


@dataclass(frozen=True)
class Epoch:
    """Which epoch is fitted: names for progress, its seed and the stage's settings."""

    trial: str
    stage: str
    index: int  # 0-based, within the stage
    epochs: int  # the stage's epochs
    seed: int  # of the epoch's random draws (dropout masks...), see epoch_seed
    training: TrainingSection


def epoch_seed(seed: int, global_epoch: int) -> int:
    """The seed of one epoch's random draws (dropout masks...): a pure function of both."""
    return int(np.random.SeedSequence([seed, global_epoch]).generate_state(1)[0])


@timed("train")
def fit_one_epoch(
    model: keras.Model, batches: tuple[Any, Any], epoch: Epoch, run: RunResources
) -> dict[str, float]:
    """One epoch of ``model.fit`` on (train, val) batches; returns its metrics (float).

    A stop asked for mid-epoch raises StopRequested: the partial epoch is not recorded.
    """
    train, val = batches
    callbacks = epoch_callbacks(epoch.seed, _Progress(run, epoch))
    training = epoch.training
    if is_distributed():
        from kvision.train import distributed

        metrics = distributed.fit_one_epoch(
            model,
            train,
            val,
            class_weight=run.class_weights,
            steps_per_epoch=training.steps_per_epoch,
            callbacks=callbacks,
            stop=run.stop,
        )
        stop_together(run.stop)  # a signal during validation: every rank, or none, stops here
        return metrics
    # shuffle=False: the batches' order is set by train.set_epoch (seeded, resumable).
    history = model.fit(
        train,
        validation_data=val,
        epochs=1,
        verbose=0,
        shuffle=False,
        callbacks=callbacks,
        class_weight=run.class_weights,
        steps_per_epoch=training.steps_per_epoch,
    )
    run.stop.raise_if_set()
    return {k: round(float(v[-1]), 6) for k, v in history.history.items() if k != "learning_rate"}


class SeedEpoch(keras.callbacks.Callback):
    """Seeds the global generators with the epoch's own seed as training begins.

    After Keras' build pass (which draws from the global generators on a model's first fit),
    so an epoch's random draws depend on (seed, epoch) alone: exact resume.
    """

    def __init__(self, seed: int) -> None:
        super().__init__()
        self.seed = seed

    def on_train_begin(self, logs: dict | None = None) -> None:
        keras.utils.set_random_seed(self.seed)


class BatchEndHook(keras.callbacks.Callback):
    """A callback with its own ``on_train_batch_end``, which sets how Keras dispatches it.

    When no callback of a ``fit`` has one, Keras' torch backend starts a thread pool at each
    ``fit`` call, hands every batch's logs to it and joins it when the call ends. When one
    does, as a run's progress callback (:class:`_Progress`) does, batch-end callbacks run in
    the training thread. ``kvision bench`` trains with this hook so that it times the
    dispatch a run has (tests/test_bench.py checks both agree); ``benchmarks/fit_ways.py
    --ways batch-end`` times both dispatches.
    """

    def on_train_batch_end(self, batch: int, logs: dict | None = None) -> None:
        del batch, logs


def epoch_callbacks(seed: int, progress: BatchEndHook | None = None) -> list:
    """The callbacks of a run's epoch: its seed, and its progress (a :class:`BatchEndHook`,
    whose batch end sets Keras' dispatch; ``kvision bench`` passes none and gets the bare
    hook, so it trains with the dispatch a run has)."""
    return [SeedEpoch(seed), progress if progress is not None else BatchEndHook()]


class _Progress(BatchEndHook):
    """Progress for people (TTY bar) and viewers (throttled events); honours stop requests."""

    def __init__(self, run: RunResources, epoch: Epoch) -> None:
        super().__init__()
        self.run, self.epoch = run, epoch
        self.started = self.last = time.monotonic()
        self.steps = 0

    def on_train_begin(self, logs: dict | None = None) -> None:
        self.steps = int(self.params.get("steps") or 0)

    def on_train_batch_end(self, batch: int, logs: dict | None = None) -> None:
        if self.run.stop:
            self.model.stop_training = True
            return
        now, epoch = time.monotonic(), self.epoch
        label = f"{epoch.trial} {epoch.stage} epoch {epoch.index + 1}/{epoch.epochs}"
        loss = (logs or {}).get("loss")
        self.run.out.console.progress(
            label,
            batch + 1,
            self.steps,
            self.started,
            loss=float(loss) if loss is not None else None,
            batch_size=epoch.training.batch_size,
        )
        if now - self.last >= PROGRESS_EVERY_S:
            self.last = now
            self.run.out.event(
                "progress",
                trial=epoch.trial,
                stage=epoch.stage,
                epoch=epoch.index + 1,
                step=batch + 1,
                steps=self.steps,
            )


__all__ = ["BatchEndHook", "Epoch", "SeedEpoch", "epoch_callbacks", "epoch_seed", "fit_one_epoch"]
