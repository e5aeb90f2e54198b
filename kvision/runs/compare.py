"""Comparing runs: final scores side by side and paired differences (`kvision compare`, TUI).

Trials are paired across runs by their recorded identity — model, arm and repeat, from the
run_started / trial_started events (:meth:`RunReader.identities`) — never by parsing trial
names. Reads run directories only (no Keras).
"""

from __future__ import annotations

import math
import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from kvision.errors import KvisionError
from kvision.runs.reader import RunReader, damage_guard, is_run_dir, second_metric
from kvision.runs.recipe_diff import beyond_seed, describe, recipe_differences
from kvision.runs.repeats import t_interval
from kvision.runs.summary import final_evaluations, format_seconds, run_seconds

#: (model, arm, repeat) of a trial
Identity = tuple[str, str, int]
#: (condition, split) of an evaluation matrix cell
Cell = tuple[str, str]


@dataclass
class RunFinals:
    """One run as the comparison sees it."""

    name: str
    status: str
    seconds: float | None
    metric: str  # "accuracy" or "r2"
    trials: dict[Identity, str]  # identity -> trial name
    finals: dict[Identity, dict] = field(default_factory=dict)  # identity -> matrix
    recipe: dict = field(default_factory=dict)  # the resolved recipe.toml


@dataclass
class Comparison:
    """Several runs, their paired trials and the cells they share."""

    runs: list[RunFinals]
    identities: list[Identity]
    cells: list[Cell]

    @property
    def metric(self) -> str:
        """r2 when any run is a function fit, else accuracy."""
        return "r2" if any(r.metric == "r2" for r in self.runs) else "accuracy"

    def value(self, run: RunFinals, identity: Identity, cell: Cell) -> float | None:
        """The final score of one trial in one cell, or None."""
        v = (run.finals.get(identity) or {}).get(cell[0], {}).get(cell[1])
        return float(v) if isinstance(v, (int, float)) and not isinstance(v, bool) else None

    def differences(
        self, run: RunFinals, cell: Cell, kind: tuple[str, str] | None = None
    ) -> list[float]:
        """``run`` minus the first run, for every trial both have (of one (model, arm) when
        ``kind`` is given: its repeats), in one cell."""
        base = self.runs[0]
        out = []
        for identity in self.identities:
            if kind is not None and identity[:2] != kind:
                continue
            a, b = self.value(base, identity, cell), self.value(run, identity, cell)
            if a is not None and b is not None:
                out.append(b - a)
        return out

    def recipe_changes(self, run: RunFinals) -> list[tuple[str, object, object]]:
        """What ``run``'s recipe changes against the first run's (key, A's value, its value)."""
        return recipe_differences(self.runs[0].recipe, run.recipe)

    def blockers(self) -> dict[str, list[str]]:
        """Per later run that differs from A in more than the seed, the keys that differ
        (empty: every run repeats A's experiment, so trials may be paired)."""
        out = {}
        for run in self.runs[1:]:
            if keys := beyond_seed(self.recipe_changes(run)):
                out[run.name] = keys
        return out

    def kinds(self) -> list[tuple[str, str]]:
        """The (model, arm) trial types, in order: intervals are per type, never pooled."""
        return list(dict.fromkeys(i[:2] for i in self.identities))


def trial_identities(reader: RunReader) -> dict[str, Identity]:
    """Trial name -> (model, arm, repeat), as the runner recorded them (RunReader.identities)."""
    return {name: (i.model, i.arm, i.repeat) for name, i in reader.identities().items()}


def load_finals(path: str | os.PathLike) -> RunFinals:
    """A run's final matrices by trial identity; KvisionError when it is not a run."""
    p = Path(path)
    if not is_run_dir(p):
        raise KvisionError(
            f"'{p}' is not a kvision run directory (it needs meta.json and "
            "events.jsonl). Give folders made by 'kvision run'."
        )
    with damage_guard(p):
        return _finals(p, RunReader(p))


def _finals(p: Path, reader: RunReader) -> RunFinals:
    identities = trial_identities(reader)
    run = RunFinals(
        p.name,
        reader.status(),
        run_seconds(reader.events),
        "accuracy",
        {ident: name for name, ident in identities.items()},
        recipe=reader.recipe(),
    )
    for trial, e in final_evaluations(reader.evaluations()).items():
        if trial in identities:
            run.finals[identities[trial]] = e.get("matrix") or {}
            run.metric = "r2" if e.get("metric") == "r2" else run.metric
    return run


def compare(paths: Sequence[str | os.PathLike]) -> Comparison:
    """The comparison of these runs (two or more; the first is the baseline)."""
    if len(paths) < 2:
        raise KvisionError(
            "kvision compare needs at least two run directories "
            "(the first one is the baseline the others are compared to)."
        )
    runs = [load_finals(p) for p in paths]
    identities: dict[Identity, None] = {}
    cells: dict[Cell, None] = {}
    for run in runs:
        identities.update(dict.fromkeys(run.trials))
        for matrix in run.finals.values():
            for condition, per_split in matrix.items():
                cells.update(dict.fromkeys((condition, s) for s in per_split or {}))
    order = {"test": 0, "val": 1, "train": 2}
    ordered = sorted(cells, key=lambda c: (order.get(c[1], 3), list(cells).index(c)))
    return Comparison(runs, list(identities), ordered)


def label(identity: Identity, comparison: Comparison | None = None) -> str:
    """'model / arm', with '#repeat' when any trial of the comparison repeats."""
    model, arm, repeat = identity
    repeats = comparison is not None and any(i[2] for i in comparison.identities)
    return f"{model} / {arm}" + (f" #{repeat}" if repeats else "")


def _fmt(value: float | None, metric: str, diff: bool = False) -> str:
    if value is None:
        return "-"
    if metric == "r2":
        return f"{value:+.4f}" if diff else f"{value:.4f}"
    return f"{100 * value:+.2f}" if diff else f"{100 * value:.2f}"


def final_rows(comparison: Comparison) -> tuple[list[str], list[list[str]]]:
    """(header, rows) of the final scores: trial, cell, one column per run, then each later
    run minus the first."""
    letters = [chr(ord("A") + i) for i in range(len(comparison.runs))]
    head = ["trial", "cell", *letters, *[f"{x}-A" for x in letters[1:]]]
    rows = []
    metric = comparison.metric
    for identity in comparison.identities:
        for cell in comparison.cells:
            values = [comparison.value(r, identity, cell) for r in comparison.runs]
            if all(v is None for v in values):
                continue
            diffs = [None if v is None or values[0] is None else v - values[0] for v in values[1:]]
            rows.append(
                [
                    label(identity, comparison),
                    " ".join(cell),
                    *[_fmt(v, metric) for v in values],
                    *[_fmt(d, metric, diff=True) for d in diffs],
                ]
            )
    return head, rows


def paired_rows(comparison: Comparison) -> tuple[list[str], list[list[str]]]:
    """(header, rows) of the paired differences: per later run, trial type (model and arm)
    and cell, the mean difference to the first run over the repeats both have, its 95%
    interval (Student's t, as the report's repeats table; none for n=1) and n. Trial types
    are never pooled: a model's difference says nothing about another's."""
    head = ["runs", "trial", "cell", "mean", "95% CI", "n"]
    rows = []
    metric = comparison.metric
    for i, run in enumerate(comparison.runs[1:], start=1):
        for kind in comparison.kinds():
            for cell in comparison.cells:
                diffs = comparison.differences(run, cell, kind)
                if not diffs:
                    continue
                mean, low, high = t_interval(diffs)
                interval = (
                    "none (n=1)"
                    if math.isnan(low)
                    else f"[{_fmt(low, metric, diff=True)}, {_fmt(high, metric, diff=True)}]"
                )
                rows.append(
                    [
                        f"{chr(ord('A') + i)}-A",
                        f"{kind[0]} / {kind[1]}",
                        " ".join(cell),
                        _fmt(mean, metric, diff=True),
                        interval,
                        str(len(diffs)),
                    ]
                )
    return head, rows


def recipe_lines(comparison: Comparison) -> list[str]:
    """One line per later run: what its recipe changes against A's."""
    return [
        f"  {chr(ord('A') + i)} vs A: {describe(comparison.recipe_changes(run))}"
        for i, run in enumerate(comparison.runs[1:], start=1)
    ]


def refusal(comparison: Comparison) -> str:
    """Why paired statistics are not computed ('' when the recipes differ only in seed)."""
    blockers = comparison.blockers()
    if not blockers:
        return ""
    keys = sorted({k for ks in blockers.values() for k in ks})
    shown = ", ".join(keys[:6]) + (f" and {len(keys) - 6} more" if len(keys) > 6 else "")
    return (
        f"Paired differences are not computed: the recipes differ in more than the seed "
        f"({shown}), so a difference between these runs mixes the seed's share with the "
        "effect of those changes, and an interval would claim a precision it does not "
        "have. Compare runs of one recipe (e.g. --repeats, or another seed), or pass "
        "--force to compute them anyway."
    )


def align(head: list[str], rows: list[list[str]], left: int = 2) -> str:
    """A plain text table: the first ``left`` columns left-aligned, numbers right-aligned."""
    widths = [max(len(r[i]) for r in [head, *rows]) for i in range(len(head))]

    def line(cells: list[str]) -> str:
        return "  ".join(
            c.ljust(w) if i < left else c.rjust(w)
            for i, (c, w) in enumerate(zip(cells, widths, strict=True))
        ).rstrip()

    return "\n".join([line(head), "  ".join("-" * w for w in widths), *map(line, rows)])


def format_comparison(comparison: Comparison, force: bool = False) -> str:
    """What `kvision compare` prints: the runs, what their recipes change, the final scores,
    the paired differences (refused across recipes that differ in more than the seed,
    unless ``force``)."""
    unit = "R²" if comparison.metric == "r2" else "accuracy in %"
    diff_unit = "R²" if comparison.metric == "r2" else "percentage points"
    lines = ["Runs (A is the baseline):"]
    for i, run in enumerate(comparison.runs):
        lines.append(
            f"  {chr(ord('A') + i)}  {run.name}  [{run.status}, "
            f"{format_seconds(run.seconds)}, {len(run.trials)} trial(s)]"
        )
    lines += ["", "Recipes (what each run changes against A):", *recipe_lines(comparison)]
    head, rows = final_rows(comparison)
    lines += ["", f"Final scores ({unit}; each trial's last evaluation):"]
    lines.append(align(head, rows) if rows else "  no run has a final evaluation yet")
    lines += ["", f"Paired differences ({diff_unit}; per trial type, paired by repeat):"]
    if (why := refusal(comparison)) and not force:
        return "\n".join([*lines, why])
    if why:
        lines.append("--force: computed although the recipes differ (see above).")
    head, rows = paired_rows(comparison)
    lines.append(align(head, rows, left=3) if rows else "  no trial is evaluated in both runs")
    return "\n".join(lines)


def validation_curves(path: str | os.PathLike) -> dict[str, dict[str, tuple[list, list]]]:
    """Per trial: {"val_loss": (epochs, values), "val_<second>": ...} for overlaid charts."""
    reader = RunReader(path)
    events = reader.of("epoch_end")
    keys = {k for e in events for k in (e.get("metrics") or {})}
    second = f"val_{second_metric(keys)}"
    curves: dict[str, dict[str, tuple[list, list]]] = {}
    for e in sorted(reader.epochs(), key=lambda e: e.get("global_epoch") or 0):
        per = curves.setdefault(str(e.get("trial")), {"val_loss": ([], []), second: ([], [])})
        for key, (xs, ys) in per.items():
            value = (e.get("metrics") or {}).get(key)
            if isinstance(value, (int, float)):
                xs.append(int(e.get("global_epoch") or len(xs) + 1))
                ys.append(float(value))
    return curves
