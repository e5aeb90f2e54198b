"""Wall time of one shared sweep run by N workers (`kvision sweep --storage URL`, N processes).

Each worker is the command a user runs on each machine; here they run on one machine, so the
figure shows the coordination (no trial twice, the budget held) and what N workers gain on
this machine's cores, not what N machines gain. The recipe is a tiny function fit (24 epochs),
so a trial's time is mostly a `kvision run` process starting (torch + Keras imports).

  python benchmarks/shared_sweep.py --workers 1 --workers 3           # throw-away PostgreSQL
  python benchmarks/shared_sweep.py --workers 3 --storage sqlite:////tmp/s.db
  python benchmarks/shared_sweep.py --markdown docs/measured/shared_sweep.md --note '...'

Prints one line per worker count: wall seconds, trials finished by each worker, and the
machine (host, cores, load average before the run, start time), as JSON; --markdown also
writes them as a table, stamped with machine, software, date and command.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import socket
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

RECIPE = """\
[experiment]
name = "bench_shared"
seed = 5

[data]
source = "function:x**2 + 2*cos(x)"

[data.function]
domain = [-2.0, 3.0]
train_points = 32
val_points = 16
test_points = 32
noise = 0.3

[models.mlp]
arch = "mlp"
hidden = [8, 8]
activation = "sigmoid"

[training]
optimizer = { name = "adam", learning_rate = 0.01 }
loss = "mse"
batch_size = 8

[[arms]]
name = "fit"
stages = [{ name = "fit", condition = "clear", epochs = 24 }]

[evaluate]
splits = ["test"]
before = false

[output]
checkpoint_every = 6
print_every = 1000
save_models = false

[insight]
enabled = false

[sweep]
sampler = "random"
parallel = 1
objective = "val_loss"
seed = 1

[sweep.params]
"training.optimizer.learning_rate" = { low = 1e-3, high = 1e-1, log = true }
"""


def run(workers: int, trials: int, url: str, study: str, tmp: Path) -> dict:
    recipe = tmp / "bench_shared.toml"
    recipe.write_text(RECIPE)
    load, date = os.getloadavg()[0], time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())
    started = time.monotonic()
    procs = [
        subprocess.Popen(
            [
                sys.executable,
                "-m",
                "kvision",
                "sweep",
                str(recipe),
                "--storage",
                url,
                "--study",
                study,
                "--trials",
                str(trials),
                "--sweep-dir",
                str(tmp / f"{study}-w{i}"),
            ],
            stdout=subprocess.DEVNULL,
            env={**os.environ, "OMP_NUM_THREADS": "1"},
        )
        for i in range(workers)
    ]
    codes = [p.wait() for p in procs]
    seconds = time.monotonic() - started
    import optuna

    from kvision.sweep.storage import open_database

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    done = [
        t
        for t in optuna.load_study(study_name=study, storage=open_database(url)).get_trials()
        if t.state.name == "COMPLETE"
    ]
    per_worker = Counter(t.user_attrs["worker"] for t in done)
    return {
        "workers": workers,
        "exit_codes": codes,
        "trials_complete": len(done),
        "trials_per_worker": sorted(per_worker.values(), reverse=True),
        "wall_s": round(seconds, 1),
        "host": socket.gethostname(),
        "cores": os.cpu_count(),
        "load_avg_1min_before": round(load, 1),
        "python": platform.python_version(),
        "started": date,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workers", type=int, action="append", help="worker count (repeatable)")
    parser.add_argument("--trials", type=int, default=9)
    parser.add_argument("--storage", help="database URL (default: a throw-away PostgreSQL server)")
    parser.add_argument(
        "--markdown",
        metavar="OUT",
        help="also write the results to OUT, stamped with machine, date, command",
    )
    parser.add_argument("--note", help="with --markdown: a note under the results")
    args = parser.parse_args()
    server = None
    if args.storage is None:  # the tests' throw-away server (Debian's postgresql package)
        sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
        import pg_server

        server = pg_server.start_server()
    results = []
    try:
        with tempfile.TemporaryDirectory() as tmp:
            for workers in args.workers or [1, 3]:
                url = args.storage or server.url(server.create_database())
                results.append(run(workers, args.trials, url, f"bench{workers}", Path(tmp)))
                print(json.dumps(results[-1]), flush=True)
    finally:
        if server is not None:
            server.stop()
    if args.markdown:
        write(
            args.markdown,
            results,
            "PostgreSQL (throw-away server)" if server else args.storage,
            args.note,
        )


def write(path: str, results: list[dict], storage: str, note: str | None) -> None:
    from kvision.bench.stamp import write_markdown
    from kvision.sweep.storage import shown

    rows = [
        "| workers | trials complete | per worker | wall time | load average before |",
        "|---|---|---|---|---|",
    ]
    rows += [
        f"| {r['workers']} | {r['trials_complete']} | {', '.join(map(str, r['trials_per_worker']))} "
        f"| {r['wall_s']:.0f} s | {r['load_avg_1min_before']} |"
        for r in results
    ]
    body = (
        f"One {results[0]['trials_complete']}-trial sweep of a tiny function fit per row, "
        f"its workers all on this machine, storage {shown(storage)}.\n\n" + "\n".join(rows)
    )
    write_markdown(path, "Shared sweep (benchmarks/shared_sweep.py)", body, note=note)


if __name__ == "__main__":
    main()
