"""Two ways of training the same model, epoch for epoch: Keras' train step against kvision's
lean one, or batch-end callbacks in Keras' thread pool against the training thread.

``--ways train-step``: Keras' own torch ``train_step`` against kvision's
(``kvision.models._fast.train_step``: the same loss, metric and optimizer arithmetic without
Keras' loss and metric containers), the step ``compile_model`` installs.

``--ways batch-end``: Keras' torch backend hands each batch's logs to a thread pool, started
at every ``fit`` call and joined when it ends, unless some callback has its own
``on_train_batch_end``; a run's progress callback has one (``kvision.train.fit.BatchEndHook``),
so a run's batch ends stay in the training thread. A bare ``model.fit`` uses the pool, as
``kvision bench`` timed kvision before the bench took the run's callbacks.

For each of ``kvision bench``'s training cases, and VGG11/8 with ten times the steps (an
epoch of 60 batches instead of 6), two models with the same weights train one epoch a round
on the case's images as the bench's kvision side does (``make_batches``, the runner's
compile, ``SeedEpoch(0)``, so every round draws the same dropout masks). They alternate,
round after round, in this process with the trainer's heap setting. The table gives the
median seconds an epoch, and whether both models held the same weights after every round.

    python benchmarks/fit_ways.py --ways train-step --rounds 15
    python benchmarks/fit_ways.py --ways batch-end --rounds 15 --markdown OUT
"""

from __future__ import annotations

import dataclasses
import time

import numpy as np

import kvision  # noqa: F401 - the torch backend before Keras

#: Each comparison's two ways, as the table names them (the first is the way without kvision's).
WAYS = {
    "train-step": ("Keras' train step", "kvision's lean step"),
    "batch-end": ("Keras' pool", "in the training thread"),
}


def _cases() -> list:
    from kvision.bench import speed

    cases = speed.default_cases(gpu=False)
    vgg = next(case for case in cases if case.arch == "vgg11")
    return [*cases, dataclasses.replace(vgg, name=f"{vgg.name} x10 steps", steps=vgg.steps * 10)]


def _pair(case, ways: str) -> list[tuple]:
    """Two compiled models of ``case`` with the same weights, each with its ``fit``
    callbacks, in the table's order (the first way, then kvision's)."""
    from kvision.bench.speed import compiled_case_model, fit_as_a_run
    from kvision.train.fit import SeedEpoch

    first, second = compiled_case_model(case), compiled_case_model(case)
    second.set_weights(first.get_weights())
    run_callbacks = fit_as_a_run()["callbacks"]
    if ways == "train-step":
        vars(first).pop("train_step", None)  # compile_model's lean step: back to Keras' own
        return [(first, run_callbacks), (second, run_callbacks)]
    return [(first, [SeedEpoch(0)]), (second, run_callbacks)]


def _same_weights(a, b) -> bool:
    return all(np.array_equal(x, y) for x, y in zip(a.get_weights(), b.get_weights(), strict=True))


def measure(ways: str, rounds: int) -> list[dict]:
    """Per case: median seconds an epoch each way, and whether the weights stayed equal."""
    from kvision.bench import speed
    from kvision.data import make_batches
    from kvision.train.heap import keep_large_blocks

    keep_large_blocks()  # as the trainer runs
    rows = []
    for case in _cases():
        images, labels = speed.case_data(case)
        batches = make_batches(images, labels, batch_size=case.batch_size, seed=0, shuffle=True)
        pair = _pair(case, ways)
        seconds: list[list[float]] = [[], []]
        same = True
        for round_ in range(rounds + 1):  # the first round warms up and is not counted
            for (model, callbacks), times in zip(pair, seconds, strict=True):
                start = time.perf_counter()
                model.fit(batches, epochs=1, verbose=0, shuffle=False, callbacks=callbacks)
                if round_:
                    times.append(time.perf_counter() - start)
            same = same and _same_weights(pair[0][0], pair[1][0])
        label = f"{case.name}, {case.steps} batches of {case.batch_size}"
        rows.append({"model": label, "seconds": seconds, "same": same})
    return rows


def main() -> int:
    from kvision.bench.stamp import publish, rounds_parser, two_ways_table

    parser = rounds_parser(__doc__, rounds=15)
    parser.add_argument("--ways", choices=sorted(WAYS), required=True, help="what to compare")
    args = parser.parse_args()
    rows = measure(args.ways, args.rounds)
    agreed = f"same weights after all {args.rounds} rounds"
    title = f"{' or '.join(WAYS[args.ways])} (benchmarks/fit_ways.py --ways {args.ways})"
    publish(two_ways_table(WAYS[args.ways], agreed, rows), title, args.markdown, args.note)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
