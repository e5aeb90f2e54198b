"""`kvision show RUN`: the report's answer and tables, as Markdown or drawn for a terminal.

Reads the run directory only (no Keras). On a terminal the Markdown is drawn by rich
(tables with borders, headings, bold), not printed raw with its pipes and ``---:`` rules.
"""

from __future__ import annotations

import io
import os
import shutil
from pathlib import Path

from kvision.errors import printable
from kvision.runs.answer import answer_section, arms_paragraph
from kvision.runs.reader import RunReader
from kvision.runs.result_tables import matrix_metric, notice_sections, result_sections


def show_markdown(run_dir: str | os.PathLike) -> str:
    """The run's name and status, the answer (when arms declare ``versus``), what went wrong
    on the way, and the result tables, as one Markdown text."""
    reader = RunReader(run_dir)
    metric = matrix_metric(reader)
    parts = [f"# {printable(Path(run_dir).name)} [{reader.status()}]\n"]
    if answer := answer_section(reader, metric.factor, metric.diff_unit or metric.name):
        parts += ["## Answer\n", answer, "### The arms\n", arms_paragraph(reader.recipe())]
    for heading, table in notice_sections(reader) + result_sections(reader):
        parts += [f"## {heading}\n", table]
    for e in reader.of("run_failed", "run_interrupted"):
        parts.append(f"- {e['event']}: {printable(e.get('error') or e.get('message'))}\n")
    return "\n".join(parts)


def render_terminal(markdown: str, width: int | None = None) -> str:
    """``markdown`` drawn by rich for a terminal ``width`` columns wide (default: this one)."""
    from rich.console import Console
    from rich.markdown import Markdown

    width = width or shutil.get_terminal_size((100, 24)).columns
    out = io.StringIO()
    Console(file=out, width=width, force_terminal=False, color_system=None).print(
        Markdown(markdown)
    )
    return "\n".join(line.rstrip() for line in out.getvalue().strip("\n").splitlines()) + "\n"
