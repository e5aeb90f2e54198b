"""Hyper-parameter sweeps: Optuna chooses the values, each trial is a normal `kvision run`.

A sweep directory holds everything, so a killed sweep resumes where it stopped::

  SWEEP_DIR/
    sweep_recipe.toml   the recipe without [sweep] (overrides applied): what every trial runs
    sweep_meta.json     recipe path, overrides, the [sweep] table, for resume checks
    study.journal       Optuna's journal (file storage): trials, their values and states
    trials/NNN/         one run directory per trial (Optuna trial number NNN)
    logs/NNN.log        each trial's console output
    sweep.md, sweep.json, sweep.png   ranked table and parameter-vs-objective plot

Trials run as separate processes (``python -m kvision run ... --run-dir trials/NNN --set
k=v``), ``parallel`` at a time. A trial that crashes is marked failed and the sweep goes on.
A trial left running by a killed sweep is waited for (it still runs) or continued with
``kvision run --resume``, so no finished epoch is trained twice.
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
from kvision.runs.reader import writer_alive
from kvision.runs.rundir import (
    claim_run_dir,
    new_run_dir,
    resume_command,
    run_command,
    spawn_run,
)
from kvision.sweep.report import read_objective, write_sweep_report
from kvision.sweep.space import (
    budget,
    check_space,
    grid,
    grid_labels,
    override,
    split_sweep,
    suggest,
    trial_params,
)
from kvision.train.console import Console
from kvision.train.signals import StopFlag, stop_on_signals

POLL_S = 0.5  # how often running trials are checked; their own work dwarfs this
META, RECIPE, JOURNAL, LOCK = "sweep_meta.json", "sweep_recipe.toml", "study.journal", "sweep.lock"
# Keys the user may change when resuming (a bigger budget, more or fewer parallel trials).
RESUMABLE_CHANGES = ("trials", "parallel")


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
    run_dir: Path
    params: dict[str, Any]
    proc: subprocess.Popen | None = None
    started: float = field(default_factory=time.monotonic)

    def running(self) -> bool:
        if self.proc is not None:
            return self.proc.poll() is None
        return is_run_dir(self.run_dir) and RunReader(self.run_dir).status() == "running"


def run_sweep(recipe_path: str | None, overrides: list[str] | tuple[str, ...] = (), *,
              sweep_dir: str | None = None, resume: str | None = None, trials: int | None = None,
              parallel: int | None = None, console: Console | None = None) -> SweepResult:
    """Run (or resume) the recipe's ``[sweep]``; returns when the budget is spent or on a stop.

    ``resume`` (or a ``sweep_dir`` that already holds a sweep) continues a sweep: finished
    trials are kept, trials a killed sweep left behind are waited for or resumed.
    """
    console = console or Console()
    folder = Path(resume or sweep_dir).expanduser() if (resume or sweep_dir) else None
    cli = [f"sweep.{k}={v}" for k, v in (("trials", trials), ("parallel", parallel)) if v]
    if folder is not None and (folder / META).exists():
        spec, base = _reopen(folder, recipe_path, list(overrides), cli)
    elif resume:
        raise KvisionError(f"--resume '{resume}' is not a sweep directory (it has no {META}). "
                           "Start a sweep with: kvision sweep RECIPE [--sweep-dir DIR].")
    elif not recipe_path:
        raise KvisionError("kvision sweep needs a RECIPE file with a [sweep] section (or --resume SWEEP_DIR).")
    else:
        spec, base, raw = _prepare(recipe_path, list(overrides) + cli)
        folder = _create(folder, base, raw, spec, recipe_path, list(overrides))
    return _drive(folder, spec, console)


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


def _create(folder: Path | None, base: dict, raw: dict, spec: SweepSection, recipe_path: str,
            overrides: list[str]) -> Path:
    runs_dir = base.get("output", {}).get("runs_dir", "runs")
    folder = claim_run_dir(folder) if folder else new_run_dir(runs_dir, f"{base['experiment']['name']}-sweep")
    atomic_write_text(folder / RECIPE, tomli_w.dumps(base))
    atomic_write_json(folder / META, {"recipe_path": str(recipe_path), "overrides": overrides,
                                      "raw": raw, "sweep": to_plain(spec),
                                      "created": time.strftime("%Y-%m-%dT%H:%M:%S%z")})
    return folder


def _reopen(folder: Path, recipe_path: str | None, overrides: list[str],
            cli: list[str]) -> tuple[SweepSection, dict]:
    """The saved sweep; a recipe given again must match it except for trials and parallel."""
    meta = json.loads((folder / META).read_text("utf-8"))
    if recipe_path:
        _spec, _base, raw = _prepare(recipe_path, overrides or meta["overrides"])
        if _comparable(raw) != _comparable(meta["raw"]):
            raise KvisionError(
                f"The recipe '{recipe_path}' (with its --set overrides) differs from the one the "
                f"sweep in '{folder}' started with, so resuming would mix two experiments. Start "
                f"a new sweep, or resume with just: kvision sweep --resume {folder} (only "
                f"--trials and --parallel may change).")
    raw = apply_overrides(meta["raw"], cli, str(folder / META))
    spec, base = split_sweep(raw, file=str(folder / META))
    return spec, base


def _comparable(raw: dict) -> dict:
    sweep = {k: v for k, v in raw.get("sweep", {}).items() if k not in RESUMABLE_CHANGES}
    return {**raw, "sweep": sweep}


def _drive(folder: Path, spec: SweepSection, console: Console) -> SweepResult:
    """Hold the lock, open the study, keep ``parallel`` trials running until the budget is spent."""
    folder = folder.resolve()  # trials record this path; it must not depend on the cwd
    _lock(folder)
    try:
        study = _study(folder, spec)
        total = budget(spec)
        console.line(f"sweep directory: {folder} ({spec.sampler}, {total} trials, "
                     f"{spec.parallel} at a time, objective {spec.objective})")
        with stop_on_signals() as stop:
            jobs = _adopt(folder, study, spec, console)
            while True:
                _reap(folder, study, spec, jobs, stop, console)
                if stop:
                    _stop_all(jobs)
                    _reap(folder, study, spec, jobs, stop, console)
                    break
                while len(jobs) < spec.parallel and _started(study) < total:
                    jobs.append(_start(folder, study, spec, console))
                if not jobs:
                    break
                _write_report(folder, study, spec, total)
                time.sleep(POLL_S)
        best = _write_report(folder, study, spec, total)
    finally:
        (folder / LOCK).unlink(missing_ok=True)
    if stop:
        console.line(f"sweep stopped by {stop.signame}; continue with: kvision sweep --resume {folder}")
        return SweepResult(folder, "interrupted", 130 if stop.signame == "SIGINT" else 143, best)
    console.line(f"sweep finished: {folder / 'sweep.md'}" + (
        f"; best {spec.objective} {best['objective']:.4f} ({best['run_dir']})" if best else ""))
    return SweepResult(folder, "finished", 0, best)


def _lock(folder: Path) -> None:
    """One coordinator per sweep directory: two would launch the same trials twice."""
    lock = folder / LOCK
    if lock.exists():
        held = json.loads(lock.read_text("utf-8") or "{}")
        if writer_alive(held):
            raise KvisionError(f"The sweep in '{folder}' is already running (pid {held.get('pid')} "
                               f"on {held.get('host')}); stop it before resuming.")
    atomic_write_json(lock, {"pid": os.getpid(), "host": socket.gethostname()})


def _study(folder: Path, spec: SweepSection) -> Any:
    import optuna
    from optuna.storages import JournalStorage
    from optuna.storages.journal import JournalFileBackend

    optuna.logging.set_verbosity(optuna.logging.WARNING)  # the sweep prints its own lines
    storage = JournalStorage(JournalFileBackend(str(folder / JOURNAL)))
    direction = "maximize" if spec.maximize else "minimize"
    study = optuna.create_study(study_name="sweep", storage=storage, direction=direction,
                                load_if_exists=True)
    # Seeded by the trials so far, so a resumed sweep does not replay the first suggestions.
    seed = (spec.seed or 0) + len(study.trials)  # spec.seed is set by split_sweep
    if spec.sampler == "bayes":
        study.sampler = optuna.samplers.TPESampler(seed=seed, constant_liar=spec.parallel > 1)
    else:
        study.sampler = optuna.samplers.RandomSampler(seed=seed)
    if spec.sampler == "grid" and not study.trials:
        for combo in grid(spec)[:budget(spec)]:  # queued in order; Optuna hands them out
            study.enqueue_trial(grid_labels(combo))
    return study


def _started(study: Any) -> int:
    from optuna.trial import TrialState

    return sum(t.state != TrialState.WAITING for t in study.get_trials(deepcopy=False))


def _start(folder: Path, study: Any, spec: SweepSection, console: Console,
           number: int | None = None, params: dict | None = None) -> _Job:
    """Launch a new trial, or continue trial ``number`` (resumed when its run exists)."""
    if number is None:
        trial = study.ask()
        number, params = trial.number, suggest(trial, spec)
    run_dir = folder / "trials" / f"{number:03d}"
    resumed = is_run_dir(run_dir)
    command = resume_command(run_dir) if resumed else run_command(
        folder / RECIPE, run_dir, [override(k, v) for k, v in params.items()])
    if not resumed and run_dir.exists():
        _clear(run_dir)  # created but killed before its first file: start it afresh
    log = folder / "logs" / f"{number:03d}.log"
    log.parent.mkdir(exist_ok=True)
    proc = spawn_run(command, log, env=_trial_env(spec))
    shown = " ".join(f"{k}={v}" for k, v in params.items())
    console.line(f"trial {number:03d} {'resumed' if resumed else 'started'}: {shown}")
    return _Job(number, run_dir, params, proc)


def _clear(run_dir: Path) -> None:
    import shutil

    shutil.rmtree(run_dir)


def _trial_env(spec: SweepSection) -> dict[str, str]:
    """Share the CPU between parallel trials instead of each taking every core."""
    env = dict(os.environ)
    if spec.parallel > 1 and "OMP_NUM_THREADS" not in env:
        env["OMP_NUM_THREADS"] = str(max(1, (os.cpu_count() or 1) // spec.parallel))
    return env


def _adopt(folder: Path, study: Any, spec: SweepSection, console: Console) -> list[_Job]:
    """Trials a killed sweep left RUNNING: wait for live ones, resume the others."""
    from optuna.trial import TrialState

    jobs = []
    for t in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)):
        params = trial_params(spec, t.params)
        run_dir = folder / "trials" / f"{t.number:03d}"
        job = _Job(t.number, run_dir, params)
        if job.running():
            console.line(f"trial {t.number:03d} is still running; waiting for it")
        elif not (is_run_dir(run_dir) and RunReader(run_dir).status() == "finished"):
            job = _start(folder, study, spec, console, t.number, params)
        jobs.append(job)
    return jobs


def _reap(folder: Path, study: Any, spec: SweepSection, jobs: list[_Job], stop: StopFlag,
          console: Console) -> None:
    """Record every trial that ended: its objective, or failed with the reason."""
    from optuna.trial import TrialState

    for job in [j for j in jobs if not j.running()]:
        jobs.remove(job)
        status = RunReader(job.run_dir).status() if is_run_dir(job.run_dir) else "not started"
        if status == "interrupted" and stop:
            continue  # stopped with the sweep: stays RUNNING in the study, resumed next time
        try:
            if status != "finished":
                raise KvisionError(_failure(folder, job, status))
            value = read_objective(job.run_dir, spec)
        except KvisionError as exc:
            study.set_user_attr(f"error_{job.number}", str(exc))
            study.tell(job.number, state=TrialState.FAIL)
            console.line(f"trial {job.number:03d} failed: {exc}")
            continue
        study.tell(job.number, value)
        console.line(f"trial {job.number:03d} done: {spec.objective} {value:.4f}")


def _failure(folder: Path, job: _Job, status: str) -> str:
    """Why a trial ended without a result, in one line (the run's last word, or its log)."""
    if is_run_dir(job.run_dir):
        for e in reversed(RunReader(job.run_dir).events):
            if e.get("event") in ("run_failed", "run_interrupted"):
                return f"{status}: {e.get('error') or e.get('message')}"
        code = job.proc.returncode if job.proc else None
        return f"{status}: the process ended without a last word (exit code {code})"
    lines = (folder / "logs" / f"{job.number:03d}.log").read_text("utf-8", "replace").strip().splitlines()
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


def _write_report(folder: Path, study: Any, spec: SweepSection, total: int) -> dict | None:
    rows, errors = [], study.user_attrs
    for t in study.get_trials(deepcopy=False):
        if t.state.name == "WAITING":
            continue
        seconds = (t.datetime_complete - t.datetime_start).total_seconds() if t.datetime_complete else None
        rows.append({"trial": t.number, "run_dir": f"trials/{t.number:03d}",
                     "state": t.state.name.lower().replace("fail", "failed"),
                     "objective": t.value, "params": trial_params(spec, t.params),
                     "seconds": seconds, "error": errors.get(f"error_{t.number}")})
    write_sweep_report(folder, spec, rows, total)
    summary = json.loads((folder / "sweep.json").read_text("utf-8"))
    return summary["best"]


__all__ = ["SweepResult", "check_sweep", "run_sweep"]
