"""What a run prints: one plain line per epoch without a TTY, a progress bar with one."""

from __future__ import annotations

import sys
import time
from typing import TextIO


class Console:
    """Human output of a run. Headless (nohup, CI, pipes) gets plain lines only."""

    def __init__(self, stream: TextIO | None = None, *, tty: bool | None = None) -> None:
        self.stream = stream or sys.stdout
        self.tty = self.stream.isatty() if tty is None else tty
        self._bar_open = False

    def line(self, text: str) -> None:
        """Print one line (closing an open progress bar first)."""
        if self._bar_open:
            self.stream.write("\n")
            self._bar_open = False
        self.stream.write(text + "\n")
        self.stream.flush()

    def progress(
        self,
        label: str,
        step: int,
        steps: int,
        started: float,
        *,
        loss: float | None = None,
        batch_size: int = 0,
    ) -> None:
        """Redraw the progress bar (TTY only; headless output stays one line per epoch):
        steps done, the running loss of the epoch, images per second and the epoch's ETA."""
        if not self.tty or steps <= 0:
            return
        self.stream.write(
            "\r" + progress_line(label, step, steps, time.monotonic() - started, loss, batch_size)
        )
        self.stream.flush()
        self._bar_open = True


def progress_line(
    label: str,
    step: int,
    steps: int,
    elapsed: float,
    loss: float | None = None,
    batch_size: int = 0,
) -> str:
    """``lenet-plain train epoch 1/5 [######------] 12/40 loss 0.4312 812 img/s eta 0:04``."""
    width = 20
    done = int(width * min(step, steps) / steps)
    parts = [f"{label} [{'#' * done}{'-' * (width - done)}] {step}/{steps}"]
    if loss is not None:
        parts.append(f"loss {loss:.4f}")
    if batch_size and elapsed > 0:
        parts.append(f"{step * batch_size / elapsed:,.0f} img/s")
    eta = elapsed / step * (steps - step) if step else 0.0
    parts.append(f"eta {int(eta) // 60}:{int(eta) % 60:02d}")
    return " ".join(parts) + "\033[K"  # clear what a longer previous line left behind


def format_metrics(metrics: dict[str, float]) -> str:
    """``loss 0.512 acc 0.812 val_loss ...`` with stable order and short names."""
    order = ["loss", "accuracy", "val_loss", "val_accuracy", "lr"]
    keys = [k for k in order if k in metrics] + sorted(k for k in metrics if k not in order)
    short = {"accuracy": "acc", "val_accuracy": "val_acc"}
    parts = []
    for k in keys:
        v = metrics[k]
        parts.append(f"{short.get(k, k)} {v:.3g}" if k == "lr" else f"{short.get(k, k)} {v:.4f}")
    return " ".join(parts)
