"""report.md: written by the runner when a run ends (finished, failed or interrupted).

Assembled here, above both of its sources: the result tables read from the run directory
(:mod:`kvision.runs.result_tables`) and the insight sections (:mod:`kvision.insight.report_sections`).
"""

from __future__ import annotations

import os
from pathlib import Path

from kvision.insight.report_sections import report_markdown
from kvision.runs.answer import answer_section, arms_paragraph
from kvision.runs.atomic import atomic_write_text
from kvision.runs.reader import RunReader
from kvision.runs.result_tables import blur_facts, matrix_metric, notice_sections, result_sections
from kvision.runs.summary import run_seconds


def render_report(
    run_dir: str | os.PathLike,
    *,
    status: str | None = None,
    session_seconds: float | None = None,
) -> str:
    """The whole report.md text for a run directory (``status`` overrides the derived one;
    ``session_seconds``: the finishing session's own time, before run_finished records it)."""
    reader = RunReader(run_dir)
    meta, recipe = reader.meta(), reader.recipe()
    exp = recipe.get("experiment", {})
    parts = [f"# {exp.get('name', Path(run_dir).name)}\n"]
    if answer := answer_section(reader, *_diff_scale(reader)):
        parts += ["## Answer\n", answer, "### The arms\n", arms_paragraph(recipe)]
    if exp.get("description"):
        parts.append(exp["description"].strip() + "\n")
    parts.append(_run_facts(reader, meta, status or reader.status(), session_seconds))
    for heading, table in notice_sections(reader) + result_sections(reader):
        parts += [f"## {heading}\n", table]
    parts.append(report_markdown(run_dir))
    return "\n".join(p for p in parts if p)


def write_report(
    run_dir: str | os.PathLike,
    *,
    status: str | None = None,
    session_seconds: float | None = None,
) -> Path:
    """Write report.md atomically."""
    text = render_report(run_dir, status=status, session_seconds=session_seconds)
    return atomic_write_text(Path(run_dir) / "report.md", text)


def finished_time(run_dir: str | os.PathLike) -> str:
    """'12.3s' for a run finished in one go; '795.5s in all, over 3 sessions (interrupted
    2 times)' after resumes: the same total as report.md and `kvision ls`."""
    reader = RunReader(run_dir)
    seconds = run_seconds(reader.events) or 0.0
    sessions = len(reader.of("run_started", "run_resumed"))
    if sessions <= 1:
        return f"{seconds:.1f}s"
    stops = len(reader.of("run_interrupted", "run_failed"))
    return f"{seconds:.1f}s in all, over {sessions} sessions ({_times(stops, 'stopped')})"


def _times(n: int, what: str) -> str:
    return f"{what} {n} time{'s' if n != 1 else ''}"


def _sessions_fact(reader: RunReader) -> str:
    """'- sessions: 3 (interrupted by SIGTERM at ..., resumed at ...)', or '' for one go."""
    stops = reader.of("run_interrupted", "run_failed")
    resumes = reader.of("run_resumed")
    if not resumes:
        return ""
    said = [
        f"{'interrupted by ' + str(e.get('signal')) if e['event'] == 'run_interrupted' else 'failed'}"
        f" at {e.get('time', '?')}"
        for e in stops
    ]
    return (
        f"- sessions: {len(resumes) + 1}, resumed {len(resumes)} time(s) after: "
        + "; ".join(said)
        + " (the time below counts the sessions, not the pauses between them)"
    )


def _diff_scale(reader: RunReader) -> tuple[float, str]:
    """How a difference between arms reads: accuracy in percentage points, R^2 as is."""
    metric = matrix_metric(reader)
    return metric.factor, metric.diff_unit or metric.name


def _run_facts(
    reader: RunReader, meta: dict, status: str, session_seconds: float | None = None
) -> str:
    data = reader.of("data_loaded")
    facts = [f"- status: {status}", f"- run: `{reader.path.name}`"]
    if meta:
        facts.append(
            f"- kvision {meta.get('kvision')}, Keras {meta.get('keras')} "
            f"({meta.get('backend')}), torch {meta.get('torch')}, device {meta.get('device')}"
        )
        facts.append(f"- seed {meta.get('seed')}, started {meta.get('started')}")
    if data:
        d = data[-1]
        counts = ", ".join(f"{k} {v}" for k, v in d.get("counts", {}).items())
        facts.append(f"- data: {d.get('dataset')} ({counts}; image {d.get('image_shape')})")
        facts += [
            f"- condition {name}: {text}"
            for name, text in blur_facts((d.get("info") or {}).get("blur_placement")).items()
        ]
    if sessions := _sessions_fact(reader):
        facts.append(sessions)
    events = reader.events
    if session_seconds is not None:  # as run_finished will record it, written next
        events = [*events, {"event": "run_finished", "seconds": session_seconds}]
    if (seconds := run_seconds(events)) is not None:
        # total across resumes, the figure `kvision ls`, the TUI and the console show
        label = "wall time" if status == "finished" else "elapsed so far"
        facts.append(f"- {label}: {seconds:.1f} s")
    return "\n".join(facts) + "\n"
