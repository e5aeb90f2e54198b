"""Run directories: one naming rule for the runner, sweeps and the TUI; the command they spawn."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from kvision.errors import KvisionError
from kvision.runs.rundir import (
    claim_run_dir,
    log_path,
    new_run_dir,
    new_run_log,
    resume_command,
    run_command,
    spawn_run,
)


def test_names_are_never_given_twice_whether_claimed_by_directory_or_log(tmp_path: Path) -> None:
    first = new_run_dir(tmp_path, "demo")
    second, log = new_run_log(tmp_path, "demo")
    third = new_run_dir(tmp_path, "demo")
    assert first.is_dir() and not second.exists() and log == log_path(second) and log.is_file()
    assert log.parent == tmp_path / ".logs"  # not beside the runs, not in the run directory
    assert len({first, second, third}) == 3
    assert all(p.name.startswith(first.name) for p in (second, third))
    assert third.name != second.name  # the reserved log keeps the name taken


def test_the_runs_folder_that_cannot_be_made_is_a_user_error(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("")
    with pytest.raises(KvisionError, match="Cannot create the runs folder .* --runs-dir"):
        new_run_dir(blocker / "runs", "demo")


def test_claim_refuses_a_directory_that_holds_something(tmp_path: Path) -> None:
    assert claim_run_dir(tmp_path / "a").is_dir()
    (tmp_path / "a" / "events.jsonl").write_text("")
    with pytest.raises(KvisionError, match="already exists and is not empty"):
        claim_run_dir(tmp_path / "a")


def test_run_and_resume_command_lines(tmp_path: Path) -> None:
    cmd = run_command("r.toml", tmp_path / "d", ["a.b=1", "c=2"])
    assert cmd[:2] == [sys.executable, "-m"]
    assert cmd[2:] == [
        "kvision",
        "run",
        "r.toml",
        "--run-dir",
        str(tmp_path / "d"),
        "--set",
        "a.b=1",
        "--set",
        "c=2",
    ]
    assert resume_command(tmp_path / "d")[2:] == ["kvision", "run", "--resume", str(tmp_path / "d")]


def test_spawned_runs_append_their_output_to_the_log(tmp_path: Path) -> None:
    log = tmp_path / "x.log"
    log.write_text("before\n")
    proc = spawn_run([sys.executable, "-c", "print('hello')"], log, detach=True)
    assert proc.wait(timeout=60) == 0
    assert log.read_text() == "before\nhello\n"
