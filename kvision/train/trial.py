"""One trial (a model trained by one arm): stages in order, evaluation, checkpoints, resume.

:meth:`Trial.run` is the whole loop on one screen; the methods below it are its named steps.
"""

from __future__ import annotations

import math
import time
from dataclasses import asdict
from pathlib import Path

import keras
import numpy as np

from kvision.errors import KvisionError
from kvision.recipe.schema import StageSection
from kvision.runs.phases import phase, timed
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
from kvision.train.fit import Epoch, epoch_seed, fit_one_epoch
from kvision.train.plan import TrialPlan, TrialState, plan_trials
from kvision.train.ranks import barrier, is_distributed, main_only, main_writes, stop_together
from kvision.train.resources import RunResources
from kvision.train.schedule import (
    EarlyState,
    PlateauState,
    learning_rate,
    update_early,
    update_plateau,
)

#: `weights` values meaning random initialisation ("none" lets --set turn pretrained weights off).
NO_WEIGHTS = (None, "", "none")


class TrialFailed(Exception):
    """A trial that cannot go on (its loss is no longer finite); the run goes on without it."""

    def __init__(self, trial: str, stage: str | None, message: str) -> None:
        self.trial, self.stage = trial, stage
        super().__init__(message)


class Trial:
    """What one trial needs: its plan, model, state, checkpoint folder and the run's feed."""

    def __init__(self, shared: RunResources, plan: TrialPlan) -> None:
        self.shared, self.plan, self.feed = shared, plan, shared.feed
        self.out, self.settings = shared.out, shared.recipe
        self.dir = self.out.writer.dir / "trials" / plan.name
        self.checkpoints = self.dir / "checkpoints"
        self.found = intact_checkpoint(self)
        self.state = TrialState(**self.found[1]["trial"]) if self.found else TrialState()
        self.model: keras.Model | None = None
        self.compiled_for: tuple[StageSection, keras.Model] | None = None  # see compile_for
        self.predicted: dict | None = None  # the last evaluation's predicted test classes
        self.early, self.plateau = EarlyState(), PlateauState()
        self.started = 0.0

    def run(self) -> None:
        """The trial from its newest intact checkpoint (or its start) to its end."""
        resume_from = self.start()
        try:
            self.started = time.monotonic() - self.state.seconds
            if self.settings.evaluate.before:
                self.evaluate_once("before", None)
            stages = self.plan.stages
            while self.state.stage_index < len(stages):
                stage = stages[self.state.stage_index]
                if not self.state.stage_done:
                    self.begin_stage(stage, resume_from)
                    self.train_stage(stage)
                resume_from = None
                last = self.state.stage_index == len(stages) - 1
                if self.settings.evaluate.after_each_stage or last:
                    self.evaluate_once(f"after_{stage.name}", stage)
                self.state.next_stage()
            self.finish()
        finally:
            wait_for_commits()  # a stop or a failure still leaves the checkpoint in flight in place

    def train_stage(self, stage: StageSection) -> None:
        """Epochs of one stage: learning rate -> fit -> finite check -> early stop -> event ->
        checkpoint, until the stage's epochs are done or early stopping ends it."""
        state, training = self.state, stage.training
        batches = self.feed.fit_batches(stage.condition, training, self.plan.seed)
        self.early, self.plateau = EarlyState(**state.early), PlateauState(**state.plateau)
        stopped = False
        while state.stage_epoch < stage.epochs and not stopped:
            epoch = self.next_epoch(stage)
            lr = self.set_learning_rate(epoch)
            batches[0].set_epoch(state.global_epoch)
            t0 = time.monotonic()
            metrics = fit_one_epoch(self.model, batches, epoch, self.shared)
            check_finite(epoch, metrics)
            metrics["lr"] = lr
            state.stage_epoch, state.global_epoch = state.stage_epoch + 1, state.global_epoch + 1
            stopped = self.early_stop(epoch, metrics)
            self.epoch_ended(epoch, metrics, time.monotonic() - t0, stopped)
            if state.stage_epoch < stage.epochs and not stopped:
                self.checkpoint_every()  # the stage's own checkpoint records its last epoch
                stop_together(self.shared.stop)
        self.end_stage(stage, stopped)

    # -- the named steps -------------------------------------------------------------
    def start(self) -> Path | None:
        """Seed, build and compile the model, and restore the checkpoint found (if any);
        returns the checkpoint to take the optimizer state from, once the stage is set up."""
        plan, state = self.plan, self.state
        keras.utils.set_random_seed(plan.seed)  # same seed -> same init for every arm of a model
        self.model = build_model(self.shared, plan)
        self.shared.insight.check_model(self.model)
        # Compiled at once, for the stage it starts in: the "before" evaluation and a restored
        # checkpoint need a compiled model, and that stage's begin_stage reuses this compile.
        self.compile_for(plan.stages[min(state.stage_index, len(plan.stages) - 1)])
        if not self.found:
            self.announce()
            return None
        path = self.found[0]
        restore_files(path, self.checkpoints)
        mid_stage = state.stage_epoch and not state.stage_done
        if not mid_stage:
            restore_weights(path, self.model)
        self.out.event(
            "trial_resumed",
            trial=plan.name,
            stage_index=state.stage_index,
            epoch=state.global_epoch,
            checkpoint=path.name,
        )
        self.say_started()
        return path if mid_stage else None

    def announce(self) -> None:
        """trial_started, and a line for people."""
        plan = self.plan
        self.out.event(
            "trial_started",
            trial=plan.name,
            model=plan.model_name,
            arm=plan.arm.name,
            repeat=plan.repeat,
            arch=plan.model.arch,
            seed=plan.seed,
            params=trainable_params(self.model),
        )
        self.say_started()

    def say_started(self) -> None:
        plan = self.plan
        self.out.line(
            f"== trial {plan.name}: {plan.model.arch} ({trainable_params(self.model):,} "
            f"trainable parameters), arm {plan.arm.name}"
        )

    def begin_stage(self, stage: StageSection, resume_from: Path | None) -> None:
        """Freeze/unfreeze, apply penalties and dropout, compile with a fresh optimizer.

        Each stage starts with a fresh optimizer, since its settings may differ from the last
        stage's; a run resumed mid-stage gets the checkpoint's optimizer state back.
        """
        plan, training = self.plan, stage.training
        freeze = stage.freeze if stage.freeze is not None else plan.model.freeze
        unfreeze = stage.unfreeze if stage.unfreeze is not None else plan.model.unfreeze
        if freeze or unfreeze:
            from kvision.models import apply_trainable

            apply_trainable(self.model, freeze=list(freeze), unfreeze=list(unfreeze))
        ensure_trainable(self.model, plan)
        self.model = with_overrides(self.model, training)
        self.compile_for(stage, fresh=bool(freeze or unfreeze))
        if resume_from is not None:
            restore_checkpoint(resume_from, self.model)
            return
        self.out.event(
            "stage_started",
            trial=plan.name,
            stage=stage.name,
            stage_index=self.state.stage_index,
            condition=stage.condition,
            epochs=stage.epochs,
            trainable_params=trainable_params(self.model),
            optimizer=asdict(training.optimizer),
            batch_size=training.batch_size,
        )

    def compile_for(self, stage: StageSection, *, fresh: bool = False) -> None:
        """Compile for ``stage`` (its optimizer, new), unless the model already is and has not
        trained since: a trial's first stage reuses the compile made in ``start``. ``fresh``
        (trainable layers changed) compiles anyway, as a model cloned by with_overrides does.
        """
        model = self.model
        if fresh or self.compiled_for != (stage, model) or model.optimizer.built:
            compile_model(model, stage.training, regression=self.shared.regression)
            self.compiled_for = (stage, model)

    def next_epoch(self, stage: StageSection) -> Epoch:
        """The epoch about to be fitted, with its own seed (a pure function of the trial's
        seed and the epoch, so a resumed run draws the same dropout masks)."""
        return Epoch(
            trial=self.plan.name,
            stage=stage.name,
            index=self.state.stage_epoch,
            epochs=stage.epochs,
            seed=epoch_seed(self.plan.seed, self.state.global_epoch),
            training=stage.training,
        )

    def set_learning_rate(self, epoch: Epoch) -> float:
        """The schedule's rate for this epoch, set on the optimizer."""
        training = epoch.training
        lr = learning_rate(
            training.schedule,
            training.optimizer.learning_rate,
            epoch.index,
            epoch.epochs,
            self.plateau,
        )
        self.model.optimizer.learning_rate.assign(lr)
        return lr

    def early_stop(self, epoch: Epoch, metrics: dict) -> bool:
        """Plateau and early-stopping bookkeeping after an epoch; True: the stage ends here."""
        spec = epoch.training.early_stopping
        update_plateau(epoch.training.schedule, self.plateau, metrics)
        stop = False
        if spec:
            improved, stop = update_early(spec, self.early, metrics, epoch.index)
            if improved and spec.restore_best:
                main_only(save_best)(self.checkpoints, self.model)  # rank 0 writes it
        self.state.early, self.state.plateau = asdict(self.early), asdict(self.plateau)
        return stop

    def epoch_ended(self, epoch: Epoch, metrics: dict, seconds: float, stopped: bool) -> None:
        """epoch_end, and a console line every print_every epochs, at the stage's last one
        and when early stopping ends it."""
        self.out.event(
            "epoch_end",
            trial=epoch.trial,
            stage=epoch.stage,
            epoch=epoch.index + 1,
            global_epoch=self.state.global_epoch,
            metrics=metrics,
            seconds=round(seconds, 3),
        )
        done = epoch.index + 1
        if done % self.settings.output.print_every == 0 or done == epoch.epochs or stopped:
            self.out.line(
                f"{epoch.trial} {epoch.stage} epoch {done}/{epoch.epochs} "
                f"{format_metrics(metrics)} ({seconds:.1f}s)"
            )

    def checkpoint_every(self) -> None:
        """A checkpoint every ``output.checkpoint_every`` epochs of a stage."""
        if self.state.stage_epoch % self.settings.output.checkpoint_every == 0:
            self.checkpoint()

    def end_stage(self, stage: StageSection, stopped: bool) -> None:
        """Back to the best weights if early stopping asks for them; stage_ended; the stage's
        own checkpoint."""
        barrier()  # rank 0's best weights are on disk before anyone loads them
        spec = stage.training.early_stopping
        best = self.checkpoints / BEST
        if spec and spec.restore_best and best.exists():
            self.model.load_weights(str(best))
        state = self.state
        if stopped:
            state.stage_epoch = stage.epochs
        state.stage_done = True
        self.out.event(
            "stage_ended",
            trial=self.plan.name,
            stage=stage.name,
            epochs_run=state.stage_epoch,
            stopped_early=stopped,
            best_epoch=self.early.best_epoch + 1 if self.early.best is not None else None,
        )
        self.checkpoint()

    def evaluate_once(self, label: str, stage: StageSection | None) -> None:
        """Evaluate the accuracy matrix, draw the checkpoint's pictures, record it as done
        (a resumed trial does not evaluate a checkpoint again)."""
        if label in self.state.evaluated:
            return
        trial, where = self.plan.name, stage.name if stage else None
        # viewers show "evaluating" instead of a silent pause (an evaluation can take minutes)
        self.out.event("evaluation_started", trial=trial, stage=where, checkpoint=label)
        with self.shared.insight.held_while():  # figures wait: the evaluation takes both cores
            matrix, losses, extra, predicted = self.shared.evaluator.evaluate(self.model, label)
        self.predicted = predicted if predicted is not None else self.predicted
        self.out.event(
            "evaluation",
            trial=trial,
            stage=where,
            checkpoint=label,
            matrix=matrix,
            loss=losses,
            **extra,
        )
        self.out.line(
            f"{trial} {label} ({extra['metric']}): "
            + "  ".join(
                f"{cond}/{split} {acc:.4f}"
                for cond, row in matrix.items()
                for split, acc in row.items()
            )
        )
        self.shared.insight.at_checkpoint(trial, label, self.model)
        self.state.evaluated.append(label)
        self.checkpoint(same_weights=True)

    def finish(self) -> None:
        """model.keras, the trial's pictures, trial_finished; its checkpoints go."""
        seconds = time.monotonic() - self.started
        if self.settings.output.save_models:
            export_model(self)
        self.shared.insight.at_trial_end(self.plan.name, self.model, self.predicted)
        self.out.event("trial_finished", trial=self.plan.name, seconds=round(seconds, 2))
        drop_checkpoints(self.checkpoints)

    def checkpoint(self, *, same_weights: bool = False) -> None:
        """A checkpoint of the trial now; ``same_weights``: unchanged since the newest one (an
        evaluation only adds its record), so that one's weights file is linked, not rewritten."""
        if not same_weights:  # an evaluation's record keeps the time of the one it follows
            self.state.seconds = time.monotonic() - self.started
        save(self, same_weights)


@main_writes
@timed("checkpoint")
def save(trial: Trial, same_weights: bool) -> None:
    """Rank 0 writes the checkpoint; the others wait until it is complete."""
    state = trial.state
    name = f"epoch-{state.global_epoch:04d}-s{state.stage_index}-{len(state.evaluated)}"
    save_checkpoint(
        trial.checkpoints,
        name,
        trial.model,
        {"trial": asdict(state), "plan": trial.plan.name},
        same_weights=same_weights,
        optimizer=not state.stage_done,  # a finished stage's optimizer is never resumed
    )
    if is_distributed():
        wait_for_commits()  # the other ranks go on once it is complete, as before


def intact_checkpoint(trial: Trial) -> tuple[Path, dict] | None:
    """The newest intact checkpoint; damaged ones are reported and passed over, and with none
    left the trial restarts from its start (training is deterministic: same result)."""
    lookup = find_checkpoint(trial.checkpoints)
    if not lookup.damaged:
        return lookup.intact
    name = trial.plan.name
    names = ", ".join(f"{n} ({reason})" for n, reason in lookup.damaged)
    where = trial.checkpoints.relative_to(trial.out.writer.dir).as_posix()
    if lookup.intact is not None:
        epoch = lookup.intact[1]["trial"]["global_epoch"]
        then = (
            f"trial {name} resumes from the previous intact checkpoint "
            f"{lookup.intact[0].name} (after epoch {epoch}) instead"
        )
    else:
        then = f"no intact checkpoint is left, so trial {name} restarts from its start"
    trial.out.warn(
        "damaged_checkpoint",
        f"Damaged checkpoint(s) in {where}: {names}; {then}. Training is deterministic, "
        f"so the result is the same; only the lost epochs are run again.",
        trial=name,
        details={
            "damaged": [n for n, _ in lookup.damaged],
            "resumed_from": lookup.intact[0].name if lookup.intact else None,
        },
    )
    if lookup.intact is None:
        drop_checkpoints(trial.checkpoints)
    return lookup.intact


@main_only
def drop_checkpoints(folder: Path) -> None:
    """A finished, failed or restarted trial's checkpoints go (rank 0 removes them)."""
    remove_checkpoints(folder)


@timed("build")
def build_model(shared: RunResources, plan: TrialPlan) -> keras.Model:
    """The trial's model from the registry, normalising inside (raw pixels in)."""
    from kvision.models import check_backend_limits, create_model

    options = dict(plan.model.options)
    if plan.model.weights not in NO_WEIGHTS:
        options["weights"] = plan.model.weights
    dataset = shared.feed.dataset
    model = create_model(
        plan.model.arch,
        input_shape=dataset.image_shape,
        num_classes=1 if shared.regression else dataset.num_classes,
        preprocess=shared.mean_std,
        **options,
    )
    check_backend_limits(model)
    return model


@main_only
def export_model(trial: Trial) -> None:
    """model.keras, written atomically after a free-space check (estimated from the weights).

    The estimate reads only the model, so the export does not wait for the checkpoint in
    flight (the evaluation's record, a few fsync'd files) and overlaps its commit."""
    from kvision.models.inference import save_for_inference
    from kvision.runs.disk_space import ensure_space
    from kvision.train.checkpoint import weights_file_bytes

    ensure_space(trial.dir, weights_file_bytes(trial.model, optimizer=False))
    with phase("export"):
        # Inference-ready (no optimizer state): resume reads the checkpoints, never this file.
        final = save_for_inference(trial.model, trial.dir / "model.keras")
    trial.out.writer.artifact(final, "model", trial=trial.plan.name)


def check_finite(epoch: Epoch, metrics: dict) -> None:
    """A NaN or infinite loss never recovers: stop the trial with a clear message."""
    bad = {k: v for k, v in metrics.items() if "loss" in k and not math.isfinite(v)}
    if bad:
        values = ", ".join(f"{k} {v}" for k, v in bad.items())
        raise TrialFailed(
            epoch.trial,
            epoch.stage,
            f"Trial {epoch.trial} stopped in stage {epoch.stage}, epoch {epoch.index + 1}: "
            f"the loss is no longer finite ({values}), so training cannot go on. "
            f"A lower learning rate, gradient clipping or checking the data for "
            f"bad values usually helps. The other trials go on.",
        )


def trainable_params(model: keras.Model) -> int:
    """Trainable parameters (the events' ``params``)."""
    return int(sum(np.prod(v.shape) for v in model.trainable_weights))


def ensure_trainable(model: keras.Model, plan: TrialPlan) -> None:
    """A stage with nothing to train is a recipe mistake worth stopping for."""
    if not model.trainable_weights:
        raise KvisionError(
            f"Trial '{plan.name}': every layer is frozen, nothing would train. "
            "Check the freeze / unfreeze patterns of the model and its stages."
        )


__all__ = ["Trial", "TrialFailed", "TrialPlan", "TrialState", "plan_trials"]
