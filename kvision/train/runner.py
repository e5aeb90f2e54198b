"""Running a recipe end to end, and resuming a stopped run, into a run directory."""

from __future__ import annotations

import contextlib
import difflib
import gc
import os
import sys
import time
import traceback
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from kvision.errors import KvisionError
from kvision.recipe import Recipe, load_recipe
from kvision.runs import RunReader, RunWriter, is_run_dir
from kvision.runs.disk_space import EXIT_DISK_FULL, DiskFull, disk_full_cause, disk_full_message
from kvision.runs.phases import phase, start_run
from kvision.train.console import Console
from kvision.train.output import RunOutput
from kvision.train.ranks import main_only
from kvision.train.signals import StopFlag, StopRequested, stop_on_signals

if TYPE_CHECKING:
    from kvision.train.resources import RunResources

EXIT_OK, EXIT_FAILED, EXIT_USER = 0, 1, 2
EXIT_SIGNAL = {"SIGINT": 130, "SIGTERM": 143}
#: How many skipped files a warning names (the full list is in the run's skipped.json).
SKIPPED_SHOWN = 5


@dataclass
class RunResult:
    """Where a run went and how it ended."""

    run_dir: Path
    status: str  # finished | failed | interrupted
    exit_code: int
    message: str = ""


def run_recipe(
    recipe_path: str,
    overrides: list[str] | tuple[str, ...] = (),
    *,
    runs_dir: str | None = None,
    run_dir: str | None = None,
    console: Console | None = None,
    argv: list[str] | None = None,
    notes: list[str] | None = None,
) -> RunResult:
    """Validate, create the run directory, load data, train every trial, write the report.

    Recipe problems raise KvisionError before the run directory exists; data problems found
    while loading remove it again, so a bad input leaves nothing behind.
    """
    from kvision.data.sources import check_source
    from kvision.recipe.compat import check_loaded
    from kvision.runs.lock import is_writer_rank
    from kvision.runs.rundir import claim_run_dir

    recipe = load_recipe(recipe_path, list(overrides))
    check_source(recipe.data)  # a missing or unreadable folder: refused before any folder
    created = bool(run_dir) and not Path(run_dir).expanduser().exists()
    if run_dir and is_writer_rank():  # its writer lock, before torch: a second one exits at once
        claim_run_dir(run_dir)
    from kvision.train.identity import write_identity
    from kvision.train.ranks import broadcast_object, init_from_env, is_main, open_writer

    start_run()
    init_from_env()
    console = console or _rank_console(is_main())
    _configure_backend(recipe, console)
    # Claimed before the data is read: a load that is killed (or runs out of memory) leaves
    # a run directory with its data_progress events, which --resume continues.
    path = Path(broadcast_object(_claim_run_dir(recipe, runs_dir, run_dir)))
    _every_rank_sees(path)
    writer = open_writer(path)
    write_identity(
        writer,
        recipe,
        recipe_path=str(recipe_path),
        overrides=list(overrides),
        argv=argv if argv is not None else sys.argv,
    )
    console.line(f"run directory: {path}")
    try:
        dataset = _load_data(recipe, manifest=None, writer=writer)
        _check_splits(recipe, dataset)
        check_loaded(recipe, dataset.image_shape)  # a folder's image size vs the models
    except KvisionError:  # bad data: nothing was trained, so no run directory stays behind
        writer.close()
        main_only(_discard)(path, created or not run_dir)
        console.line(f"run directory: {'removed' if created or not run_dir else 'emptied'} again")
        raise
    from kvision.data import split_manifest

    writer.write_json("split.json", split_manifest(dataset))
    out = RunOutput(writer, console)
    return _execute(recipe, dataset, out, Start(notes=_torch_only(notes)))


def _discard(path: Path, created: bool) -> None:
    """Remove what this run wrote into ``path`` (and ``path`` itself when it made it)."""
    from kvision.runs.lock import LOCK_FILE

    for name in ("events.jsonl", "meta.json", "recipe.toml", LOCK_FILE):
        with contextlib.suppress(OSError):
            (path / name).unlink()
    if created:
        _remove_if_empty(path)


@main_only
def _claim_run_dir(recipe: Recipe, runs_dir: str | None, run_dir: str | None) -> str:
    """The one place a new run's directory is claimed (rank 0; the others are told where)."""
    from kvision.runs.rundir import claim_run_dir, new_run_dir

    path = (
        claim_run_dir(run_dir)
        if run_dir
        else new_run_dir(runs_dir or recipe.output.runs_dir, recipe.experiment.name)
    )
    return str(path)


def resume_run(
    run_dir: str,
    *,
    recipe_path: str | None = None,
    overrides: list[str] | tuple[str, ...] = (),
    force: bool = False,
    console: Console | None = None,
    notes: list[str] | None = None,
) -> RunResult:
    """Continue a stopped run from each unfinished trial's last completed epoch."""
    from kvision.runs.rundir import claim_existing

    claim_existing(run_dir)  # the writer lock, before anything of the run is read (or torch)
    from kvision.train.ranks import (
        barrier,
        check_everywhere,
        init_from_env,
        is_main,
        open_writer,
        shared_dir_problem,
    )

    start_run()
    init_from_env()
    console = console or _rank_console(is_main())
    path = Path(run_dir).expanduser()
    # a rank on another machine that does not see the folder at all: a filesystem not shared
    local = (
        _not_resumable(path, run_dir) if is_main() or path.exists() else shared_dir_problem(path)
    )
    check_everywhere(is_run_dir(path), local)
    reader = RunReader(path)
    if reader.status() == "finished":
        msg = (
            f"The run in '{path}' is finished; there is nothing to resume "
            f"(report: {path / 'report.md'}). Start a new run to train again."
        )
        console.line(msg)
        return RunResult(path, "finished", EXIT_OK, msg)
    _refuse_changed_recipe(path, recipe_path, overrides, force)
    recipe = load_recipe(path / "recipe.toml")
    _refuse_running(path, reader, force)
    barrier()  # every rank has checked the run before rank 0 writes its new pid into it
    _configure_backend(recipe, console)
    manifest = reader.split_manifest()
    writer = open_writer(path)
    dataset = _load_data(recipe, manifest=manifest, writer=writer)
    _update_meta(writer, reader)
    if manifest is None:  # killed before it was written: record the split now
        from kvision.data import split_manifest

        writer.write_json("split.json", split_manifest(dataset))
    writer.event(
        "run_resumed",
        resume_points=_resume_points(path, reader),
        lost_partial_epoch=_lost_partial_epoch(reader),
    )
    console.line(f"resuming {path}")
    damaged = _damaged_trials(path, reader)
    # A run killed before its first event still needs run_started and data_loaded.
    start = Start(
        resumed=bool(reader.of("run_started")),
        done=_finished_trials(reader) - set(damaged),
        notes=list(damaged.values()) + _torch_only(notes),
    )
    return _execute(recipe, dataset, RunOutput(writer, console), start)


def _torch_only(notes: list[str] | None) -> list[tuple[str, str, None]]:
    """The CLI's notes (``--gpus`` under another backend) and what that backend switches off,
    as warnings: one console line each and the report's Warnings section."""
    return [("data_parallel_off", note, None) for note in notes or []] + [
        ("speed_paths_off", note, None) for note in backend_notes()
    ]


def backend_notes() -> list[str]:
    """What a Keras backend other than torch switches off (the torch-only parts of kvision).

    Grad-CAM has a path per backend (kvision.insight._grad); data parallel is declined by the
    CLI; the speed paths (kvision.models._fast) are torch kernels and step aside by
    themselves, silently, which this says once.
    """
    import keras

    backend = keras.backend.backend()
    if backend == "torch":
        return []
    return [
        f"speed paths off: kvision's fused kernels need the torch backend (this run uses "
        f"{backend}); Keras' own layers and optimizers train, with the same results, slower."
    ]


def _not_resumable(path: Path, run_dir: str) -> str:
    if (path / "events.jsonl").is_file():
        return (
            f"The run in '{run_dir}' was stopped while it was being created, before it "
            "trained anything (it has no meta.json); start it again as a new run."
        )
    return f"--resume '{run_dir}' is not a kvision run directory (it has no meta.json and events.jsonl)."


def _refuse_running(path: Path, reader: RunReader, force: bool) -> None:
    """On this host the writer lock (taken first) has decided that nobody else writes the
    run. A writer on another machine may not see that lock (a network filesystem without
    flock): its run is resumed only with --force, which says that machine is down."""
    import socket

    meta = reader.meta()
    if reader.last_word() or force or meta.get("host") in (None, socket.gethostname()):
        return
    raise KvisionError(
        f"The run in '{path}' may still be running (pid {meta.get('pid')} on "
        f"{meta.get('host')}); stop it before resuming, or, if that machine is down, "
        "resume with --force."
    )


def _every_rank_sees(path: Path) -> None:
    """Ranks on other machines read checkpoints from rank 0's run directory: check they can
    see it before anything is written (an empty directory rank 0 made is removed again)."""
    from kvision.train.ranks import check_everywhere, shared_dir_problem

    try:
        check_everywhere(path.is_dir(), shared_dir_problem(path))
    except KvisionError:
        main_only(_remove_if_empty)(path)
        raise


def _remove_if_empty(path: Path) -> None:
    with contextlib.suppress(OSError):
        path.rmdir()  # only if still empty


def _rank_console(main: bool) -> Console:
    """Only rank 0 of a data-parallel run talks; the others write to /dev/null."""
    if main:
        return Console()
    return Console(open(os.devnull, "w"), tty=False)  # noqa: SIM115 - lives as long as the process


def _trial_entry(plan) -> dict:
    """A trial's structured identity (model, arm, repeat) and its stages, for run_started."""
    return {
        "trial": plan.name,
        "model": plan.model_name,
        "arm": plan.arm.name,
        "repeat": plan.repeat,
        "stages": [
            {"name": s.name, "condition": s.condition, "epochs": s.epochs} for s in plan.stages
        ],
    }


@dataclass(frozen=True)
class Start:
    """How a run starts: fresh or resumed, with the trials already done and the warnings
    to say first (kind, message, trial)."""

    resumed: bool = False
    done: frozenset[str] | set[str] = frozenset()
    notes: list[tuple[str, str, str | None]] = field(default_factory=list)


def _execute(recipe: Recipe, dataset, out: RunOutput, start: Start) -> RunResult:
    from kvision.train.heap import keep_large_blocks

    keep_large_blocks()  # gradients reused from the heap, not mapped anew at every step
    with phase("imports"):  # the trainer's modules (torch and Keras came with meta.json)
        from kvision.train.trial import plan_trials

    plans = plan_trials(recipe)
    started = time.monotonic()
    if not start.resumed:
        _announce(out, recipe, dataset, plans)
    writer, console = out.writer, out.console
    with stop_on_signals() as stop, _warnings_as_events() as captured, _imports_spared_by_gc():
        shared = _resources(recipe, dataset, out, stop)
        captured.append(out)
        try:
            _speed_warning(out)
            if not start.resumed:
                _data_warnings(out, dataset)
            for kind, message, trial in start.notes:
                out.warn(kind, message, trial=trial)
            _run_trials(shared, plans, start.done)
            _finish_run(shared, started)
        except StopRequested as stopped:
            return _interrupted(writer, console, stopped)
        except KvisionError as exc:
            return _failed(writer, console, str(exc), EXIT_USER)
        except Exception as exc:  # noqa: BLE001 - the run must end with a last word and a log
            if (full := disk_full_cause(exc, writer.dir)) is not None:
                return _disk_full(writer, console, full)
            return _crashed(writer, console, exc)
        finally:
            shared.insight.close()
            writer.close()
    return RunResult(writer.dir, "finished", EXIT_OK)


@contextlib.contextmanager
def _imports_spared_by_gc():
    """While the run lasts, full garbage collections (one after each trial) skip the objects
    that exist when it starts: mostly the modules of Keras, torch and scikit-learn, which are
    never garbage and are most of what a full collection walks. Unfrozen when the run ends,
    so whatever of them does become garbage later is collected as usual.

    No collection first: at this point it walks every object of those libraries only to find
    a few small dicts and closures left by Keras' import, which the freeze keeps until the run
    ends (the main job's profile counts that walk as "other")."""
    gc.freeze()
    try:
        yield
    finally:
        gc.unfreeze()


def _announce(out: RunOutput, recipe: Recipe, dataset, plans: list) -> None:
    """run_started and data_loaded: the first events of a run."""
    out.event(
        "run_started",
        run=out.writer.dir.name,
        recipe_name=recipe.experiment.name,
        trials=[_trial_entry(p) for p in plans],
    )
    out.event(
        "data_loaded",
        dataset=dataset.name,
        class_names=dataset.class_names,
        counts={k: len(v.labels) for k, v in dataset.splits.items()},
        image_shape=list(dataset.image_shape),
        info=dataset.info,
        skipped=dataset.info.get("skipped", []),
    )


def _resources(recipe: Recipe, dataset, out: RunOutput, stop: StopFlag) -> RunResources:
    """What the run lends its trials: data feed, evaluator, insight points, normalisation."""
    from kvision.data import class_weights, normalization
    from kvision.data.feed import Feed
    from kvision.train.evaluate import Evaluator
    from kvision.train.insight_points import insight_points
    from kvision.train.resources import RunResources

    feed = Feed(dataset, recipe)
    regression = recipe.data.regression
    return RunResources(
        recipe,
        out,
        stop,
        feed,
        Evaluator(feed, stop, regression=regression),
        insight_points(out.writer, feed),
        mean_std=None if regression else normalization(recipe.data, dataset),
        class_weights=class_weights(recipe.data, dataset),
    )


@contextlib.contextmanager
def _warnings_as_events():
    """Python warnings raised during the run (Keras, kvision's own) become ``warning`` events
    and console lines, each distinct one once, instead of lines on stderr nobody reads.

    Yields a list the caller appends the run's output (RunOutput) to once it exists; warnings
    before that go to stderr as usual.
    """
    import warnings

    holder: list = []
    seen: set[tuple[str, str]] = set()
    previous = warnings.showwarning

    def show(message, category, filename, lineno, file=None, line=None) -> None:
        if not holder:
            return previous(message, category, filename, lineno, file, line)
        key = (category.__name__, str(message))
        if key not in seen:
            seen.add(key)
            holder[0].warn(
                "python_warning",
                str(message),
                details={"category": category.__name__, "source": f"{filename}:{lineno}"},
            )
        return None

    with warnings.catch_warnings():
        warnings.showwarning = show
        yield holder


def _run_trials(shared: RunResources, plans: list, done: set[str]) -> None:
    """Every trial not done yet; one whose loss stops being finite is marked failed and the
    run goes on with the others."""
    from kvision.train.trial import Trial, TrialFailed, drop_checkpoints

    out = shared.out
    for plan in plans:
        if plan.name in done:
            continue
        try:
            Trial(shared, plan).run()
        except TrialFailed as exc:
            out.event("trial_failed", trial=exc.trial, stage=exc.stage, error=str(exc))
            out.warn("non_finite_loss", str(exc), trial=exc.trial, stage=exc.stage)
            drop_checkpoints(out.writer.dir / "trials" / plan.name / "checkpoints")
        # A finished trial's model, optimizer and compiled graph hold each other in reference
        # cycles: collect them before the next trial builds its own. Figures drawn in this
        # process used to trigger that collection by chance; without them, the main job's
        # third trial trained beside the earlier ones' leftovers (a higher peak RSS).
        gc.collect()


def _speed_warning(out: RunOutput) -> None:
    """Training without the torch speed paths works, only slower: worth a warning event."""
    import keras

    from kvision.models import speed_paths_status

    enabled, reason = speed_paths_status()
    if not enabled and keras.backend.backend() == "torch":
        out.warn("speed_paths_off", f"{reason}.")


def _data_warnings(out: RunOutput, dataset) -> None:
    """What the data loading passed over, said once when the run starts."""
    info = dataset.info
    skipped = info.get("skipped") or []
    if skipped:
        out.writer.write_json("skipped.json", skipped)
        shown = "; ".join(f"{s['path']} ({s['reason']})" for s in skipped[:SKIPPED_SHOWN])
        more = f" and {len(skipped) - SKIPPED_SHOWN} more" if len(skipped) > SKIPPED_SHOWN else ""
        out.warn(
            "skipped_files",
            f"{len(skipped)} file(s) in {info.get('folder') or dataset.name} were skipped "
            f"(not images, unreadable or too small): {shown}{more}. The full list is in "
            f"{out.writer.dir / 'skipped.json'}.",
            details={
                "count": len(skipped),
                "first": skipped[:SKIPPED_SHOWN],
                "list": "skipped.json",
            },
        )
    for kind, message in info.get("warnings", []):
        out.warn(kind, message)


def _check_splits(recipe: Recipe, dataset) -> None:
    """A split the evaluation asks for must exist: refused before the run directory is made,
    rather than silently evaluating fewer splits than the recipe says."""
    from kvision.errors import RecipeError

    missing = [
        s
        for s in recipe.evaluate.splits
        if s not in dataset.splits or not len(dataset.splits[s].labels)
    ]
    if recipe.data.regression or not missing:
        return
    have = ", ".join(s for s in dataset.splits if len(dataset.splits[s].labels)) or "none"
    fraction = "data.test_fraction" if "test" in missing else "data.val_fraction"
    raise RecipeError(
        f"evaluate.splits asks for {', '.join(missing)}, but the data ({recipe.data.source}) has "
        f"no such split (it has: {have}). Hold one out of train, seeded and stratified, with "
        f"data.split = [0.8, 0.1, 0.1] (report 003's 8:1:1) or {fraction} = 0.1, add a "
        f"{missing[0]}/ folder beside train/, or drop it from evaluate.splits.",
        key="evaluate.splits",
    )


def _crashed(writer: RunWriter, console: Console, exc: Exception) -> RunResult:
    log = writer.dir / "run.log"
    with open(log, "a", encoding="utf-8") as fh:
        fh.write(traceback.format_exc())
    return _failed(
        writer, console, f"{type(exc).__name__}: {exc}", EXIT_FAILED, traceback_file="run.log"
    )


def _disk_full(writer: RunWriter, console: Console, full: DiskFull) -> RunResult:
    """A full disk: one paragraph, exit 75, and the last word written only if it fits."""
    msg = disk_full_message(full, writer.dir)
    with contextlib.suppress(OSError):
        writer.event("run_failed", error=msg, reason="disk_full", traceback_file=None)
    _partial_report(writer)
    console.line(f"run stopped: {msg}")
    return RunResult(writer.dir, "failed", EXIT_DISK_FULL, msg)


@main_only
def _finish_run(shared: RunResources, started: float) -> None:
    from kvision.train.report_md import finished_time, write_report

    out = shared.out
    shared.insight.at_run_end()
    seconds = round(time.monotonic() - started, 2)
    # The report first: a run is only marked finished once everything it promises is on disk.
    with phase("export"):
        report = write_report(out.writer.dir, status="finished", session_seconds=seconds)
    out.writer.artifact(report, "report")
    _write_profile(out.writer)  # before the last word: run_finished stays the last event
    out.event("run_finished", seconds=seconds)
    out.line(f"finished in {finished_time(out.writer.dir)}: {out.writer.dir / 'report.md'}")


def _write_profile(writer: RunWriter) -> None:
    """Where this process's time went (kvision.runs.phases): profile.json and an event."""
    from kvision.runs.events import PROFILE
    from kvision.runs.phases import PROFILE_FILE, snapshot

    profile = snapshot()
    writer.write_json(PROFILE_FILE, profile)
    writer.event(PROFILE, **profile)


def _interrupted(writer: RunWriter, console: Console, stopped: StopRequested) -> RunResult:
    msg = (
        f"Stopped by {stopped.signame}; the last completed epoch is checkpointed. "
        f"Continue with: kvision run --resume {writer.dir}"
    )
    writer.event("run_interrupted", signal=stopped.signame, message=msg)
    _partial_report(writer)
    console.line(msg)
    return RunResult(writer.dir, "interrupted", EXIT_SIGNAL.get(stopped.signame, 1), msg)


def _failed(
    writer: RunWriter, console: Console, message: str, code: int, traceback_file: str | None = None
) -> RunResult:
    writer.event("run_failed", error=message, traceback_file=traceback_file)
    _partial_report(writer)
    hint = f" (traceback in {writer.dir / traceback_file})" if traceback_file else ""
    console.line(f"run failed: {message}{hint}")
    return RunResult(writer.dir, "failed", code, message)


def _partial_report(writer: RunWriter) -> None:
    """A report of what was done so far; never masks the original problem."""
    from kvision.train.report_md import write_report

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
        console.line(
            "note: mixed_precision requested but no CUDA device is present; using float32."
        )


def _wants_mixed(recipe: Recipe):
    yield recipe.training.mixed_precision
    for arm in recipe.arms:
        for stage in arm.stages:
            yield stage.training.mixed_precision


def _load_data(recipe: Recipe, manifest: dict | None, writer: RunWriter):
    """The recipe's dataset; a cache entry's build reported as data_progress events."""
    from kvision.runs.events import DATA_PROGRESS

    with phase("imports"):
        from kvision.data import load_dataset
    with phase("data"):
        return load_dataset(
            recipe.data,
            recipe.experiment.seed,
            manifest=manifest,
            conditions=recipe.conditions,
            progress=lambda **figures: writer.event(DATA_PROGRESS, **figures),
        )


def _refuse_changed_recipe(
    path: Path, recipe_path: str | None, overrides: list[str] | tuple[str, ...], force: bool
) -> None:
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
    diff = "".join(
        difflib.unified_diff(
            before.splitlines(True),
            after.splitlines(True),
            "recipe when the run started",
            str(source),
        )
    )
    raise KvisionError(
        f"The recipe changed since this run started, so resuming would mix two "
        f"experiments. Run it as a new run, or pass --force to resume with the "
        f"run's own recipe.toml.\n{diff}"
    )


def _finished_trials(reader: RunReader) -> set[str]:
    """Trials that need no more work: finished, or failed (their loss was not finite)."""
    return {e["trial"] for e in reader.of("trial_finished", "trial_failed")}


def _damaged_trials(path: Path, reader: RunReader) -> dict[str, tuple[str, str, str]]:
    """Finished trials whose recorded files (model.keras, pictures) no longer match their
    size and SHA-256: {trial: warning (kind, message, trial)}. Such a trial is run again from
    its start; training is deterministic, so it comes out the same."""
    from kvision.runs.atomic import damage

    finished = {e["trial"] for e in reader.of("trial_finished")}
    latest = {
        e["path"]: e for e in reader.artifacts() if e.get("trial") in finished and e.get("sha256")
    }
    damaged: dict[str, tuple[str, str, str]] = {}
    for rel, e in latest.items():
        reason = damage(path / rel, e)
        if reason and e["trial"] not in damaged:
            damaged[e["trial"]] = (
                "damaged_artifact",
                (
                    f"{rel} of the finished trial {e['trial']} is damaged ({reason}); the trial is "
                    f"run again from its start to rebuild it (training is deterministic: the "
                    f"result is the same)."
                ),
                e["trial"],
            )
    return damaged


def _resume_points(path: Path, reader: RunReader) -> dict:
    from kvision.train.checkpoint import latest_checkpoint

    points = {}
    for trial in reader.trials():
        found = latest_checkpoint(path / "trials" / trial / "checkpoints")
        if found and trial not in _finished_trials(reader):
            state = found[1]["trial"]
            points[trial] = {
                "stage_index": state["stage_index"],
                "stage_epoch": state["stage_epoch"],
                "global_epoch": state["global_epoch"],
                "checkpoint": found[0].name,
            }
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
    meta.setdefault("resumes", []).append(
        {"pid": os.getpid(), "argv": sys.argv, "time": time.strftime("%Y-%m-%dT%H:%M:%S%z")}
    )
    meta["pid"] = os.getpid()
    writer.write_json("meta.json", meta)


__all__ = ["RunResult", "StopFlag", "resume_run", "run_recipe"]
