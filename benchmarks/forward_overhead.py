"""The fixed cost of one inference batch: kvision's against the tuned PyTorch twin's, on
batches of two 28x28 images through LeNet (the case where it matters most: LeNet's kernels
take a few milliseconds a batch of 128, so a fixed cost shows there first).

Both sides are ``kvision bench``'s own inference sides for its LeNet case
(``kvision.bench.speed.kvision_side``: ``model.predict``, its forward captured up front;
``kvision.bench.baselines.tuned_side``: channels-last, ``inference_mode``), given 50 batches
of two images, so that the kernels cost next to nothing. They alternate in one process on
one torch thread; the table gives the time a batch, one figure per round. The difference is
Python and dispatch: the per-batch work kvision does that the tuned loop does not.

    python benchmarks/forward_overhead.py --rounds 30
    python benchmarks/forward_overhead.py --rounds 30 --markdown docs/measured/forward_overhead.md
"""

from __future__ import annotations

import dataclasses
import statistics
import time

import kvision  # noqa: F401 - the torch backend before Keras

BATCHES, BATCH = 50, 2


def measure(rounds: int) -> dict[str, list[float]]:
    """Microseconds a batch of each side, one figure per round."""
    import torch

    from kvision.bench import baselines, speed

    torch.set_num_threads(1)
    lenet = speed.default_cases(False)[0]  # lenet-28-gray
    case = dataclasses.replace(lenet, batch_size=BATCH, steps=BATCHES)
    images, labels = speed.case_data(case)
    kvision_run, _ = speed.kvision_side(case, images, labels, "infer")
    tuned = baselines.tuned_side(case, images, labels, "infer", torch.device("cpu"))
    sides = {"kvision (model.predict)": kvision_run, "tuned PyTorch": tuned.run}
    micros: dict[str, list[float]] = {name: [] for name in sides}
    for round_ in range(rounds + 1):  # the first round warms up and is not counted
        for name, side in sides.items():
            start = time.perf_counter()
            side()
            if round_:
                micros[name].append((time.perf_counter() - start) / BATCHES * 1e6)
    return micros


def table(micros: dict[str, list[float]]) -> str:
    lines = ["| side | min us a batch | median us a batch |", "|---|---:|---:|"]
    for name, values in micros.items():
        lines.append(f"| {name} | {min(values):.0f} | {statistics.median(values):.0f} |")
    return "\n".join(lines)


def main() -> int:
    from kvision.bench.stamp import rounds_main

    title = "The fixed cost of an inference batch (benchmarks/forward_overhead.py)"
    return rounds_main(__doc__, title, lambda rounds: table(measure(rounds)), rounds=30)


if __name__ == "__main__":
    raise SystemExit(main())
