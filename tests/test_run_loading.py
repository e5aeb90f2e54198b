"""A run is claimed before its data is read: a load killed midway leaves a run directory
with data_progress events that `kvision ls` shows and `--resume` continues; bad data still
leaves none."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import numpy as np
import pytest
from conftest import quiet
from PIL import Image

from kvision.data.cache import entries
from kvision.runs import RunReader
from kvision.runs.listing import format_runs
from kvision.train.runner import resume_run

PER_CLASS = 8


def _recipe(tmp_path: Path, folder: Path) -> Path:
    path = tmp_path / "loading.toml"
    path.write_text(
        textwrap.dedent(f"""\
        [experiment]
        name = "loading"
        seed = 3

        [data]
        source = "folder:{folder}"
        image_size = [28, 28]
        split = [0.5, 0.25, 0.25]

        [models.lenet]
        arch = "lenet"

        [[arms]]
        name = "plain"
        stages = [{{ name = "train", condition = "clear", epochs = 1 }}]

        [training]
        batch_size = 4

        [evaluate]
        conditions = ["clear"]
        splits = ["test"]

        [insight]
        enabled = false
        """)
    )
    return path


def _folder(root: Path) -> Path:
    rng = np.random.default_rng(0)
    for cls in ("cat", "dog"):
        (root / cls).mkdir(parents=True)
        for i in range(PER_CLASS):
            image = rng.integers(0, 256, (20, 20, 3), dtype=np.uint8)
            Image.fromarray(image).save(root / cls / f"{i}.png")
    return root


def _events(run_dir: Path, kind: str) -> list[dict]:
    try:
        return RunReader(run_dir).of(kind)
    except FileNotFoundError:
        return []


@pytest.mark.slow  # a run in a child process, SIGKILLed while loading, resumed (~5 s)
def test_a_run_killed_while_loading_shows_how_far_it_got_and_resumes(tmp_path, monkeypatch):
    monkeypatch.setenv("KVISION_CACHE", str(tmp_path / "cache"))
    folder = _folder(tmp_path / "pets")
    # A named pipe with an image's name: reading it blocks until someone writes, so the load
    # is caught midway however fast the machine decodes (the last file in listing order).
    stuck = folder / "dog" / "zz.png"
    os.mkfifo(stuck)
    run_dir = tmp_path / "runs" / "killed"
    proc = subprocess.Popen(
        [sys.executable, "-m", "kvision", "run", str(_recipe(tmp_path, folder))]
        + ["--run-dir", str(run_dir)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "KVISION_CACHE": str(tmp_path / "cache")},
    )
    try:
        deadline = time.monotonic() + 240  # importing Keras and torch on a busy machine
        while not _events(run_dir, "data_progress"):
            assert proc.poll() is None, proc.stderr.read()[-3000:]
            assert time.monotonic() < deadline, "no data_progress event in time"
            time.sleep(0.2)
        time.sleep(0.5)  # the decoding threads are stuck on the pipe: still loading
        assert proc.poll() is None
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=60)
    reader = RunReader(run_dir)
    assert reader.status() == "stale" and not reader.of("run_started")
    progress = reader.of("data_progress")
    assert (
        progress[-1]["total"] == 2 * PER_CLASS + 1 and progress[-1]["done"] < progress[-1]["total"]
    )
    assert {"rate", "eta_s"} <= set(progress[-1])
    listing = format_runs(tmp_path / "runs")
    assert "killed" in listing and "stale" in listing
    assert f"loading {progress[-1]['done']}/{2 * PER_CLASS + 1} images" in listing
    assert entries() == []  # the half-built entry does not read as one

    stuck.unlink()  # the stuck file becomes a real image: the listing changed, so a new entry
    Image.fromarray(np.zeros((20, 20, 3), np.uint8)).save(stuck)
    result = resume_run(str(run_dir), console=quiet())
    assert result.status == "finished", result.message
    reader = RunReader(run_dir)
    loaded = reader.of("data_loaded")
    assert len(loaded) == 1 and sum(loaded[0]["counts"].values()) == 2 * PER_CLASS + 1
    assert reader.of("run_started") and reader.of("run_resumed")
    assert (run_dir / "split.json").is_file() and (run_dir / "report.md").is_file()
    assert "loading" not in format_runs(tmp_path / "runs")


def test_an_unreadable_folder_is_refused_by_the_early_check(tmp_path, monkeypatch):
    """Checked before the run directory is claimed (a missing one: test_runner's
    test_bad_input_leaves_no_run_directory). Root reads every folder, so the permission
    answer is simulated."""
    from kvision.data.sources import check_source
    from kvision.errors import RecipeError
    from kvision.recipe import load_recipe

    folder = _folder(tmp_path / "pets")
    recipe = load_recipe(str(_recipe(tmp_path, folder)), [])
    check_source(recipe.data)  # readable: passes
    monkeypatch.setattr(os, "access", lambda path, mode: Path(path) != folder)
    with pytest.raises(
        RecipeError, match="cannot be read.*data.source|data.source.*cannot be read"
    ):
        check_source(recipe.data)


def test_data_refused_while_loading_says_the_run_directory_it_named_is_gone(tmp_path, cli):
    """The console named the run directory before loading; when the data is then refused it
    says the directory is removed again, so the path printed above is not looked for."""
    folder = tmp_path / "broken"
    for cls in ("cat", "dog"):
        (folder / cls).mkdir(parents=True)
        (folder / cls / "1.png").write_bytes(b"not a png")
    proc = cli("run", _recipe(tmp_path, folder), "--runs-dir", tmp_path / "runs")
    assert proc.returncode == 2 and "no readable images" in proc.stderr, proc.stderr
    named, removed = proc.stdout.splitlines()[-2:]
    assert named.startswith("run directory: ") and removed == "run directory: removed again"
    assert not Path(named.removeprefix("run directory: ")).exists()
