"""Wall time of ``import kvision, keras`` on top of ``import torch``, with and without
kvision deferring ``ml_dtypes``, and of ``import ml_dtypes`` alone.

Each figure is one fresh child process, and the variants alternate, round after round, so a
machine whose speed drifts moves them alike; the table gives the median and the range over
the rounds. ``ml_dtypes`` 0.7.0 registers its NumPy ufunc loops in quadratic time (perf shows
``PyUFunc_AddLoop`` and tuple comparisons), which is why it is deferred
(``kvision/_keras_layers.py``).

    python benchmarks/import_time.py --rounds 7
    python benchmarks/import_time.py --rounds 7 --markdown docs/measured/import_time.md
"""

from __future__ import annotations

import statistics
import subprocess
import sys

#: (row name, code timed in a child after its own setup); each prints its seconds
VARIANTS = {
    "import kvision, keras (ml_dtypes deferred, as shipped)": "",
    "import kvision, keras (ml_dtypes imported with Keras)": (
        "import kvision._keras_layers as hook; hook.DEFERRED = hook.DEFERRED - {'ml_dtypes'}"
    ),
}

PROBE = """
import time, torch
{setup}
start = time.perf_counter()
import kvision, keras
seconds = time.perf_counter() - start
import sys
loaded = type(sys.modules.get("ml_dtypes")).__name__ == "module"
print(seconds, loaded)
"""

ALONE = """
import time, numpy
start = time.perf_counter()
import ml_dtypes
print(time.perf_counter() - start, ml_dtypes.__version__)
"""


def _child(code: str) -> list[str]:
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    return done.stdout.split()


ALONE_ROW = "import ml_dtypes alone (after numpy)"


def measure(rounds: int) -> dict[str, list]:
    """{row: [(seconds, detail), ...]} over ``rounds`` alternating rounds."""
    seen: dict[str, list] = {name: [] for name in [*VARIANTS, ALONE_ROW]}
    for _ in range(rounds):
        for name, setup in VARIANTS.items():
            seconds, loaded = _child(PROBE.format(setup=setup))
            seen[name].append((float(seconds), f"ml_dtypes loaded: {loaded}"))
        seconds, version = _child(ALONE)
        seen[ALONE_ROW].append((float(seconds), f"ml_dtypes {version}"))
    return seen


def table(seen: dict[str, list]) -> str:
    lines = ["| import | median s | min-max s | |", "|---|---:|---:|---|"]
    for name, runs in seen.items():
        times = [s for s, _ in runs]
        lines.append(
            f"| {name} | {statistics.median(times):.2f} | {min(times):.2f}-{max(times):.2f} "
            f"| {runs[0][1]} |"
        )
    return "\n".join(lines)


def main() -> int:
    from kvision.bench.stamp import rounds_main

    title = "Import time of kvision and Keras (benchmarks/import_time.py)"
    return rounds_main(__doc__, title, lambda rounds: table(measure(rounds)), rounds=5)


if __name__ == "__main__":
    raise SystemExit(main())
