"""One robustness sweep (the main job's: 100 images of 64x64, 5 sigmas, defocus and motion at
severities 1, 3, 5) at the former default of 64 images a batch against insight's default now,
the evaluation's size for these images (``kvision.data.feed.prediction_batch_size``).

The two sizes alternate, round after round, in this process with the trainer's heap setting;
each round draws new images, and the table says whether both sizes gave the same curves in
every round. Random weights: the time is the model's, whatever it learned.

    python benchmarks/sweep_batch.py --rounds 6
    python benchmarks/sweep_batch.py --rounds 6 --markdown docs/measured/sweep_batch.md
"""

from __future__ import annotations

import time

import numpy as np

from kvision.bench.main_job_models import MODELS, SHAPE

SWEEP = {
    "sigmas": (0.0, 1.0, 2.0, 4.0, 6.0),
    "kinds": ("defocus", "motion"),
    "severities": (1, 3, 5),
}


def measure(rounds: int) -> list[dict]:
    """Per model: median seconds of one sweep at each batch size, and whether they agreed."""
    import kvision  # noqa: F401 - the torch backend before Keras
    from kvision.data.feed import prediction_batch_size
    from kvision.insight.robustness import robustness_curves
    from kvision.models import create_model
    from kvision.train.heap import keep_large_blocks

    keep_large_blocks()  # as the trainer runs
    sizes = (64, prediction_batch_size(SHAPE))
    rng = np.random.default_rng(0)
    rows = []
    for name, arch, options in MODELS:
        model = create_model(arch, input_shape=SHAPE, num_classes=10, **options)
        seconds: dict[int, list[float]] = {size: [] for size in sizes}
        same = True
        for round_ in range(rounds + 1):  # the first round warms up and is not counted
            images = rng.integers(0, 256, (100, *SHAPE), dtype=np.uint8)
            labels = rng.integers(0, 10, 100)
            curves = []
            for size in sizes:
                start = time.perf_counter()
                curves.append(robustness_curves(model, images, labels, batch_size=size, **SWEEP))
                if round_:
                    seconds[size].append(time.perf_counter() - start)
            same = same and curves[0] == curves[1]
        rows.append({"model": name, "sizes": sizes, "seconds": seconds, "same": same})
    return rows


def table(rows: list[dict], rounds: int) -> str:
    from kvision.bench.stamp import two_ways_table

    old, new = rows[0]["sizes"]
    cells = [{**row, "seconds": [row["seconds"][size] for size in row["sizes"]]} for row in rows]
    return two_ways_table(
        (f"{old} a batch", f"{new} a batch"), f"same curves in all {rounds} rounds", cells
    )


def main() -> int:
    from kvision.bench.stamp import rounds_main

    title = "The robustness sweep's prediction batch (benchmarks/sweep_batch.py)"
    return rounds_main(__doc__, title, lambda rounds: table(measure(rounds), rounds), rounds=6)


if __name__ == "__main__":
    raise SystemExit(main())
