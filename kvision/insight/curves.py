"""Loss and accuracy (or MAE) curves from a run's epoch_end events, stage boundaries marked."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

from kvision.insight._plot import (
    LINESTYLES,
    PALETTE,
    integer_ticks,
    new_figure,
    save_figure,
    styles_for,
)
from kvision.runs import RunReader, second_metric

#: Point markers only while they can be told apart (report 002 trains for thousands of epochs).
MAX_MARKED_EPOCHS = 60


def _marker(xs: list[int]) -> dict:
    return {"marker": "o", "markersize": 3} if len(xs) <= MAX_MARKED_EPOCHS else {}


@dataclass
class History:
    """One trial's metrics per global epoch and where its stages begin."""

    epochs: list[int] = field(default_factory=list)
    metrics: dict[str, list[float | None]] = field(default_factory=dict)
    #: (x position between two epochs, name of the stage that starts there)
    boundaries: list[tuple[float, str]] = field(default_factory=list)
    first_stage: str | None = None


def trial_history(reader: RunReader, trial: str) -> History:
    """The trial's epoch_end events in order of global epoch (after a resume the latest wins)."""
    events = sorted(reader.epochs(trial), key=lambda e: e.get("global_epoch") or 0)
    hist = History()
    keys = {k for e in events for k in (e.get("metrics") or {})}
    hist.metrics = {k: [] for k in sorted(keys)}
    previous = None
    for e in events:
        x = int(e.get("global_epoch") or len(hist.epochs) + 1)
        if previous is None:
            hist.first_stage = e.get("stage")
        elif e.get("stage") != previous:
            hist.boundaries.append((x - 0.5, str(e.get("stage"))))
        previous = e.get("stage")
        hist.epochs.append(x)
        for k in keys:
            hist.metrics[k].append((e.get("metrics") or {}).get(k))
    return hist


def _series(hist: History, key: str) -> tuple[list[int], list[float]]:
    pairs = [
        (x, v)
        for x, v in zip(hist.epochs, hist.metrics.get(key, []), strict=False)
        if v is not None
    ]
    return [p[0] for p in pairs], [float(p[1]) for p in pairs]


def _mark_stages(ax, hist: History) -> None:
    for x, stage in hist.boundaries:
        ax.axvline(x, color="0.4", linestyle="--", linewidth=1)
        ax.annotate(
            stage,
            (x, 1.0),
            xycoords=("data", "axes fraction"),
            fontsize=7,
            xytext=(2, -10),
            textcoords="offset points",
            color="0.3",
        )


def plot_trial_curves(reader: RunReader, trial: str, path: str | os.PathLike) -> Path | None:
    """Loss and accuracy per epoch (train, validation) with a dashed line per stage boundary.

    Returns None when the trial has no epoch_end events yet.
    """
    hist = trial_history(reader, trial)
    if not hist.epochs:
        return None
    fig = new_figure(8.0, 3.2)
    second = second_metric(set(hist.metrics))
    for ax, name in zip(fig.subplots(1, 2), ("loss", second), strict=True):
        for key, label in ((name, "train"), (f"val_{name}", "validation")):
            xs, ys = _series(hist, key)
            if xs:
                ax.plot(xs, ys, label=label, **_marker(xs))
        _mark_stages(ax, hist)
        integer_ticks(ax.xaxis)
        ax.set_xlabel("epoch")
        ax.set_ylabel(name)
        ax.set_title(name, fontsize=9)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7)
    first = f" (stage {hist.first_stage} first)" if hist.boundaries and hist.first_stage else ""
    fig.suptitle(f"{trial}: loss and {second} per epoch{first}", fontsize=10)
    return save_figure(fig, path)


def trial_labels(reader: RunReader) -> dict[str, tuple[str, str]]:
    """trial -> (model, arm), from trial_started events (or the run_started trial list)."""
    out: dict[str, tuple[str, str]] = {}
    for e in reader.of("run_started"):
        for t in e.get("trials") or []:
            out[t["trial"]] = (str(t.get("model")), str(t.get("arm")))
    for e in reader.of("trial_started"):
        out[e["trial"]] = (str(e.get("model")), str(e.get("arm")))
    return out


#: Markers per arm, so arms whose curves coincide (naive and naive_matched share their first
#: epochs) stay visible under each other.
ARM_MARKERS = ("o", "s", "^", "D", "v", "P")


def plot_comparison(reader: RunReader, path: str | os.PathLike) -> Path | None:
    """Validation loss and accuracy of every trial, one row per model: colour, line style and
    marker say the arm; each arm's stage boundaries are marked in its colour.

    Returns None when no trial has epoch_end events.
    """
    labels = trial_labels(reader)
    trials = [t for t in labels if reader.epochs(t)]
    if not trials:
        return None
    arms = [arm for _, arm in labels.values()]  # run order: stable
    colours = styles_for(arms, PALETTE)
    dashes = styles_for(arms, LINESTYLES)
    markers = styles_for(arms, ARM_MARKERS)
    models = list(dict.fromkeys(labels[t][0] for t in trials))
    histories = {t: trial_history(reader, t) for t in trials}
    second = second_metric({k for h in histories.values() for k in h.metrics})
    fig = new_figure(8.5, 0.4 + 2.8 * len(models))
    grid = fig.subplots(len(models), 2, squeeze=False)
    for row, model in zip(grid, models, strict=True):
        for ax, key in zip(row, ("val_loss", f"val_{second}"), strict=True):
            shown: set[str] = set()  # one legend entry per arm, however many repeats
            for t in (t for t in trials if labels[t][0] == model):
                arm = labels[t][1]
                xs, ys = _series(histories[t], key)
                # earlier arms get larger markers: coinciding points stay visible, nested
                size = max(3.0, 8.0 - 2.0 * list(colours).index(arm))
                marks = {"marker": markers[arm], "markersize": size} if _marker(xs) else {}
                name = "_nolegend_" if arm in shown else arm
                shown.add(arm)
                ax.plot(xs, ys, color=colours[arm], linestyle=dashes[arm], label=name, **marks)
                # a repeat's boundaries coincide with its first repeat's: marked once
                for x, stage in histories[t].boundaries if name == arm else []:
                    ax.axvline(x, color=colours[arm], linestyle=":", linewidth=1)
                    ax.annotate(
                        f"{arm}: {stage}",
                        (x, 1.0),
                        xycoords=("data", "axes fraction"),
                        fontsize=7,
                        xytext=(2, -10),
                        textcoords="offset points",
                        color=colours[arm],
                    )
            integer_ticks(ax.xaxis)
            ax.set_xlabel("epoch")
            ax.set_ylabel(key.replace("_", " "))
            ax.set_title(f"{model}: {key.replace('val_', 'validation ')}", fontsize=9)
            ax.grid(alpha=0.3)
            ax.legend(fontsize=7)
    fig.suptitle(
        "Comparison of arms per model (dotted: where an arm's next stage starts)", fontsize=10
    )
    return save_figure(fig, path)


def plot_runs_comparison(paths: list[str | os.PathLike], path: str | os.PathLike) -> Path | None:
    """Validation loss and accuracy (or MAE) of several runs, one row of panels per model:
    colour = run, line style = arm (a dozen lines on one pair of axes cannot be read).

    Returns None when no run has epoch_end events.
    """
    from kvision.runs.compare import trial_identities, validation_curves

    runs = [(Path(p).name, validation_curves(p), trial_identities(RunReader(p))) for p in paths]
    if not any(curves for _, curves, _ in runs):
        return None
    keys = sorted(
        {k for _, curves, _ in runs for per in curves.values() for k in per},
        key=lambda k: k != "val_loss",
    )
    ids = [ids.get(t, (t, "", 0)) for _, curves, ids in runs for t in curves]
    models = list(dict.fromkeys(i[0] for i in ids))
    dashes = styles_for([i[1] for i in ids], LINESTYLES)
    fig = new_figure(4.2 * len(keys) + 0.6, 1.0 + 2.6 * len(models))
    grid = fig.subplots(len(models), len(keys), squeeze=False)
    for row, model in zip(grid, models, strict=True):
        for ax, key in zip(row, keys, strict=True):
            for n, (_name, curves, ids_) in enumerate(runs):
                for trial, per in curves.items():
                    _model, arm, _repeat = ids_.get(trial, (trial, "", 0))
                    xs, ys = per.get(key, ([], []))
                    if _model != model or not xs:
                        continue
                    ax.plot(
                        xs,
                        ys,
                        color=PALETTE[n % len(PALETTE)],
                        linestyle=dashes.get(arm, "-"),
                        # A widest: a later run that repeats A exactly stays visible on top
                        linewidth=max(2.6 - 0.7 * n, 1.0),
                        alpha=0.85,
                        **_marker(xs),  # a one-epoch arm is a point
                    )
            integer_ticks(ax.xaxis)
            ax.set_xlabel("epoch")
            ax.set_ylabel(key.replace("_", " "))
            ax.set_title(f"{model}: {key.replace('val_', 'validation ')}", fontsize=9)
            ax.grid(alpha=0.3)
    _runs_legend(fig, [name for name, _, _ in runs], dashes)
    fig.suptitle("Runs compared, one row per model (colour: run, line style: arm)", fontsize=9)
    return save_figure(fig, path)


def _runs_legend(fig, names: list[str], dashes: dict[str, str]) -> None:
    """One legend under the panels: a colour per run, a line style per arm (not one entry
    per line: runs x arms x repeats entries fill the panels)."""
    from matplotlib.lines import Line2D

    handles = [
        Line2D([], [], color=PALETTE[n % len(PALETTE)], linewidth=2.5) for n in range(len(names))
    ] + [Line2D([], [], color="0.3", linestyle=style) for style in dashes.values()]
    labels = [f"{chr(ord('A') + n)} = {name}" for n, name in enumerate(names)] + list(dashes)
    fig.legend(handles, labels, loc="outside lower center", ncols=min(len(labels), 4), fontsize=7)
