"""A sweep's results: each trial's objective read from its run directory, the ranked table
(sweep.md, sweep.json) and a parameter-vs-objective scatter plot (sweep.png).

Reads run directories through :class:`kvision.runs.RunReader` only (no Keras).
"""

from __future__ import annotations

import math
from pathlib import Path
from statistics import fmean
from typing import Any

from kvision.errors import KvisionError
from kvision.recipe.schema_sweep import RangeSpec, SweepSection, matrix_cell
from kvision.runs import RunReader
from kvision.runs.atomic import atomic_write_json, atomic_write_text


def read_objective(run_dir: Path, spec: SweepSection) -> float:
    """The objective of a finished run: mean over its trials (models x arms x repeats).

    A matrix objective takes each trial's last evaluation; an epoch metric its best epoch.
    """
    reader = RunReader(run_dir)
    cell = matrix_cell(spec.objective)
    values = _matrix_values(reader, cell) if cell else _epoch_values(reader, spec)
    if not values:
        raise KvisionError(
            f"the run in '{run_dir}' has no '{spec.objective}' to optimise; "
            "check that [evaluate] covers that split and condition, or that the "
            "epochs report that metric."
        )
    return fmean(values)


def _matrix_values(reader: RunReader, cell: tuple[str, str, str]) -> list[float]:
    split, condition, metric = cell
    last: dict[str, dict] = {}
    for e in reader.evaluations():
        last[e["trial"]] = e
    table = "loss" if metric == "loss" else "matrix"  # accuracy, or R^2 for a regression
    return [
        float(e[table][condition][split])
        for e in last.values()
        if split in e.get(table, {}).get(condition, {})
    ]


def _epoch_values(reader: RunReader, spec: SweepSection) -> list[float]:
    pick = max if spec.maximize else min
    by_trial: dict[str, list[float]] = {}
    for e in reader.epochs():
        if spec.objective in e["metrics"]:
            by_trial.setdefault(e["trial"], []).append(float(e["metrics"][spec.objective]))
    return [pick(v) for v in by_trial.values()]


def ranked(rows: list[dict], spec: SweepSection) -> list[dict]:
    """Completed trials best first, then running, then failed (each by trial number)."""

    def key(row: dict) -> tuple:
        order = {"complete": 0, "running": 1}.get(row["state"], 2)
        value = row.get("objective")
        score = 0.0 if order or value is None else (-value if spec.maximize else value)
        return (order, score, row["trial"])

    return sorted(rows, key=key)


def write_sweep_report(folder: Path, spec: SweepSection, rows: list[dict], budget: int) -> None:
    """sweep.json, sweep.md and sweep.png, rewritten after every trial (atomically)."""
    rows = ranked(rows, spec)
    for rank, row in enumerate(r for r in rows if r["state"] == "complete"):
        row["rank"] = rank + 1
    best = next((r for r in rows if r.get("rank") == 1), None)
    summary = {
        "objective": spec.objective,
        "direction": "maximize" if spec.maximize else "minimize",
        "sampler": spec.sampler,
        "budget": budget,
        "params": list(spec.params),
        "best": best,
        "trials": rows,
    }
    atomic_write_json(folder / "sweep.json", summary)
    atomic_write_text(folder / "sweep.md", markdown(spec, rows, budget))
    if any(r["state"] == "complete" for r in rows):
        plot(folder / "sweep.png", spec, rows)


def markdown(spec: SweepSection, rows: list[dict], budget: int) -> str:
    """The ranked table with one column per swept key."""
    # a failed trial that a retry replaced holds no place of the budget of its own
    done = sum(r["state"] in ("complete", "failed") and r.get("retried_as") is None for r in rows)
    direction = "higher" if spec.maximize else "lower"
    head = ["rank", "trial", spec.objective, *spec.params, "state", "seconds"]
    lines = [
        f"# Sweep: {spec.objective} ({direction} is better)\n",
        f"{spec.sampler} sampler, {done} of {budget} trials done.\n",
        "| " + " | ".join(head) + " |",
        "|" + "---|" * len(head),
    ]
    for r in rows:
        value = r.get("objective")
        cells = [
            str(r.get("rank", "")),
            r["run_dir"],
            "" if value is None else f"{value:.4f}",
            *(_fmt(r["params"].get(k)) for k in spec.params),
            r["state"],
            "" if r.get("seconds") is None else f"{r['seconds']:.0f}",
        ]
        lines.append("| " + " | ".join(cells) + " |")
    failed = [r for r in rows if r.get("error")]
    if failed:
        lines += ["", "## Failed trials", ""]
        lines += [f"- {r['run_dir']}: {r['error']}" for r in failed]
    return "\n".join(lines) + "\n"


def _fmt(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.4g}"
    return "" if value is None else str(value)


def plot(path: Path, spec: SweepSection, rows: list[dict]) -> None:
    """One panel per swept key: its value (x) against the objective (y); the best in red."""
    import matplotlib

    matplotlib.use("Agg")  # files only; never open a window from a sweep
    import matplotlib.pyplot as plt

    done = [r for r in rows if r["state"] == "complete" and r.get("objective") is not None]
    keys = list(spec.params)
    cols = min(len(keys), 3)
    nrows = math.ceil(len(keys) / cols)
    fig, axes = plt.subplots(nrows, cols, figsize=(4 * cols, 3.2 * nrows), squeeze=False)
    y = [r["objective"] for r in done]
    best = [r.get("rank") == 1 for r in done]
    for ax, key in zip(axes.flat, keys, strict=False):
        space = spec.spaces[key]
        xs = [_x(space, r["params"].get(key)) for r in done]
        if isinstance(space, RangeSpec):
            ax.set_xscale("log" if space.log else "linear")
        else:  # categories at 0..n-1, jittered so equal values stay visible
            xs = [x + 0.08 * ((i % 5) - 2) for i, x in enumerate(xs)]
            ax.set_xticks(range(len(space)), [str(c) for c in space], rotation=20)
        ax.scatter(xs, y, s=24, c=["red" if b else "tab:blue" for b in best])
        ax.set_xlabel(key, fontsize=8)
        ax.set_ylabel(spec.objective, fontsize=8)
    for ax in list(axes.flat)[len(keys) :]:
        ax.set_visible(False)
    fig.suptitle(f"{len(done)} trials, best in red")
    fig.tight_layout()
    tmp = path.with_name(f".{path.name}.tmp.png")
    fig.savefig(tmp, dpi=100)
    plt.close(fig)
    tmp.replace(path)


def _x(space: Any, value: Any) -> float:
    """Where a value sits on its panel's x axis (a category's index for choices)."""
    if isinstance(space, RangeSpec):
        return float(value)
    return float([str(c) for c in space].index(str(value)))
