"""Figures drawn by the low-priority worker process (kvision.insight.render_worker): the same
files as drawing in the trainer, the run waits for them, a killed run's queued figures are
drawn by ``kvision viz pending``, and job files hold no pickle."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import zipfile
from pathlib import Path

import numpy as np
import pytest
from conftest import TINY_DATA, clear_and_blurred, kvision_cli, naive_vs_expert, write_recipe

from kvision.insight.render_worker import JOBS_DIR, MODE_ENV, Job, JobQueue, draw
from kvision.runs import RunReader

#: Two conditions, a conv net, naive and expert (so the expert's across-checkpoint filters
#: and the run's comparisons are drawn), every figure kind with retrieval on.
RECIPE = (
    TINY_DATA
    + "image_size = [28, 28]\n"
    + clear_and_blurred(2.0)
    + '\n[models.lenet]\narch = "lenet"\n'
    + naive_vs_expert(1, 1, 1)
    + """
[insight.robustness]
max_images = 20
sigmas = [0.0, 2.0]
kinds = ["gaussian"]
severities = [1]

[insight.retrieval]
enabled = true
queries = 2
"""
)


def _run(tmp_path: Path, mode: str) -> Path:
    recipe = write_recipe(tmp_path, RECIPE)
    runs = tmp_path / f"runs-{mode}"
    done = kvision_cli("run", str(recipe), "--runs-dir", str(runs), env={MODE_ENV: mode})
    assert done.returncode == 0, done.stderr
    (run,) = runs.iterdir()
    return run


def _figures(run: Path) -> dict[str, tuple[str, str | None]]:
    """{PNG path: (sha256 of the file, trial)} from the run's artifact events."""
    out = {}
    for e in RunReader(run).artifacts():
        if e["path"].endswith(".png"):
            assert (run / e["path"]).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
            out[e["path"]] = (e["sha256"], e.get("trial"))
    return out


@pytest.fixture(scope="module")
def inline_and_worker(tmp_path_factory) -> tuple[Path, Path]:
    tmp = tmp_path_factory.mktemp("render")
    return _run(tmp, "inline"), _run(tmp, "worker")


@pytest.mark.slow  # two whole runs, every figure kind drawn
def test_worker_draws_the_same_files_as_the_trainer(inline_and_worker):
    inline, worker = inline_and_worker
    drawn = _figures(inline)
    kinds = {p.split("/")[1] for p in drawn}
    assert {"filters", "activations", "curves", "confusion", "cam", "robustness"} <= kinds
    assert "retrieval" in kinds
    # Same names and the same bytes: the worker draws from exactly the numbers it was given.
    assert _figures(worker) == drawn
    assert sorted(p.relative_to(worker) for p in (worker / "images").rglob("*.png")) == sorted(
        p.relative_to(inline) for p in (inline / "images").rglob("*.png")
    )


@pytest.mark.slow  # the two runs above
def test_the_run_waits_for_the_worker_before_its_report(inline_and_worker):
    _, worker = inline_and_worker
    events = RunReader(worker).events
    finished = [i for i, e in enumerate(events) if e["event"] == "run_finished"]
    last_figure = max(
        i for i, e in enumerate(events) if e["event"] == "artifact" and e["path"].endswith(".png")
    )
    assert finished and last_figure < finished[0]
    report = (worker / "report.md").read_text("utf-8")
    assert "comparison_blur-robustness.png" in report
    assert not any((worker / JOBS_DIR).iterdir())  # every job drawn and cleared


def _worker_of(pid: int, timeout: float = 120.0) -> int:
    """The pid of the trainer's drawing worker (its child running render_worker)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for task in Path(f"/proc/{pid}/task").iterdir():
            for child in (task / "children").read_text().split():
                cmd = Path(f"/proc/{child}/cmdline").read_bytes()
                if b"kvision.insight.render_worker" in cmd:
                    return int(child)
        time.sleep(0.02)
    raise AssertionError("no drawing worker started")


@pytest.mark.slow  # a third run, SIGKILLed, then drawn by viz pending (~13 s)
@pytest.mark.skipif(sys.platform != "linux", reason="finds the worker through /proc")
def test_killed_run_leaves_jobs_that_viz_pending_draws(inline_and_worker, tmp_path):
    inline, _ = inline_and_worker
    recipe = write_recipe(tmp_path, RECIPE)
    runs = tmp_path / "runs"
    proc = subprocess.Popen(
        [sys.executable, "-m", "kvision", "run", str(recipe), "--runs-dir", str(runs)],
        env={**os.environ, MODE_ENV: "worker"},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        worker = _worker_of(proc.pid)
        os.kill(worker, signal.SIGSTOP)  # it draws nothing from here on
        (run,) = runs.iterdir()
        deadline = time.monotonic() + 600
        # every trial done: the trainer now waits for the stopped worker to drain
        while len(RunReader(run).of("trial_finished")) < 2 and time.monotonic() < deadline:
            time.sleep(0.2)
        time.sleep(1.0)
        # The trainer computed every figure kind above but drew none, so it never loaded
        # Matplotlib (docs/measured/import_cost.md): none of its compiled modules is mapped.
        maps = Path(f"/proc/{proc.pid}/maps").read_text()
        assert "/matplotlib/" not in maps, "the trainer loaded Matplotlib"
    finally:
        proc.kill()
        proc.wait()
        os.kill(worker, signal.SIGKILL)
    assert not RunReader(run).last_word()
    queued = sorted((run / JOBS_DIR).glob("*.json"))
    assert queued, "no figure was left queued"
    for job in (run / JOBS_DIR).glob("*.npz"):  # plain .npy members, no pickled object
        with zipfile.ZipFile(job) as zf:
            assert all(n.endswith(".npy") for n in zf.namelist())
        with np.load(job, allow_pickle=False) as npz:
            assert all(npz[k].dtype != object for k in npz.files)
    for job in queued:
        json.loads(job.read_text("utf-8"))  # plain JSON

    done = kvision_cli("viz", "pending", str(run))
    assert done.returncode == 0, done.stderr
    drawn = _figures(run)
    assert len(done.stdout.split()) >= len(queued) - 1  # a job may have nothing to draw
    assert not list((run / JOBS_DIR).iterdir())
    # the finished trial's figures (and the run's, if queued before the kill), drawn now,
    # are byte for byte those a trainer draws itself
    everything = _figures(inline)
    assert {p: v for p, v in drawn.items() if v[1]} == {p: v for p, v in everything.items() if v[1]}
    assert all(everything[p] == v for p, v in drawn.items())


def test_a_job_names_only_a_known_plot_and_a_png_under_images(tmp_path):
    job = Job.of("confusion", "confusion", None, "images/../meta.json", {})
    with pytest.raises(ValueError, match="not a PNG under images"):
        draw(tmp_path, job)
    with pytest.raises(ValueError, match="unknown plot"):
        draw(tmp_path, Job.of("os.system", "x", None, "images/x/y.png", {}))


def test_job_round_trip_keeps_arrays_and_refuses_objects(tmp_path):
    queue = JobQueue(tmp_path)
    maps = {"v1": np.arange(12, dtype=np.float32).reshape(1, 2, 2, 3)}
    queue.put(
        Job.of("stage_means", "activations", "t", "images/a/b.png", {"maps": maps, "k": (1, 2)})
    )
    (stem,) = queue.pending()
    back = queue.load(stem)
    assert back.args == {"maps": {"v1": {"$npy": "a0"}}, "k": [1, 2]}
    np.testing.assert_array_equal(back.arrays["a0"], maps["v1"])
    with pytest.raises(ValueError):
        queue.put(Job.of("x", "x", None, "images/x.png", {"a": np.array([object()])}))


SUMMARY = {
    "class_names": ["a", "b"],
    "confusion_matrix": [[3, 1], [0, 4]],
    "accuracy": 0.875,
    "macro_f1": 0.87,
    "n": 8,
}


def test_a_worker_that_cannot_start_leaves_the_trainer_drawing(tmp_path, monkeypatch):
    import kvision.insight.render_worker as rw
    from kvision.runs import RunWriter

    def refuse(run_dir):
        raise OSError("no processes left")

    monkeypatch.setattr(rw, "_start_worker", refuse)
    writer = RunWriter(tmp_path / "run")
    try:
        renderer = rw.WorkerRenderer(writer)
        job = Job.of(
            "confusion",
            "confusion",
            "t",
            "images/confusion/t.png",
            {"summary": SUMMARY, "title": "t"},
        )
        (event,) = renderer.submit(job)
        assert (event["path"], event["kind"], event["trial"]) == (
            "images/confusion/t.png",
            "confusion",
            "t",
        )
        assert (tmp_path / "run" / event["path"]).read_bytes()[:4] == b"\x89PNG"
        assert renderer.broken and not renderer.queue.pending()
        assert renderer.submit(job) and renderer.drain() == []
    finally:
        writer.close()


def test_a_job_recorded_but_not_cleared_is_not_recorded_twice(tmp_path):
    from kvision.runs import RunWriter

    queue = JobQueue(tmp_path)
    queue.put(
        Job.of(
            "confusion",
            "confusion",
            "t",
            "images/confusion/t.png",
            {"summary": SUMMARY, "title": "t"},
        )
    )
    (stem,) = queue.pending()
    queue.render(stem)
    stem.with_suffix(".npz").unlink()
    stem.with_suffix(".json").unlink()  # killed after clearing the job, before its mark
    writer = RunWriter(tmp_path)
    try:
        assert queue.finish(writer) == []
    finally:
        writer.close()
    assert not list((tmp_path / JOBS_DIR).iterdir())


def _confusion_job(trial: str) -> Job:
    return Job.of(
        "confusion",
        "confusion",
        trial,
        f"images/confusion/{trial}.png",
        {"summary": SUMMARY, "title": trial},
    )


def _wait_for(predicate, seconds: float = 60.0) -> bool:
    """Poll ``predicate`` until it holds or ``seconds`` pass (a loaded CI machine is slow to
    start a Python process with Matplotlib: a minute is far more than it needs)."""
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        if predicate():
            return True
        time.sleep(0.05)
    return predicate()


def test_the_worker_waits_while_the_trainer_evaluates(tmp_path):
    """Inside ``held_while`` (an evaluation, the robustness sweep) the worker draws nothing;
    after it, it draws what is queued; drain draws what a held worker left."""
    from kvision.insight.render_worker import WorkerRenderer
    from kvision.runs import RunWriter

    writer = RunWriter(tmp_path / "run")
    png = tmp_path / "run" / "images" / "confusion"
    try:
        renderer = WorkerRenderer(writer)
        with renderer.held_while():
            assert renderer.submit(_confusion_job("first")) == []
            assert renderer.proc is not None  # started, told "hold" before the job
            # the started worker has read its words once it blocks waiting for the next one
            assert _wait_for(lambda: _state(renderer.proc.pid) == "S")
            time.sleep(1.0)  # time enough to draw, were it drawing
            assert not png.exists() and renderer.queue.pending()
        assert _wait_for(lambda: (png / "first.png").exists() and not renderer.queue.pending())
        (event,) = renderer.collect()
        assert event["path"] == "images/confusion/first.png"
        with renderer.held_while():
            # By now the worker has said its trainer's death would continue it, so the hold
            # stopped it at once (SIGSTOP), mid-figure or not (kvision/insight/worker_pause.py)
            # (SIGSTOP is delivered when the kernel next schedules the worker: wait for it)
            assert renderer.pause.stoppable
            assert _wait_for(lambda: _state(renderer.proc.pid) == "T")
            renderer.submit(_confusion_job("second"))  # held: queued, not drawn
            time.sleep(1.0)
            assert not (png / "second.png").exists()
            worker = renderer.proc
            assert [e["path"] for e in renderer.drain()] == ["images/confusion/second.png"]
        assert renderer.proc is None
        # It ends without the interpreter's teardown (render_worker._exit_now), cleanly.
        assert worker.returncode == 0
    finally:
        renderer.close()
        writer.close()


STOPPED_TRAINER = """
import sys, time
from kvision.insight.render_worker import Job, WorkerRenderer
from kvision.runs import RunWriter

renderer = WorkerRenderer(RunWriter(sys.argv[1]))
job = Job.of("confusion", "confusion", "t", "images/confusion/t.png", {"summary": {}})
renderer.submit(job)
deadline = time.monotonic() + 60
while not renderer.pause.may_stop() and time.monotonic() < deadline:
    time.sleep(0.05)
renderer.hold(True)  # stopped (SIGSTOP), as during an evaluation
print(renderer.proc.pid, renderer.pause.stopped, flush=True)
time.sleep(600)
"""


def test_a_stopped_worker_continues_and_ends_when_its_trainer_is_killed(tmp_path):
    """kill -9 of the trainer while it holds its worker stopped: the kernel continues the
    worker (PR_SET_PDEATHSIG), which finds its input closed and ends; never a process left
    stopped for good (it runs in its own session, so nothing else would continue it)."""
    trainer = subprocess.Popen(
        [sys.executable, "-c", STOPPED_TRAINER, str(tmp_path / "run")],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        pid, stopped = trainer.stdout.readline().split()
        worker = int(pid)
        assert stopped == "True" and _wait_for(lambda: _state(worker) == "T")
    finally:
        trainer.kill()
        trainer.wait()
    # Reparented, it is reaped by init (gone) or, where init does not reap, a zombie.
    assert _wait_for(lambda: not Path(f"/proc/{worker}").exists() or _state(worker) == "Z")


def _state(pid: int) -> str:
    """A process's scheduler state letter (R running, S sleeping...)."""
    stat = Path(f"/proc/{pid}/stat").read_text()
    return stat[stat.rindex(")") + 2]


class _LoggedQueue(JobQueue):
    """A queue whose render logs (pid, job). The worker's first job waits until the forked
    copy has taken one (so both draw, however the two are scheduled); the copy ``dies`` at
    its first job (os._exit) before drawing it, when asked to."""

    def __init__(self, run_dir: Path, dies: bool = False) -> None:
        super().__init__(run_dir)
        self.log, self.took = run_dir / "drawn.log", run_dir / "copy-took-one"
        self.dies, self.parent, self.first = dies, os.getpid(), True

    def render(self, stem: Path) -> None:
        first, self.first = self.first, False
        if os.getpid() != self.parent and first:
            self.took.touch()
            if self.dies:
                os._exit(1)
        if os.getpid() == self.parent and first:
            assert _wait_for(self.took.exists)
        with open(self.log, "a") as fh:  # O_APPEND: one short line per write, never torn
            fh.write(f"{os.getpid()} {stem.name}\n")
        super().render(stem)


def test_the_drain_draws_on_two_cores_each_job_once(tmp_path):
    from kvision.insight.render_worker import render_on_two_cores

    queue = _LoggedQueue(tmp_path)
    for i in range(6):
        queue.put(_confusion_job(f"t{i}"))
    render_on_two_cores(queue, queue.pending())
    drawn = [line.split() for line in queue.log.read_text().splitlines()]
    assert sorted(name for _, name in drawn) == [f"{i:06d}" for i in range(6)]  # each once
    assert {int(pid) for pid, _ in drawn} - {os.getpid()}  # the copy drew too
    assert queue.pending() == []
    assert len(list((tmp_path / "images" / "confusion").glob("*.png"))) == 6


def test_a_job_the_copy_dies_on_stays_pending_for_the_trainer(tmp_path):
    from kvision.insight.render_worker import render_on_two_cores

    queue = _LoggedQueue(tmp_path, dies=True)
    for i in range(4):
        queue.put(_confusion_job(f"t{i}"))
    render_on_two_cores(queue, queue.pending())
    drawn = {line.split()[1] for line in queue.log.read_text().splitlines()}
    # The worker drew the other three; the job the copy took when it died is left unmarked,
    # and the trainer's drain (render_all) draws it as any job a worker left.
    (left,) = queue.pending()
    assert drawn == {f"{i:06d}" for i in range(4)} - {left.name}
