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

from kvision.errors import KvisionError
from kvision.runs import RunReader
from kvision.train.console import Console
from kvision.train.sweep import run_sweep

RECIPE = textwrap.dedent("""\
    [experiment]
    name = "tiny"
    seed = 7

    [data]
    source = "builtin:fashion7k"
    limit_per_class = 6
    val_fraction = 0.25

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


def quiet() -> Console:
    return Console(open(os.devnull, "w"), tty=False)  # noqa: SIM115


def test_a_crashing_trial_is_marked_failed_and_the_sweep_goes_on(tmp_path):
    # head = 0 passes the recipe check (an integer) but Keras refuses a Dense of 0 units
    # when the trial builds its model: a real crash inside a running trial.
    recipe = write(tmp_path, """
        sampler = "grid"
        parallel = 2
        [sweep.params]
        "models.net.head" = [8, 0]
        """)
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
    other = write(tmp_path, """
        sampler = "grid"
        [sweep.params]
        "models.net.head" = [4, 8]
        """)
    with pytest.raises(KvisionError, match="differs from the one the sweep"):
        run_sweep(str(other), sweep_dir=str(folder), console=quiet())


def test_resume_refuses_a_folder_that_is_not_a_sweep(tmp_path):
    with pytest.raises(KvisionError, match="is not a sweep directory"):
        run_sweep(None, resume=str(tmp_path), console=quiet())


def _wait_for(condition, coordinator: subprocess.Popen, seconds: float = 120) -> None:
    deadline = time.monotonic() + seconds
    while not condition() and time.monotonic() < deadline:
        if coordinator.poll() is not None and coordinator.returncode != -signal.SIGKILL:
            break  # the sweep ended on its own: the kill came too late
        time.sleep(0.2)
    assert condition()


@pytest.mark.slow
def test_a_killed_sweep_resumes_without_repeating_finished_trials(tmp_path):
    recipe = write(tmp_path, """
        sampler = "random"
        trials = 2
        parallel = 2
        [sweep.params]
        "training.optimizer.learning_rate" = { low = 1e-4, high = 1e-2, log = true }
        """)
    folder = tmp_path / "sw"
    code = (f"import kvision\nfrom kvision.train.sweep import run_sweep\n"
            f"run_sweep({str(recipe)!r}, sweep_dir={str(folder)!r})")
    coordinator = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.DEVNULL)
    trials = [folder / "trials" / f"00{i}" for i in range(2)]
    _wait_for(lambda: all(RunReader(t).of("trial_started") for t in trials), coordinator)
    # The machine "crashes" for the sweep and for trial 001; trial 000 runs on, orphaned.
    coordinator.send_signal(signal.SIGKILL)
    coordinator.wait()
    os.kill(json.loads((trials[1] / "meta.json").read_text())["pid"], signal.SIGKILL)
    _wait_for(lambda: RunReader(trials[1]).status() == "stale", coordinator, 30)  # reaped by init

    result = run_sweep(None, resume=str(folder), console=quiet())
    assert result.status == "finished"
    summary = json.loads((folder / "sweep.json").read_text())
    assert [r["state"] for r in summary["trials"]] == ["complete", "complete"]
    orphan, killed = RunReader(trials[0]), RunReader(trials[1])
    assert len(orphan.of("run_started")) == 1 and not orphan.of("run_resumed")  # waited for, not rerun
    assert killed.of("run_resumed") and killed.status() == "finished"  # continued with --resume
    assert not (folder / "trials" / "002").exists()  # the budget holds across the kill
