"""The opening of report.md when arms declare ``versus``: the answer to the run's question.

For every contrast (``arm − other``, from the arms' ``versus`` keys) the final difference per
model and evaluated cell, with a paired 95% interval when the run has repeats and a plain
"n=1, no interval" otherwise, then one paragraph defining each arm from its stages as the
recipe declares them. Reads the run directory only (no Keras).
"""

from __future__ import annotations

import math

from kvision.runs.reader import RunReader
from kvision.runs.repeats import PairedDifference, contrasts, final_groups, paired_differences

Cell = tuple[str, str]


def declares_versus(recipe: dict) -> bool:
    """Whether any arm names others in its ``versus`` key (the run asks a question)."""
    return any(isinstance(a, dict) and a.get("versus") for a in recipe.get("arms") or [])


def answer_section(reader: RunReader, factor: float = 100.0, unit: str = "pp") -> str:
    """The "Answer" section's Markdown ('' when no arm declares ``versus`` or nothing finished).

    ``factor`` and ``unit`` say how a stored difference reads (accuracy: x100, percentage
    points).
    """
    recipe = reader.recipe()
    if not declares_versus(recipe):
        return ""
    diffs = paired_differences(reader)
    pairs = contrasts(recipe, final_groups(reader))
    question = ", ".join(f"{a} − {b}" for a, b in pairs)
    lines = [f"Final differences {question} ({unit}), per model and evaluated cell."]
    if not diffs:
        return "\n".join([*lines, "", "_No trial pair has finished yet._", ""])
    n = max(d.n for d in diffs)
    lines += ["", _reading(diffs, n, unit), "", *_table(diffs, factor), ""]
    if n > 1:
        lines += [_verdict(diffs, factor, unit), ""]
    return "\n".join(lines)


def arms_paragraph(recipe: dict) -> str:
    """One line per arm: its stages as the recipe declares them, and whose budget it matches."""
    arms = [a for a in recipe.get("arms") or [] if isinstance(a, dict)]
    conditions = recipe.get("conditions") or {}
    totals = {a["name"]: _epochs(a) for a in arms}
    lines = []
    for arm in arms:
        steps = ", then ".join(_stage_text(s, conditions) for s in arm.get("stages") or [])
        text = f"- **{arm['name']}**: {steps or 'no stages'}"
        if same := _budget_matched(arm, arms, totals):
            text += f" (as many epochs in all as {same}: the budget-matched control)"
        lines.append(text + ".")
    return "\n".join(lines) + "\n" if lines else ""


def _reading(diffs: list[PairedDifference], n: int, unit: str) -> str:
    if n < 2:
        return (
            "n=1, no interval: each arm ran once, so a difference below cannot be told apart "
            "from the spread between seeds. Run with `--repeats N` (N ≥ 2) for paired 95% "
            "intervals."
        )
    return (
        f"Paired by repeat (n={n}: same initial weights and data order in every arm); "
        f"[low, high] is the Student-t 95% interval of the mean difference in {unit}."
    )


def _cells(diffs: list[PairedDifference]) -> list[Cell]:
    """Test cells first (the number a report quotes), then the rest in recipe order."""
    seen = list(dict.fromkeys(d.cell for d in diffs))
    return sorted(seen, key=lambda c: (c[1] != "test", seen.index(c)))


def _table(diffs: list[PairedDifference], factor: float) -> list[str]:
    cells = _cells(diffs)
    by_row: dict[tuple[str, str], dict[Cell, PairedDifference]] = {}
    for d in diffs:
        by_row.setdefault((d.model, f"{d.arm} − {d.other}"), {})[d.cell] = d
    head = "| model | difference | " + " | ".join(f"{c} {s}" for c, s in cells) + " |"
    rule = "|---|---|" + "---:|" * len(cells)
    rows = [
        f"| {model} | {name} | " + " | ".join(_value(per.get(c), factor) for c in cells) + " |"
        for (model, name), per in by_row.items()
    ]
    return [head, rule, *rows]


def _value(d: PairedDifference | None, factor: float) -> str:
    if d is None:
        return "–"
    text = f"{d.mean * factor:+.1f}"
    if d.n > 1 and not math.isnan(d.low):
        text += f" [{d.low * factor:+.1f}, {d.high * factor:+.1f}]"
    return text


def _verdict(diffs: list[PairedDifference], factor: float, unit: str) -> str:
    """Which test-cell differences have an interval clear of zero, in one sentence."""
    tests = [d for d in diffs if d.cell[1] == "test"]
    clear = [d for d in tests if d.excludes_zero]
    if not clear:
        return "On the test cells no interval excludes 0: no difference is established."
    said = "; ".join(
        f"{d.model} {d.arm} − {d.other} on {d.cell[0]} test {d.mean * factor:+.1f} {unit} "
        f"({d.arm if d.mean > 0 else d.other} ahead)"
        for d in clear
    )
    rest = len(tests) - len(clear)
    tail = f" The other {rest} test-cell intervals include 0." if rest else ""
    return f"Intervals that exclude 0: {said}.{tail}"


def _stage_text(stage: dict, conditions: dict) -> str:
    epochs = stage.get("epochs")
    what = stage.get("condition") or "a mix of conditions"
    blur = (conditions.get(what) or {}).get("blur") if isinstance(what, str) else None
    if isinstance(blur, dict) and blur.get("kind"):
        params = ", ".join(
            f"{k} {v:g}"
            for k, v in blur.items()
            if k in ("sigma", "radius", "length", "severity") and isinstance(v, int | float)
        )
        what += f" ({blur['kind']} blur{', ' + params if params else ''})"
    elif what in conditions and not conditions.get(what):
        what += " (unchanged images)"
    return f"{stage.get('name', 'stage')}: {epochs} epoch{'s' if epochs != 1 else ''} on {what}"


def _epochs(arm: dict) -> int:
    return sum(int(s.get("epochs") or 0) for s in arm.get("stages") or [])


def _budget_matched(arm: dict, arms: list[dict], totals: dict[str, int]) -> str:
    """The multi-stage arm this single-condition arm matches in total epochs ('' if none)."""
    stages = arm.get("stages") or []
    if len({s.get("condition") for s in stages}) != 1:
        return ""
    for other in arms:
        conds = {s.get("condition") for s in other.get("stages") or []}
        if other is not arm and len(conds) > 1 and totals[other["name"]] == totals[arm["name"]]:
            return str(other["name"])
    return ""
