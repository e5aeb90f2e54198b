"""Faults a server throws at a long run: damaged checkpoints and event logs, a finished run
resumed, file modes, a full disk at every write site, warnings and non-finite losses.

Each fault is made real where the user meets it (a truncated file on disk, a real full
tmpfs when the tests may mount one, the ``kvision`` command line: its ``main`` in this
process, a child process where the umask is the behaviour) and the run is then checked to
end the same as an undisturbed one (tests/recipes/two_stages.toml).
"""

from __future__ import annotations

import errno
import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
from conftest import kvision_cli, quiet, recipe_text, write_recipe

from kvision.runs import RunReader
from kvision.runs.disk_space import EXIT_DISK_FULL
from kvision.train.runner import resume_run, run_recipe
from kvision.train.signals import StopRequested


def outcome(run_dir: Path) -> tuple[dict, list]:
    """What must not change: every checkpoint's evaluation, and the final weights."""
    from kvision.models import load_model

    reader = RunReader(run_dir)
    evals = {(e["trial"], e["checkpoint"]): (e["matrix"], e["loss"]) for e in reader.evaluations()}
    weights = []
    for path in sorted(run_dir.glob("trials/*/model.keras")):
        weights += [np.asarray(w) for w in load_model(path).get_weights()]
    return evals, weights


def assert_same(run_dir: Path, reference: Path) -> None:
    evals, weights = outcome(run_dir)
    ref_evals, ref_weights = outcome(reference)
    assert evals == ref_evals
    assert len(weights) == len(ref_weights)
    assert all(np.array_equal(a, b) for a, b in zip(weights, ref_weights, strict=True))


@pytest.fixture(scope="module")
def one(tmp_path_factory) -> Path:
    return write_recipe(tmp_path_factory.mktemp("recipe"), recipe_text("two_stages"), "one.toml")


@pytest.fixture(scope="module")
def reference(one, tmp_path_factory) -> Path:
    """The undisturbed run every faulty one must end up equal to."""
    result = run_recipe(
        str(one), [], run_dir=str(tmp_path_factory.mktemp("ref") / "run"), console=quiet()
    )
    assert result.exit_code == 0, result.message
    return result.run_dir


def stopped_after(one: Path, run_dir: Path, saves: int, monkeypatch) -> Path:
    """A run stopped (as by SIGTERM) right after its ``saves``-th checkpoint."""
    from kvision.train import trial

    original, count = trial.save_checkpoint, [0]

    def save_then_stop(*args, **kw):
        path = original(*args, **kw)
        count[0] += 1
        if count[0] == saves:
            raise StopRequested("SIGTERM")
        return path

    with monkeypatch.context() as m:
        m.setattr(trial, "save_checkpoint", save_then_stop)
        result = run_recipe(str(one), [], run_dir=str(run_dir), console=quiet())
    assert result.status == "interrupted", result.message
    return run_dir


def checkpoints(run_dir: Path) -> list[Path]:
    """The trial's complete checkpoints, newest first."""
    from kvision.train.checkpoint import _newest_first

    return _newest_first(run_dir / "trials/lenet-expert/checkpoints")


def truncate(path: Path) -> None:
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])


def warnings_of(run_dir: Path, kind: str) -> list[dict]:
    return [e for e in RunReader(run_dir).of("warning") if e["kind"] == kind]


# -- damaged state ----------------------------------------------------------------------------
def test_damaged_newest_checkpoint_falls_back_to_the_previous(
    one, reference, tmp_path, monkeypatch
):
    run_dir = stopped_after(one, tmp_path / "run", 5, monkeypatch)  # inside stage "train"
    newest, previous = checkpoints(run_dir)  # two are kept while the trial runs
    truncate(newest / "model.weights.h5")  # a partial copy, a dying disk
    proc = kvision_cli("run", "--resume", str(run_dir))
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "Traceback" not in proc.stdout + proc.stderr
    assert "warning: Damaged checkpoint" in proc.stdout and previous.name in proc.stdout
    (warning,) = warnings_of(run_dir, "damaged_checkpoint")
    assert warning["details"] == {"damaged": [newest.name], "resumed_from": previous.name}
    assert "bytes" in warning["message"]
    assert_same(run_dir, reference)
    assert "damaged_checkpoint" in (run_dir / "report.md").read_text()


def test_no_intact_checkpoint_restarts_the_trial(one, reference, tmp_path, monkeypatch):
    run_dir = stopped_after(one, tmp_path / "run", 4, monkeypatch)
    for path in checkpoints(run_dir):
        (path / "state.json").write_text('{"trial": {"stage_index": 0}}')  # edited: hash differs
    result = resume_run(str(run_dir), console=quiet())
    assert result.exit_code == 0, result.message
    (warning,) = warnings_of(run_dir, "damaged_checkpoint")
    assert "restarts from its start" in warning["message"]
    assert warning["details"]["resumed_from"] is None
    (resumed,) = RunReader(run_dir).of("run_resumed")
    assert resumed["lost_partial_epoch"] is False  # stopped between epochs
    assert_same(run_dir, reference)


def test_damaged_model_of_a_finished_trial_is_rebuilt(one, reference, tmp_path, monkeypatch):
    """A kill after the trial finished but before the run did; then model.keras is damaged."""
    from kvision.train import runner

    def die(*_args, **_kw):
        raise StopRequested("SIGTERM")

    with monkeypatch.context() as m:
        m.setattr(runner, "_finish_run", die)
        result = run_recipe(str(one), [], run_dir=str(tmp_path / "run"), console=quiet())
    assert result.status == "interrupted"
    model = result.run_dir / "trials/lenet-expert/model.keras"
    truncate(model)
    result = resume_run(str(result.run_dir), console=quiet())
    assert result.exit_code == 0, result.message
    (warning,) = warnings_of(result.run_dir, "damaged_artifact")
    assert "model.keras" in warning["message"]
    assert_same(result.run_dir, reference)


def test_torn_last_event_line_is_tolerated_by_resume(one, reference, tmp_path, monkeypatch):
    """Killed inside an epoch, while writing its progress: the torn line is skipped, and the
    resume says the epoch's partial work was lost (a progress event after the last epoch)."""
    run_dir = stopped_after(one, tmp_path / "run", 3, monkeypatch)
    progress = {"event": "progress", "time": "2026-01-01T00:00:00+00:00", "trial": "lenet-expert"}
    progress.update(stage="train", epoch=2, step=1, steps=2)
    with open(run_dir / "events.jsonl", "a") as fh:
        fh.write(json.dumps(progress) + "\n")
        fh.write('{"event": "progress", "time": "2026-')  # the writer was killed mid-line
    result = resume_run(str(run_dir), console=quiet())
    assert result.exit_code == 0, result.message
    lines = (run_dir / "events.jsonl").read_text().splitlines()
    bad = [line for line in lines if not line.startswith('{"event": "progress", "time": "2026-')]
    assert all(json.loads(line) for line in bad)  # every other line is whole JSON
    assert sum(line.startswith('{"event": "run_resumed"') for line in lines) == 1
    (resumed,) = RunReader(run_dir).of("run_resumed")
    assert resumed["lost_partial_epoch"] is True
    assert_same(run_dir, reference)


def test_checkpoints_record_size_and_hash(one, tmp_path, monkeypatch):
    from kvision.runs.atomic import file_digest
    from kvision.train.checkpoint import KEEP

    run_dir = stopped_after(one, tmp_path / "run", 4, monkeypatch)
    found = checkpoints(run_dir)
    assert len(found) == KEEP == 2
    manifest = json.loads((found[0] / "manifest.json").read_text())
    assert set(manifest["files"]) >= {"model.weights.h5", "rng.npz", "state.json"}
    for name, record in manifest["files"].items():
        assert record == file_digest(found[0] / name)
    assert manifest["seq"] == json.loads((found[1] / "manifest.json").read_text())["seq"] + 1


# -- a finished run, file modes ---------------------------------------------------------------
def test_resume_of_a_finished_run_changes_nothing(reference):
    before = {
        p: (p.stat().st_mtime_ns, p.read_bytes()) for p in reference.rglob("*") if p.is_file()
    }
    proc = kvision_cli("run", "--resume", str(reference))
    assert proc.returncode == 0, proc.stderr
    assert "is finished; there is nothing to resume" in proc.stdout
    after = {p: (p.stat().st_mtime_ns, p.read_bytes()) for p in reference.rglob("*") if p.is_file()}
    assert after == before


def test_file_modes_follow_the_umask(one, tmp_path, cli):
    run_dir = tmp_path / "run"
    # The umask is read by the kernel at each file's creation (kvision caches none), so the
    # run is made in this process with the umask a user's shell would hand a child.
    before = os.umask(0o027)
    try:
        proc = cli("run", one, "--run-dir", run_dir)
    finally:
        os.umask(before)
    assert proc.returncode == 0, proc.stderr
    modes = {
        p.relative_to(run_dir).as_posix(): p.stat().st_mode & 0o777 for p in run_dir.rglob("*")
    }
    files = {k: m for k, m in modes.items() if (run_dir / k).is_file()}
    assert {
        "events.jsonl",
        "meta.json",
        "split.json",
        "report.md",
        "trials/lenet-expert/model.keras",
    } <= files.keys()
    assert set(files.values()) == {0o640}, files
    assert {m for k, m in modes.items() if k not in files} == {0o750}


# -- a full disk ----------------------------------------------------------------------------
def enospc(*_args, **_kw):
    raise OSError(errno.ENOSPC, "No space left on device")


def _fail_event(kind: str):
    from kvision.runs.writer import RunWriter

    original = RunWriter.event

    def event(self, name, **fields):
        if name == kind:
            enospc()
        return original(self, name, **fields)

    return event


def _fail_h5(self, path, *a, **kw):
    raise OSError(
        errno.ENOSPC, "Unable to synchronously write data (file write failed: errno = 28)"
    )


#: Where each write site is made to fail (attribute to patch, replacement).
SITES = {
    "events": ("kvision.runs.writer.RunWriter.event", lambda: _fail_event("epoch_end")),
    # a checkpoint's weights are written by its commit thread (kvision/train/weights_file.py)
    "checkpoint": ("kvision.train.weights_file.Snapshot.write", lambda: _fail_h5),
    "report": ("kvision.train.report_md.write_report", lambda: enospc),
    "export": ("keras.Model.save", lambda: enospc),
    "images": ("matplotlib.figure.Figure.savefig", lambda: enospc),
}


@pytest.mark.parametrize("site", list(SITES))
def test_disk_full_at_each_write_site_stops_cleanly_and_resumes(
    site, one, reference, tmp_path, monkeypatch
):
    target, make = SITES[site]
    overrides = ["insight.enabled=true"] if site == "images" else []
    with monkeypatch.context() as m:
        m.setattr(target, make())
        result = run_recipe(str(one), overrides, run_dir=str(tmp_path / "run"), console=quiet())
    assert result.exit_code == EXIT_DISK_FULL, result.message
    assert (
        "is full" in result.message and f"kvision run --resume {result.run_dir}" in result.message
    )
    assert not (result.run_dir / "run.log").exists()  # no traceback: a full disk is no crash
    reader = RunReader(result.run_dir)
    assert reader.status() in ("failed", "stale")
    show = kvision_cli("show", str(result.run_dir))
    assert show.returncode == 0 and "Traceback" not in show.stderr
    assert not list(result.run_dir.rglob("*.tmp")) and not list(result.run_dir.rglob("*.partial*"))
    resumed = resume_run(str(result.run_dir), console=quiet())
    assert resumed.exit_code == 0, resumed.message
    if site != "images":
        assert_same(result.run_dir, reference)


def test_free_space_is_checked_before_a_checkpoint(one, tmp_path, monkeypatch):
    """h5py can crash on a full disk, so a checkpoint that cannot fit is never started."""
    from kvision.runs import disk_space as space

    calls = []
    monkeypatch.setattr(space, "free_bytes", lambda folder: calls.append(folder) or 1024)
    for writer in ("keras.Model.save_weights", "kvision.train.weights_file.Snapshot.write"):
        monkeypatch.setattr(writer, lambda *a, **k: pytest.fail("h5 written"))
    result = run_recipe(str(one), [], run_dir=str(tmp_path / "run"), console=quiet())
    assert result.exit_code == EXIT_DISK_FULL
    assert "1.0 kB free" in result.message and calls


def _mount_tmpfs(path: Path, size: str) -> bool:
    path.mkdir(parents=True, exist_ok=True)
    return (
        subprocess.run(
            ["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(path)], capture_output=True
        ).returncode
        == 0
    )


@pytest.mark.skipif(
    sys.platform != "linux" or os.geteuid() != 0, reason="mounting a tmpfs needs root"
)
def test_real_full_disk_stops_cleanly_and_resumes_once_space_is_freed(one, reference, tmp_path):
    disk = tmp_path / "disk"
    if not _mount_tmpfs(disk, "1800k"):  # fills up inside the second stage
        pytest.skip("this sandbox cannot mount a tmpfs")
    try:
        run_dir = disk / "run"
        proc = kvision_cli("run", str(one), "--run-dir", str(run_dir))
        out = proc.stdout + proc.stderr
        assert proc.returncode == EXIT_DISK_FULL, out[-3000:]
        assert "Traceback" not in out and f"'{disk}" in out and "kB free" in out
        assert f"kvision run --resume {run_dir}" in out
        assert kvision_cli("show", str(run_dir)).returncode == 0
        subprocess.run(["mount", "-o", "remount,size=8m", str(disk)], check=True)
        proc = kvision_cli("run", "--resume", str(run_dir))
        assert proc.returncode == 0, (proc.stdout + proc.stderr)[-3000:]
        assert_same(run_dir, reference)
    finally:
        subprocess.run(["umount", "-l", str(disk)], capture_output=True)


def test_export_onto_a_full_disk_exits_75_and_leaves_no_half_file(reference, tmp_path, monkeypatch):
    from kvision import cli
    from kvision.runs import disk_space as space

    dest = tmp_path / "out"
    monkeypatch.setattr(
        "keras.Model.save", lambda self, path, *a, **k: (Path(path).write_bytes(b"x"), enospc())
    )  # a half-written file, then the disk is full
    assert cli.main(["export", str(reference), "--to", str(dest)]) == EXIT_DISK_FULL
    assert list(dest.iterdir()) == []
    monkeypatch.setattr(space, "free_bytes", lambda folder: 10)
    assert cli.main(["export", str(reference), "--to", str(dest)]) == EXIT_DISK_FULL


# -- warnings ---------------------------------------------------------------------------------
def _image_folder(root: Path, splits: tuple[str, ...]) -> Path:
    import cv2

    rng = np.random.default_rng(0)
    for split in splits:
        for cls in ("cat", "dog"):
            folder = root / split / cls
            folder.mkdir(parents=True)
            for i in range(6):
                cv2.imwrite(str(folder / f"{i}.png"), rng.integers(0, 255, (28, 28, 3), np.uint8))
    return root


FOLDER = textwrap.dedent("""\
    [experiment]
    name = "folder"
    seed = 1

    [data]
    source = "folder:{root}"
    val_fraction = 0.0

    [conditions.clear]

    [models.lenet]
    arch = "lenet"

    [[arms]]
    name = "a"
    stages = [{{ name = "train", condition = "clear", epochs = 1 }}]

    [evaluate]
    conditions = ["clear"]
    splits = ["train", "test"]

    [insight]
    enabled = false
    """)


def test_skipped_files_and_an_unwritable_cache_are_warnings(tmp_path, monkeypatch):
    root = _image_folder(tmp_path / "imgs", ("train", "test"))
    for i in range(7):
        (root / "train" / "cat" / f"broken{i}.jpg").write_bytes(b"\xff\xd8 not a jpeg")
    recipe = tmp_path / "r.toml"
    recipe.write_text(FOLDER.format(root=root))
    cache = tmp_path / "cache"
    cache.write_text("a file where the cache folder should be")  # the cache cannot be written
    monkeypatch.setenv("KVISION_CACHE", str(cache))
    proc = kvision_cli("run", str(recipe), "--run-dir", str(tmp_path / "run"))
    assert proc.returncode == 0, proc.stderr
    run_dir = tmp_path / "run"
    assert "warning: 7 file(s)" in proc.stdout and "and 2 more" in proc.stdout
    (skipped,) = warnings_of(run_dir, "skipped_files")
    assert set(skipped) == {"event", "time", "trial", "stage", "kind", "message", "details"}
    assert skipped["trial"] is None and skipped["details"]["count"] == 7
    assert len(json.loads((run_dir / "skipped.json").read_text())) == 7
    assert str(run_dir / "skipped.json") in skipped["message"]
    assert warnings_of(run_dir, "cache_not_written")
    report = (run_dir / "report.md").read_text()
    assert "## Warnings" in report and "skipped_files" in report
    show = kvision_cli("show", str(run_dir))
    assert "7 file(s)" in show.stdout


def test_folder_without_test_split_is_refused_before_the_run(tmp_path):
    root = _image_folder(tmp_path / "imgs", ("train",))
    recipe = tmp_path / "r.toml"
    recipe.write_text(FOLDER.format(root=root))
    runs = tmp_path / "runs"
    proc = kvision_cli("run", str(recipe), "--runs-dir", str(runs))
    assert proc.returncode == 2, proc.stderr
    assert "Traceback" not in proc.stderr
    assert "evaluate.splits" in proc.stderr and "data.split = [0.8, 0.1, 0.1]" in proc.stderr
    assert not runs.exists() or not any(runs.iterdir())
    proc = kvision_cli(
        "run", str(recipe), "--runs-dir", str(runs), "--set", "data.test_fraction=0.34"
    )
    assert proc.returncode == 0, proc.stderr  # the seeded carve the message suggests works
    (run_dir,) = runs.iterdir()
    assert RunReader(run_dir).evaluations()[-1]["matrix"]["clear"].keys() == {"train", "test"}


FUNCTION = textwrap.dedent("""\
    [experiment]
    name = "fn"
    seed = 3

    [data]
    source = "function:x**2"
    function = { domain = [-2.0, 3.0], train_points = 64, val_points = 16, test_points = 16 }

    [models.mlp]
    arch = "mlp"
    hidden = [16]
    activation = "relu"

    [training]
    optimizer = { name = "adam", learning_rate = 0.01 }
    loss = "mse"
    batch_size = 16

    [[arms]]
    name = "ok"
    stages = [{ name = "fit", condition = "clear", epochs = 2 }]

    [[arms]]   # plain SGD at 10 on a squared error diverges within the first epoch
    name = "boom"
    stages = [{ name = "fit", condition = "clear", epochs = 3, optimizer = { name = "sgd", learning_rate = 10.0 } }]

    [insight]
    enabled = false
    """)


def test_non_finite_loss_fails_that_trial_and_the_run_goes_on(tmp_path):
    recipe = tmp_path / "fn.toml"
    recipe.write_text(FUNCTION)
    run_dir = tmp_path / "run"
    proc = kvision_cli("run", str(recipe), "--run-dir", str(run_dir))
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "warning: Trial mlp-boom stopped in stage fit, epoch 1" in proc.stdout
    reader = RunReader(run_dir)
    assert reader.status() == "finished"
    (failed,) = reader.of("trial_failed")
    assert set(failed) == {"event", "time", "trial", "stage", "error"}
    assert failed["trial"] == "mlp-boom" and failed["stage"] == "fit"
    assert "no longer finite" in failed["error"]
    assert [e["trial"] for e in reader.of("trial_finished")] == ["mlp-ok"]
    (warning,) = warnings_of(run_dir, "non_finite_loss")
    assert warning["trial"] == "mlp-boom" and warning["stage"] == "fit"
    report = (run_dir / "report.md").read_text()
    assert "## Failed trials" in report and "| mlp-boom | fit |" in report
    assert not (run_dir / "trials/mlp-boom/checkpoints").exists()
    again = kvision_cli("run", "--resume", str(run_dir))
    assert again.returncode == 0 and "is finished" in again.stdout


def test_python_warnings_and_speed_paths_off_become_warning_events(one, tmp_path, monkeypatch):
    import warnings

    from kvision.train import trial

    build = trial.build_model

    def build_and_warn(shared, plan):
        for _ in range(3):  # said once, however often it is raised
            warnings.warn("the head starts from a random init", UserWarning, stacklevel=1)
        return build(shared, plan)

    monkeypatch.setattr(trial, "build_model", build_and_warn)
    monkeypatch.setattr(
        "kvision.models._fast.speed_paths_status",
        lambda: (False, "speed paths off: torch:_fused_adam_ is missing"),
    )
    result = run_recipe(
        str(one), ["arms[0].stages[1].epochs=0"], run_dir=str(tmp_path / "run"), console=quiet()
    )
    assert result.exit_code == 0, result.message
    (warning,) = warnings_of(result.run_dir, "python_warning")
    assert warning["message"] == "the head starts from a random init"
    assert warning["details"]["category"] == "UserWarning"
    assert "python_warning" in (result.run_dir / "report.md").read_text()
    (speed,) = warnings_of(result.run_dir, "speed_paths_off")
    assert speed["message"] == "speed paths off: torch:_fused_adam_ is missing."


def test_resume_of_a_run_killed_before_its_first_event(one, reference, tmp_path, monkeypatch):
    from kvision.runs.writer import RunWriter
    from kvision.train import runner

    write_json = RunWriter.write_json
    with monkeypatch.context() as m:  # killed right after recipe.toml and meta.json
        m.setattr(runner, "_execute", lambda *a, **k: runner.RunResult(Path(), "killed", -9))
        m.setattr(
            RunWriter,
            "write_json",
            lambda self, rel, obj: None if rel == "split.json" else write_json(self, rel, obj),
        )
        run_dir = tmp_path / "run"
        run_recipe(str(one), [], run_dir=str(run_dir), console=quiet())
    assert (run_dir / "meta.json").exists() and not (run_dir / "split.json").exists()
    assert (run_dir / "events.jsonl").read_text() == ""
    meta = json.loads((run_dir / "meta.json").read_text())
    dead = subprocess.Popen(["true"])
    dead.wait()
    meta["pid"] = dead.pid  # the killed process is gone
    (run_dir / "meta.json").write_text(json.dumps(meta))
    result = resume_run(str(run_dir), console=quiet())
    assert result.exit_code == 0, result.message
    kinds = [e["event"] for e in RunReader(run_dir).events]
    assert kinds[:3] == ["run_resumed", "run_started", "data_loaded"]
    assert (run_dir / "split.json").exists()
    assert_same(run_dir, reference)


def test_a_failed_event_write_leaves_no_half_line(tmp_path, monkeypatch):
    from kvision.runs import writer as writer_module
    from kvision.runs.writer import RunWriter

    w = RunWriter(tmp_path)
    w.event("run_started")
    real_write, calls = os.write, []

    def write_then_fail(fd, data):
        calls.append(1)
        if len(calls) == 1:
            return real_write(fd, bytes(data[:10]))  # part of the line reached the disk
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(writer_module.os, "write", write_then_fail)
    with pytest.raises(OSError):
        w.event("epoch_end", epoch=1)
    monkeypatch.setattr(writer_module.os, "write", real_write)
    w.event("run_failed", error="disk full")
    w.close()
    lines = (tmp_path / "events.jsonl").read_text().splitlines()
    assert [json.loads(line)["event"] for line in lines] == ["run_started", "run_failed"]


def test_a_full_cache_disk_costs_only_speed(tmp_path, monkeypatch):
    from kvision.data import cache, load_dataset
    from kvision.recipe.schema_data import DataSection
    from kvision.recipe.spec import Context, parse

    root = _image_folder(tmp_path / "imgs", ("train",))
    monkeypatch.setenv("KVISION_CACHE", str(tmp_path / "cache"))
    # The disk fills while the entry's arrays are reserved (before any row is written).
    monkeypatch.setattr(cache.os, "posix_fallocate", lambda fd, off, n: enospc())
    ctx = Context()
    data = parse(DataSection, {"source": f"folder:{root}", "val_fraction": 0.0}, ctx, "data")
    ds = load_dataset(data, seed=0)
    ((kind, problem),) = ds.info["warnings"]
    assert kind == "cache_not_written"
    assert "could not be cached" in problem and "No space left" in problem
    assert sum(ds.info["counts"].values()) > 0  # decoded in memory instead
    leftovers = [p.name for p in (tmp_path / "cache").iterdir() if not p.name.endswith(".lock")]
    assert leftovers == []  # no half entry left behind
