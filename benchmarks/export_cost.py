"""A trial's ``model.keras`` export of the main job's two models, trained for a step so they
hold Adam's state: saved through a rebuilt copy (``inference_copy``: from the config, the
weights copied in) against saved through a model over the trained one's own layers
(``inference_view``, what ``save_for_inference`` does now).

Each way builds its model and saves it with Keras' ``save``; the atomic rename and fsync a
trial adds (``save_for_inference``) are the same for both and left out. The two ways
alternate, round after round, in this process with the trainer's heap setting; the table
says whether both wrote the same weights file in every round.

    python benchmarks/export_cost.py --rounds 7
    python benchmarks/export_cost.py --rounds 7 --markdown docs/measured/export_cost.md
"""

from __future__ import annotations

import tempfile
import time
import zipfile
from pathlib import Path

import numpy as np

from kvision.bench.main_job_models import MODELS, SHAPE


def _trained(arch: str, options: dict):
    from kvision.models import create_model
    from kvision.recipe.schema_training import OptimizerSpec, TrainingSection
    from kvision.train.compile import compile_model

    model = create_model(
        arch, input_shape=SHAPE, num_classes=10, preprocess=([0.5], [0.5]), **options
    )
    compile_model(model, TrainingSection(optimizer=OptimizerSpec(learning_rate=1e-3)))
    rng = np.random.default_rng(0)
    model.fit(
        rng.integers(0, 256, (32, *SHAPE), dtype=np.uint8), rng.integers(0, 10, 32), verbose=0
    )
    return model


def _weights(path: Path) -> bytes:
    with zipfile.ZipFile(path) as archive:
        return archive.read("model.weights.h5")


def measure(rounds: int) -> list[dict]:
    """Per model: median seconds of an export each way, and whether their weights agreed."""
    import kvision  # noqa: F401 - the torch backend before Keras
    from kvision.models import inference
    from kvision.train.heap import keep_large_blocks

    keep_large_blocks()  # as the trainer runs
    ways = {"copy": inference.inference_copy, "view": inference.inference_view}
    rows = []
    with tempfile.TemporaryDirectory(dir=".") as folder:
        for name, arch, options in MODELS:
            model = _trained(arch, options)
            seconds: dict[str, list[float]] = {way: [] for way in ways}
            same = True
            for round_ in range(rounds + 1):  # the first round warms up and is not counted
                files = {}
                for way, make in ways.items():
                    files[way] = Path(folder) / f"{way}.keras"
                    start = time.perf_counter()
                    make(model).save(str(files[way]))
                    if round_:
                        seconds[way].append(time.perf_counter() - start)
                same = same and _weights(files["copy"]) == _weights(files["view"])
            rows.append({"model": name, "seconds": seconds, "same": same})
    return rows


def table(rows: list[dict], rounds: int) -> str:
    from kvision.bench.stamp import two_ways_table

    cells = [{**row, "seconds": [row["seconds"]["copy"], row["seconds"]["view"]]} for row in rows]
    return two_ways_table(
        ("rebuilt copy", "view of its layers"), f"same weights file in all {rounds} rounds", cells
    )


def main() -> int:
    from kvision.bench.stamp import rounds_main

    title = "A trial's model.keras export (benchmarks/export_cost.py)"
    return rounds_main(__doc__, title, lambda rounds: table(measure(rounds), rounds), rounds=7)


if __name__ == "__main__":
    raise SystemExit(main())
