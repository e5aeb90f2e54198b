"""One writer per run directory, by the kernel's lock (kvision.runs.lock), tested with real
processes: a holder in another process, ``kill -9``, and two writers started at once."""

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
from conftest import quiet

from kvision.runs import RunReader
from kvision.runs.lock import LOCK_FILE, Busy, hold, holder, probe, release

HOLD = textwrap.dedent("""\
    import sys, time
    from kvision.runs.lock import hold
    hold(sys.argv[1])
    print("held", flush=True)
    time.sleep(120)
    """)

PAIRS = 20  # concurrent starts per test (the "twenty times")


def holder_process(folder: Path) -> subprocess.Popen:
    """Another process holding ``folder``'s lock (returns once it holds it)."""
    proc = subprocess.Popen(
        [sys.executable, "-c", HOLD, str(folder)], stdout=subprocess.PIPE, text=True
    )
    assert proc.stdout.readline().strip() == "held"
    return proc


def kill9(proc: subprocess.Popen) -> None:
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=60)


def test_second_writer_refused_naming_the_holder_and_kill_9_frees_at_once(tmp_path):
    proc = holder_process(tmp_path)
    try:
        assert probe(tmp_path) is True
        started = time.monotonic()
        with pytest.raises(Busy) as refused:
            hold(tmp_path)
        took = time.monotonic() - started
        assert f"pid {proc.pid} on " in str(refused.value)
        assert "nothing was written" in str(refused.value)
        assert holder(tmp_path)["pid"] == proc.pid
        # the refusal waits out a reader's probe only (PROBE_GRACE_S = 0.3 s), not the holder
        assert took < 5
    finally:
        kill9(proc)
    # the kernel dropped the lock with the process: no stale lock, no waiting
    assert probe(tmp_path) is False
    hold(tmp_path)
    assert holder(tmp_path)["pid"] == os.getpid()
    release(tmp_path)


def test_a_probe_never_disturbs_the_holder(tmp_path):
    proc = holder_process(tmp_path)
    try:
        for _ in range(50):
            assert probe(tmp_path) is True
        assert proc.poll() is None and holder(tmp_path)["pid"] == proc.pid
    finally:
        kill9(proc)


def _unfinished_run(folder: Path, pid: int) -> Path:
    """A run directory whose meta.json names ``pid`` on this host, with no last word."""
    import socket

    folder.mkdir()
    (folder / "meta.json").write_text(json.dumps({"pid": pid, "host": socket.gethostname()}))
    (folder / "events.jsonl").write_text(json.dumps({"event": "run_started"}) + "\n")
    return folder


def test_status_comes_from_the_lock_not_the_pid(tmp_path):
    # meta.json names a live process (this one), but nobody holds the lock: stale
    run = _unfinished_run(tmp_path / "run", os.getpid())
    hold(run)
    release(run)
    assert RunReader(run).status() == "stale"
    proc = holder_process(run)
    try:
        assert RunReader(run).status() == "running"
    finally:
        kill9(proc)
    assert RunReader(run).status() == "stale"


REFUSED = """
import sys
from kvision.cli import main
code = main(sys.argv[1:])
print(code, *sorted(m for m in ("torch", "keras") if m in sys.modules))
"""


@pytest.mark.parametrize("how", ["run-dir", "resume"])
def test_a_second_writer_is_refused_before_torch_or_keras_loads(how, recipe, tmp_path):
    """The lock is taken before the 1-3 s of importing torch and Keras, so of two writers
    started together the second is told at once (and the race below stays short)."""
    if how == "resume":
        run = _unfinished_run(tmp_path / "run", os.getpid())
        args = ["run", "--resume", str(run)]
    else:
        run = tmp_path / "run"
        run.mkdir()
        args = ["run", str(recipe("one_trial")), "--run-dir", str(run)]
    proc = holder_process(run)
    try:
        done = subprocess.run(
            [sys.executable, "-c", REFUSED, *args],
            capture_output=True,
            text=True,
            timeout=120,
        )
    finally:
        kill9(proc)
    assert done.stdout.split() == ["2"], done.stdout + done.stderr
    assert f"being written by another process (pid {proc.pid} " in done.stderr


def _kvision(*args: str) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-m", "kvision", *args],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )


def _race(args: list[str]) -> tuple[subprocess.Popen, subprocess.Popen, str]:
    """Start two identical writers back to back; wait until one is refused. Returns
    (winner, loser, loser's stderr); fails unless exactly one was refused, naming the other."""
    first, second = _kvision(*args), _kvision(*args)
    both = {first.pid: first, second.pid: second}
    deadline = time.monotonic() + 300
    while all(p.poll() is None for p in both.values()):
        assert time.monotonic() < deadline, "neither writer was refused"
        time.sleep(0.02)
    loser = next(p for p in both.values() if p.poll() is not None)
    winner = both[next(pid for pid in both if pid != loser.pid)]
    err = loser.stderr.read()
    assert loser.returncode == 2, err
    assert "Traceback" not in err
    assert f"being written by another process (pid {winner.pid} " in err, err
    return winner, loser, err


def _finish(proc: subprocess.Popen) -> None:
    _, err = proc.communicate(timeout=600)
    assert proc.returncode == 0, err


def _reference(recipe: Path, tmp_path: Path) -> list:
    from kvision.train.runner import run_recipe

    ref = run_recipe(str(recipe), [], run_dir=str(tmp_path / "reference"), console=quiet())
    assert ref.status == "finished", ref.message
    return _epochs(ref.run_dir)


def _epochs(run_dir: Path) -> list:
    reader = RunReader(run_dir)
    return sorted(
        (e["trial"], e["stage"], e["epoch"], e["metrics"]["loss"], e["metrics"]["val_loss"])
        for e in reader.epochs()
    ) + [tuple(sorted(reader.evaluations()[-1]["matrix"].items()))]


@pytest.mark.slow(seconds=20)
def test_two_resumes_of_a_killed_run_one_writer_twenty_times(recipe, tmp_path):
    """A writer killed with ``kill -9`` after its first epoch leaves its lock file but no lock:
    the run is stale. Then two ``kvision run --resume`` of it, started within milliseconds:
    exactly one writes (the other exits 2 naming it), twenty times; the winner is killed with
    ``kill -9`` after each race, so every race starts from a killed run (and no stale lock
    ever stands in the way); the last winner finishes equal to an uninterrupted run."""
    recipe = recipe("one_trial")
    run_dir = tmp_path / "run"
    first = _kvision("run", str(recipe), "--run-dir", str(run_dir))
    while '"epoch_end"' not in _read(run_dir / "events.jsonl") and first.poll() is None:
        time.sleep(0.05)
    kill9(first)
    assert (run_dir / LOCK_FILE).exists() and probe(run_dir) is False
    assert RunReader(run_dir).status() == "stale"
    winners, losers, refusal = set(), set(), []
    for i in range(PAIRS):
        started = time.monotonic()
        winner, loser, _ = _race(["run", "--resume", str(run_dir)])
        refusal.append(time.monotonic() - started)
        winners.add(winner.pid)
        losers.add(loser.pid)
        if i < PAIRS - 1:
            kill9(winner)
        else:
            _finish(winner)
    meta = json.loads((run_dir / "meta.json").read_text())
    resumed_by = {r["pid"] for r in meta.get("resumes", [])}
    assert resumed_by <= winners and not resumed_by & losers
    assert RunReader(run_dir).status() == "finished"
    assert _epochs(run_dir) == _reference(recipe, tmp_path)
    print(f"refused after {max(refusal):.2f} s at most ({PAIRS} races)")


@pytest.mark.slow(seconds=20)
def test_two_runs_given_one_run_dir_one_writer_twenty_times(recipe, tmp_path):
    """Two ``kvision run RECIPE --run-dir X`` at once: one claims X, the other exits 2 naming
    it and writes nothing; the winner of the last race finishes equal to a lone run."""
    recipe = recipe("one_trial")
    for i in range(PAIRS):
        run_dir = tmp_path / f"run{i}"
        winner, _loser, _ = _race(["run", str(recipe), "--run-dir", str(run_dir)])
        if i < PAIRS - 1:
            kill9(winner)
            continue
        _finish(winner)
        assert _epochs(run_dir) == _reference(recipe, tmp_path)
        meta = json.loads((run_dir / "meta.json").read_text())
        assert meta["pid"] == winner.pid


def _read(path: Path) -> str:
    try:
        return path.read_text()
    except FileNotFoundError:
        return ""
