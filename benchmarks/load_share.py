"""How a busy machine slows each model of the main job, under each OpenMP wait policy.

For AlexNet and VGG11 as the main job builds them (64x64 grey images, batch 32), times
training steps in a fresh process, alternately without and with an artificial load: a
second process per core spinning in a busy loop. Each variant of the thread settings (the
environment of the timed process) is measured the same way, so the table shows, per model
and variant, the median milliseconds per step quiet and loaded and their ratio: the share
of the machine a loaded model gets. The machine may be loaded by others too: say so.

    python benchmarks/load_share.py [--steps 6] [--rounds 2] [--markdown OUT] [--note TEXT]
"""

from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import os
import statistics
import subprocess
import sys
import time

#: The environments compared. torch's own default is no wait policy at all: GNU OpenMP then
#: spins a while (GOMP_SPINCOUNT) before it sleeps. An empty OMP_WAIT_POLICY gives that
#: (libgomp treats it as unset, with a warning on stderr) while keeping kvision's import from
#: setting its own spin count; the second variant is what kvision sets (kvision/__init__.py).
VARIANTS = {
    "2 threads, torch's default (no wait policy)": {"OMP_NUM_THREADS": "2", "OMP_WAIT_POLICY": ""},
    "2 threads, GOMP_SPINCOUNT=10000 (kvision)": {
        "OMP_NUM_THREADS": "2",
        "OMP_WAIT_POLICY": "",
        "GOMP_SPINCOUNT": "10000",
    },
    "2 threads, OMP active wait": {"OMP_NUM_THREADS": "2", "OMP_WAIT_POLICY": "ACTIVE"},
    "2 threads, OMP_WAIT_POLICY=PASSIVE": {"OMP_NUM_THREADS": "2", "OMP_WAIT_POLICY": "PASSIVE"},
    "1 thread": {"OMP_NUM_THREADS": "1"},
}
MODELS = ("alexnet", "vgg")


def worker(model_name: str, steps: int) -> None:
    """Print the median seconds of one training step of a main-job model (JSON)."""
    import numpy as np

    import kvision  # noqa: F401  (selects the torch backend)
    from kvision.models import create_model
    from kvision.recipe import load_recipe
    from kvision.recipe.shipped import resolve
    from kvision.train.compile import compile_model

    recipe = load_recipe(resolve("naive_vs_expert"), [])
    spec = recipe.models[model_name]
    model = create_model(spec.arch, input_shape=(64, 64, 1), num_classes=10, **dict(spec.options))
    compile_model(model, recipe.arms[0].stages[0].training, regression=False)
    rng = np.random.default_rng(0)
    x = rng.random((32, 64, 64, 1), dtype=np.float32)
    y = rng.integers(0, 10, 32)
    model.train_on_batch(x, y)  # warm-up: allocation, first kernels
    times = []
    for _ in range(steps):
        t = time.perf_counter()
        model.train_on_batch(x, y)
        times.append(time.perf_counter() - t)
    print(json.dumps({"median": statistics.median(times)}))


def _spin() -> None:
    while True:
        pass


def timed(model_name: str, env: dict, steps: int, loaded: bool) -> float:
    """Median seconds per step of a fresh process, with the busy load on or off."""
    burners = []
    if loaded:
        burners = [mp.Process(target=_spin, daemon=True) for _ in range(os.cpu_count() or 1)]
        for b in burners:
            b.start()
    try:
        out = subprocess.run(
            [sys.executable, __file__, "--worker", model_name, "--steps", str(steps)],
            env={**os.environ, **env},
            capture_output=True,
            text=True,
            check=True,
        ).stdout
    finally:
        for b in burners:
            b.terminate()
            b.join()
    return json.loads(out.strip().splitlines()[-1])["median"]


def measure(steps: int, rounds: int, models: list[str], burner: bool) -> list[str]:
    rows = []
    for model in models:
        quiet: dict[str, list[float]] = {name: [] for name in VARIANTS}
        busy: dict[str, list[float]] = {name: [] for name in VARIANTS}
        for _ in range(rounds):  # variants in turn, so a drift of the machine hits all
            for name, env in VARIANTS.items():
                quiet[name].append(timed(model, env, steps, loaded=False))
                if burner:
                    busy[name].append(timed(model, env, steps, loaded=True))
        for name in VARIANTS:
            q = statistics.median(quiet[name])
            b = statistics.median(busy[name]) if burner else None
            loaded = f"{1000 * b:.0f} | {b / q:.1f}x" if b else "– | –"
            rows.append(f"| {model} | {name} | {1000 * q:.0f} | {loaded} |")
            print(rows[-1], flush=True)
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--worker", help=argparse.SUPPRESS)
    parser.add_argument("--steps", type=int, default=6, help="timed steps per process")
    parser.add_argument("--rounds", type=int, default=2, help="quiet/loaded pairs per cell")
    parser.add_argument("--model", action="append", choices=MODELS, help="default: both")
    parser.add_argument(
        "--no-burner", action="store_true", help="time without the artificial load only"
    )
    parser.add_argument("--markdown", metavar="OUT", help="also write the table, stamped, here")
    parser.add_argument("--note", help="a note for the stamp (e.g. the load of the machine)")
    args = parser.parse_args()
    if args.worker:
        worker(args.worker, args.steps)
        return
    head = [
        "| model | variant | ms/step | ms/step with the burner | ratio |",
        "|---|---|---:|---:|---:|",
    ]
    print("\n".join(head), flush=True)
    body = "\n".join(
        [
            "Training step of the main job's models (batch 32, 64x64), median over "
            f"{args.steps} steps, median of {args.rounds} fresh processes; loaded: one "
            "busy-loop process per core beside it.",
            "",
            *head,
            *measure(args.steps, args.rounds, args.model or list(MODELS), not args.no_burner),
        ]
    )
    if args.markdown:
        from kvision.bench.stamp import write_markdown

        write_markdown(
            args.markdown,
            "A model's share of a loaded machine (benchmarks/load_share.py)",
            body,
            note=args.note,
        )


if __name__ == "__main__":
    main()
