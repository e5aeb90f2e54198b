"""Hyper-parameter sweeps: Optuna chooses the values, each trial is a normal `kvision run`.

A sweep directory holds everything, so a killed sweep resumes where it stopped::

  SWEEP_DIR/
    sweep_recipe.toml   the recipe without [sweep] (overrides applied): what every trial runs
    sweep_meta.json     recipe path, overrides, the [sweep] table (and the database), for resume
    study.journal       Optuna's journal (file storage): trials, their values and states
    trials/NNN/         one run directory per trial (Optuna trial number NNN)
    logs/NNN.log        each trial's console output
    sweep.md, sweep.json, sweep.png   ranked table and parameter-vs-objective plot

Trials run as separate processes (``python -m kvision run ... --run-dir trials/NNN --set
k=v``), ``parallel`` at a time. A trial that crashes is marked failed and the sweep goes on.
A trial left running by a killed sweep is waited for (it still runs) or continued with
``kvision run --resume``, so no finished epoch is trained twice.

With ``storage`` (a database URL) the study lives in the database instead of the journal, and
the same command on several machines shares it (:mod:`kvision.sweep.studies`): each worker
claims queued trials (:mod:`kvision.sweep.slots`), writes their run directories under its own
sweep directory and records in the study where they are. A worker beats for its trials
(Optuna's heartbeat); a trial whose worker died is failed and queued again, and the worker
that claims the retry resumes the dead trial's run directory when it can reach it.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import tomli_w

from kvision.errors import KvisionError
from kvision.recipe import apply_overrides
from kvision.recipe.load import parse_toml, read_text
from kvision.recipe.schema_sweep import SweepSection
from kvision.recipe.spec import to_plain
from kvision.runs import RunReader, is_run_dir
from kvision.runs.atomic import atomic_write_json, atomic_write_text
from kvision.runs.lock import hold, release
from kvision.runs.rundir import (
    claim_run_dir,
    new_run_dir,
    resume_command,
    run_command,
    spawn_run,
)
from kvision.sweep.results import read_objective
from kvision.sweep.search_space import (
    budget,
    check_space,
    override,
    split_sweep,
    suggest,
    trial_params,
)
from kvision.sweep.slots import Heartbeat, worker_name
from kvision.sweep.storage import is_url, without_password
from kvision.sweep.studies import BUDGET_ATTR, SharedStudy, SweepStudy, comparable, local_study
from kvision.sweep.summary import JOURNAL, META, write_report
from kvision.train.console import Console
from kvision.train.signals import StopFlag, stop_on_signals

POLL_S = 0.5  # how often running trials are checked; their own work dwarfs this
RECIPE = "sweep_recipe.toml"
HEARTBEAT_S = 30  # a shared sweep's worker beats this often for its trials (--heartbeat)
GRACE_BEATS = 4  # ... and they are retried elsewhere after this many missed beats (--grace)


@dataclass
class SweepResult:
    """Where a sweep went and how it ended."""

    sweep_dir: Path
    status: str  # finished | interrupted
    exit_code: int
    best: dict | None = None


@dataclass
class _Job:
    """One trial process: started here, or adopted from a killed sweep (``proc`` None)."""

    number: int
    trial_id: int
    run_dir: Path
    params: dict[str, Any]
    proc: subprocess.Popen | None = None
    started: float = field(default_factory=time.monotonic)

    def running(self) -> bool:
        if self.proc is not None:
            return self.proc.poll() is None
        return is_run_dir(self.run_dir) and RunReader(self.run_dir).status() == "running"


def run_sweep(
    recipe_path: str | None,
    overrides: list[str] | tuple[str, ...] = (),
    *,
    sweep_dir: str | None = None,
    resume: str | None = None,
    trials: int | None = None,
    parallel: int | None = None,
    console: Console | None = None,
    storage: str | None = None,
    study: str | None = None,
    heartbeat: int | None = None,
    grace: int | None = None,
) -> SweepResult:
    """Run (or resume) the recipe's ``[sweep]``; returns when the budget is spent or on a stop.

    ``resume`` (or a ``sweep_dir`` that already holds a sweep) continues a sweep: finished
    trials are kept, trials a killed sweep left behind are waited for or resumed.
    ``storage`` (a database URL) shares the study ``study`` (default: the experiment's
    name) with every worker started with the same URL; ``heartbeat``/``grace`` (seconds) say
    how often a worker beats for its trials and after how long without a beat they are
    retried elsewhere.
    """
    console = console or Console()
    folder = Path(resume or sweep_dir).expanduser() if (resume or sweep_dir) else None
    cli = [f"sweep.{k}={v}" for k, v in (("trials", trials), ("parallel", parallel)) if v]
    meta = None
    if folder is not None and (folder / META).exists():
        hold(folder, what="sweep")  # before its state is read: one coordinator per sweep
        spec, base, raw, meta = _reopen(folder, recipe_path, list(overrides), cli)
        storage, study = storage or meta.get("storage"), study or meta.get("study")
    elif resume:
        raise KvisionError(
            f"--resume '{resume}' is not a sweep directory (it has no {META}). "
            "Start a sweep with: kvision sweep RECIPE [--sweep-dir DIR]."
        )
    elif not recipe_path:
        raise KvisionError(
            "kvision sweep needs a RECIPE file with a [sweep] section (or --resume SWEEP_DIR)."
        )
    else:
        spec, base, raw = _prepare(recipe_path, list(overrides) + cli)
    shared = _open_shared(storage, study or base["experiment"]["name"], heartbeat, grace)
    if shared is not None:  # before anything is written: a wrong database or recipe changes nothing
        shared.check_recipe(raw, recipe_path or str(folder / META))
    if meta is None:
        folder = _create(folder, base, raw, spec, recipe_path, list(overrides), shared)
    return _drive(folder, spec, raw, console, shared, recipe_path or str(folder / META))


def _open_shared(
    storage: str | None, name: str, heartbeat: int | None, grace: int | None
) -> SharedStudy | None:
    if storage is None:
        if heartbeat or grace:
            raise KvisionError(
                "--heartbeat and --grace need --storage URL: a sweep's own journal "
                "file has one worker, which resumes its trials itself."
            )
        return None
    if not is_url(storage):
        raise KvisionError(
            f"--storage '{storage}' is not a database URL; give one such as "
            "postgresql://user@host:5432/database or sqlite:////shared/sweeps.db "
            "(without --storage the sweep keeps its journal file)."
        )
    heartbeat = heartbeat or HEARTBEAT_S
    if heartbeat < 1 or (grace is not None and grace <= heartbeat):
        raise KvisionError(
            f"--heartbeat must be at least 1 second and --grace longer than it "
            f"(got --heartbeat {heartbeat}, --grace {grace})."
        )
    return SharedStudy(storage, name, heartbeat=heartbeat, grace=grace or GRACE_BEATS * heartbeat)


def check_sweep(recipe_path: str, overrides: list[str] | tuple[str, ...] = ()) -> SweepSection:
    """Validate a recipe's ``[sweep]`` against the recipe itself (every candidate value as an
    override); raises RecipeErrors with key paths. ``kvision validate`` can call this."""
    return _prepare(recipe_path, list(overrides))[0]


def _prepare(recipe_path: str, overrides: list[str]) -> tuple[SweepSection, dict, dict]:
    """(spec, base recipe, raw recipe) after overrides; the whole space checked."""
    text = read_text(recipe_path)
    raw = apply_overrides(parse_toml(text, recipe_path), overrides, recipe_path)
    spec, base = split_sweep(raw, file=recipe_path, text=text)
    check_space(spec, base, file=recipe_path, text=text)
    return spec, base, raw


def _create(
    folder: Path | None,
    base: dict,
    raw: dict,
    spec: SweepSection,
    recipe_path: str,
    overrides: list[str],
    shared: SharedStudy | None,
) -> Path:
    runs_dir = base.get("output", {}).get("runs_dir", "runs")
    folder = (
        claim_run_dir(folder, what="sweep")
        if folder
        else new_run_dir(runs_dir, f"{base['experiment']['name']}-sweep", what="sweep")
    )
    atomic_write_text(folder / RECIPE, tomli_w.dumps(base))
    atomic_write_json(
        folder / META,
        {
            "recipe_path": str(recipe_path),
            "overrides": overrides,
            "raw": raw,
            "sweep": to_plain(spec),
            "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
            **({"storage": without_password(shared.url), "study": shared.name} if shared else {}),
        },
    )
    return folder


def _reopen(
    folder: Path, recipe_path: str | None, overrides: list[str], cli: list[str]
) -> tuple[SweepSection, dict, dict, dict]:
    """The saved sweep (spec, base, raw, meta); a recipe given again must match it except for
    trials and parallel."""
    meta = json.loads((folder / META).read_text("utf-8"))
    if recipe_path:
        _spec, _base, raw = _prepare(recipe_path, overrides or meta["overrides"])
        if comparable(raw) != comparable(meta["raw"]):
            raise KvisionError(
                f"The recipe '{recipe_path}' (with its --set overrides) differs from the one the "
                f"sweep in '{folder}' started with, so resuming would mix two experiments. Start "
                f"a new sweep, or resume with just: kvision sweep --resume {folder} (only "
                f"--trials and --parallel may change)."
            )
    raw = apply_overrides(meta["raw"], cli, str(folder / META))
    spec, base = split_sweep(raw, file=str(folder / META))
    return spec, base, raw, meta


def _drive(
    folder: Path,
    spec: SweepSection,
    raw: dict,
    console: Console,
    shared: SharedStudy | None,
    source: str,
) -> SweepResult:
    """Hold the lock, open the study, keep ``parallel`` trials running until none is left."""
    folder = folder.resolve()  # trials record this path; it must not depend on the cwd
    hold(folder, what="sweep")  # held since it was created or reopened (re-entrant)
    try:
        total = budget(spec)
        if shared is None:
            handle, note = local_study(folder / JOURNAL, spec, total), f"{total} trials"
        else:
            handle, note = shared.join(spec, raw, total, source)
            total = int(handle.study.user_attrs[BUDGET_ATTR])
        console.line(
            f"sweep directory: {folder} ({spec.sampler}, {note}, {spec.parallel} at a "
            f"time, objective {spec.objective})"
        )
        with stop_on_signals() as stop, Heartbeat(handle.storage, handle.heartbeat) as beat:
            _loop(folder, handle, spec, total, console, stop, beat)
        best = write_report(folder, handle.study, spec, total)
    finally:
        release(folder)
    if stop:
        console.line(
            f"sweep stopped by {stop.signame}; continue with: kvision sweep --resume {folder}"
            + (" (meanwhile the other workers retry its trials)" if handle.shared else "")
        )
        return SweepResult(folder, "interrupted", 130 if stop.signame == "SIGINT" else 143, best)
    console.line(
        f"sweep finished: {folder / 'sweep.md'}"
        + (f"; best {spec.objective} {best['objective']:.4f} ({best['run_dir']})" if best else "")
    )
    return SweepResult(folder, "finished", 0, best)


def _loop(
    folder: Path,
    handle: SweepStudy,
    spec: SweepSection,
    total: int,
    console: Console,
    stop: StopFlag,
    beat: Heartbeat,
) -> None:
    """Claim, start and reap trials until the study has none left, or until a stop."""
    jobs = [] if handle.shared else _adopt(folder, handle, spec, console)
    for job in jobs:
        beat.add(job.trial_id)
    told_waiting = False
    while True:
        changed = _reap(folder, handle, spec, jobs, stop, console, beat)
        if stop:
            _stop_all(jobs)
            _reap(folder, handle, spec, jobs, stop, console, beat)
            return
        handle.fail_stale()  # a dead worker's trials are queued again, for anyone to claim
        while len(jobs) < spec.parallel and (job := _next(folder, handle, spec, console)):
            jobs.append(job)
            beat.add(job.trial_id)
            changed = True
        if not jobs:
            waiting, running = handle.unfinished() if handle.shared else ([], [])
            if not (waiting or running):
                return
            if not told_waiting:
                console.line(
                    f"waiting for {len(running)} trial(s) of other workers: if a worker "
                    "dies, its trial is retried here"
                )
                told_waiting = True
        if changed:
            write_report(folder, handle.study, spec, total)
        time.sleep(POLL_S)


def _next(folder: Path, handle: SweepStudy, spec: SweepSection, console: Console) -> _Job | None:
    """Claim the next queued trial and start it; None when the queue is empty."""
    trial = handle.claim()
    if trial is None:
        return None
    params = suggest(trial, spec)
    trial_id = handle.trial_id(trial.number)
    frozen = handle.storage.get_trial(trial_id)  # its attributes (a retry copies the dead one's)
    retry_of = frozen.system_attrs.get("failed_trial")
    run_dir = _retry_dir(frozen) if retry_of is not None else None
    run_dir = run_dir or folder / "trials" / f"{trial.number:03d}"
    for key, value in (
        ("run_dir", str(run_dir)),
        ("host", socket.gethostname()),
        ("worker", worker_name()),
    ):
        trial.set_user_attr(key, value)  # where the trial is, for reports from any machine
    if retry_of is not None:
        console.line(
            f"trial {trial.number:03d} retries trial {retry_of:03d}, whose worker "
            "stopped answering" + (f"; resuming {run_dir}" if is_run_dir(run_dir) else "")
        )
    return _start(folder, spec, console, _Job(trial.number, trial_id, run_dir, params))


def _retry_dir(trial: Any) -> Path | None:
    """The dead trial's run directory, when this machine can reach it (a shared filesystem)."""
    earlier = trial.user_attrs.get("run_dir")
    return Path(earlier) if earlier and is_run_dir(earlier) else None


def _start(folder: Path, spec: SweepSection, console: Console, job: _Job) -> _Job:
    """Launch ``job``'s trial: new, or resumed when its run exists; a run that is finished or
    still running here is left as it is (the job then waits for it or just reads it)."""
    run_dir = job.run_dir
    status = RunReader(run_dir).status() if is_run_dir(run_dir) else None
    if status == "finished" or (status == "running" and _writes_here(run_dir)):
        if status == "running":
            console.line(f"trial {job.number:03d} is still running; waiting for it")
        return job
    if status is None:
        if run_dir.exists():
            _clear(run_dir)  # created but killed before its first file: start it afresh
        command = run_command(
            folder / RECIPE, run_dir, [override(k, v) for k, v in job.params.items()]
        )
    else:  # "running" on another machine, which the heartbeat says is gone: take it over
        command = resume_command(run_dir) + (["--force"] if status == "running" else [])
    log = folder / "logs" / f"{job.number:03d}.log"
    log.parent.mkdir(exist_ok=True)
    job.proc = spawn_run(command, log, env=_trial_env(spec))
    shown = " ".join(f"{k}={v}" for k, v in job.params.items())
    console.line(f"trial {job.number:03d} {'started' if status is None else 'resumed'}: {shown}")
    return job


def _writes_here(run_dir: Path) -> bool:
    """Whether the run's writer is a process of this machine (so its liveness is known)."""
    return RunReader(run_dir).meta().get("host") in (None, socket.gethostname())


def _clear(run_dir: Path) -> None:
    import shutil

    shutil.rmtree(run_dir)


def _trial_env(spec: SweepSection) -> dict[str, str]:
    """Share the CPU between parallel trials instead of each taking every core."""
    env = dict(os.environ)
    if spec.parallel > 1 and "OMP_NUM_THREADS" not in env:
        env["OMP_NUM_THREADS"] = str(max(1, (os.cpu_count() or 1) // spec.parallel))
    return env


def _adopt(folder: Path, handle: SweepStudy, spec: SweepSection, console: Console) -> list[_Job]:
    """Trials a killed sweep left RUNNING in its journal: wait for live ones, resume the others."""
    from optuna.trial import TrialState

    jobs = []
    for t in handle.study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)):
        run_dir = Path(t.user_attrs.get("run_dir") or folder / "trials" / f"{t.number:03d}")
        job = _Job(t.number, handle.trial_id(t.number), run_dir, trial_params(spec, t.params))
        jobs.append(_start(folder, spec, console, job))
    return jobs


def _reap(
    folder: Path,
    handle: SweepStudy,
    spec: SweepSection,
    jobs: list[_Job],
    stop: StopFlag,
    console: Console,
    beat: Heartbeat,
) -> bool:
    """Record every trial that ended: its objective, or failed with the reason; True if any."""
    ended = [j for j in jobs if not j.running()]
    for job in ended:
        jobs.remove(job)
        beat.remove(job.trial_id)
        status = RunReader(job.run_dir).status() if is_run_dir(job.run_dir) else "not started"
        if status == "interrupted" and stop:
            continue  # stopped with the sweep: stays RUNNING in the study, resumed next time
        try:
            if status != "finished":
                raise KvisionError(_failure(folder, job, status))
            value = read_objective(job.run_dir, spec)
        except KvisionError as exc:
            _tell(handle, job, console, error=str(exc))
            continue
        _tell(handle, job, console, value=value, objective=spec.objective)
    return bool(ended)


def _tell(
    handle: SweepStudy,
    job: _Job,
    console: Console,
    *,
    value: float | None = None,
    error: str | None = None,
    objective: str = "",
) -> None:
    """The trial's result into the study, unless the study gave up on it meanwhile (a worker
    so slow that its heartbeat lapsed: the trial was retried elsewhere)."""
    from optuna.exceptions import UpdateFinishedTrialError
    from optuna.trial import TrialState

    try:
        if handle.storage.get_trial(job.trial_id).state.is_finished():
            raise UpdateFinishedTrialError("given up")
        if error is not None:
            handle.set_trial_attr(job.number, "error", error)
            handle.study.tell(job.number, state=TrialState.FAIL, skip_if_finished=True)
            console.line(f"trial {job.number:03d} failed: {error}")
        else:
            handle.study.tell(job.number, value, skip_if_finished=True)
            console.line(f"trial {job.number:03d} done: {objective} {value:.4f}")
    except UpdateFinishedTrialError:
        console.line(
            f"trial {job.number:03d} had been given up by the study (no heartbeat in "
            "time) and retried elsewhere; its run directory keeps this result"
        )


def _failure(folder: Path, job: _Job, status: str) -> str:
    """Why a trial ended without a result, in one line (the run's last word, or its log)."""
    if is_run_dir(job.run_dir):
        for e in reversed(RunReader(job.run_dir).events):
            if e.get("event") in ("run_failed", "run_interrupted"):
                return f"{status}: {e.get('error') or e.get('message')}"
        code = job.proc.returncode if job.proc else None
        return f"{status}: the process ended without a last word (exit code {code})"
    lines = (
        (folder / "logs" / f"{job.number:03d}.log")
        .read_text("utf-8", "replace")
        .strip()
        .splitlines()
    )
    return f"did not start: {lines[-1] if lines else 'no output'}"


def _stop_all(jobs: list[_Job]) -> None:
    """Ask every trial to stop at its next batch (they checkpoint), then wait for them."""
    import signal

    for job in jobs:
        if job.proc is not None and job.proc.poll() is None:
            job.proc.send_signal(signal.SIGTERM)
    for job in jobs:
        if job.proc is not None:
            job.proc.wait()


__all__ = ["SweepResult", "check_sweep", "run_sweep"]
