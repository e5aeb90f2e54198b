"""Repeated trials: mean and spread per cell, and paired arm differences with a 95% interval.

Trials are grouped by their recorded identity (model, arm, repeat), never by parsing trial
names, so model and arm names may contain '-'. Two arms of one model are paired by repeat:
repeat r of every arm starts from the same initial weights and sees the same data order, so
the per-repeat difference removes the seed's share of the variance.

Which differences are reported: every arm that names others in its ``versus`` key gives
"arm − other" for each; a recipe whose arms name none gives each arm minus the one before it.
Reads the run directory only (no Keras).
"""

from __future__ import annotations

import math
from collections import defaultdict
from dataclasses import dataclass

from kvision.runs.reader import RunReader

Cell = tuple[str, str]  # (condition, split)


@dataclass(frozen=True)
class CellSummary:
    """One (model, arm)'s final value in one cell over its repeats."""

    model: str
    arm: str
    cell: Cell
    mean: float
    std: float
    n: int


@dataclass(frozen=True)
class PairedDifference:
    """arm − other for one model and cell, paired by repeat, with a t-based 95% interval."""

    model: str
    arm: str
    other: str
    cell: Cell
    mean: float
    low: float
    high: float
    n: int

    @property
    def excludes_zero(self) -> bool:
        """Whether the 95% interval lies wholly on one side of zero."""
        return self.n > 1 and (self.low > 0 or self.high < 0)


Groups = dict[tuple[str, str], dict[int, dict]]  # (model, arm) -> repeat -> final matrix


def final_groups(reader: RunReader) -> Groups:
    """(model, arm) -> repeat -> the last evaluation matrix of each finished trial (a trial
    still running or interrupted mid-arm is left out: its last matrix is not its final one)."""
    ids = reader.identities()
    finished = {e["trial"] for e in reader.of("trial_finished")}
    groups: Groups = defaultdict(dict)
    for e in reader.evaluations():
        if e["trial"] in finished and (who := ids.get(e["trial"])) is not None:
            groups[(who.model, who.arm)][who.repeat] = e["matrix"]
    return dict(groups)


def has_repeats(groups: Groups) -> bool:
    """At least one (model, arm) ran with two or more repeats."""
    return any(len(reps) > 1 for reps in groups.values())


def cell_summaries(groups: Groups) -> list[CellSummary]:
    """Mean and sample standard deviation of every (model, arm, cell)."""
    out = []
    for (model, arm), reps in groups.items():
        for cell, values in _cells(reps).items():
            mean, std = mean_std(values)
            out.append(CellSummary(model, arm, cell, mean, std, len(values)))
    return out


def contrasts(recipe: dict, groups: Groups) -> list[tuple[str, str]]:
    """(arm, other) pairs to report, from the arms' ``versus`` keys (else consecutive arms)."""
    arms = [a for a in recipe.get("arms") or [] if isinstance(a, dict)]
    named = [(a["name"], other) for a in arms for other in a.get("versus") or []]
    if named:
        return named
    order = [a["name"] for a in arms] or list(dict.fromkeys(arm for _, arm in groups))
    return list(zip(order[1:], order, strict=False))


def paired_differences(reader: RunReader) -> list[PairedDifference]:
    """Every contrast of every model in every cell, paired by repeat."""
    groups = final_groups(reader)
    models = list(dict.fromkeys(model for model, _ in groups))
    out = []
    for model in models:
        for arm, other in contrasts(reader.recipe(), groups):
            a, b = groups.get((model, arm)), groups.get((model, other))
            if a and b:
                out += _paired(model, arm, other, a, b)
    return out


def _paired(
    model: str, arm: str, other: str, a: dict[int, dict], b: dict[int, dict]
) -> list[PairedDifference]:
    common = sorted(set(a) & set(b))
    out = []
    for cell in _cells({r: a[r] for r in common}):
        diffs = [_get(a[r], cell) - _get(b[r], cell) for r in common]
        diffs = [d for d in diffs if not math.isnan(d)]
        if diffs:
            mean, low, high = t_interval(diffs)
            out.append(PairedDifference(model, arm, other, cell, mean, low, high, len(diffs)))
    return out


def t_interval(values: list[float], level: float = 0.95) -> tuple[float, float, float]:
    """Mean and Student-t interval of the mean (NaN bounds for fewer than two values)."""
    from scipy import stats

    mean, std = mean_std(values)
    if len(values) < 2:
        return mean, math.nan, math.nan
    half = stats.t.ppf(0.5 + level / 2, len(values) - 1) * std / math.sqrt(len(values))
    return mean, mean - half, mean + half


def mean_std(values: list[float]) -> tuple[float, float]:
    """Mean and sample (n − 1) standard deviation."""
    mean = sum(values) / len(values)
    var = sum((v - mean) ** 2 for v in values) / (len(values) - 1) if len(values) > 1 else 0.0
    return mean, math.sqrt(var)


def _cells(reps: dict[int, dict]) -> dict[Cell, list[float]]:
    cells: dict[Cell, list[float]] = defaultdict(list)
    for matrix in reps.values():
        for cond, row in matrix.items():
            for split, value in row.items():
                cells[(cond, split)].append(value)
    return cells


def _get(matrix: dict, cell: Cell) -> float:
    value = matrix.get(cell[0], {}).get(cell[1])
    return math.nan if value is None else float(value)
