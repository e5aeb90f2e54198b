"""Blur robustness: test accuracy against blur strength, and one-number summaries per trial.

Two sweeps over the same stratified test subset: a Gaussian sigma sweep (report 000's blur
at any strength) and every blur kind of kvision.data.blur at ImageNet-C severities 1-5.
The summaries are the mean accuracy over all severity points and, in the spirit of
ImageNet-C's mCE, each kind's summed error divided by a baseline trial's, averaged over kinds.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from kvision.insight import _plot
from kvision.insight._plot import LINESTYLES, PALETTE, new_figure, save_figure, styles_for

if TYPE_CHECKING:
    import keras


def stratified_subset(labels: np.ndarray, max_images: int, seed: int = 0) -> np.ndarray:
    """Indices of at most ``max_images`` images keeping the class proportions (seeded)."""
    if len(labels) <= max_images:
        return np.arange(len(labels))
    from sklearn.model_selection import train_test_split

    keep, _ = train_test_split(
        np.arange(len(labels)), train_size=max_images, stratify=labels, random_state=seed
    )
    return np.sort(keep)


def accuracy(
    model: keras.Model, images: np.ndarray, labels: np.ndarray, batch_size: int = 64
) -> float:
    """Top-1 accuracy of ``model`` on uint8 images."""
    from kvision.insight.classification import predict_classes

    return float((predict_classes(model, images, batch_size) == labels).mean())


#: Blurred test subsets kept in memory, so the trials of a run (same images, same blurs)
#: blur each subset once; capped because 256-px images would otherwise fill memory.
_CACHE_BYTES = 512 * 2**20
_cache: dict[tuple, np.ndarray] = {}


def blurred(images: np.ndarray, kind: str, params: dict) -> np.ndarray:
    """``apply_blur(images, kind, params)``, remembered for the next trial of the run."""
    from kvision.data.blur import apply_blur

    digest = hashlib.blake2b(images.tobytes(), digest_size=16).hexdigest()
    key = (digest, images.shape, kind, tuple(sorted(params.items())))
    if key not in _cache:
        out = apply_blur(images, kind, params)
        while _cache and sum(a.nbytes for a in _cache.values()) + out.nbytes > _CACHE_BYTES:
            _cache.pop(next(iter(_cache)))  # oldest first
        if out.nbytes <= _CACHE_BYTES:
            _cache[key] = out
        return out
    return _cache[key]


def robustness_curves(
    model: keras.Model,
    images: np.ndarray,
    labels: np.ndarray,
    *,
    sigmas: tuple[float, ...],
    kinds: tuple[str, ...],
    severities: tuple[int, ...],
    batch_size: int = 64,
    known: Sequence[tuple[np.ndarray, np.ndarray]] = (),
) -> dict:
    """Accuracy per Gaussian sigma and per (blur kind, severity) on the given test images.

    Returns ``{"n": N, "sigma": {sigma: acc}, "severity": {kind: {severity: acc}}}`` with
    string keys, ready for JSON. Every variant is predicted in ONE call whose batches are cut
    at the variants' ends: the same batches, hence the same numbers, as a call per variant.

    ``known``: (images, the model's predicted classes) the caller already has, such as the
    trial's last evaluation of each condition's test set. A variant whose pixels equal one of
    those (sigma 0 is the clear images; the recipe's own blur is its blurred condition) takes
    those classes instead of being predicted again.
    """
    from kvision.data.blur import severity_params
    from kvision.insight._batches import predict_classes_of

    hw = tuple(images.shape[1:3])
    variants = {
        ("sigma", f"{s:g}"): (
            images if s == 0 else blurred(images, "gaussian", {"sigma": float(s)})
        )
        for s in sigmas
    }
    for kind in kinds:
        for sev in severities:
            variants[(kind, str(sev))] = blurred(images, kind, severity_params(kind, sev, hw))
    classes = {key: _known_classes(known, x) for key, x in variants.items()}
    todo = [key for key, found in classes.items() if found is None]
    if todo:
        predicted = predict_classes_of(model, [variants[key] for key in todo], batch_size)
        classes.update(zip(todo, predicted, strict=True))
    acc = {key: float((found == labels).mean()) for key, found in classes.items()}
    return {
        "n": int(len(labels)),
        "sigma": {f"{s:g}": acc[("sigma", f"{s:g}")] for s in sigmas},
        "severity": {
            kind: {str(sev): acc[(kind, str(sev))] for sev in severities} for kind in kinds
        },
    }


def _known_classes(
    known: Sequence[tuple[np.ndarray, np.ndarray]], images: np.ndarray
) -> np.ndarray | None:
    """The classes ``known`` holds for exactly these pixels, or None."""
    for seen, classes in known:
        if seen.shape == images.shape and np.array_equal(seen, images):
            return classes
    return None


def summarise(curves: dict[str, dict], baseline: str) -> dict[str, dict]:
    """Per trial: mean accuracy over severities, over sigmas > 0, per-kind CE and mCE.

    CE_kind = sum_s err(trial, kind, s) / sum_s err(baseline, kind, s); mCE is their mean.
    The baseline's own mCE is 1 by construction; lower is more robust.
    """
    base = curves[baseline]["severity"]
    out = {}
    for trial, c in curves.items():
        points = [a for per_kind in c["severity"].values() for a in per_kind.values()]
        blurred = [a for s, a in c["sigma"].items() if float(s) > 0]
        ce = {}
        for kind, per_sev in c["severity"].items():
            base_err = sum(1.0 - a for a in base.get(kind, {}).values())
            if base_err > 0:
                ce[kind] = sum(1.0 - a for a in per_sev.values()) / base_err
        out[trial] = {
            "mean_accuracy": float(np.mean(points)) if points else None,
            "mean_sigma_accuracy": float(np.mean(blurred)) if blurred else None,
            "ce": ce,
            "mce": float(np.mean(list(ce.values()))) if ce else None,
        }
    return out


def plot_robustness(
    curves: dict[str, dict],
    labels: dict[str, tuple[str, str]],
    path: str | os.PathLike,
    *,
    title: str,
) -> Path | None:
    """Accuracy vs sigma (left) and mean accuracy over kinds vs severity (right), per trial.

    ``labels`` maps trial -> (model, arm): colour says arm and line style says model, as in
    the curve comparison. Returns None when there is nothing to draw.
    """
    trials = list(curves)
    if not trials:
        return None
    # Styles follow the run's trial order, so an arm has one colour in every figure.
    everyone = list(labels) + trials
    colours = styles_for([labels.get(t, (t, t))[1] for t in everyone], PALETTE)
    dashes = styles_for([labels.get(t, (t, t))[0] for t in everyone], LINESTYLES)
    fig = new_figure(8.5, 3.4)
    ax_sigma, ax_sev = fig.subplots(1, 2)
    for t in trials:
        model, arm = labels.get(t, (t, t))
        style = {
            "color": colours[arm],
            "linestyle": dashes[model],
            "marker": "o",
            "markersize": 3,
            "label": t,
        }
        sig = curves[t]["sigma"]
        if sig:
            ax_sigma.plot([float(s) for s in sig], list(sig.values()), **style)
        sev = curves[t]["severity"]
        if sev:
            levels = sorted({int(s) for per in sev.values() for s in per})
            means = [
                np.mean([per[str(s)] for per in sev.values() if str(s) in per]) for s in levels
            ]
            ax_sev.plot(levels, means, **style)
    for ax, xlabel, name in (
        (ax_sigma, "Gaussian sigma (pixels)", "Gaussian blur sweep"),
        (ax_sev, "severity", "mean over blur kinds"),
    ):
        ax.set_xlabel(xlabel)
        ax.set_ylabel("test accuracy")
        ax.set_title(name, fontsize=9)
        ax.set_ylim(0, 1.02)
        ax.grid(alpha=0.3)
        if ax.lines:
            ax.legend(fontsize=7)
    _plot.integer_ticks(ax_sev.xaxis)
    fig.suptitle(title, fontsize=10)
    return save_figure(fig, path)


def markdown_table(curves: dict[str, dict], summary: dict[str, dict], baseline: str) -> str:
    """Accuracy per sigma and per kind (mean over severities), then the summaries."""
    sigmas = sorted({s for c in curves.values() for s in c["sigma"]}, key=float)
    kinds = list(dict.fromkeys(k for c in curves.values() for k in c["severity"]))
    head = (
        ["trial"]
        + [f"σ={s}" for s in sigmas]
        + kinds
        + ["mean acc (severities)", f"mCE (vs {baseline})"]
    )
    lines = ["| " + " | ".join(head) + " |", "|---" + "|---:" * (len(head) - 1) + "|"]
    for trial, c in curves.items():
        s = summary[trial]
        cells = [_pct(c["sigma"].get(x)) for x in sigmas]
        cells += [
            _pct(np.mean(list(c["severity"][k].values()))) if k in c["severity"] else "–"
            for k in kinds
        ]
        cells += [_pct(s["mean_accuracy"]), f"{s['mce']:.3f}" if s["mce"] is not None else "–"]
        lines.append(f"| {trial} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def _pct(value) -> str:
    return "–" if value is None else f"{100 * float(value):.1f}"
