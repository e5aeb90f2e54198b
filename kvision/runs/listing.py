"""`kvision ls`: one line per run with its status, total run time and headline score."""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

from kvision.errors import KvisionError, printable
from kvision.runs.events import DATA_PROGRESS
from kvision.runs.reader import RunReader, damage_guard, find_runs
from kvision.runs.summary import HEADLINE, best_final_test_where, format_score, run_seconds


def run_summary(reader: RunReader) -> dict:
    """Name, recipe, status, start, duration (s, across resumes) and headline of one run."""
    started = reader.of("run_started")
    best, metric, where = best_final_test_where(reader.evaluations())
    return {
        "name": reader.path.name,
        "recipe": reader.meta().get("recipe_name", "?"),
        "status": reader.status(),
        "start": started[0]["time"] if started else None,
        "duration": run_seconds(reader.events),
        "best_test": best,
        "metric": metric,
        "best_where": where,  # (trial, condition) of the best test score, or None
        "loading": loading(reader.events),
    }


def loading(events: list[dict]) -> str | None:
    """'loading 400/2,000 images' while (or where, for a killed run) the data was still
    loading: data_progress is the run's latest event; None otherwise."""
    last = events[-1] if events else {}
    if last.get("event") != DATA_PROGRESS:
        return None
    try:
        return f"loading {int(last['done']):,}/{int(last['total']):,} images"
    except (KeyError, TypeError, ValueError):
        return "loading"


def format_runs(runs_dir: str | os.PathLike, warn: Callable[[str], None] | None = None) -> str:
    """A plain table of every run under ``runs_dir``; a run whose files are damaged is listed
    as such (and ``warn`` told why) rather than stopping the listing."""
    rows = [_summary(p, warn or (lambda _text: None)) for p in find_runs(runs_dir)]
    if not rows:
        return f"No runs in '{printable(runs_dir)}'."
    head = f"{'run':44} {'status':11} {'duration':>9} {HEADLINE:>9}  of (trial, condition)"
    lines = [head, "-" * len(head)]
    for r in rows:
        dur = f"{r['duration']:.0f}s" if r["duration"] is not None else "-"
        best = format_score(r["best_test"], r["metric"])
        where = r["best_where"]
        of = printable(f"{where[0]}, {where[1]} test") if where else r.get("loading") or "-"
        name = printable(r["name"])
        lines.append(f"{name[:44]:44} {r['status']:11} {dur:>9} {best:>9}  {of}")
    return "\n".join(lines)


def _summary(path: Path, warn: Callable[[str], None]) -> dict:
    reader = RunReader(path)
    for problem in reader.problems():
        warn(f"{printable(path.name)}: {problem}")
    try:
        with damage_guard(path):
            return run_summary(reader)
    except KvisionError as exc:
        warn(str(exc))
        return {
            "name": path.name,
            "status": "damaged",
            "duration": None,
            "best_test": None,
            "best_where": None,
            "metric": None,
        }
