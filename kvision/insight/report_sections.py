"""The insight part of report.md, rebuilt from the run directory alone (JSON tables, events)."""

from __future__ import annotations

import json
import os
from pathlib import Path

from kvision.insight._names import slug
from kvision.runs import RunReader

#: Section order and titles; kinds the curves/robustness sections embed themselves come first.
SECTIONS = (
    ("curves", "Training curves"),
    ("filters", "First-layer filters"),
    ("activations", "Activations"),
    ("cam", "Class activation maps (Grad-CAM)"),
    ("retrieval", "Retrieval"),
)


def report_markdown(run_dir: str | os.PathLike) -> str:
    """Markdown sections with the classification and robustness tables and embedded images.

    Image links are relative to the run directory, where report.md lives.
    """
    reader = RunReader(run_dir)
    images = _images_by_kind(reader)
    parts = ["## Insight"]
    for kind, title in SECTIONS[:1]:
        parts += _image_section(title, images.get(kind, []))
    parts += _classification_section(Path(run_dir), reader, images.get("confusion", []))
    parts += _robustness_section(Path(run_dir), reader, images.get("robustness", []))
    for kind, title in SECTIONS[1:]:
        parts += _image_section(title, _prefer_comparisons(images.get(kind, [])))
    parts += _retrieval_scores(Path(run_dir), reader.trials())
    return "\n\n".join(parts) + "\n"


def _prefer_comparisons(paths: list[str]) -> list[str]:
    """Drop per-checkpoint figures of a trial whose side-by-side figure exists."""
    combined = [p[: -len("checkpoints.png")] for p in paths if p.endswith("_checkpoints.png")]
    return [
        p
        for p in paths
        if p.endswith("_checkpoints.png") or not any(p.startswith(c) for c in combined)
    ]


def _retrieval_scores(run_dir: Path, trials: list[str]) -> list[str]:
    rows = []
    for trial in trials:
        file = run_dir / "trials" / trial / "retrieval.json"
        if file.is_file():
            r = json.loads(file.read_text("utf-8"))
            rows.append(
                f"| {trial} | {r['condition']} test | {r['n']} | {r['k']} | "
                f"{r['precision_at_k']:.3f} |"
            )
    if not rows:
        return []
    return [
        "Retrieval precision@k by label (each test image queries the others):\n\n"
        "| trial | index | images | k | precision@k |\n|---|---|---:|---:|---:|\n" + "\n".join(rows)
    ]


def _images_by_kind(reader: RunReader) -> dict[str, list[str]]:
    """Relative PNG paths per artifact kind, in event order, each path once."""
    out: dict[str, list[str]] = {}
    for e in reader.artifacts():
        path = str(e.get("path", ""))
        if path.endswith(".png") and path not in out.setdefault(e.get("kind", ""), []):
            out[e["kind"]].append(path)
    return out


def _embed(path: str) -> str:
    return f"![{Path(path).stem}]({path})"


def _image_section(title: str, paths: list[str]) -> list[str]:
    """Embedded images; the per-channel activation grids are linked, to keep the report short."""
    if not paths:
        return []
    embedded = [_embed(p) for p in paths if "top-channels" not in p]
    linked = [f"[{Path(p).stem}]({p})" for p in paths if "top-channels" in p]
    lines = [f"### {title}", *embedded]
    if linked:
        lines.append("Strongest channels: " + ", ".join(linked))
    return lines


def _condition_order(reader: RunReader) -> list[str]:
    """Conditions in the order the evaluation matrices list them (e.g. clear, then blurred)."""
    order: dict[str, None] = {}
    for e in reader.evaluations():
        order.update(dict.fromkeys(e.get("matrix") or {}))
    return list(order)


def _classification_section(run_dir: Path, reader: RunReader, confusion: list[str]) -> list[str]:
    order = _condition_order(reader)
    lines = []
    for trial in reader.trials():
        summaries = [
            json.loads(f.read_text("utf-8"))
            for f in (run_dir / "trials" / trial).glob("classification_*.json")
        ]
        summaries.sort(
            key=lambda s: (
                order.index(s["condition"]) if s["condition"] in order else len(order),
                s["condition"],
            )
        )
        for summary in summaries:
            condition = summary["condition"]
            lines.append(f"#### {trial}: {condition} test\n\n{_classification_table(summary)}")
            image = f"images/confusion/{slug(f'{trial}_{condition}_test')}.png"
            if image in confusion:
                lines.append(_embed(image))
    return ["### Classification report (scikit-learn)", *lines] if lines else []


def _classification_table(summary: dict) -> str:
    # Imported here: the module draws confusion matrices (Matplotlib, scikit-learn), which a
    # run without insight, whose report this may be, never loads otherwise.
    from kvision.insight.classification import markdown_table

    return markdown_table(summary)


def _robustness_section(run_dir: Path, reader: RunReader, paths: list[str]) -> list[str]:
    trials = reader.trials()
    file = run_dir / "robustness.json"
    if file.is_file():
        data = json.loads(file.read_text("utf-8"))
    else:  # a run stopped before its end: summarise the trials that finished
        curves = {
            t: json.loads((run_dir / "trials" / t / "robustness.json").read_text("utf-8"))
            for t in trials
            if (run_dir / "trials" / t / "robustness.json").is_file()
        }
        if not curves:
            return []  # before importing the module, which loads Matplotlib
        from kvision.insight.robustness import summarise

        baseline = next(iter(curves))
        data = {"curves": curves, "summary": summarise(curves, baseline), "baseline": baseline}
    from kvision.insight.robustness import markdown_table

    lines = [
        "### Blur robustness",
        "Test accuracy (%) per Gaussian sigma and per blur kind (mean over severities); "
        "mCE: each kind's summed error relative to the baseline trial, averaged over kinds "
        "(lower is more robust).",
        _robustness_subset(reader, data["curves"]),
        markdown_table(data["curves"], data["summary"], data["baseline"]),
    ]
    comparison = [p for p in paths if "comparison" in p]
    return lines + [_embed(p) for p in comparison or paths]


def _robustness_subset(reader: RunReader, curves: dict[str, dict]) -> str:
    """Which images the sweep used, and why its numbers differ from the main table's."""
    first = next(iter(curves.values()), {})
    n, condition = first.get("n"), first.get("condition", "test")
    loaded = reader.of("data_loaded")
    total = ((loaded[-1].get("counts") or {}) if loaded else {}).get("test")
    if not n:
        return ""
    if not total or n >= total:
        return f"Images: all {n} {condition} test images, blurred by the sweep itself."
    # one standard error of an accuracy measured on n images is at most 50/sqrt(n) pp (p=0.5)
    return (
        f"Images: a stratified, seeded subset of {n} of the {total} {condition} test images "
        "(`insight.robustness.max_images`), blurred by the sweep itself. The final-accuracy "
        f"table uses all {total} test images, so the two differ by sampling: one standard "
        f"error on {n} images is up to ±{50 / n**0.5:.1f} pp."
    )
