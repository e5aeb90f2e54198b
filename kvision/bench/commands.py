"""``kvision bench``: argparse only, so ``kvision --help`` stays fast (work in bench.driver)."""

from __future__ import annotations

import argparse

BENCH_HELP = """\
Train (and run inference with) the same network built by kvision in Keras and written in
PyTorch twice -- plain, the reports' way (DataLoader, default Adam, per-step .item()), and
tuned (channels-last, sliced batches, Adam(fused=True), inference_mode; --compile adds
torch.compile) -- on the same random uint8 images, batch size, optimizer (Adam 1e-3) and
steps. Warm-up passes are not timed; each timed repeat makes enough passes over the data to
last --min-seconds; the timed repeats alternate the three sides in this process.
Prints images/s of each, the ratios kvision/plain and kvision/tuned (min/median/max over
repeats, and best/best), repeats disturbed by other load, and peak memory. Uses a CUDA
device when torch sees one.
"""


def register(subparsers) -> argparse.ArgumentParser:
    """Add the ``bench`` command to the CLI's subparsers."""
    p = subparsers.add_parser(
        "bench",
        help="speed of kvision's Keras models vs plain PyTorch",
        description=BENCH_HELP,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    add_arguments(p)
    p.set_defaults(handler=run_bench)
    return p


def add_arguments(p: argparse.ArgumentParser) -> None:
    """The options shared by ``kvision bench`` and ``benchmarks/train_speed.py``."""
    p.add_argument(
        "--case",
        action="append",
        dest="cases",
        metavar="NAME",
        help="run only this case (repeatable; default: all, see --list)",
    )
    p.add_argument(
        "--mode",
        choices=("train", "infer", "both"),
        default="both",
        help="time training, inference or both (default: both)",
    )
    p.add_argument(
        "--repeats", type=int, default=5, help="timed repeats per side, alternating (default: 5)"
    )
    p.add_argument("--steps", type=int, help="batches per pass (default: per case)")
    p.add_argument(
        "--min-seconds",
        type=float,
        default=2.0,
        help="each timed repeat makes whole passes until it lasts about this long "
        "(default: 2; 0: one pass)",
    )
    p.add_argument(
        "--threads", type=int, default=2, help="torch CPU threads for both sides (default: 2)"
    )
    p.add_argument(
        "--compile",
        action="store_true",
        help="torch.compile the tuned PyTorch side (compile time reported apart)",
    )
    p.add_argument(
        "--mixed-precision",
        action="store_true",
        help="float16 autocast on every side (Keras mixed_float16; CUDA only)",
    )
    p.add_argument("--json", action="store_true", help="print JSON instead of a table")
    p.add_argument(
        "--markdown",
        metavar="OUT",
        help="also write the table as Markdown to OUT, "
        "stamped with the machine, date and command (the docs include such files)",
    )
    p.add_argument(
        "--note",
        help="with --markdown: a note printed under the table (e.g. 'the machine was shared')",
    )
    p.add_argument("--list", action="store_true", help="list the cases and exit")


def run_bench(args: argparse.Namespace) -> int:
    """Handler of ``kvision bench``; returns the exit code."""
    from kvision.bench.driver import main

    return main(args)
