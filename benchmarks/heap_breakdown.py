"""What the main job's resident memory is made of, at each trial's and stage's edges.

``benchmarks/memory.py`` gives the peak; this says what fills it. The main job
(``recipes/naive_vs_expert.toml``) runs in this process, and at the start of each trial, the
start and end of each stage and the trial's end it records:

* the resident set (``VmRSS``) and its peak so far (``ru_maxrss``);
* the bytes of every live torch storage (found through ``gc``, each storage once): the
  model, the optimizer's slots, gradients, the checkpoint's snapshot;
* glibc's main heap (``mallinfo2``): its size, the bytes in use, and the bytes freed but
  kept (the trainer's heap setting, ``kvision/train/heap.py``, keeps blocks up to 64 MiB
  there, and glibc can only hand back free space at the heap's top).

What is neither torch storage nor heap is code and library data (the interpreter, torch,
Keras, OpenCV...) and file-backed pages (the memory-mapped dataset). Each point runs a
``gc.collect()`` first, as the runner does between trials.

    python benchmarks/heap_breakdown.py --markdown docs/measured/heap_breakdown.md
"""

from __future__ import annotations

import argparse
import gc
import os
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
RECIPE = ROOT / "recipes" / "naive_vs_expert.toml"
MIB = 2**20


def _heap() -> tuple[float, float, float]:
    """glibc's main heap: (size, in use, free) in MiB."""
    from kvision.train.heap import heap_usage

    usage = heap_usage()
    return usage["size"] / MIB, usage["in_use"] / MIB, usage["free"] / MIB


def _rss_mib() -> float:
    """The resident set now (``VmRSS``), in MiB."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


def _torch_mib() -> float:
    """Bytes of the live torch storages, each counted once."""
    import torch

    storages = {}
    for obj in gc.get_objects():
        if isinstance(obj, torch.Tensor) and not obj.is_meta:
            with_storage = obj.untyped_storage()
            storages[with_storage.data_ptr()] = with_storage.nbytes()
    return sum(storages.values()) / MIB


def _record(rows: list, trial: str, point: str) -> None:
    from kvision.bench.speed import peak_rss_mb

    gc.collect()
    size, used, free = _heap()
    rows.append((trial, point, _rss_mib(), peak_rss_mb(), _torch_mib(), size, used, free))


def _watch(rows: list) -> None:
    """Wrap the Trial steps after which a point is recorded."""
    from kvision.train import trial

    def wrapped(name: str, label: str):
        step = getattr(trial.Trial, name)

        def run(self, *args, **kwargs):
            result = step(self, *args, **kwargs)
            _record(rows, self.plan.name, label)
            return result

        setattr(trial.Trial, name, run)

    for name, label in (
        ("start", "built"),
        ("begin_stage", "stage begun"),
        ("end_stage", "stage ended"),
        ("finish", "finished"),
    ):
        wrapped(name, label)


def table(rows: list) -> str:
    head = (
        "| trial | point | RSS MiB | peak RSS MiB | torch storages MiB | heap MiB "
        "| heap in use MiB | heap free, kept MiB |"
    )
    lines = [head, "|---|---|---:|---:|---:|---:|---:|---:|"]
    for trial, point, *numbers in rows:
        lines.append(f"| {trial} | {point} | " + " | ".join(f"{n:,.0f}" for n in numbers) + " |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--markdown", help="also write the table here, stamped")
    parser.add_argument("--note", help="a note for the stamp")
    args = parser.parse_args(argv)
    sys.path.insert(0, str(ROOT))
    from kvision.bench.stamp import publish
    from kvision.train.console import Console
    from kvision.train.runner import run_recipe

    rows: list = []
    _watch(rows)
    with tempfile.TemporaryDirectory() as runs, open(os.devnull, "w") as quiet:
        result = run_recipe(str(RECIPE), [], runs_dir=runs, console=Console(quiet, tty=False))
    if result.exit_code != 0:
        print(result.message, file=sys.stderr)
        return 1
    publish(table(rows), "What the main job's memory is made of", args.markdown, args.note)
    return 0


if __name__ == "__main__":
    sys.exit(main())
