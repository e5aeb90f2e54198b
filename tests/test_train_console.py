"""The console output of a run: the TTY progress bar and the headless lines."""

from __future__ import annotations

import io

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
