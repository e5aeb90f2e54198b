"""Run directories on disk: how they are named, claiming one, and starting ``kvision run``.

The one place that names run directories (``<YYYYmmdd-HHMMSS>-<name>[-<n>]``) and spawns
``python -m kvision run``: the runner, ``kvision sweep`` and the TUI all come here. A name is
taken when its directory or its console log (``<name>.log`` beside it, written by detached
launches, in ``.logs/`` of the runs folder) exists, so a name is never given twice.
"""

from __future__ import annotations

import atexit
import contextlib
import os
import subprocess
import sys
from collections.abc import Iterator, Sequence
from datetime import datetime
from pathlib import Path

from kvision.errors import KvisionError, printable
from kvision.runs.lock import LOCK_FILE, hold, holds, is_writer_rank, release
from kvision.runs.reader import RunReader

LOG_SUFFIX = ".log"
#: Folder of the runs folder that holds detached runs' console output until their run
#: directory exists (kvision-tui then moves it to LAUNCH_LOG inside it).
LOGS_DIR = ".logs"
LAUNCH_LOG = "launch.log"
MAX_SAME_SECOND = 1000  # runs of one name started within one second


def new_run_dir(runs_dir: str | os.PathLike, recipe_name: str, *, what: str = "run") -> Path:
    """``runs_dir/<YYYYmmdd-HHMMSS>-<name>[-n]``, created exclusively (no two runs share one)."""
    for path in _free_names(runs_dir, recipe_name):
        try:
            path.mkdir()
        except FileExistsError:
            continue
        hold(path, what=what)  # made just now by this process: nobody else holds it
        return path
    raise _too_many(runs_dir, recipe_name)


def new_run_log(runs_dir: str | os.PathLike, recipe_name: str) -> tuple[Path, Path]:
    """A fresh run directory's path (not created: the run claims it) and its console log,
    created exclusively so that no other launch takes the same name."""
    for path in _free_names(runs_dir, recipe_name):
        log = log_path(path)
        log.parent.mkdir(exist_ok=True)
        try:
            log.open("xb").close()
            return path, log
        except FileExistsError:
            continue
    raise _too_many(runs_dir, recipe_name)


def log_path(run_dir: Path) -> Path:
    """Where a detached run's console output starts: ``<runs>/.logs/<run>.log`` — not beside
    the run directories, and not inside the run directory, which must start empty."""
    return run_dir.parent / LOGS_DIR / (run_dir.name + LOG_SUFFIX)


def claim_run_dir(path: str | os.PathLike, *, what: str = "run") -> Path:
    """Use an exact run directory (the TUI chooses it); it must not hold a run already.

    Its writer lock is taken before it is looked into, so of two processes given the same
    ``--run-dir`` at once exactly one goes on; the other is refused, naming the first.
    """
    p = Path(path).expanduser()
    created = not p.exists()
    if p.exists() and not p.is_dir():
        raise KvisionError(
            f"--run-dir '{printable(p)}' is a file, not a folder; choose a new path."
        )
    try:
        p.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise KvisionError(
            f"Cannot create the run directory '{printable(p)}': {exc.strerror or exc}."
        ) from None
    hold(p, what=what)
    if any(child.name != LOCK_FILE for child in p.iterdir()):
        release(p)
        raise KvisionError(
            f"--run-dir '{printable(p)}' already exists and is not empty; "
            "choose a new path or use --resume to continue a run."
        )
    if created:  # claimed before the data is read: a run refused then leaves no folder
        atexit.register(_remove_if_unused, p)
    return p


def claim_existing(folder: str | os.PathLike, *, what: str = "run") -> None:
    """Hold the lock of a folder about to be continued (``--resume``), by the writer rank
    only; a folder that does not look like a run is left untouched for the caller's own
    message (no lock file is made in a folder that is not one), and so is a finished run,
    which nobody writes again (resuming it changes nothing, not even the lock file)."""
    folder = Path(folder).expanduser()
    looks = any((folder / name).is_file() for name in ("meta.json", "events.jsonl"))
    if is_writer_rank() and looks and RunReader(folder).last_word() != "finished":
        hold(folder, what=what)


def _remove_if_unused(path: Path) -> None:
    """Remove a run directory this process made and held but never wrote into."""
    with contextlib.suppress(OSError):
        if holds(path) and [c.name for c in path.iterdir()] == [LOCK_FILE]:
            (path / LOCK_FILE).unlink()
            path.rmdir()
    release(path)


def run_command(
    recipe: str | os.PathLike, run_dir: str | os.PathLike, overrides: Sequence[str] = ()
) -> list[str]:
    """``kvision run RECIPE --run-dir RUN_DIR --set K=V ...`` in this Python."""
    cmd = _kvision_run(str(recipe), "--run-dir", str(run_dir))
    for item in overrides:
        cmd += ["--set", item]
    return cmd


def resume_command(run_dir: str | os.PathLike) -> list[str]:
    """``kvision run --resume RUN_DIR`` in this Python."""
    return _kvision_run("--resume", str(run_dir))


def spawn_run(
    command: Sequence[str], log: Path, *, env: dict[str, str] | None = None, detach: bool = False
) -> subprocess.Popen:
    """Start a run process with its output appended to ``log``.

    ``detach``: its own session (a closed terminal or dropped SSH connection sends it no
    SIGHUP) and stdin closed, so it outlives the process that started it.
    """
    extra = (
        {"stdin": subprocess.DEVNULL, "start_new_session": True, "close_fds": True}
        if detach
        else {}
    )
    with open(log, "ab") as out:
        return subprocess.Popen(
            list(command), stdout=out, stderr=subprocess.STDOUT, env=env, **extra
        )


def _kvision_run(*args: str) -> list[str]:
    return [sys.executable, "-m", "kvision", "run", *args]


def _free_names(runs_dir: str | os.PathLike, recipe_name: str) -> Iterator[Path]:
    """Candidate paths in order, skipping names already taken (directory or log)."""
    root = Path(runs_dir).expanduser()
    try:
        root.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise KvisionError(
            f"Cannot create the runs folder '{root}': {exc.strerror}. "
            "Choose a writable folder with --runs-dir."
        ) from None
    stamp = datetime.now().strftime("%Y%m%d-%H%M%S")
    for n in range(1, MAX_SAME_SECOND):
        path = root / (f"{stamp}-{recipe_name}" + (f"-{n}" if n > 1 else ""))
        if not path.exists() and not log_path(path).exists():
            yield path


def _too_many(runs_dir: str | os.PathLike, recipe_name: str) -> KvisionError:
    return KvisionError(f"Too many runs named '{recipe_name}' in '{runs_dir}' this second.")
