"""One trial (a model trained by one arm): stages in order, evaluation, checkpoints, resume."""

from __future__ import annotations

import math
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import keras
import numpy as np

from kvision.errors import KvisionError
from kvision.recipe import Recipe
from kvision.recipe.schema import ArmSection, ModelSection, StageSection
from kvision.recipe.schema_training import TrainingSection
from kvision.train.checkpoint import (
    BEST,
    find_checkpoint,
    remove_checkpoints,
    restore_checkpoint,
    restore_files,
    restore_weights,
    save_best,
    save_checkpoint,
    wait_for_commits,
)
from kvision.train.compile import compile_model, with_overrides
from kvision.train.console import format_metrics
from kvision.train.context import RunContext
from kvision.train.ranks import barrier, is_distributed, is_main
from kvision.train.evaluate import evaluate_fit, evaluate_matrix
from kvision.runs.phases import phase, timed
from kvision.train.schedule import (
    EarlyState,
    PlateauState,
    learning_rate,
    update_early,
    update_plateau,
)


@dataclass
class TrialPlan:
    """What one trial is: names, the model table, the arm, and its seed."""

    name: str
    model_name: str
    model: ModelSection
    arm_index: int
    arm: ArmSection
    seed: int
    repeat: int = 0

    @property
    def stages(self) -> tuple[StageSection, ...]:
        """The arm's stages."""
        return self.arm.stages


@dataclass
class TrialState:
    """Where a trial is; saved in every checkpoint so a resume continues exactly."""

    stage_index: int = 0
    stage_epoch: int = 0  # epochs completed in the current stage
    global_epoch: int = 0  # epochs completed in the whole trial
    evaluated: list[str] = field(default_factory=list)
    stage_done: bool = False
    early: dict = field(default_factory=dict)
    plateau: dict = field(default_factory=dict)
    seconds: float = 0.0


class TrialFailed(Exception):
    """A trial that cannot go on (its loss is no longer finite); the run goes on without it."""

    def __init__(self, trial: str, stage: str | None, message: str) -> None:
        self.trial, self.stage = trial, stage
        super().__init__(message)


def plan_trials(recipe: Recipe) -> list[TrialPlan]:
    """Every model x arm (x repeat), in recipe order."""
    plans = []
    repeats = recipe.experiment.repeats
    for r in range(repeats):
        for model_name, model in recipe.models.items():
            for i, arm in enumerate(recipe.arms):
                if arm.models is not None and model_name not in arm.models:
                    continue
                name = f"{model_name}-{arm.name}" + (f"-s{r}" if repeats > 1 else "")
                plans.append(
                    TrialPlan(name, model_name, model, i, arm, recipe.experiment.seed + r, r)
                )
    return plans


def run_trial(ctx: RunContext, plan: TrialPlan) -> None:
    """Train one trial from its latest checkpoint (or from scratch) to the end."""
    trial_dir = ctx.writer.dir / "trials" / plan.name
    ckpt_dir = trial_dir / "checkpoints"
    found = _intact_checkpoint(ctx, plan, ckpt_dir)
    state = TrialState(**found[1]["trial"]) if found else TrialState()
    keras.utils.set_random_seed(plan.seed)  # same seed -> same init for every arm of a model
    model = ctx.build_model(plan)
    if ctx.recipe.insight.enabled:  # a layer named in [insight] must exist: fail before training
        from kvision.insight.hooks import check_model

        check_model(model, ctx.recipe.insight)
    # Compiled at once so the "before" evaluation can run; each stage compiles afresh.
    compile_model(
        model,
        plan.stages[min(state.stage_index, len(plan.stages) - 1)].training,
        regression=ctx.regression,
    )
    resume_from = None
    if found:
        restore_files(found[0], ckpt_dir)
        if state.stage_epoch and not state.stage_done:
            resume_from = found[0]  # mid-stage: optimizer state too, once the stage is set up
        else:
            restore_weights(found[0], model)
        ctx.writer.event(
            "trial_resumed",
            trial=plan.name,
            stage_index=state.stage_index,
            epoch=state.global_epoch,
            checkpoint=found[0].name,
        )
    else:
        ctx.writer.event(
            "trial_started",
            trial=plan.name,
            model=plan.model_name,
            arm=plan.arm.name,
            repeat=plan.repeat,
            arch=plan.model.arch,
            seed=plan.seed,
            params=_trainable_params(model),
        )
    ctx.console.line(
        f"== trial {plan.name}: {plan.model.arch} ({_trainable_params(model):,} "
        f"trainable parameters), arm {plan.arm.name}"
    )
    try:
        _run_stages(ctx, plan, model, state, trial_dir, resume_from)
    finally:
        wait_for_commits()  # a stop or a failure still leaves the checkpoint in flight in place


def _run_stages(
    ctx: RunContext,
    plan: TrialPlan,
    model: keras.Model,
    state: TrialState,
    trial_dir: Path,
    resume_from: Path | None,
) -> None:
    ckpt_dir = trial_dir / "checkpoints"
    started = time.monotonic() - state.seconds
    if ctx.recipe.evaluate.before and "before" not in state.evaluated:
        _checkpoint_eval(ctx, plan, model, "before", None, state, ckpt_dir)
    while state.stage_index < len(plan.stages):
        model = _run_stage(ctx, plan, model, state, ckpt_dir, started, resume_from)
        resume_from = None
        state.stage_index, state.stage_epoch, state.stage_done = state.stage_index + 1, 0, False
        state.early, state.plateau = {}, {}
    _finish_trial(ctx, plan, model, trial_dir, time.monotonic() - started)


def _intact_checkpoint(
    ctx: RunContext, plan: TrialPlan, ckpt_dir: Path
) -> tuple[Path, dict] | None:
    """The newest intact checkpoint; damaged ones are reported and passed over, and with none
    left the trial restarts from its start (training is deterministic: same result)."""
    lookup = find_checkpoint(ckpt_dir)
    if not lookup.damaged:
        return lookup.intact
    names = ", ".join(f"{name} ({reason})" for name, reason in lookup.damaged)
    where = ckpt_dir.relative_to(ctx.writer.dir).as_posix()
    if lookup.intact is not None:
        epoch = lookup.intact[1]["trial"]["global_epoch"]
        then = (
            f"trial {plan.name} resumes from the previous intact checkpoint "
            f"{lookup.intact[0].name} (after epoch {epoch}) instead"
        )
    else:
        then = f"no intact checkpoint is left, so trial {plan.name} restarts from its start"
    ctx.warn(
        "damaged_checkpoint",
        f"Damaged checkpoint(s) in {where}: {names}; {then}. Training is deterministic, "
        f"so the result is the same; only the lost epochs are run again.",
        trial=plan.name,
        details={
            "damaged": [n for n, _ in lookup.damaged],
            "resumed_from": lookup.intact[0].name if lookup.intact else None,
        },
    )
    if lookup.intact is None and is_main():
        remove_checkpoints(ckpt_dir)
    return lookup.intact


def _run_stage(
    ctx: RunContext,
    plan: TrialPlan,
    model: keras.Model,
    state: TrialState,
    ckpt_dir: Path,
    started: float,
    resume_from: Path | None,
) -> keras.Model:
    index = state.stage_index
    stage = plan.stages[index]
    training = stage.training
    if not state.stage_done:
        model = _prepare_stage(ctx, plan, model, stage, training, state, resume_from)
        _train_epochs(ctx, plan, model, stage, training, state, ckpt_dir, started)
    last = index == len(plan.stages) - 1
    label = f"after_{stage.name}"
    if (ctx.recipe.evaluate.after_each_stage or last) and label not in state.evaluated:
        _checkpoint_eval(ctx, plan, model, label, stage, state, ckpt_dir)
    return model


def _prepare_stage(
    ctx: RunContext,
    plan: TrialPlan,
    model: keras.Model,
    stage: StageSection,
    training: TrainingSection,
    state: TrialState,
    resume_from: Path | None,
) -> keras.Model:
    """Freeze/unfreeze, apply penalties and dropout, compile with a fresh optimizer.

    Each stage starts with a fresh optimizer, since its settings may differ from the last
    stage's; a run resumed mid-stage gets the checkpoint's optimizer state back.
    """
    freeze = stage.freeze if stage.freeze is not None else plan.model.freeze
    unfreeze = stage.unfreeze if stage.unfreeze is not None else plan.model.unfreeze
    if freeze or unfreeze:
        from kvision.models import apply_trainable

        apply_trainable(model, freeze=list(freeze), unfreeze=list(unfreeze))
    ensure_trainable(model, plan)
    model = with_overrides(model, training)
    compile_model(model, training, regression=ctx.regression)
    if resume_from is not None:
        restore_checkpoint(resume_from, model)
    else:
        ctx.writer.event(
            "stage_started",
            trial=plan.name,
            stage=stage.name,
            stage_index=state.stage_index,
            condition=stage.condition,
            epochs=stage.epochs,
            trainable_params=_trainable_params(model),
            optimizer=asdict(training.optimizer),
            batch_size=training.batch_size,
        )
    return model


def _train_epochs(
    ctx: RunContext,
    plan: TrialPlan,
    model: keras.Model,
    stage: StageSection,
    training: TrainingSection,
    state: TrialState,
    ckpt_dir: Path,
    started: float,
) -> None:
    train = ctx.batches(plan, stage.condition, "train", training)
    val = ctx.batches(plan, stage.condition, "val", training, shuffle=False)
    early = EarlyState(**state.early)
    plateau = PlateauState(**state.plateau)
    stopped_early = False
    while state.stage_epoch < stage.epochs:
        epoch = state.stage_epoch
        lr = learning_rate(
            training.schedule, training.optimizer.learning_rate, epoch, stage.epochs, plateau
        )
        model.optimizer.learning_rate.assign(lr)
        train.set_epoch(state.global_epoch)
        t0 = time.monotonic()
        metrics = ctx.fit_one_epoch(
            model,
            train,
            val,
            plan,
            stage,
            epoch,
            training,
            rng_seed=epoch_seed(plan.seed, state.global_epoch),
        )
        _check_finite(plan, stage, epoch, metrics)
        metrics["lr"] = lr
        state.stage_epoch += 1
        state.global_epoch += 1
        update_plateau(training.schedule, plateau, metrics)
        if training.early_stopping:
            improved, stop = update_early(training.early_stopping, early, metrics, epoch)
            if improved and training.early_stopping.restore_best and is_main():
                save_best(ckpt_dir, model)
            stopped_early = stop
        ctx.writer.event(
            "epoch_end",
            trial=plan.name,
            stage=stage.name,
            epoch=epoch + 1,
            global_epoch=state.global_epoch,
            metrics=metrics,
            seconds=round(time.monotonic() - t0, 3),
        )
        if (
            (epoch + 1) % ctx.recipe.output.print_every == 0
            or epoch + 1 == stage.epochs
            or stopped_early
        ):
            ctx.console.line(
                f"{plan.name} {stage.name} epoch {epoch + 1}/{stage.epochs} "
                f"{format_metrics(metrics)} ({time.monotonic() - t0:.1f}s)"
            )
        if stopped_early:
            state.stage_epoch = stage.epochs
        state.early, state.plateau = asdict(early), asdict(plateau)
        if state.stage_epoch >= stage.epochs:
            break  # the stage's own checkpoint, just below, records this epoch
        if state.stage_epoch % ctx.recipe.output.checkpoint_every == 0:
            state.seconds = time.monotonic() - started
            _save(ckpt_dir, model, plan, state)
        ctx.stop.raise_if_set()
    barrier()  # rank 0's best weights are on disk before anyone loads them
    if (
        training.early_stopping
        and training.early_stopping.restore_best
        and _best_weights(ckpt_dir).exists()
    ):
        model.load_weights(str(_best_weights(ckpt_dir)))
    state.stage_done = True
    state.seconds = time.monotonic() - started
    ctx.writer.event(
        "stage_ended",
        trial=plan.name,
        stage=stage.name,
        epochs_run=state.stage_epoch,
        stopped_early=stopped_early,
        best_epoch=early.best_epoch + 1 if early.best is not None else None,
    )
    _save(ckpt_dir, model, plan, state)


def _checkpoint_eval(
    ctx: RunContext,
    plan: TrialPlan,
    model: keras.Model,
    label: str,
    stage: StageSection | None,
    state: TrialState,
    ckpt_dir: Path,
) -> None:
    """Evaluate the accuracy matrix, draw the checkpoint's pictures, record it as done."""
    # viewers show "evaluating" instead of a silent pause (an evaluation can take minutes)
    ctx.writer.event(
        "evaluation_started", trial=plan.name, stage=stage.name if stage else None, checkpoint=label
    )
    if ctx.regression:
        matrix, losses, extra = evaluate_fit(ctx, model)
    else:
        matrix, losses, ctx.predicted[plan.name] = evaluate_matrix(
            ctx, model, untrained=label == "before"
        )
        extra = {"metric": "accuracy"}
    ctx.writer.event(
        "evaluation",
        trial=plan.name,
        stage=stage.name if stage else None,
        checkpoint=label,
        matrix=matrix,
        loss=losses,
        **extra,
    )
    ctx.console.line(
        f"{plan.name} {label} ({extra['metric']}): "
        + "  ".join(
            f"{cond}/{split} {acc:.4f}"
            for cond, row in matrix.items()
            for split, acc in row.items()
        )
    )
    if is_main():
        ctx.checkpoint_artifacts(plan, label, model)
    state.evaluated.append(label)
    _save(ckpt_dir, model, plan, state, same_weights=True)


def _finish_trial(
    ctx: RunContext, plan: TrialPlan, model: keras.Model, trial_dir: Path, seconds: float
) -> None:
    if ctx.recipe.output.save_models and is_main():
        _export_model(ctx, plan, model, trial_dir)
    if is_main():
        ctx.trial_artifacts(plan, model)
    ctx.writer.event("trial_finished", trial=plan.name, seconds=round(seconds, 2))
    if is_main():
        remove_checkpoints(trial_dir / "checkpoints")


def _export_model(ctx: RunContext, plan: TrialPlan, model: keras.Model, trial_dir: Path) -> None:
    """model.keras, written atomically after a free-space check (estimated from the weights)."""
    from kvision.models.inference import save_for_inference
    from kvision.runs.space import ensure_space
    from kvision.train.checkpoint import estimate_bytes

    ensure_space(trial_dir, estimate_bytes(trial_dir / "checkpoints", model))
    with phase("export"):
        # Inference-ready (no optimizer state): resume reads the checkpoints, never this file.
        final = save_for_inference(model, trial_dir / "model.keras")
    ctx.writer.artifact(final, "model", trial=plan.name)


def _check_finite(plan: TrialPlan, stage: StageSection, epoch: int, metrics: dict) -> None:
    """A NaN or infinite loss never recovers: stop the trial with a clear message."""
    bad = {k: v for k, v in metrics.items() if "loss" in k and not math.isfinite(v)}
    if bad:
        values = ", ".join(f"{k} {v}" for k, v in bad.items())
        raise TrialFailed(
            plan.name,
            stage.name,
            f"Trial {plan.name} stopped in stage {stage.name}, epoch {epoch + 1}: "
            f"the loss is no longer finite ({values}), so training cannot go on. "
            f"A lower learning rate, gradient clipping or checking the data for "
            f"bad values usually helps. The other trials go on.",
        )


def epoch_seed(seed: int, global_epoch: int) -> int:
    """The seed of one epoch's random draws (dropout masks...): a pure function of both."""
    return int(np.random.SeedSequence([seed, global_epoch]).generate_state(1)[0])


@timed("checkpoint")
def _save(
    ckpt_dir: Path,
    model: keras.Model,
    plan: TrialPlan,
    state: TrialState,
    *,
    same_weights: bool = False,
) -> None:
    """A checkpoint of the trial now; ``same_weights``: unchanged since the newest one (an
    evaluation only adds its record), so that one's weights file is linked, not rewritten."""
    if not is_main():
        return barrier()  # rank 0 writes; the others wait until the checkpoint is complete
    name = f"epoch-{state.global_epoch:04d}-s{state.stage_index}-{len(state.evaluated)}"
    save_checkpoint(
        ckpt_dir,
        name,
        model,
        {"trial": asdict(state), "plan": plan.name},
        same_weights=same_weights,
    )
    if is_distributed():
        wait_for_commits()  # the other ranks go on once it is complete, as before
    barrier()


def _best_weights(ckpt_dir: Path) -> Path:
    return ckpt_dir / BEST


def _trainable_params(model: keras.Model) -> int:
    return int(sum(np.prod(v.shape) for v in model.trainable_weights))


def ensure_trainable(model: keras.Model, plan: TrialPlan) -> None:
    """A stage with nothing to train is a recipe mistake worth stopping for."""
    if not model.trainable_weights:
        raise KvisionError(
            f"Trial '{plan.name}': every layer is frozen, nothing would train. "
            "Check the freeze / unfreeze patterns of the model and its stages."
        )


__all__ = ["TrialFailed", "TrialPlan", "TrialState", "plan_trials", "run_trial"]
