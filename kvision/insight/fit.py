"""Function fitting (report 002): the fitted curve against the true one, per trial and all trials.

Each finished trial writes ``trials/<trial>/fit.json`` (the model's curve on a grid over
the domain, and its error against the truth) and ``images/fit/<trial>_fit.png``; the run's
last step overlays every trial's curve in ``images/fit/comparison_fit.png``.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from kvision.insight._plot import PALETTE, new_figure, save_figure, styles_for
from kvision.insight.curves import trial_labels
from kvision.runs import RunReader, RunWriter

if TYPE_CHECKING:
    import keras

    from kvision.data import Split
    from kvision.recipe.schema_data import DataSection

GRID_POINTS = 400


def fit_artifacts(
    writer: RunWriter, *, trial: str, model: keras.Model, data: DataSection, train: Split, cfg: Any
) -> list[dict]:
    """The trial's loss curves, its fit-vs-truth figure and fit.json."""
    from kvision.data.function import truth_curve
    from kvision.insight.emitter import Emitter, insight_section

    sec = insight_section(cfg)
    out = Emitter(writer, trial)
    if sec.curves:
        from kvision.insight.curves import plot_trial_curves

        out.emit(
            plot_trial_curves(
                RunReader(writer.dir), trial, out.path("curves", f"{trial}_loss-mae")
            ),
            "curves",
        )
    x, truth = truth_curve(data, GRID_POINTS)
    fitted = np.asarray(
        model.predict(x.astype(np.float32)[:, None], verbose=0), dtype=np.float64
    ).reshape(-1)
    record = {
        "trial": trial,
        "formula": data.formula,
        "x": x.tolist(),
        "truth": truth.tolist(),
        "fitted": fitted.tolist(),
        "mse_vs_truth": float(np.mean((fitted - truth) ** 2)),
        "max_abs_error": float(np.max(np.abs(fitted - truth))),
    }
    writer.write_json(f"trials/{trial}/fit.json", record)
    out.emit(plot_fit(record, train, out.path("fit", f"{trial}_fit")), "fit")
    return out.events


def plot_fit(record: dict, train: Split | None, path: str | os.PathLike) -> Path:
    """Truth, training pairs and the fitted curve of one trial."""
    fig = new_figure(6.0, 4.0)
    ax = fig.subplots()
    if train is not None and len(train):
        ax.scatter(
            train.images[:, 0], train.labels, s=6, color="0.6", alpha=0.6, label="training pairs"
        )
    ax.plot(record["x"], record["truth"], color="black", linewidth=2, label="truth")
    ax.plot(record["x"], record["fitted"], color="tab:red", linewidth=1.5, label="fitted")
    _finish_axes(ax, record)
    fig.suptitle(f"{record['trial']}: fit vs truth (MSE {record['mse_vs_truth']:.4g})", fontsize=10)
    return save_figure(fig, path)


def plot_fit_comparison(reader: RunReader, fits: dict[str, dict], path: str | os.PathLike) -> Path:
    """Every trial's fitted curve over the truth; colour = arm, and the MSE in the legend."""
    labels = trial_labels(reader)
    colours = styles_for([labels.get(t, ("", t))[1] for t in fits], PALETTE)
    fig = new_figure(7.5, 4.5)
    ax = fig.subplots()
    first = next(iter(fits.values()))
    ax.plot(first["x"], first["truth"], color="black", linewidth=2.5, label="truth")
    for trial, record in fits.items():
        arm = labels.get(trial, ("", trial))[1]
        ax.plot(
            record["x"],
            record["fitted"],
            color=colours[arm],
            linewidth=1.2,
            label=f"{trial} (MSE {record['mse_vs_truth']:.3g})",
        )
    _finish_axes(ax, first)
    fig.suptitle("Fitted curves of all trials vs the truth", fontsize=10)
    return save_figure(fig, path)


def _finish_axes(ax, record: dict) -> None:
    ax.set_xlabel("x")
    ax.set_ylabel("y")
    ax.set_title(f"y = {record['formula']}", fontsize=9)
    # A diverged fit (report 002's lr = 1) must not squash the truth into a flat line.
    truth = np.asarray(record["truth"])
    margin = 0.25 * float(np.ptp(truth) or 1.0)
    ax.set_ylim(float(truth.min()) - margin, float(truth.max()) + margin)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7)
