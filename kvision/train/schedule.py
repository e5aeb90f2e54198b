"""Learning-rate schedules and early stopping as plain, serialisable state.

Keras has LearningRateScheduler, ReduceLROnPlateau and EarlyStopping callbacks, but their
state lives in callback objects that die with the process. A run killed at any instant must
resume exactly, so the state here is a small dict saved in every checkpoint.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

from kvision.recipe.schema_training import EarlyStoppingSpec, ScheduleSpec


@dataclass
class PlateauState:
    """Reduce-on-plateau bookkeeping: best value seen, epochs waited, current factor."""

    best: float | None = None
    wait: int = 0
    factor: float = 1.0


def learning_rate(
    spec: ScheduleSpec, base: float, epoch: int, epochs: int, plateau: PlateauState
) -> float:
    """The learning rate for 0-based ``epoch`` of a stage with ``epochs`` epochs."""
    if spec.name == "step":
        lr = base * spec.gamma ** (epoch // spec.step_size)
    elif spec.name == "cosine":
        lr = spec.min_lr + (base - spec.min_lr) * 0.5 * (
            1 + math.cos(math.pi * epoch / max(epochs, 1))
        )
    elif spec.name == "plateau":
        lr = base * plateau.factor
    else:
        lr = base
    if spec.warmup_epochs and epoch < spec.warmup_epochs:
        # linear warm-up from a tenth of the rate: large early steps destabilise fresh BN stats
        lr *= 0.1 + 0.9 * epoch / spec.warmup_epochs
    return max(lr, spec.min_lr)


def update_plateau(spec: ScheduleSpec, state: PlateauState, metrics: dict[str, float]) -> None:
    """After an epoch: decay the factor when ``spec.monitor`` has not improved for patience epochs."""
    if spec.name != "plateau" or spec.monitor not in metrics:
        return
    value = metrics[spec.monitor]
    if state.best is None or _better(value, state.best, _mode(spec.monitor, "auto"), 0.0):
        state.best, state.wait = value, 0
    else:
        state.wait += 1
        if state.wait > spec.patience:
            state.factor *= spec.gamma
            state.wait = 0


@dataclass
class EarlyState:
    """Early-stopping bookkeeping."""

    best: float | None = None
    best_epoch: int = -1
    wait: int = 0

    def to_dict(self) -> dict:
        """JSON-able state."""
        return asdict(self)


def update_early(
    spec: EarlyStoppingSpec, state: EarlyState, metrics: dict[str, float], epoch: int
) -> tuple[bool, bool]:
    """After ``epoch``: (improved, should_stop)."""
    if spec.monitor not in metrics:
        return False, False
    value = metrics[spec.monitor]
    if state.best is None or _better(
        value, state.best, _mode(spec.monitor, spec.mode), spec.min_delta
    ):
        state.best, state.best_epoch, state.wait = value, epoch, 0
        return True, False
    state.wait += 1
    return False, state.wait >= spec.patience


def _mode(monitor: str, mode: str) -> str:
    if mode != "auto":
        return mode
    return (
        "max" if any(w in monitor for w in ("acc", "precision", "recall", "f1", "auc")) else "min"
    )


def _better(value: float, best: float, mode: str, delta: float) -> bool:
    return value > best + delta if mode == "max" else value < best - delta
