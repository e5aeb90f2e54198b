"""Sweeps end to end: trials as processes, a crashing trial, the ranked table, kill and resume."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest
from conftest import TINY_DATA, quiet

from kvision.errors import KvisionError
from kvision.runs import RunReader
from kvision.sweep.study import run_sweep

RECIPE = TINY_DATA + textwrap.dedent("""
    [models.net]
    arch = "alexnet_small"
    norm = "none"
    head = 8

    [[arms]]
    name = "train"
    stages = [{ name = "train", condition = "clear", epochs = 1 }]

    [training]
    batch_size = 16

    [evaluate]
    splits = ["test"]

    [insight]
    enabled = false

    [sweep]
    objective = "test.clear.accuracy"
    seed = 1
    """)


def write(tmp_path: Path, sweep: str) -> Path:
    path = tmp_path / "sweep.toml"
    path.write_text(RECIPE + textwrap.dedent(sweep))
    return path


@pytest.mark.slow  # two trials as processes (torch + Keras each), a real crash in one
def test_a_crashing_trial_is_marked_failed_and_the_sweep_goes_on(tmp_path):
    # head = 0 passes the recipe check (an integer) but Keras refuses a Dense of 0 units
    # when the trial builds its model: a real crash inside a running trial.
    recipe = write(
        tmp_path,
        """
        sampler = "grid"
        parallel = 2
        [sweep.params]
        "models.net.head" = [8, 0]
        """,
    )
    folder = tmp_path / "sw"
    result = run_sweep(str(recipe), sweep_dir=str(folder), console=quiet())
    assert (result.status, result.exit_code) == ("finished", 0)
    summary = json.loads((folder / "sweep.json").read_text())
    states = {r["params"]["models.net.head"]: r for r in summary["trials"]}
    assert states[8]["state"] == "complete" and states[8]["rank"] == 1
    assert 0.0 <= states[8]["objective"] <= 1.0
    assert states[0]["state"] == "failed" and "units" in states[0]["error"]
    assert summary["best"]["params"] == {"models.net.head": 8}
    # the objective is the run's own final test accuracy, not a number made up here
    run = folder / states[8]["run_dir"]
    final = RunReader(run).evaluations()[-1]["matrix"]["clear"]["test"]
    assert states[8]["objective"] == pytest.approx(final)
    assert "models.net.head=8" in json.loads((run / "meta.json").read_text())["overrides"]
    table = (folder / "sweep.md").read_text()
    assert "| 1 | trials/00" in table and "## Failed trials" in table
    assert (folder / "sweep.png").stat().st_size > 1000

    # the sweep directory belongs to this recipe: another recipe cannot resume into it
    other = write(
        tmp_path,
        """
        sampler = "grid"
        [sweep.params]
        "models.net.head" = [4, 8]
        """,
    )
    with pytest.raises(KvisionError, match="differs from the one the sweep"):
        run_sweep(str(other), sweep_dir=str(folder), console=quiet())


def test_resume_refuses_a_folder_that_is_not_a_sweep(tmp_path):
    with pytest.raises(KvisionError, match="is not a sweep directory"):
        run_sweep(None, resume=str(tmp_path), console=quiet())


def _wait_for(condition, coordinator: subprocess.Popen, folder: Path, seconds: float = 120) -> None:
    deadline = time.monotonic() + seconds
    while not condition() and time.monotonic() < deadline:
        if coordinator.poll() is not None and coordinator.returncode != -signal.SIGKILL:
            break  # the sweep ended on its own: the kill came too late
        time.sleep(0.2)
    assert condition(), f"gave up after {seconds} s; trials: {_trial_states(folder)}"


def _trial_states(folder: Path) -> dict:
    """Each trial's (status, writer pid, writer's /proc state), for a failure message."""
    states = {}
    for trial in sorted((folder / "trials").glob("*")):
        reader = RunReader(trial)
        pid = reader.meta().get("pid")
        try:
            proc = Path(f"/proc/{pid}/stat").read_text().split()[2]
        except OSError:
            proc = "gone"
        states[trial.name] = (reader.status(), pid, proc)
    return states


@pytest.mark.slow
def test_a_killed_sweep_resumes_without_repeating_finished_trials(tmp_path):
    recipe = write(
        tmp_path,
        """
        sampler = "random"
        trials = 2
        parallel = 2
        [sweep.params]
        "training.optimizer.learning_rate" = { low = 1e-4, high = 1e-2, log = true }
        """,
    )
    folder = tmp_path / "sw"
    code = (
        f"import kvision\nfrom kvision.sweep.study import run_sweep\n"
        f"run_sweep({str(recipe)!r}, sweep_dir={str(folder)!r})"
    )
    coordinator = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.DEVNULL)
    trials = [folder / "trials" / f"00{i}" for i in range(2)]

    def started() -> list[Path]:
        return [t for t in trials if RunReader(t).of("trial_started")]

    _wait_for(started, coordinator, folder)
    # The first trial to start is frozen at once, so that it cannot finish (a one-epoch trial
    # takes seconds, and on a busy machine the other may start later still) before the crash.
    killed_dir = started()[0]
    orphan_dir = next(t for t in trials if t != killed_dir)
    killed_pid = RunReader(killed_dir).meta()["pid"]
    os.kill(killed_pid, signal.SIGSTOP)
    assert RunReader(killed_dir).status() == "running", _trial_states(folder)
    _wait_for(lambda: RunReader(orphan_dir).of("trial_started"), coordinator, folder)
    # The machine "crashes" for the sweep and the frozen trial; the other runs on, orphaned.
    coordinator.send_signal(signal.SIGKILL)
    coordinator.wait()
    os.kill(killed_pid, signal.SIGKILL)
    _wait_for(
        lambda: RunReader(killed_dir).status() == "stale", coordinator, folder, 30
    )  # reaped by init

    result = run_sweep(None, resume=str(folder), console=quiet())
    assert result.status == "finished"
    summary = json.loads((folder / "sweep.json").read_text())
    assert [r["state"] for r in summary["trials"]] == ["complete", "complete"]
    orphan, killed = RunReader(orphan_dir), RunReader(killed_dir)
    assert len(orphan.of("run_started")) == 1 and not orphan.of(
        "run_resumed"
    )  # waited for, not rerun
    assert killed.of("run_resumed") and killed.status() == "finished"  # continued with --resume
    assert not (folder / "trials" / "002").exists()  # the budget holds across the kill


def test_parallel_trials_share_the_cores_unless_the_user_set_the_threads(monkeypatch):
    """Each of ``parallel`` trial processes gets its share of the cores as OpenMP threads;
    a thread count the user set (or pytest-xdist's one per worker) is passed on as it is."""
    from types import SimpleNamespace

    from kvision.sweep.study import _trial_env

    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
    monkeypatch.setattr(os, "cpu_count", lambda: 8)
    assert _trial_env(SimpleNamespace(parallel=2))["OMP_NUM_THREADS"] == "4"
    assert _trial_env(SimpleNamespace(parallel=16))["OMP_NUM_THREADS"] == "1"
    assert "OMP_NUM_THREADS" not in _trial_env(SimpleNamespace(parallel=1))
    monkeypatch.setenv("OMP_NUM_THREADS", "3")
    assert _trial_env(SimpleNamespace(parallel=2))["OMP_NUM_THREADS"] == "3"
