"""The fixed cost of one inference batch: kvision's against the tuned PyTorch twin's, on
batches of two 28x28 images through LeNet (the case where it matters most: LeNet's kernels
take a few milliseconds a batch of 128, so a fixed cost shows there first).

Both sides as ``kvision bench`` runs them for inference, at two images a batch so that the
kernels cost next to nothing: ``model.predict`` of 100 images in batches of two (kvision's
quiet predict, its forward captured up front as the benchmark captures it), and the tuned
twin of ``kvision.bench.baselines`` (channels-last, ``inference_mode``, the same
normalisation) over the same 50 batches. They alternate in one process on one torch thread;
the table gives the time a batch, one figure per round. The difference is Python and
dispatch: the per-batch work kvision does that the tuned loop does not.

    python benchmarks/forward_overhead.py --rounds 30
    python benchmarks/forward_overhead.py --rounds 30 --markdown docs/measured/forward_overhead.md
"""

from __future__ import annotations

import statistics
import time

import numpy as np

import kvision  # noqa: F401 - the torch backend before Keras

BATCHES, BATCH = 50, 2


def measure(rounds: int) -> dict[str, list[float]]:
    """Microseconds a batch of each side, one figure per round."""
    import torch

    from kvision.bench import baselines, speed
    from kvision.models import capture_forward, create_model

    torch.set_num_threads(1)
    case = speed.default_cases(False)[0]  # lenet-28-gray
    model = create_model(
        "lenet", input_shape=(28, 28, 1), num_classes=10, preprocess=baselines.MEAN_STD
    )
    images = np.random.default_rng(0).integers(0, 256, (BATCHES * BATCH, 28, 28, 1), np.uint8)
    capture_forward(model, images[:BATCH])
    twin = baselines._model(case, torch.device("cpu")).to(memory_format=torch.channels_last)
    twin.eval()
    nhwc = torch.from_numpy(images)

    def tuned() -> None:
        with torch.inference_mode():
            parts = [
                twin(nhwc[i : i + BATCH].permute(0, 3, 1, 2).float().mul_(1 / 127.5).add_(-1))
                for i in range(0, len(nhwc), BATCH)
            ]
            torch.cat(parts).cpu()

    sides = {
        "kvision (model.predict)": lambda: model.predict(images, batch_size=BATCH, verbose=0),
        "tuned PyTorch": tuned,
    }
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
