"""One coordinator per sweep directory (the kernel's lock), and no trial left RUNNING forever
by a worker killed between claiming it and its first heartbeat."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from kvision.cli import main
from kvision.runs.lock import LOCK_FILE, hold, holder, probe, release

sys.path.insert(0, str(Path(__file__).parent))
from test_sweep_shared import RECIPE  # noqa: E402 - the shared-sweep recipe, one source

CLAIM_AND_DIE = textwrap.dedent("""\
    import os, signal, sys
    from kvision.sweep.study import _prepare
    from kvision.sweep.studies import SharedStudy
    spec, _base, raw = _prepare(sys.argv[1], [])
    study = SharedStudy(sys.argv[2], "shared", heartbeat=1, grace=2)
    handle, _note = study.join(spec, raw, 3, sys.argv[1])
    trial = handle.claim()
    print(trial.number, flush=True)
    os.kill(os.getpid(), signal.SIGKILL)  # between the claim and the worker's first beat
    """)


def _recipe(tmp_path: Path) -> Path:
    path = tmp_path / "shared.toml"
    path.write_text(RECIPE)
    return path


@pytest.mark.slow  # a sweep worker in a child process, SIGKILLed (~4 s)
def test_worker_killed_right_after_a_claim_leaves_no_trial_running_forever(tmp_path):
    from optuna.trial import TrialState

    from kvision.sweep.studies import SharedStudy
    from kvision.sweep.study import _prepare

    recipe, url = _recipe(tmp_path), f"sqlite:///{tmp_path / 'sweeps.db'}"
    proc = subprocess.run(
        [sys.executable, "-c", CLAIM_AND_DIE, str(recipe), url],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == -signal.SIGKILL, proc.stderr
    claimed = int(proc.stdout.strip())
    spec, _base, raw = _prepare(str(recipe), [])
    handle, _note = SharedStudy(url, "shared", heartbeat=1, grace=2).join(spec, raw, 3, "x")
    deadline = time.monotonic() + 60
    while handle.storage.get_trial(handle.trial_id(claimed)).state == TrialState.RUNNING:
        assert time.monotonic() < deadline, "the dead worker's trial stayed RUNNING"
        time.sleep(0.5)
        handle.fail_stale()  # what every live worker does each poll
    trials = handle.study.get_trials(deepcopy=False)
    assert trials[claimed].state == TrialState.FAIL
    retry = [t for t in trials if t.system_attrs.get("failed_trial") == claimed]
    assert len(retry) == 1 and retry[0].state == TrialState.WAITING  # queued again


def test_second_coordinator_of_a_sweep_dir_is_refused_naming_the_first(tmp_path, capsys):
    folder = tmp_path / "sweep"
    folder.mkdir()
    (folder / "sweep_meta.json").write_text("{}")  # a sweep directory; its content unread
    proc = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import sys, time\nfrom kvision.runs.lock import hold\nhold(sys.argv[1])\n"
            "print('held', flush=True)\ntime.sleep(120)",
            str(folder),
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stdout.readline().strip() == "held"
        assert main(["sweep", "--resume", str(folder)]) == 2
        err = capsys.readouterr().err
        assert f"The sweep in '{folder}' is being written by another process (pid {proc.pid}" in err
        assert (folder / "sweep_meta.json").read_text() == "{}"
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait()
    assert probe(folder) is False  # kill -9 left no lock behind


@pytest.mark.slow  # a real sweep: its trial runs as a process (torch + Keras)
@pytest.mark.parametrize("given", [True, False], ids=["sweep-dir", "new"])
def test_a_sweep_holds_its_folder_while_it_runs_and_lets_go_after(tmp_path, given):
    recipe = _recipe(tmp_path)
    recipe.write_text(
        RECIPE.replace("trials = 9", "trials = 1")
        .replace("epochs = 24", "epochs = 1")
        .replace("[output]", f'[output]\nruns_dir = "{tmp_path / "runs"}"')
    )
    args = ["sweep", str(recipe)] + (["--sweep-dir", str(tmp_path / "s")] if given else [])
    assert main(args) == 0
    folder = tmp_path / "s" if given else next((tmp_path / "runs").iterdir())
    assert (folder / LOCK_FILE).exists() and probe(folder) is False
    assert holder(folder)["pid"] == os.getpid()
    hold(folder)  # free again for the next coordinator
    release(folder)
