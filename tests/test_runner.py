"""The runner end to end on tiny recipes: run directory contract, determinism, stop/resume.

The tests that only read a finished run share the session's ``tiny_run`` (tests/recipes/
tiny.toml); the command line runs in this process (``cli``) except where the process is the
behaviour (a SIGTERM'd ``kvision run``).
"""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from conftest import quiet

from kvision.runs import RunReader
from kvision.train.runner import resume_run, run_recipe


@pytest.fixture()
def tiny(recipe) -> Path:
    return recipe("tiny")


def run(recipe: Path, runs: Path, *overrides: str):
    return run_recipe(str(recipe), list(overrides), runs_dir=str(runs), console=quiet())


def final_metrics(run_dir: Path) -> list[tuple]:
    reader = RunReader(run_dir)
    return [
        (e["trial"], e["stage"], e["epoch"], e["metrics"]["loss"], e["metrics"]["val_loss"])
        for e in reader.epochs()
    ]


def test_run_directory_contract(tiny_run):
    d = tiny_run
    for name in ("recipe.toml", "meta.json", "events.jsonl", "split.json", "report.md"):
        assert (d / name).is_file(), name
    reader = RunReader(d)
    assert reader.status() == "finished"
    kinds = [e["event"] for e in reader.events]
    assert kinds[0] == "run_started" and kinds[-1] == "run_finished"
    assert all({"event", "time", "trial", "stage"} <= e.keys() for e in reader.events)
    assert reader.trials() == ["lenet-naive", "lenet-expert"]
    checkpoints = [(e["trial"], e["checkpoint"]) for e in reader.evaluations()]
    assert checkpoints == [
        ("lenet-naive", "before"),
        ("lenet-naive", "after_train"),
        ("lenet-expert", "before"),
        ("lenet-expert", "after_pretrain"),
        ("lenet-expert", "after_train"),
    ]
    matrix = reader.evaluations()[-1]["matrix"]
    assert set(matrix) == {"clear", "blurred"} and set(matrix["clear"]) == {"train", "test"}
    epochs = reader.epochs("lenet-expert")
    assert [(e["stage"], e["epoch"], e["global_epoch"]) for e in epochs] == [
        ("pretrain", 1, 1),
        ("train", 1, 2),
        ("train", 2, 3),
    ]
    assert {"loss", "accuracy", "val_loss", "val_accuracy", "lr"} <= epochs[0]["metrics"].keys()
    meta = json.loads((d / "meta.json").read_text())
    assert meta["backend"] == "torch" and meta["seed"] == 7
    report = (d / "report.md").read_text()
    assert "| lenet-expert |" in report and "After pretrain" in report


def test_same_initial_weights_across_arms_and_saved_model_loads_safely(tiny_run):
    from kvision.models import load_model

    d = tiny_run
    reader = RunReader(d)
    befores = {e["trial"]: e["matrix"] for e in reader.evaluations() if e["checkpoint"] == "before"}
    assert befores["lenet-naive"] == befores["lenet-expert"]  # paired: same init
    model = load_model(d / "trials/lenet-expert/model.keras")  # safe_mode=True
    x = np.random.default_rng(0).integers(0, 255, (3, 28, 28, 1)).astype("float32")
    assert model.predict(x, verbose=0).shape == (3, 10)


def test_same_seed_same_numbers(tiny_run, tiny, tmp_path):
    again = run(tiny, tmp_path / "again").run_dir  # seed 7, as the shared run
    assert final_metrics(again) == final_metrics(tiny_run)
    other = run(tiny, tmp_path / "other", "experiment.seed=8").run_dir
    assert final_metrics(other) != final_metrics(tiny_run)


def test_bad_input_leaves_no_run_directory(tiny, tmp_path, cli):
    runs = tmp_path / "runs"
    proc = cli("run", tiny, "--runs-dir", runs, "--set", "data.source=folder:/does/not/exist")
    assert proc.returncode == 2, proc.stderr
    assert "Traceback" not in proc.stderr and "/does/not/exist" in proc.stderr
    assert not runs.exists() or not any(runs.iterdir())


def test_image_too_small_for_model_exits_2(recipe, tmp_path, cli):
    too_small = recipe("tiny", 'models.lenet.arch="alexnet_seed"')
    proc = cli("run", too_small, "--runs-dir", tmp_path / "runs")
    assert proc.returncode == 2, proc.stderr[-2000:]
    assert "Traceback" not in proc.stderr
    assert "63" in proc.stdout + proc.stderr or "minimum" in (proc.stdout + proc.stderr).lower()


def wait_for(predicate, timeout: float = 120.0) -> None:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if predicate():
            return
        time.sleep(0.2)
    raise AssertionError("condition not reached in time")


def epoch_events(run_dir: Path) -> int:
    try:
        return sum(
            '"epoch_end"' in line for line in (run_dir / "events.jsonl").read_text().splitlines()
        )
    except FileNotFoundError:
        return 0


@pytest.mark.slow
def test_stopped_run_resumes_to_the_uninterrupted_result(tiny_run, tiny, tmp_path):
    """Stop a run mid-trial with SIGTERM (it checkpoints and exits 143), resume it, compare
    with the session's uninterrupted run. kill -9 mid-run and resume: test_crash_consistency
    (random instants and writes) and test_run_lock (the stale lock)."""
    reference = tiny_run
    run_dir = tmp_path / "killed"
    proc = subprocess.Popen(
        [sys.executable, "-m", "kvision", "run", str(tiny), "--run-dir", str(run_dir)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    wait_for(lambda: epoch_events(run_dir) >= 3)  # inside the second trial
    proc.send_signal(signal.SIGTERM)
    proc.wait(timeout=120)
    assert proc.returncode == 143
    assert RunReader(run_dir).status() == "interrupted"
    result = resume_run(str(run_dir), console=quiet())
    assert result.status == "finished", result.message
    reader = RunReader(run_dir)
    assert reader.of("run_resumed")
    assert final_metrics(run_dir) == final_metrics(reference)
    ref_final = RunReader(reference).evaluations()[-1]["matrix"]
    assert reader.evaluations()[-1]["matrix"] == ref_final


def test_resume_refuses_non_run_dir(tmp_path, cli):
    proc = cli("run", "--resume", tmp_path)
    assert proc.returncode == 2 and "not a kvision run directory" in proc.stderr


def test_resume_refuses_changed_recipe(tiny, tmp_path, cli):
    d = run(
        tiny, tmp_path / "runs", "arms[1].stages[1].epochs=0", 'evaluate.splits=["test"]'
    ).run_dir
    events = d / "events.jsonl"  # as if killed before its last word: a finished run is not resumed
    events.write_text(
        "".join(
            line for line in events.read_text().splitlines(True) if '"run_finished"' not in line
        )
    )
    tiny.write_text(tiny.read_text().replace("batch_size = 8", "batch_size = 4"))
    proc = cli("run", "--resume", d)
    assert proc.returncode == 2
    assert "recipe changed" in proc.stderr and "-batch_size = 8" in proc.stderr


def test_show_ls_export(tiny_run, tmp_path, cli):
    d = tiny_run
    show = cli("show", d)
    assert (
        show.returncode == 0 and "lenet-naive" in show.stdout and "Before training" in show.stdout
    )
    ls = cli("ls", "--runs-dir", d.parent)
    assert d.name[:44] in ls.stdout and "finished" in ls.stdout
    out = cli("export", d, "--to", tmp_path / "x")
    assert out.returncode == 0, out.stderr
    assert sorted(p.name for p in (tmp_path / "x").iterdir()) == [
        "lenet-expert.keras",
        "lenet-expert.keras.json",
        "lenet-naive.keras",
        "lenet-naive.keras.json",
    ]
