"""Inference with the direct graph's ReLUs in place against the same graph writing each ReLU
into a new tensor (``kvision.models._fast.graph``: a ReLU whose input is a Conv2D's, Dense's
or BatchNorm's own output, read by nothing else, overwrites it when no gradient is recorded).

For each of ``kvision bench``'s cases, two models with the same weights: one built as
kvision builds it, one whose plan was given no in-place ReLUs. Each predicts the case's
images (``model.predict``, kvision's quiet predict) in the bench's batches, eagerly (the
direct graph's walk, as a run's evaluations predict) and replayed from a ``torch.export``
capture (as a long inference loop runs once it is hot); the two models alternate, round
after round, in this process with the trainer's heap setting. The table gives the median
seconds a pass, and whether both models predicted the same numbers in every round.

    python benchmarks/relu_in_place.py --rounds 15
    python benchmarks/relu_in_place.py --rounds 15 --markdown docs/measured/relu_in_place.md
"""

from __future__ import annotations

import time

import numpy as np

import kvision  # noqa: F401 - the torch backend before Keras


def _pair(case) -> dict:
    """Two models of ``case`` with the same weights, in the table's order: no ReLU in place,
    then kvision's own (ReLUs in place)."""
    from kvision.bench.speed import case_model
    from kvision.models._fast import graph

    graph.RELU_IN_PLACE = False  # read once, when the model's plan is made
    try:
        new_tensor = case_model(case)
    finally:
        graph.RELU_IN_PLACE = True
    in_place = case_model(case)
    in_place.set_weights(new_tensor.get_weights())
    return {"new tensor": new_tensor, "in place": in_place}


def measure(rounds: int) -> list[dict]:
    """Per case and way of predicting: median seconds a pass for each model, and whether
    their predictions were equal in every round."""
    from kvision.bench import speed
    from kvision.models import capture_forward
    from kvision.train.heap import keep_large_blocks

    keep_large_blocks()  # as the trainer runs
    rows = []
    for case in speed.default_cases(gpu=False):
        images, _ = speed.case_data(case)
        models = _pair(case)
        for way in ("eager", "captured"):
            if way == "captured":
                for model in models.values():
                    capture_forward(model, images[: case.batch_size])
            seconds: dict[str, list[float]] = {name: [] for name in models}
            same = True
            for round_ in range(rounds + 1):  # the first round warms up and is not counted
                outputs = []
                for name, model in models.items():
                    start = time.perf_counter()
                    outputs.append(model.predict(images, batch_size=case.batch_size, verbose=0))
                    if round_:
                        seconds[name].append(time.perf_counter() - start)
                same = same and np.array_equal(outputs[0], outputs[1])
            rows.append(
                {"model": f"{case.name}, {way}", "seconds": list(seconds.values()), "same": same}
            )
    return rows


def table(rows: list[dict], rounds: int) -> str:
    from kvision.bench.stamp import two_ways_table

    return two_ways_table(
        ("ReLU into a new tensor", "ReLU in place"),
        f"same predictions in all {rounds} rounds",
        rows,
    )


def main() -> int:
    from kvision.bench.stamp import rounds_main

    title = "ReLUs in place at inference (benchmarks/relu_in_place.py)"
    return rounds_main(__doc__, title, lambda rounds: table(measure(rounds), rounds), rounds=15)


if __name__ == "__main__":
    raise SystemExit(main())
