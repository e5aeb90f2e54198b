"""`kvision ls`: one line per run with its status, timing and best test accuracy."""

from __future__ import annotations

import os
from datetime import datetime

from kvision.runs.reader import RunReader, find_runs


def run_summary(reader: RunReader) -> dict:
    """Name, recipe, status, start, duration (s) and best test accuracy of one run."""
    started = reader.of("run_started")
    finished = reader.of("run_finished")
    best = None
    for e in reader.evaluations():
        for row in e.get("matrix", {}).values():
            acc = row.get("test")
            if acc is not None and (best is None or acc > best):
                best = acc
    start = started[0]["time"] if started else None
    duration = finished[-1].get("seconds") if finished else _elapsed(start, reader)
    return {"name": reader.path.name, "recipe": reader.meta().get("recipe_name", "?"),
            "status": reader.status(), "start": start, "duration": duration, "best_test": best}


def _elapsed(start: str | None, reader: RunReader) -> float | None:
    if not start or not reader.events:
        return None
    try:
        t0 = datetime.fromisoformat(start)
        t1 = datetime.fromisoformat(reader.events[-1]["time"])
    except (KeyError, ValueError):
        return None
    return (t1 - t0).total_seconds()


def format_runs(runs_dir: str | os.PathLike) -> str:
    """A plain table of every run under ``runs_dir``."""
    rows = [run_summary(RunReader(p)) for p in find_runs(runs_dir)]
    if not rows:
        return f"No runs in '{runs_dir}'."
    head = f"{'run':44} {'status':11} {'duration':>9} {'best test':>9}"
    lines = [head, "-" * len(head)]
    for r in rows:
        dur = f"{r['duration']:.0f}s" if r["duration"] is not None else "-"
        best = f"{r['best_test'] * 100:.2f}%" if r["best_test"] is not None else "-"
        lines.append(f"{r['name'][:44]:44} {r['status']:11} {dur:>9} {best:>9}")
    return "\n".join(lines)
