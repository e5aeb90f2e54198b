"""Run phases: exclusive timing on a fake clock, and a real run's profile.json / --profile."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path

import pytest

from kvision.runs import RunReader, phases


@pytest.fixture()
def clock(monkeypatch):
    """time.monotonic as a number the test advances; the run starts at 0."""
    now = [100.0]
    monkeypatch.setattr(phases.time, "monotonic", lambda: now[0])
    monkeypatch.setattr(phases, "_STARTED", 100.0)
    monkeypatch.setattr(phases, "_origin", None)
    phases.reset()
    yield now
    phases.reset()


def test_nested_phases_are_exclusive_and_the_rest_is_other(clock):
    phases.start_run()  # first run of the process: start-up counts from its start
    clock[0] += 2.0  # 2 s not in any phase after start_run -> "other"
    with phases.phase("evaluate"):
        clock[0] += 3.0
        with phases.phase("blur"):  # lazily blurred inside an evaluation: blur, not evaluate
            clock[0] += 1.0
        clock[0] += 1.0
    with phases.phase("train"):
        clock[0] += 13.0
    profile = phases.snapshot()
    assert profile["seconds"] == {
        "startup": 0.0,
        "blur": 1.0,
        "train": 13.0,
        "evaluate": 4.0,
        "other": 2.0,
    }
    assert profile["wall_seconds"] == 20.0
    assert profile["share"]["train"] == 0.65 and profile["not_training_share"] == 0.35
    assert profile["counts"] == {"startup": 1, "blur": 1, "train": 1, "evaluate": 1}
    assert sum(profile["seconds"].values()) == pytest.approx(profile["wall_seconds"])


def test_startup_is_time_since_the_process_started_and_a_second_run_starts_afresh(clock):
    clock[0] += 4.5  # interpreter and imports before the runner
    phases.start_run()
    with phases.phase("train"):
        clock[0] += 1.0
    assert phases.snapshot()["seconds"]["startup"] == 4.5
    clock[0] += 10.0
    phases.start_run()  # e.g. a second run_recipe in one test process
    with phases.phase("train"):
        clock[0] += 2.0
    profile = phases.snapshot()
    assert profile["seconds"] == {"startup": 0.0, "train": 2.0, "other": 0.0}
    assert profile["wall_seconds"] == 2.0


def test_decorator_times_calls_and_keeps_the_result(clock):
    @phases.timed("checkpoint")
    def save(x):
        clock[0] += 0.5
        return x * 2

    phases.start_run()
    assert save(3) == 6 and save(4) == 8
    profile = phases.snapshot()
    assert profile["seconds"]["checkpoint"] == 1.0 and profile["counts"]["checkpoint"] == 2
    with pytest.raises(ZeroDivisionError), phases.phase("export"):  # timed even when it fails
        clock[0] += 0.25
        1 / 0  # noqa: B018
    assert phases.snapshot()["seconds"]["export"] == 0.25


def test_other_threads_are_not_timed(clock):
    phases.start_run()

    def worker():
        with phases.phase("blur"):
            clock[0] += 5.0

    thread = threading.Thread(target=worker)
    thread.start()
    thread.join()
    assert "blur" not in phases.snapshot()["seconds"]


def test_format_profile_rows():
    profile = {
        "wall_seconds": 20.0,
        "seconds": {"startup": 5.0, "train": 15.0, "other": 0.0},
        "share": {"startup": 0.25, "train": 0.75, "other": 0.0},
        "counts": {"startup": 1, "train": 4},
        "not_training_share": 0.25,
    }
    text = phases.format_profile(profile)
    assert "train           15.00   75.0%      4" in text
    assert text.splitlines()[-1] == "not training: 25.0% of the wall time"


def test_process_start_is_in_the_past():
    started = phases.process_started()
    assert 0 <= time.monotonic() - started < 24 * 3600


AGE = "from kvision.runs import phases; import time; print(time.monotonic() - phases._STARTED)"


def test_startup_of_a_process_a_shell_execs_late_is_its_own():
    """``bash -c 'long work && kvision run ...'`` execs kvision in the shell's process, whose
    start is the shell's: the README's first command counted the pip install as startup."""
    late = subprocess.run(
        ["bash", "-c", f'sleep 4 && exec {sys.executable} -c "{AGE}"'],
        capture_output=True,
        text=True,
        check=True,
    )
    # Seconds of CPU for the interpreter and this import even on a loaded machine; the four
    # seconds the shell slept before the exec are not in it.
    assert 0 < float(late.stdout) < 3.5


RECIPE = textwrap.dedent("""\
    [experiment]
    name = "phases"
    seed = 3
    [data]
    source = "builtin:fashion7k"
    limit_per_class = 3
    val_fraction = 0.25
    [conditions.clear]
    [conditions.blurred]
    blur = { kind = "gaussian", sigma = 1.0 }
    [models.lenet]
    arch = "lenet"
    [[arms]]
    name = "naive"
    stages = [{ name = "train", condition = "blurred", epochs = 1 }]
    [training]
    batch_size = 8
    [evaluate]
    conditions = ["clear", "blurred"]
    splits = ["test"]
    [insight]
    enabled = false
    """)


@pytest.mark.slow  # a real `kvision run` in a fresh interpreter: its imports are a phase
def test_run_profile_prints_and_writes_every_phase(tmp_path: Path):
    """`kvision run --profile` on a real tiny run: profile.json, the event, the table."""
    recipe = tmp_path / "r.toml"
    recipe.write_text(RECIPE)
    out = subprocess.run(
        [
            sys.executable,
            "-m",
            "kvision",
            "run",
            str(recipe),
            "--runs-dir",
            str(tmp_path / "runs"),
            "--profile",
        ],
        capture_output=True,
        text=True,
        timeout=600,
        check=True,
    ).stdout
    (run_dir,) = (tmp_path / "runs").iterdir()
    profile = json.loads((run_dir / phases.PROFILE_FILE).read_text())
    seconds = profile["seconds"]
    for name in (
        "startup",
        "imports",
        "data",
        "blur",
        "build",
        "train",
        "evaluate",
        "checkpoint",
        "export",
        "other",
    ):
        assert name in seconds, name
    assert seconds["startup"] > 0 and seconds["imports"] > 0.1  # keras and torch load in it
    assert profile["counts"]["train"] == 1 and profile["counts"]["evaluate"] == 2
    assert sum(seconds.values()) == pytest.approx(profile["wall_seconds"], abs=0.05)
    reader = RunReader(run_dir)
    assert reader.status() == "finished"  # the profile event after run_finished keeps it so
    (event,) = reader.of("profile")
    assert event["seconds"] == seconds
    assert "not training:" in out and "evaluate" in out


def test_run_profile_script_puts_runs_side_by_side(tmp_path: Path):
    """benchmarks/run_profile.py: seconds (share) per phase and run, phases of either run."""
    runs = []
    for name, train in (("before", 10.0), ("after", 12.0)):
        run_dir = tmp_path / name
        run_dir.mkdir()
        profile = {
            "wall_seconds": 20.0,
            "seconds": {"train": train, "other": 20.0 - train},
            "share": {"train": train / 20, "other": 1 - train / 20},
            "not_training_share": 1 - train / 20,
        }
        if name == "after":
            profile["seconds"]["blur"], profile["share"]["blur"] = 1.0, 0.05
        (run_dir / "profile.json").write_text(json.dumps(profile))
        (run_dir / "meta.json").write_text(json.dumps({"argv": ["kvision", "run", name]}))
        runs.append(str(run_dir))
    script = Path(__file__).resolve().parents[1] / "benchmarks" / "run_profile.py"
    out = tmp_path / "profile.md"
    text = subprocess.run(
        [
            sys.executable,
            str(script),
            *runs,
            "--label",
            "before",
            "--label",
            "after",
            "--markdown",
            str(out),
        ],
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    ).stdout
    assert "| train | 10.0 s (50.0%) | 12.0 s (60.0%) |" in text
    assert "| blur | - | 1.0 s (5.0%) |" in text
    assert "| not training | 50.0% | 40.0% |" in text and "`kvision run after`" in text
    assert "- command: `python" in out.read_text()
    bad = subprocess.run(
        [sys.executable, str(script), str(tmp_path)], capture_output=True, text=True, timeout=120
    )
    assert bad.returncode != 0 and "has no profile.json" in bad.stderr
