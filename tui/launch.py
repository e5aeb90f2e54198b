"""Starting and stopping `kvision run` processes that outlive the TUI.

A run is started detached: its own session (so a closed terminal or a dropped SSH
connection sends it no SIGHUP), stdin closed. Its console output goes to
``<runs dir>/.logs/<run>.log`` while kvision creates the run directory (which must start
empty), and is moved to ``<run dir>/launch.log`` as soon as the run directory exists; a
launch that fails before that (a recipe or data error) keeps its log in ``.logs/``. Names
and the command line come from :mod:`kvision.runs.rundir`. Cancelling sends SIGTERM to the
run's process group; the runner then finishes its checkpoint write and records
``run_interrupted``.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from kvision.errors import KvisionError
from kvision.runs import is_run_dir
from kvision.runs.rundir import LAUNCH_LOG, new_run_log, run_command, spawn_run


@dataclass
class Launched:
    """A run started by this TUI."""

    run_dir: Path
    log: Path
    process: subprocess.Popen

    def finished(self) -> int | None:
        """The exit code once the process is over (also reaps it), else None."""
        return self.process.poll()

    def adopt_log(self) -> None:
        """Move the console output into the run directory once kvision created it (the
        child keeps writing to the same file: a rename does not change the open file)."""
        target = self.run_dir / LAUNCH_LOG
        if self.log == target or not is_run_dir(self.run_dir):
            return
        try:
            self.log.replace(target)
        except OSError:
            return  # stays in .logs/, still readable there
        folder, self.log = self.log.parent, target
        with contextlib.suppress(OSError):
            folder.rmdir()  # only when empty: no other launch is waiting there

    def log_tail(self, lines: int = 15) -> str:
        """The last lines of the run's console output."""
        try:
            text = self.log.read_text("utf-8", errors="replace")
        except OSError:
            return ""
        return "\n".join(text.splitlines()[-lines:])


def launch(
    recipe: str | os.PathLike,
    runs_dir: str | os.PathLike,
    overrides: Sequence[str] = (),
    recipe_name: str | None = None,
) -> Launched:
    """Start `kvision run` detached; returns at once with where the run will appear."""
    run_dir, log = new_run_log(runs_dir, recipe_name or Path(recipe).stem)
    process = spawn_run(run_command(recipe, run_dir, overrides), log, detach=True)
    return Launched(run_dir, log, process)


def cancel(run_dir: Path, meta: dict, launched: Launched | None = None) -> str:
    """Ask a run to stop (SIGTERM); returns a line saying what was done.

    A run launched here is stopped as a whole process group. A run started elsewhere is
    sent the signal by the pid in its meta.json, and only on the machine that runs it.
    """
    if launched is not None and launched.finished() is None:
        os.killpg(launched.process.pid, signal.SIGTERM)
        return f"Sent SIGTERM to run {run_dir.name} (process group {launched.process.pid})."
    pid, host = meta.get("pid"), meta.get("host")
    if not pid:
        raise KvisionError(
            f"Run {run_dir.name} has no pid in meta.json, so it cannot be cancelled from here."
        )
    if host and host != socket.gethostname():
        raise KvisionError(
            f"Run {run_dir.name} runs on host '{host}', not on this one; cancel it there."
        )
    try:
        os.kill(int(pid), signal.SIGTERM)
    except ProcessLookupError:
        raise KvisionError(f"Run {run_dir.name} is not running (process {pid} is gone).") from None
    except PermissionError:
        raise KvisionError(f"Not allowed to signal process {pid} of run {run_dir.name}.") from None
    return f"Sent SIGTERM to run {run_dir.name} (pid {pid})."
