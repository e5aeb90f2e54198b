"""The result tables of report.md and `kvision show` (report 000's), rebuilt from a run's events.

Everything here reads the run directory only (no Keras), so it works for finished, failed,
interrupted and still-running runs alike. The whole report.md is assembled by
:mod:`kvision.train.report_md`, which adds the run's facts and the insight sections.
"""

from __future__ import annotations

import math
from collections import defaultdict
from dataclasses import dataclass

from kvision.runs.reader import RunReader
from kvision.runs.repeats import cell_summaries, final_groups, has_repeats, paired_differences


@dataclass(frozen=True)
class _Metric:
    """How the evaluation matrix's numbers read: accuracy in %, or a regression's R^2."""

    name: str
    factor: float  # shown value = stored value * factor
    digits: int
    unit: str  # of values ("%")
    diff_unit: str  # of differences between arms ("pp")
    final_heading: str
    checkpoint_heading: str

    def fmt(self, value: float | None) -> str:
        if value is None or (isinstance(value, float) and math.isnan(value)):
            return "–"
        return f"{value * self.factor:.{self.digits}f}"


ACCURACY = _Metric(
    "accuracy", 100.0, 2, "%", "pp", "Final accuracy (%)", "Accuracy at each checkpoint (%)"
)
R2 = _Metric(
    "R²", 1.0, 4, "", "", "Final R² (test: against the noise-free truth)", "R² at each checkpoint"
)


def matrix_metric(reader: RunReader) -> _Metric:
    """R^2 for a function-fitting run (its evaluations say metric r2), else accuracy."""
    return R2 if any(e.get("metric") == "r2" for e in reader.evaluations()) else ACCURACY


def evaluation_tables(reader: RunReader) -> str:
    """Per trial, one condition x split table per checkpoint (accuracy in %, or R^2)."""
    metric = matrix_metric(reader)
    out = []
    by_trial: dict[str, list[dict]] = defaultdict(list)
    for e in reader.evaluations():
        by_trial[e["trial"]].append(e)
    for trial, evals in by_trial.items():
        out.append(f"### {trial}\n")
        for e in _latest_per_checkpoint(evals):
            out.append(f"**{_label(e['checkpoint'])}**\n")
            out.append(_matrix_table(e["matrix"], metric))
    return "\n".join(out)


def summary_table(reader: RunReader) -> str:
    """One row per trial: its final accuracy (or R^2) in every condition/split (the headline)."""
    metric = matrix_metric(reader)
    finals = _final_matrices(reader)
    if not finals:
        return "_No evaluation yet._\n"
    cols = sorted(
        {(c, s) for m in finals.values() for c, row in m.items() for s in row},
        key=lambda cs: (cs[1] != "test", cs),
    )
    head = "| trial | " + " | ".join(f"{c} {s}" for c, s in cols) + " |"
    rule = "|---|" + "---:|" * len(cols)
    rows = [
        f"| {t} | " + " | ".join(metric.fmt(m.get(c, {}).get(s)) for c, s in cols) + " |"
        for t, m in finals.items()
    ]
    return "\n".join([head, rule, *rows]) + "\n"


def fit_error_table(reader: RunReader) -> str:
    """A regression's final errors per trial and split: MSE, MAE and R^2 (empty otherwise)."""
    finals = {e["trial"]: e["scores"] for e in reader.evaluations() if e.get("scores")}
    if not finals:
        return ""
    lines = ["| trial | condition | split | MSE | MAE | R² |", "|---|---|---|---:|---:|---:|"]
    for trial, scores in finals.items():
        for cond, row in scores.items():
            for split, cell in row.items():
                lines.append(
                    f"| {trial} | {cond} | {split} | {cell['mse']:.4g} | "
                    f"{cell['mae']:.4g} | {cell['r2']:.4f} |"
                )
    return "\n".join(lines) + "\n"


def repeats_table(reader: RunReader) -> str:
    """With repeats: mean +/- std per cell, and paired arm differences with a 95% CI."""
    groups = final_groups(reader)
    if not has_repeats(groups):
        return ""
    metric = matrix_metric(reader)
    lines = [
        f"| model | arm | cell | mean {metric.name} {metric.unit} | std | n |",
        "|---|---|---|---:|---:|---:|",
    ]
    lines += [
        f"| {c.model} | {c.arm} | {c.cell[0]} {c.cell[1]} | {metric.fmt(c.mean)} | "
        f"{metric.fmt(c.std)} | {c.n} |"
        for c in cell_summaries(groups)
    ]
    return "\n".join(lines + ["", *_paired_lines(reader, metric)]) + "\n"


def _paired_lines(reader: RunReader, metric: _Metric) -> list[str]:
    """Arm − other per model and cell, paired by repeat (same init and data order)."""
    diffs = paired_differences(reader)
    if not diffs:
        return []
    unit = f" ({metric.diff_unit})" if metric.diff_unit else ""
    k = metric.factor
    lines = [
        "Paired by repeat (same initial weights and data order); the interval is "
        "Student's t over the per-repeat differences.",
        "",
        f"| model | difference | cell | mean{unit} | 95% CI{unit} | n |",
        "|---|---|---|---:|---|---:|",
    ]
    lines += [
        f"| {d.model} | {d.arm} − {d.other} | {d.cell[0]} {d.cell[1]} | {d.mean * k:+.4g} | "
        f"[{d.low * k:+.4g}, {d.high * k:+.4g}] | {d.n} |"
        for d in diffs
    ]
    return lines


def result_sections(reader: RunReader) -> list[tuple[str, str]]:
    """(heading, table) of the results, as report.md and ``kvision show`` print them: final
    values, a regression's fit errors, repeats, and every checkpoint's matrix."""
    metric = matrix_metric(reader)
    note = subset_note(reader)
    sections = [(metric.final_heading, summary_table(reader) + note)]
    if errors := fit_error_table(reader):
        sections.append(("Final fit errors", errors))
    if rep := repeats_table(reader):
        sections.append(("Repeats", rep))
    sections.append((metric.checkpoint_heading, note + evaluation_tables(reader)))
    return sections


def subset_note(reader: RunReader) -> str:
    """Which images the matrix was computed on: the test split whole, the others perhaps a
    seeded subset (``evaluate.max_images``), as counted by the run's data_loaded event."""
    data = reader.of("data_loaded")
    counts = (data[-1].get("counts") or {}) if data else {}
    if not counts:
        return ""
    limit = (reader.recipe().get("evaluate") or {}).get("max_images") or 0
    shown = {
        s for e in reader.evaluations() for row in (e.get("matrix") or {}).values() for s in row
    }
    parts = []
    for split, total in counts.items():
        if split not in shown:
            continue
        if split != "test" and limit and total > limit:
            parts.append(f"{split}: a seeded subset of {limit} of its {total} images")
        else:
            parts.append(f"{split}: all {total} images")
    return "\nImages evaluated per split: " + "; ".join(parts) + ".\n"


def notice_sections(reader: RunReader) -> list[tuple[str, str]]:
    """(heading, text) of what went wrong on the way: failed trials and warnings (none: [])."""
    sections = []
    if failed := reader.of("trial_failed"):
        rows = [
            f"| {e.get('trial')} | {e.get('stage') or '–'} | {e.get('error')} |" for e in failed
        ]
        sections.append(
            ("Failed trials", "\n".join(["| trial | stage | why |", "|---|---|---|", *rows]) + "\n")
        )
    warnings = {(e.get("kind"), e.get("trial"), e.get("message")): e for e in reader.of("warning")}
    if warnings:
        lines = [
            f"- **{e.get('kind')}**"
            + (f" ({e['trial']})" if e.get("trial") else "")
            + f": {e.get('message')}"
            for e in warnings.values()
        ]
        sections.append(("Warnings", "\n".join(lines) + "\n"))
    return sections


def blur_facts(placement: dict | None) -> dict[str, str]:
    """Per blurred condition, where the blur is applied and its size at the model's input."""
    out = {}
    for name, p in (placement or {}).items():
        model = "x".join(map(str, p["model_size"]))
        if p["at"] == "source":
            low, high = ("x".join(map(str, s)) for s in p["stored_size"])
            where = (
                f"at the stored resolution ({low if low == high else f'{low} to {high}'}), "
                f"then resized to {model}"
            )
        else:
            where = f"at the model's input size ({model})"
        text = f"{p['kind']} blur {where}"
        if p.get("parameter") and p.get("value") is not None:
            lo, hi = p["effective"]
            size = f"{lo:.3g}" if math.isclose(lo, hi) else f"{lo:.3g} to {hi:.3g}"
            text += (
                f"; {p['parameter']} {p['value']:g}, effective {p['parameter']} {size} at {model}"
            )
        out[name] = text
    return out


def _final_matrices(reader: RunReader) -> dict[str, dict]:
    finals: dict[str, dict] = {}
    for e in reader.evaluations():
        finals[e["trial"]] = e["matrix"]
    return finals


def _latest_per_checkpoint(evals: list[dict]) -> list[dict]:
    latest: dict[str, dict] = {}
    for e in evals:
        latest[e["checkpoint"]] = e
    return list(latest.values())


def _matrix_table(matrix: dict, metric: _Metric) -> str:
    splits = sorted({s for row in matrix.values() for s in row}, key=("train", "val", "test").index)
    head = "| condition | " + " | ".join(splits) + " |"
    rule = "|---|" + "---:|" * len(splits)
    rows = [
        f"| {c} | " + " | ".join(metric.fmt(row.get(s)) for s in splits) + " |"
        for c, row in matrix.items()
    ]
    return "\n".join([head, rule, *rows]) + "\n"


def _label(checkpoint: str) -> str:
    if checkpoint == "before":
        return "Before training"
    return checkpoint.replace("after_", "After ").replace("_", " ")
