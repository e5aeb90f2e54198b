"""Running a recipe end to end, and resuming a stopped run, into a run directory."""

from __future__ import annotations

import contextlib
import difflib
import json
import os
import sys
import time
import traceback
from dataclasses import dataclass
from pathlib import Path

from kvision.errors import KvisionError
from kvision.recipe import Recipe, load_recipe
from kvision.runs import RunReader, RunWriter, is_run_dir
from kvision.train.console import Console
from kvision.train.phases import phase, start_run
from kvision.train.signals import StopFlag, StopRequested, stop_on_signals

EXIT_OK, EXIT_FAILED, EXIT_USER = 0, 1, 2
EXIT_SIGNAL = {"SIGINT": 130, "SIGTERM": 143}


@dataclass
class RunResult:
    """Where a run went and how it ended."""

    run_dir: Path
    status: str  # finished | failed | interrupted
    exit_code: int
    message: str = ""


def run_recipe(recipe_path: str, overrides: list[str] | tuple[str, ...] = (), *,
               runs_dir: str | None = None, run_dir: str | None = None,
               console: Console | None = None, argv: list[str] | None = None) -> RunResult:
    """Validate, load data, create the run directory, train every trial, write the report.

    Recipe and data problems raise KvisionError before the run directory exists, so a bad
    input leaves nothing behind.
    """
    from kvision.runs.rundir import claim_run_dir, new_run_dir
    from kvision.train.ddp_env import FollowerWriter, broadcast_object, init_from_env, is_main
    from kvision.train.rundir import write_identity

    start_run()
    init_from_env()
    console = console or _rank_console(is_main())
    recipe = load_recipe(recipe_path, list(overrides))
    _configure_backend(recipe, console)
    dataset = _load_data(recipe, manifest=None)
    path = None
    if is_main():
        path = claim_run_dir(run_dir) if run_dir else new_run_dir(runs_dir or recipe.output.runs_dir,
                                                                   recipe.experiment.name)
    path = Path(broadcast_object(str(path) if path else None))
    writer = RunWriter(path) if is_main() else FollowerWriter(path)
    write_identity(writer, recipe, recipe_path=str(recipe_path), overrides=list(overrides),
                   argv=argv if argv is not None else sys.argv)
    from kvision.data import split_manifest

    writer.write_json("split.json", split_manifest(dataset))
    console.line(f"run directory: {path}")
    return _execute(recipe, dataset, writer, console, resumed=False)


def resume_run(run_dir: str, *, recipe_path: str | None = None,
               overrides: list[str] | tuple[str, ...] = (), force: bool = False,
               console: Console | None = None) -> RunResult:
    """Continue a stopped run from each unfinished trial's last completed epoch."""
    from kvision.train.ddp_env import FollowerWriter, barrier, init_from_env, is_main

    start_run()
    init_from_env()
    console = console or _rank_console(is_main())
    path = Path(run_dir).expanduser()
    if not is_run_dir(path):
        raise KvisionError(f"--resume '{run_dir}' is not a kvision run directory "
                           "(it has no meta.json and events.jsonl).")
    _refuse_changed_recipe(path, recipe_path, overrides, force)
    recipe = load_recipe(path / "recipe.toml")
    reader = RunReader(path)
    if reader.status() == "running":
        raise KvisionError(f"The run in '{path}' is still running (pid {reader.meta().get('pid')}); "
                           "stop it before resuming.")
    barrier()  # every rank has checked the run before rank 0 writes its new pid into it
    _configure_backend(recipe, console)
    manifest = json.loads((path / "split.json").read_text("utf-8")) if (path / "split.json").exists() else None
    dataset = _load_data(recipe, manifest=manifest)
    writer = RunWriter(path) if is_main() else FollowerWriter(path)
    _update_meta(writer, reader)
    writer.event("run_resumed", resume_points=_resume_points(path, reader),
                 lost_partial_epoch=_lost_partial_epoch(reader))
    console.line(f"resuming {path}")
    return _execute(recipe, dataset, writer, console, resumed=True, done=_finished_trials(reader))


def _rank_console(main: bool) -> Console:
    """Only rank 0 of a data-parallel run talks; the others write to /dev/null."""
    if main:
        return Console()
    return Console(open(os.devnull, "w"), tty=False)  # noqa: SIM115 - lives as long as the process


def _execute(recipe: Recipe, dataset, writer: RunWriter, console: Console, *, resumed: bool,
             done: set[str] | None = None) -> RunResult:
    with phase("imports"):  # Keras and torch, on the first run of the process
        from kvision.data import class_weights, normalization
        from kvision.train.context import RunContext
        from kvision.train.trial import plan_trials, run_trial

    plans = plan_trials(recipe)
    started = time.monotonic()
    if not resumed:
        writer.event("run_started", run=writer.dir.name, recipe_name=recipe.experiment.name,
                     trials=[{"trial": p.name, "model": p.model_name, "arm": p.arm.name,
                              "stages": [{"name": s.name, "condition": s.condition, "epochs": s.epochs}
                                         for s in p.stages]} for p in plans])
        writer.event("data_loaded", dataset=dataset.name, class_names=dataset.class_names,
                     counts={k: len(v.labels) for k, v in dataset.splits.items()},
                     image_shape=list(dataset.image_shape), info=dataset.info,
                     skipped=dataset.info.get("skipped", []))
    with stop_on_signals() as stop:
        ctx = RunContext(recipe, writer, console, stop, dataset,
                         mean_std=None if recipe.data.regression else normalization(recipe.data, dataset),
                         class_weights=class_weights(recipe.data, dataset))
        try:
            for plan in plans:
                if plan.name not in (done or set()):
                    run_trial(ctx, plan)
            _finish_run(ctx, started)
        except StopRequested as stopped:
            return _interrupted(writer, console, stopped)
        except KvisionError as exc:
            return _failed(writer, console, str(exc), EXIT_USER)
        except Exception as exc:  # noqa: BLE001 - the run must end with a last word and a log
            log = writer.dir / "run.log"
            with open(log, "a", encoding="utf-8") as fh:
                fh.write(traceback.format_exc())
            return _failed(writer, console, f"{type(exc).__name__}: {exc}", EXIT_FAILED,
                           traceback_file="run.log")
        finally:
            writer.close()
    return RunResult(writer.dir, "finished", EXIT_OK)


def _finish_run(ctx, started: float) -> None:
    from kvision.train.ddp_env import is_main
    from kvision.train.report import write_report

    if not is_main():
        return
    if ctx.recipe.insight.enabled:
        from kvision.insight.hooks import run_artifacts

        with phase("insight"):
            run_artifacts(ctx.writer, cfg=ctx.recipe.insight)
    seconds = round(time.monotonic() - started, 2)
    ctx.writer.event("artifact", path="report.md", kind="report")
    ctx.writer.event("run_finished", seconds=seconds)
    with phase("export"):
        write_report(ctx.writer.dir, status="finished")
    ctx.console.line(f"finished in {seconds:.1f}s: {ctx.writer.dir / 'report.md'}")
    _write_profile(ctx.writer)


def _write_profile(writer: RunWriter) -> None:
    """Where this process's time went (kvision.train.phases): profile.json and an event."""
    from kvision.train.phases import PROFILE_FILE, snapshot

    profile = snapshot()
    writer.write_json(PROFILE_FILE, profile)
    writer.event("profile", **profile)


def _interrupted(writer: RunWriter, console: Console, stopped: StopRequested) -> RunResult:
    msg = (f"Stopped by {stopped.signame}; the last completed epoch is checkpointed. "
           f"Continue with: kvision run --resume {writer.dir}")
    writer.event("run_interrupted", signal=stopped.signame, message=msg)
    _partial_report(writer)
    console.line(msg)
    return RunResult(writer.dir, "interrupted", EXIT_SIGNAL.get(stopped.signame, 1), msg)


def _failed(writer: RunWriter, console: Console, message: str, code: int,
            traceback_file: str | None = None) -> RunResult:
    writer.event("run_failed", error=message, traceback_file=traceback_file)
    _partial_report(writer)
    hint = f" (traceback in {writer.dir / traceback_file})" if traceback_file else ""
    console.line(f"run failed: {message}{hint}")
    return RunResult(writer.dir, "failed", code, message)


def _partial_report(writer: RunWriter) -> None:
    """A report of what was done so far; never masks the original problem."""
    from kvision.train.report import write_report

    with contextlib.suppress(Exception):  # best effort on the way out
        write_report(writer.dir)


def _configure_backend(recipe: Recipe, console: Console) -> None:
    """Mixed precision only where the device supports it; say so when it does not."""
    if not any(_wants_mixed(recipe)):
        return
    import keras
    import torch

    if torch.cuda.is_available():
        keras.mixed_precision.set_global_policy("mixed_float16")
    else:
        console.line("note: mixed_precision requested but no CUDA device is present; using float32.")


def _wants_mixed(recipe: Recipe):
    yield recipe.training.mixed_precision
    for arm in recipe.arms:
        for stage in arm.stages:
            yield bool(stage.mixed_precision)


def _load_data(recipe: Recipe, manifest: dict | None):
    with phase("imports"):
        from kvision.data import load_dataset
    with phase("data"):
        return load_dataset(recipe.data, recipe.experiment.seed, manifest=manifest)


def _refuse_changed_recipe(path: Path, recipe_path: str | None,
                           overrides: list[str] | tuple[str, ...], force: bool) -> None:
    """Resuming under a different recipe would mix two experiments in one directory.

    What the user wrote (file + overrides) is compared, not the resolved recipe, so a newer
    kvision with other defaults can still resume an old run (with the run's recipe.toml).
    """
    import tomli_w

    meta = RunReader(path).meta()
    source = recipe_path or meta.get("recipe_path")
    saved = meta.get("recipe_raw")
    if force or saved is None or not source or not Path(source).exists():
        return
    current = load_recipe(source, list(overrides) or meta.get("overrides", [])).raw
    if current == saved:
        return
    before, after = tomli_w.dumps(saved), tomli_w.dumps(current)
    diff = "".join(difflib.unified_diff(before.splitlines(True), after.splitlines(True),
                                        "recipe when the run started", str(source)))
    raise KvisionError(f"The recipe changed since this run started, so resuming would mix two "
                       f"experiments. Run it as a new run, or pass --force to resume with the "
                       f"run's own recipe.toml.\n{diff}")


def _finished_trials(reader: RunReader) -> set[str]:
    return {e["trial"] for e in reader.of("trial_finished")}


def _resume_points(path: Path, reader: RunReader) -> dict:
    from kvision.train.checkpoint import latest_checkpoint

    points = {}
    for trial in reader.trials():
        found = latest_checkpoint(path / "trials" / trial / "checkpoints")
        if found and trial not in _finished_trials(reader):
            state = found[1]["trial"]
            points[trial] = {"stage_index": state["stage_index"], "stage_epoch": state["stage_epoch"],
                             "global_epoch": state["global_epoch"], "checkpoint": found[0].name}
    return points


def _lost_partial_epoch(reader: RunReader) -> bool:
    """Whether the run died inside an epoch (progress seen after the last completed epoch)."""
    for e in reversed(reader.events):
        if e.get("event") == "progress":
            return True
        if e.get("event") in ("epoch_end", "evaluation", "stage_started", "trial_finished"):
            return False
    return False


def _update_meta(writer: RunWriter, reader: RunReader) -> None:
    meta = reader.meta()
    meta.setdefault("resumes", []).append({"pid": os.getpid(), "argv": sys.argv,
                                           "time": time.strftime("%Y-%m-%dT%H:%M:%S%z")})
    meta["pid"] = os.getpid()
    writer.write_json("meta.json", meta)


__all__ = ["RunResult", "StopFlag", "resume_run", "run_recipe"]
