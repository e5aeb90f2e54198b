"""Figures drawn beside training: the trainer computes the numbers, a low-priority worker
process draws the PNGs while the next epochs train.

A figure is a *job* in the run directory's ``figure_jobs/`` folder: ``<id>.json`` names a
plot function of :data:`PLOTS` (a fixed table: a job file never chooses code), the PNG's
path under ``images/`` and the function's arguments as JSON, with every NumPy array moved
into ``<id>.npz`` (read with ``allow_pickle=False``; no pickle anywhere). The worker
(``python -m kvision.insight.render_worker RUN_DIR``, niced) draws pending jobs in id order
and marks each one done with ``<id>.done``; the trainer, the only writer of
``events.jsonl``, then records the picture's ``artifact`` event, the same event the
in-process drawing records, and deletes the job. The run drains the worker before its
report and ``run_finished``. A run killed meanwhile leaves its jobs behind: ``kvision viz
pending RUN_DIR`` (or ``kvision run --resume``) draws them.

The worker draws while the trainer trains, checkpoints, exports and waits; it holds while
the trainer evaluates or sweeps blurs. Figures are queued at checkpoints and at a trial's end,
just before its evaluations and robustness sweep; drawn then, they took a core from that
work, which runs on both cores and ran at about half its speed. So the trainer tells the
worker ``hold`` as such work starts and ``draw`` when it ends (:meth:`InlineRenderer.held_while`):
a held worker is stopped at once where that is safe (:mod:`.worker_pause`), else it finishes
its current figure and waits. The rest of what the trainer does
between epochs (checkpoints, the export, the figures' numbers) runs on one core and leaves
the other to the worker; an earlier rule that drew only while an epoch trained left the
last trial's figures all to the run's end, 2 s of the main job in which only the worker ran.

``KVISION_RENDER=inline`` draws every figure at once in the trainer (the test suite's
one-process mode), as does a trainer whose worker cannot start.
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import select
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from importlib import import_module
from pathlib import Path, PurePosixPath
from typing import Any

import numpy as np

from kvision.insight.worker_pause import Pause, continue_when_parent_dies
from kvision.runs.atomic import atomic_write_bytes, atomic_write_text

#: ``inline`` draws in the training process; anything else (the default) uses the worker.
MODE_ENV = "KVISION_RENDER"
#: The run directory's folder of figures still to draw.
JOBS_DIR = "figure_jobs"
#: The worker's niceness: drawing yields the CPU to training.
NICE = 10
#: The trainer's words to the worker, a line each (any other line, e.g. "job", just wakes it).
DRAW, HOLD, DRAIN = "draw", "hold", "drain"

#: The plot functions a job may name: key -> (module, function). Each takes ``path``.
PLOTS: dict[str, tuple[str, str]] = {
    "filters": ("kvision.insight.filters", "plot_filters"),
    "stage_means": ("kvision.insight.activations", "plot_stage_means"),
    "top_channels": ("kvision.insight.activations", "plot_top_channels"),
    "trial_curves": ("kvision.insight.curves", "plot_trial_curves"),
    "comparison": ("kvision.insight.curves", "plot_comparison"),
    "confusion": ("kvision.insight.classification", "plot_confusion"),
    "cams": ("kvision.insight.cam", "plot_cams"),
    "robustness": ("kvision.insight.robustness", "plot_robustness"),
    "strip": ("kvision.insight.retrieval", "plot_strip"),
    "fit_comparison": ("kvision.insight.fit", "plot_fit_comparison"),
}

#: An argument value that stands for the run's events, read when the figure is drawn
#: (a trial's curves are complete by then; the run's comparisons come after every trial).
RUN_READER = {"$reader": True}


@dataclass
class Job:
    """One figure to draw: plot function, artifact kind, trial and path (relative to the run
    directory), and the arguments as JSON with arrays apart."""

    plot: str
    kind: str
    trial: str | None
    path: str
    args: dict
    arrays: dict[str, np.ndarray]

    @classmethod
    def of(cls, plot: str, kind: str, trial: str | None, path: str, args: dict) -> Job:
        """A job from plain arguments: arrays move out, tuples become lists, NumPy scalars
        Python numbers, so both ways of drawing see exactly what a job file holds."""
        arrays: dict[str, np.ndarray] = {}
        spec = json.loads(json.dumps(_encode(args, arrays)))
        return cls(plot, kind, trial, path, spec, arrays)

    def header(self) -> dict:
        """The job's JSON file."""
        return {"plot": self.plot, "kind": self.kind, "trial": self.trial, "path": self.path}


def _encode(value: Any, arrays: dict[str, np.ndarray]) -> Any:
    if isinstance(value, np.ndarray):
        name = f"a{len(arrays)}"
        # C order, as a job file holds it: a reduction over a strided array (a channels-last
        # view of a torch tensor) may add in another order and differ in the last bit.
        arrays[name] = np.ascontiguousarray(value)
        return {"$npy": name}
    if isinstance(value, dict):
        return {str(k): _encode(v, arrays) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_encode(v, arrays) for v in value]
    return value.item() if isinstance(value, np.generic) else value


def _decode(value: Any, arrays: Any, run_dir: Path) -> Any:
    if isinstance(value, dict):
        if "$npy" in value:
            return arrays[value["$npy"]]
        if value == RUN_READER:
            from kvision.runs import RunReader

            return RunReader(run_dir)
        return {k: _decode(v, arrays, run_dir) for k, v in value.items()}
    if isinstance(value, list):
        return [_decode(v, arrays, run_dir) for v in value]
    return value


def draw(run_dir: Path, job: Job) -> Path | None:
    """Draw one job's PNG (None: its plot function had nothing to draw)."""
    if job.plot not in PLOTS:
        raise ValueError(f"unknown plot '{job.plot}' (known: {', '.join(PLOTS)})")
    rel = PurePosixPath(job.path)
    if rel.is_absolute() or ".." in rel.parts or rel.parts[0] != "images" or rel.suffix != ".png":
        raise ValueError(f"figure path '{job.path}' is not a PNG under images/")
    module, name = PLOTS[job.plot]
    plot = getattr(import_module(module), name)
    return plot(**_decode(job.args, job.arrays, run_dir), path=run_dir / rel)


class JobQueue:
    """The run directory's ``figure_jobs/`` folder."""

    def __init__(self, run_dir: str | os.PathLike) -> None:
        self.run_dir = Path(run_dir)
        self.dir = self.run_dir / JOBS_DIR
        ids = [int(p.stem) for p in self._files("json")]
        self.next_id = max(ids, default=-1) + 1

    def _files(self, suffix: str) -> list[Path]:
        return sorted(self.dir.glob(f"[0-9]*.{suffix}")) if self.dir.is_dir() else []

    def put(self, job: Job) -> None:
        """Write a job: arrays first, the JSON (which makes it pending) last."""
        stem = self.dir / f"{self.next_id:06d}"
        self.next_id += 1
        buf = io.BytesIO()
        np.savez(buf, allow_pickle=False, **job.arrays)
        atomic_write_bytes(stem.with_suffix(".npz"), buf.getvalue())
        atomic_write_text(stem.with_suffix(".json"), json.dumps({**job.header(), "args": job.args}))

    def load(self, stem: Path) -> Job:
        """A job from its files; arrays are read without pickle."""
        spec = json.loads(stem.with_suffix(".json").read_text("utf-8"))
        with np.load(stem.with_suffix(".npz"), allow_pickle=False) as npz:
            arrays = {k: npz[k] for k in npz.files}
        return Job(spec["plot"], spec["kind"], spec["trial"], spec["path"], spec["args"], arrays)

    def pending(self) -> list[Path]:
        """Jobs not drawn yet, oldest first (as stems: folder/<id>)."""
        return [p.with_suffix("") for p in self._files("json") if not _done(p).exists()]

    def render(self, stem: Path) -> None:
        """Draw one job and mark it done, with the error if drawing failed."""
        try:
            drawn = draw(self.run_dir, self.load(stem))
            mark = {"drawn": drawn is not None, "error": None}
        except Exception as exc:  # noqa: BLE001 - one bad figure must not stop the others
            mark = {"drawn": False, "error": f"{type(exc).__name__}: {exc}"}
        atomic_write_text(stem.with_suffix(".done"), json.dumps(mark))

    def finish(self, writer) -> list[dict]:
        """Record every drawn job's artifact event (a failed one's warning), in id order, and
        delete its files; returns the events."""
        events = []
        for done in self._files("done"):
            stem = done.with_suffix("")
            if not stem.with_suffix(".json").exists():  # recorded; killed while clearing it
                done.unlink()
                continue
            mark = json.loads(done.read_text("utf-8"))
            job = json.loads(stem.with_suffix(".json").read_text("utf-8"))
            if mark["drawn"]:
                events.append(writer.artifact(job["path"], job["kind"], trial=job["trial"]))
            elif mark["error"]:
                events.append(
                    writer.warning("figure_failed", f"{job['path']} was not drawn: {mark['error']}")
                )
            for suffix in (".npz", ".json", ".done"):  # a kill between: recorded again at most
                stem.with_suffix(suffix).unlink(missing_ok=True)
        return events

    def render_all(self, writer) -> list[dict]:
        """Draw every pending job here, then record them all."""
        for stem in self.pending():
            self.render(stem)
        return self.finish(writer)


def _done(job_json: Path) -> Path:
    return job_json.with_suffix(".done")


class InlineRenderer:
    """Draws each figure at once, in this process."""

    def __init__(self, writer) -> None:
        self.writer = writer

    @contextlib.contextmanager
    def held_while(self) -> Iterator[None]:
        """Around work that wants both cores (an evaluation, the robustness sweep): a worker
        waits inside (see :meth:`hold`) and draws again after."""
        self.hold(True)
        try:
            yield
        finally:
            self.hold(False)

    def hold(self, held: bool) -> None:
        """Nothing is drawn elsewhere."""

    def submit(self, job: Job) -> list[dict]:
        """Draw ``job`` now; its artifact event, if it drew something."""
        drawn = draw(self.writer.dir, job)
        return [] if drawn is None else [self.writer.artifact(drawn, job.kind, trial=job.trial)]

    def collect(self) -> list[dict]:
        """Nothing is drawn elsewhere."""
        return []

    def drain(self) -> list[dict]:
        """Jobs an earlier, killed run left behind."""
        return JobQueue(self.writer.dir).render_all(self.writer)

    def close(self) -> None:
        """Nothing to stop."""


class WorkerRenderer(InlineRenderer):
    """Queues each figure for the worker process, started with the first job."""

    def __init__(self, writer) -> None:
        super().__init__(writer)
        self.queue = JobQueue(writer.dir)
        self.proc: subprocess.Popen | None = None
        self.pause: Pause | None = None  # SIGSTOP/SIGCONT of the worker, once it may be stopped
        self.broken = False  # the worker could not start or died: this process draws
        self.held = False  # the worker waits while this is set (see held_while)

    def submit(self, job: Job) -> list[dict]:
        """Queue ``job`` and wake the worker; without a worker, draw it (and any left) here."""
        if self.broken:
            return super().submit(job)
        self.queue.put(job)
        if self._tell("job"):
            return []
        self.broken = True
        self.close()
        return self.queue.render_all(self.writer)

    def hold(self, held: bool) -> None:
        """Hold the worker (stopped at once where it may be, else after its current figure)
        or let it draw again (:mod:`.worker_pause`)."""
        if held != self.held:
            self.held = held
            if self.proc is not None:
                if not held:
                    self.pause.resume()
                self._tell(HOLD if held else DRAW)
                if held:
                    self.pause.stop()

    def _tell(self, word: str) -> bool:
        """Send the worker a line (starting it first); False if there is no worker."""
        try:
            if self.proc is None:
                self.proc = _start_worker(self.writer.dir)
                self.pause = Pause(self.proc)
                word = f"{HOLD if self.held else DRAW}\n{word}"
            self.proc.stdin.write(f"{word}\n".encode())
            self.proc.stdin.flush()
            return True
        except OSError:  # cannot start, or it died (a broken pipe): this process draws
            return False

    def collect(self) -> list[dict]:
        """Artifact events of the figures the worker has drawn so far."""
        return self.queue.finish(self.writer)

    def drain(self) -> list[dict]:
        """Wait for the worker to draw every job, record them; what it left is drawn here."""
        if self.proc is not None:
            self.pause.resume()  # a stopped worker would never read the word
            if self._tell(DRAIN):
                self.proc.wait()
        self.close()
        return self.queue.render_all(self.writer)

    def close(self) -> None:
        """Stop the worker after its current figure (end of input); pending jobs stay."""
        if self.proc is None:
            return
        self.pause.resume()  # a stopped worker would never read the end of its input
        with contextlib.suppress(OSError):
            self.proc.stdin.close()
        self.proc.wait()
        self.proc.stdout.close()
        self.proc = self.pause = None


def _start_worker(run_dir: Path) -> subprocess.Popen:
    # Its own session: a Ctrl-C at the terminal stops the trainer, which ends the worker.
    # The run's lock is not inherited (close_fds), so a killed trainer leaves it free.
    # The worker imports the very kvision this trainer runs (a checkout, not the install).
    import kvision

    source = str(Path(kvision.__file__).resolve().parent.parent)
    path = os.pathsep.join(p for p in (source, os.environ.get("PYTHONPATH")) if p)
    return subprocess.Popen(
        [sys.executable, "-m", "kvision.insight.render_worker", str(run_dir)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,  # its one line: it may be stopped (worker_pause)
        env={**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": path},
        start_new_session=True,
    )


def renderer(writer) -> InlineRenderer:
    """The run's renderer: the worker unless ``KVISION_RENDER=inline``."""
    inline = os.environ.get(MODE_ENV, "").strip().lower() == "inline"
    return InlineRenderer(writer) if inline else WorkerRenderer(writer)


def rerender(run_dir: str | os.PathLike) -> list[Path]:
    """Draw the figures a stopped run left queued, record their artifact events (holding the
    run's writer lock), and return the files drawn."""
    from kvision.errors import KvisionError
    from kvision.runs import RunWriter, is_run_dir
    from kvision.runs.lock import writing_into

    run = Path(run_dir).expanduser()
    if not is_run_dir(run):
        raise KvisionError(
            f"'{run}' is not a kvision run directory (a folder with meta.json and events.jsonl)."
        )
    with writing_into(run):
        writer = RunWriter(run)
        try:
            events = JobQueue(run).render_all(writer)
        finally:
            writer.close()
    return [run / e["path"] for e in events if e.get("event") == "artifact"]


class _Words:
    """The trainer's lines on the worker's stdin, read unbuffered so that ``select`` tells
    whether one is waiting."""

    def __init__(self, fd: int) -> None:
        self.fd, self.rest, self.words = fd, b"", []

    def next(self, wait: bool) -> str | None:
        """The next word; "" if none is waiting and ``wait`` is false; None at end of input."""
        while not self.words:
            if not wait and not select.select([self.fd], [], [], 0)[0]:
                return ""
            chunk = os.read(self.fd, 4096)
            if not chunk:
                return None
            *lines, self.rest = (self.rest + chunk).split(b"\n")
            self.words += [line.strip().decode("ascii", "replace") for line in lines]
        return self.words.pop(0)


def serve(run_dir: Path, fd: int, parent: int) -> None:
    """The worker's loop: it draws pending jobs one at a time, reading the trainer's words
    between them: ``hold`` (wait for ``draw``), ``drain`` (draw the rest and end); end of
    input (the trainer stopped or died) ends it after the current job."""
    queue, words, held = JobQueue(run_dir), _Words(fd), False
    while True:
        todo = [] if held else queue.pending()
        word = words.next(wait=not todo)
        if word is None:
            return
        if word == DRAIN:
            render_on_two_cores(queue, queue.pending())
            return
        if word in (DRAW, HOLD):
            held = word == HOLD
        elif not word:
            if os.getppid() != parent:
                return  # the trainer is gone: the rest waits for a re-render
            queue.render(todo[0])


def render_on_two_cores(queue: JobQueue, stems: list[Path]) -> None:
    """Draw ``stems`` in this worker and a forked copy of it, each taking the next job as it
    finishes one. At the drain the trainer only waits, so a second core is free: the main
    job's last trial and run figures (six) were drawn one after another at every run's end.
    A job the copy did not finish (it died) has no ``.done`` mark and is drawn by the
    trainer's drain like any left over."""
    if len(stems) < 2 or not hasattr(os, "fork"):
        for stem in stems:
            queue.render(stem)
        return
    for first in range(0, len(stems), PIPE_JOBS):
        _shared_between_two(queue, stems[first : first + PIPE_JOBS])


#: Jobs handed out through one pipe: their numbers (4 bytes each) fill 4 KiB of the pipe's
#: 64 KiB, so writing them all before either process reads never blocks.
PIPE_JOBS = 1024


def _shared_between_two(queue: JobQueue, stems: list[Path]) -> None:
    """The jobs' numbers go down a pipe, written whole before the fork; a 4-byte read takes
    one, so each job is drawn once, by whichever process is free first."""
    read, write = os.pipe()
    os.write(write, b"".join(i.to_bytes(4, "little") for i in range(len(stems))))
    os.close(write)  # then a read past the last number ends the loop
    child = os.fork()
    try:
        while chunk := os.read(read, 4):
            queue.render(stems[int.from_bytes(chunk, "little")])
    finally:
        if child == 0:
            os._exit(0)  # the copy ends here, without the interpreter's teardown
        os.close(read)
        os.waitpid(child, 0)


def main(argv: list[str] | None = None) -> int:
    """``python -m kvision.insight.render_worker RUN_DIR``, started by the trainer."""
    args = sys.argv[1:] if argv is None else argv
    continue_when_parent_dies()
    with contextlib.suppress(OSError):
        os.nice(NICE)
    serve(Path(args[0]), sys.stdin.fileno(), os.getppid())
    return 0


__all__ = [
    "JOBS_DIR",
    "MODE_ENV",
    "PLOTS",
    "RUN_READER",
    "InlineRenderer",
    "Job",
    "JobQueue",
    "WorkerRenderer",
    "draw",
    "renderer",
    "rerender",
]


def _exit_now(code: int) -> None:
    """End the worker without the interpreter's teardown. The run waits for the worker at
    its end, and freeing Matplotlib's, NumPy's and kvision's modules took it 0.47 s after its
    last figure at the main job's end (2-core AMD EPYC; docs/speed.md); every file it wrote
    is already durable (atomic, fsync'd writes) and it registers no exit work, so nothing is
    lost."""
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)


if __name__ == "__main__":
    _exit_now(main())
