"""Prediction batch size against speed and memory, for the evaluation's batches.

For LeNet at 28x28 (Fashion-MNIST's size), AlexNet/2 and VGG11/8 at 64x64 (the main job's
models), untrained, 10 classes: ``model.predict`` (kvision's lean predict, as a run's
evaluation and validation call it) over uint8 images at each batch size. Each (model, batch
size) runs in its own child process, so its peak resident memory is its own: the table gives
how far predicting raises the peak above the model built and warmed on one small batch
(``kvision.bench.speed.peak_rss_mb``, the kernel's peak resident set), and images per second: every batch size
in one process, one timed pass each per round, ``--rounds`` rounds alternating the order,
the median round's.

    python benchmarks/eval_batch.py
    python benchmarks/eval_batch.py --markdown docs/measured/eval_batch.md
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys

TITLE = "Prediction batch size: speed and memory (benchmarks/eval_batch.py)"
#: (label, arch, image side, options, images predicted per pass)
CASES = (
    ("lenet-28", "lenet", 28, {}, 10000),
    ("alexnet_seed/2-64", "alexnet_seed", 64, {"downscale": 2}, 2000),
    ("vgg11_seed/8-64", "vgg11_seed", 64, {"width": 8, "head": 4096}, 2000),
)
SIZES = (128, 256, 512)

SETUP = """
import json, sys, time
import numpy as np
import kvision  # the torch backend before keras
from kvision.bench.speed import peak_rss_mb
from kvision.data import make_batches
from kvision.models import create_model

arch, side, options, count, sizes, rounds = json.loads(sys.argv[1])
rng = np.random.default_rng(0)
model = create_model(arch, input_shape=(side, side, 1), num_classes=10, **options)
images = rng.integers(0, 256, (count, side, side, 1), dtype=np.uint8)
labels = np.zeros(count, dtype=np.int64)
model.predict(make_batches(images[:16], labels[:16], batch_size=16, seed=0, shuffle=False), verbose=0)
before = peak_rss_mb()
batches = {b: make_batches(images, labels, batch_size=b, seed=0, shuffle=False) for b in sizes}
"""
#: One batch size in a fresh process: how far its passes raise the peak.
MEMORY = (
    SETUP
    + """
for _ in range(3):
    model.predict(batches[sizes[0]], verbose=0)
print(json.dumps({"peak_added": peak_rss_mb() - before}))
"""
)
#: Every batch size in one process, alternating round by round (the order reversed every
#: other round), so a slow spell of the machine hits every size alike.
SPEED = (
    SETUP
    + """
for b in sizes:
    model.predict(batches[b], verbose=0)
seconds = {b: [] for b in sizes}
for r in range(rounds):
    for b in (sizes if r % 2 == 0 else sizes[::-1]):
        started = time.perf_counter()
        model.predict(batches[b], verbose=0)
        seconds[b].append(time.perf_counter() - started)
print(json.dumps({"seconds": seconds}))
"""
)


def _child(code: str, *args) -> dict:
    done = subprocess.run(
        [sys.executable, "-c", code, json.dumps(args)], capture_output=True, text=True, check=True
    )
    return json.loads(done.stdout.strip().splitlines()[-1])


def measure(arch: str, side: int, options: dict, count: int, rounds: int) -> dict:
    """{batch: (images/s over the median round, MiB the passes add to the peak)}."""
    speed = _child(SPEED, arch, side, options, count, SIZES, rounds)["seconds"]
    return {
        b: (
            count / statistics.median(speed[str(b)]),
            _child(MEMORY, arch, side, options, count, [b], 0)["peak_added"],
        )
        for b in SIZES
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=9)
    parser.add_argument("--markdown", metavar="OUT", help="also write the table, stamped")
    parser.add_argument("--note", help="with --markdown: a note under the stamp")
    args = parser.parse_args()
    head = " | ".join(f"{b} a batch: img/s, +MiB" for b in SIZES)
    lines = [f"| model | images | {head} |", "|---|---:|" + "---:|" * len(SIZES)]
    for label, arch, side, options, count in CASES:
        results = measure(arch, side, options, count, args.rounds)
        cells = [f"{rate:,.0f}, +{added:.0f}" for rate, added in results.values()]
        print(f"{label}: {cells}", file=sys.stderr, flush=True)
        lines.append(f"| {label} | {count:,} | " + " | ".join(cells) + " |")
    from kvision.bench.stamp import publish

    publish("\n".join(lines), TITLE, args.markdown, args.note)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
