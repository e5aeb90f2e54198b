"""The ``[training]`` section: defaults every stage inherits and may override."""

from __future__ import annotations

from dataclasses import dataclass

from kvision.recipe.spec import option

OPTIMIZERS = ("adam", "adamw", "sgd", "rmsprop")
CLASSIFICATION_LOSSES = ("cross_entropy",)
REGRESSION_LOSSES = ("mse", "mae", "huber")
LOSSES = CLASSIFICATION_LOSSES + REGRESSION_LOSSES
SCHEDULES = ("constant", "step", "plateau", "cosine")


@dataclass(frozen=True)
class OptimizerSpec:
    """An optimizer and its hyper-parameters (Keras optimizers underneath)."""

    name: str = option("adam", help="Optimizer.", choices=OPTIMIZERS)
    # 3e-4: report 000's Adam learning rate, a safe default for these small CNNs.
    learning_rate: float = option(3e-4, help="Initial learning rate.", gt=0, le=10)
    weight_decay: float = option(
        0.0, help="Decoupled weight decay (AdamW style; report 004 uses 0.01).", ge=0, le=1
    )
    momentum: float = option(
        0.0, help="Momentum for sgd and rmsprop (report 003: 0.9).", ge=0, lt=1
    )
    nesterov: bool = option(False, help="Nesterov momentum (sgd).")
    beta_1: float = option(0.9, help="Adam/AdamW first-moment decay.", gt=0, lt=1)
    beta_2: float = option(0.999, help="Adam/AdamW second-moment decay.", gt=0, lt=1)
    epsilon: float = option(1e-7, help="Numerical-stability term.", gt=0, le=1)
    clipnorm: float | None = option(None, help="Clip each gradient to this L2 norm.", gt=0)
    clipvalue: float | None = option(
        None, help="Clip each gradient element to +/- this value.", gt=0
    )

    def check(self) -> list[tuple[str, str]]:
        """Reject settings the chosen optimizer ignores, so a typo'd intent is not lost."""
        problems = []
        if self.nesterov and self.name != "sgd":
            problems.append(("nesterov", f"nesterov applies to sgd only, not '{self.name}'."))
        if self.momentum and self.name not in ("sgd", "rmsprop"):
            problems.append(
                ("momentum", f"momentum applies to sgd and rmsprop, not '{self.name}'.")
            )
        return problems


@dataclass(frozen=True)
class ScheduleSpec:
    """Learning-rate schedule, stepped once per epoch."""

    name: str = option(
        "constant",
        help="constant, step (report 002), plateau (original AlexNet), cosine.",
        choices=SCHEDULES,
    )
    step_size: int = option(10, help="step: epochs between decays.", ge=1)
    gamma: float = option(
        0.1, help="step/plateau: factor the learning rate is multiplied by.", gt=0, lt=1
    )
    patience: int = option(3, help="plateau: epochs without improvement before a decay.", ge=0)
    monitor: str = option("val_loss", help="plateau: metric watched.")
    min_lr: float = option(0.0, help="Lower bound for the learning rate.", ge=0)
    warmup_epochs: int = option(0, help="Linear warm-up from lr/10 over this many epochs.", ge=0)


@dataclass(frozen=True)
class EarlyStoppingSpec:
    """Stop a stage when a monitored metric stops improving (report 003)."""

    monitor: str = option("val_loss", help="Metric to watch (any epoch metric, e.g. val_accuracy).")
    patience: int = option(
        7, help="Epochs without improvement before stopping (report 003: 7).", ge=0
    )
    min_delta: float = option(0.0, help="Smallest change that counts as an improvement.", ge=0)
    mode: str = option(
        "auto",
        help="min, max, or auto (max for accuracy-like metrics).",
        choices=("auto", "min", "max"),
    )
    restore_best: bool = option(True, help="Restore the best epoch's weights when the stage ends.")


@dataclass(frozen=True)
class TrainingSection:
    """Training defaults; every stage may override any of these keys."""

    optimizer: OptimizerSpec = option(default_factory=OptimizerSpec, help="Optimizer table.")
    batch_size: int = option(32, help="Images per step (report 000: 32).", ge=1, le=65536)
    loss: str | None = option(
        None,
        choices=LOSSES,
        help="Loss function; default cross_entropy for images, mse for a "
        "function: source (report 002).",
    )
    schedule: ScheduleSpec = option(default_factory=ScheduleSpec, help="Learning-rate schedule.")
    early_stopping: EarlyStoppingSpec | None = option(None, help="Early stopping; off when absent.")
    l1: float = option(0.0, help="L1 penalty on conv/dense kernels (report 004: 0.001).", ge=0)
    l2: float = option(0.0, help="L2 penalty on conv/dense kernels (added to the loss).", ge=0)
    dropout: float | None = option(
        None, help="Override the dropout rate of models that have dropout.", ge=0, lt=1
    )
    mixed_precision: bool = option(False, help="mixed_float16 where the device supports it (CUDA).")
    shuffle: bool = option(True, help="Shuffle the training data every epoch (seeded).")
    steps_per_epoch: int | None = option(None, help="Cap on steps per epoch (quick runs).", ge=1)
    workers: int = option(
        0, help="Worker threads feeding batches (0 = in the training thread).", ge=0, le=64
    )
