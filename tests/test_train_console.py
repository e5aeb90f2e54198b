"""The console output of a run: the TTY progress bar and the headless lines."""

from __future__ import annotations

import io
import os
import pty
import select
import subprocess
import sys
import time
from pathlib import Path

import pytest

from kvision.train.console import Console, progress_line


def test_progress_line_shows_running_loss_speed_and_eta() -> None:
    line = progress_line("lenet-plain train epoch 1/5", 10, 40, 2.0, loss=0.43125, batch_size=32)
    assert line.startswith("lenet-plain train epoch 1/5 [#####---------------] 10/40")
    assert "loss 0.4313" in line
    assert "160 img/s" in line  # 10 steps x 32 images in 2 s
    assert "eta 0:06" in line  # 30 steps left at 0.2 s each


def test_the_bar_is_drawn_on_a_tty_only_and_closed_by_the_next_line() -> None:
    tty, pipe = io.StringIO(), io.StringIO()
    for stream, is_tty in ((tty, True), (pipe, False)):
        console = Console(stream, tty=is_tty)
        console.progress("t s epoch 1/1", 1, 2, 0.0, loss=1.0, batch_size=8)
        console.line("t s epoch 1/1 loss 0.9")
    assert tty.getvalue().startswith("\r") and "loss 1.0000" in tty.getvalue()
    assert tty.getvalue().endswith("\nt s epoch 1/1 loss 0.9\n")
    assert pipe.getvalue() == "t s epoch 1/1 loss 0.9\n"  # headless: plain lines only


TINY = """\
[experiment]
name = "ttybar"
seed = 1

[data]
source = "builtin:fashion7k"
limit_per_class = 20

[models.lenet]
arch = "lenet"

[[arms]]
name = "plain"
stages = [{ name = "train", condition = "clear", epochs = 1 }]

[training]
batch_size = 8

[insight]
enabled = false
"""


@pytest.mark.slow
@pytest.mark.timeout(300)
def test_a_real_run_on_a_terminal_shows_running_loss_speed_and_eta(tmp_path: Path) -> None:
    """`kvision run` with its output on a pseudo-terminal, as in a shell."""
    (tmp_path / "tiny.toml").write_text(TINY)
    main, child = pty.openpty()
    process = subprocess.Popen(
        [sys.executable, "-m", "kvision", "run", "tiny.toml", "--runs-dir", "runs"],
        cwd=tmp_path,
        stdin=subprocess.DEVNULL,
        stdout=child,
        stderr=child,
        close_fds=True,
    )
    os.close(child)
    output = b""
    deadline = time.monotonic() + 240
    try:
        while time.monotonic() < deadline:
            ready, _, _ = select.select([main], [], [], 1.0)
            if ready:
                try:
                    chunk = os.read(main, 65536)
                except OSError:  # EIO: the run closed its end of the terminal
                    break
                if not chunk:
                    break
                output += chunk
            elif process.poll() is not None:
                break
    finally:
        os.close(main)
        if process.poll() is None:
            process.kill()
        process.wait(timeout=60)
    text = output.decode("utf-8", "replace")
    assert process.returncode == 0, text[-2000:]
    bars = [part for part in text.split("\r") if "lenet-plain train epoch 1/1 [" in part]
    assert bars, text[-2000:]
    assert all(word in bars[-1] for word in ("loss ", " img/s", " eta ")), bars[-1]
