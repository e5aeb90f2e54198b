"""The runner's entry points: pictures and tables at each checkpoint, per trial, per run.

Each hook writes PNGs under ``images/<kind>/`` and JSON tables under ``trials/<trial>/``
(atomically), emits one ``artifact`` event per file through the run's writer and returns
those events. File names say what they show: ``<trial>_<what>_<checkpoint>.png``.
"""

from __future__ import annotations

import io
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from kvision.insight import _layers
from kvision.insight._names import slug
from kvision.insight.emitter import Emitter, insight_section
from kvision.insight.render_worker import RUN_READER
from kvision.insight.report_sections import report_markdown
from kvision.runs import RunReader, RunWriter, atomic_write_bytes

__all__ = [
    "Samples",
    "check_model",
    "checkpoint_artifacts",
    "pick_samples",
    "report_markdown",
    "run_artifacts",
    "trial_artifacts",
]

if TYPE_CHECKING:
    import keras


#: Per-trial folder (inside trials/<trial>/) for data later hooks and readers need.
INSIGHT_DIR = "insight"


@dataclass
class Samples:
    """The sample images figures show: uint8 NHWC images, their labels and the class names."""

    images: np.ndarray
    labels: np.ndarray
    class_names: list[str]

    def row_titles(self) -> list[str]:
        """One caption per image: its class name."""
        return [self.class_names[int(c)] for c in self.labels]

    def head(self, n: int) -> Samples:
        """The first ``n`` samples."""
        return Samples(self.images[:n], self.labels[:n], self.class_names)


def pick_samples(labels: np.ndarray, per_class: int = 1, seed: int = 0) -> np.ndarray:
    """Indices of ``per_class`` images of every class (fewer if a class has fewer), seeded.

    Ordered by class, so figures show the classes in the dataset's order.
    """
    rng = np.random.default_rng(seed)
    labels = np.asarray(labels)
    picked = []
    for c in np.unique(labels):
        members = np.flatnonzero(labels == c)
        picked.extend(sorted(rng.choice(members, size=min(per_class, len(members)), replace=False)))
    return np.asarray(picked, dtype=np.int64)


def check_model(model: keras.Model, cfg: Any) -> None:
    """Raise KvisionError now, before training, if the [insight] layer names do not fit ``model``.

    Checks ``stages``, ``cam.layer`` and ``retrieval.layer``; the runner may call it right
    after building each model so that a typo does not surface only after the first stage.
    """
    from kvision.insight.retrieval import feature_layer

    sec = insight_section(cfg)
    if not sec.enabled:
        return
    if _layers.has_conv(model):
        if sec.activations:
            _layers.spatial_stages(model, sec.stages)
        if sec.cam.enabled:
            _layers.cam_layer(model, sec.cam.layer)
    if sec.retrieval.enabled:
        feature_layer(model, sec.retrieval.layer)


def checkpoint_artifacts(
    writer: RunWriter,
    *,
    trial: str,
    label: str,
    model: keras.Model,
    samples: Samples,
    cfg: Any,
    renderer: Any = None,
) -> list[dict]:
    """Filters of the first conv and activations of the chosen stages at one checkpoint.

    ``renderer`` (kvision.insight.render_worker) draws the figures; default: here, at once.
    """
    sec = insight_section(cfg)
    if (
        not sec.enabled
        or (sec.checkpoints and label not in sec.checkpoints)
        or not _layers.has_conv(model)
    ):
        return []
    out = Emitter(writer, trial, renderer)
    if sec.filters:
        _checkpoint_filters(out, label, model, sec)
    if sec.activations and len(samples.images):
        _checkpoint_activations(out, label, model, samples.head(sec.max_samples), sec)
    return out.events


def _checkpoint_filters(out: Emitter, label: str, model: keras.Model, sec) -> None:
    from kvision.insight.filters import conv_kernel

    layer = _layers.first_conv(model)
    kernel = conv_kernel(model, layer)
    buf = io.BytesIO()
    np.save(buf, kernel[..., : sec.max_filters])  # kept so the trial figure can compare
    atomic_write_bytes(
        out.trial_file(f"{INSIGHT_DIR}/first_conv_{slug(label)}.npy"), buf.getvalue()
    )
    out.draw(
        "filters",
        f"{out.trial}_first-conv_{label}",
        "filters",
        kernels={label: kernel},
        max_filters=sec.max_filters,
        title=f"{out.trial}: first conv '{layer}' filters, {label}",
    )


def _batch_size(sec, images: np.ndarray) -> int:
    """Images per forward pass: the recipe's ``insight.batch_size``, else the evaluation's
    size for these images. In the main job the sweep's variants of 100 images then go one to
    a batch instead of 64 + 36: AlexNet/2's dense layers read their 44 MB of weights once per
    batch (benchmarks/sweep_batch.py times one sweep at both sizes)."""
    if sec.batch_size:
        return sec.batch_size
    from kvision.data.feed import prediction_batch_size

    return prediction_batch_size(images.shape[1:])


def _checkpoint_activations(
    out: Emitter, label: str, model: keras.Model, samples: Samples, sec
) -> None:
    from kvision.insight.activations import activation_maps

    layers = _layers.spatial_stages(model, sec.stages)
    maps = activation_maps(model, layers, samples.images, _batch_size(sec, samples.images))
    titles = samples.row_titles()
    out.draw(
        "activations",
        f"{out.trial}_stage-means_{label}",
        "stage_means",
        images=samples.images,
        maps=maps,
        row_titles=titles,
        title=f"{out.trial}: channel-mean activations, {label}",
    )
    if sec.top_channels:
        for stage, fmap in maps.items():
            out.draw(
                "activations",
                f"{out.trial}_{stage}_top-channels_{label}",
                "top_channels",
                images=samples.images,
                fmap=fmap,
                row_titles=titles,
                k=sec.top_channels,
                title=f"{out.trial}: strongest {stage} channels, {label}",
            )


def trial_artifacts(
    writer: RunWriter,
    *,
    trial: str,
    model: keras.Model,
    test_sets: dict[str, tuple[np.ndarray, np.ndarray]],
    class_names: list[str],
    samples: Samples,
    cfg: Any,
    predicted: dict[str, np.ndarray] | None = None,
    renderer: Any = None,
) -> list[dict]:
    """Curves, filters across checkpoints, classification, Grad-CAM, robustness, retrieval.

    ``predicted`` maps a condition to the final model's predicted classes on its test set
    (the runner's last evaluation has them), so they are not computed a second time.
    ``renderer`` draws the figures (default: here, at once).
    """
    sec = insight_section(cfg)
    if not sec.enabled:
        return []
    out = Emitter(writer, trial, renderer)
    reader = RunReader(writer.dir)
    if sec.curves:
        out.draw("curves", f"{trial}_loss-accuracy", "trial_curves", reader=RUN_READER, trial=trial)
    conv = _layers.has_conv(model)
    if sec.filters and conv:
        _trial_filters(out, reader, sec)
    if sec.classification:
        _trial_classification(out, model, test_sets, class_names, sec, predicted or {})
    if sec.cam.enabled and conv and len(samples.images):
        _trial_cam(out, model, samples.head(sec.max_samples), sec)
    if sec.robustness.enabled and test_sets:
        _trial_robustness(out, model, test_sets, sec, predicted or {})
    if sec.retrieval.enabled and test_sets:
        _trial_retrieval(out, model, test_sets, class_names, sec)
    return out.events


def _trial_filters(out: Emitter, reader: RunReader, sec) -> None:
    """The saved first-conv kernels of every checkpoint, side by side, in checkpoint order."""
    folder = out.trial_file(INSIGHT_DIR)
    order = [e.get("checkpoint") for e in reader.evaluations() if e.get("trial") == out.trial]
    labels = [
        c for c in dict.fromkeys(order) if c and (folder / f"first_conv_{slug(c)}.npy").exists()
    ]
    if len(labels) < 2:
        return  # one checkpoint: its own figure already shows it
    kernels = {c: np.load(folder / f"first_conv_{slug(c)}.npy") for c in labels}
    out.draw(
        "filters",
        f"{out.trial}_first-conv_checkpoints",
        "filters",
        kernels=kernels,
        max_filters=sec.max_filters,
        title=f"{out.trial}: first conv filters across checkpoints",
    )


def _trial_classification(
    out: Emitter, model: keras.Model, test_sets, class_names, sec, predicted: dict[str, np.ndarray]
) -> None:
    from kvision.insight.classification import classification_summary, predict_classes

    for condition, (images, labels) in test_sets.items():
        y_pred = predicted.get(condition)
        if y_pred is None or len(y_pred) != len(labels):
            y_pred = predict_classes(model, images, _batch_size(sec, images))
        summary = classification_summary(labels, y_pred, class_names)
        summary.update(trial=out.trial, condition=condition, split="test")
        out.writer.write_json(f"trials/{out.trial}/classification_{slug(condition)}.json", summary)
        out.draw(
            "confusion",
            f"{out.trial}_{condition}_test",
            "confusion",
            summary=summary,
            title=f"{out.trial}: confusion matrix, {condition} test",
        )


def _trial_cam(out: Emitter, model: keras.Model, samples: Samples, sec) -> None:
    from kvision.insight.cam import METHODS, cam_panels

    layer = _layers.cam_layer(model, sec.cam.layer)
    methods = METHODS if sec.cam.method == "both" else (sec.cam.method,)
    targets = ("true", "predicted") if sec.cam.classes == "both" else (sec.cam.classes,)
    panels = cam_panels(
        model,
        layer,
        samples.images,
        samples.labels,
        samples.class_names,
        methods=methods,
        targets=targets,
        batch_size=min(_batch_size(sec, samples.images), 16),
    )
    method_name = "-".join(m.replace("+", "p") for m in methods)
    out.draw(
        "cam",
        f"{out.trial}_{method_name}_{layer}",
        "cams",
        images=samples.images,
        panels=panels,
        row_titles=samples.row_titles(),
        title=f"{out.trial}: class activation maps from '{layer}'",
    )


def _robustness_condition(test_sets: dict, wanted: str | None) -> str:
    from kvision.errors import KvisionError, did_you_mean

    if wanted is None:
        return next(iter(test_sets))
    if wanted not in test_sets:
        raise KvisionError(
            f"insight.robustness.condition '{wanted}' is not an evaluated condition."
            f"{did_you_mean(wanted, test_sets)} Evaluated: {', '.join(test_sets)}."
        )
    return wanted


def _trial_robustness(
    out: Emitter, model: keras.Model, test_sets, sec, predicted: dict[str, np.ndarray]
) -> None:
    from kvision.insight.curves import trial_labels
    from kvision.insight.robustness import robustness_curves, stratified_subset

    rob = sec.robustness
    condition = _robustness_condition(test_sets, rob.condition)
    images, labels = test_sets[condition]
    keep = stratified_subset(labels, rob.max_images)
    subset = images[keep]
    # The last evaluation's test predictions: the sweep's unblurred images, and the recipe's
    # own blur, are those images again (robustness_curves checks the pixels).
    known = [
        (subset if c == condition else test_sets[c][0][keep], classes[keep])
        for c, classes in predicted.items()
        if c in test_sets and len(classes) == len(test_sets[c][1])
    ]
    with out.held_while():  # the worker's figures wait: the sweep takes both cores
        curves = robustness_curves(
            model,
            subset,
            labels[keep],
            sigmas=rob.sigmas,
            kinds=rob.kinds,
            severities=rob.severities,
            batch_size=_batch_size(sec, subset),
            known=known,
        )
    curves.update(trial=out.trial, condition=condition)
    out.writer.write_json(f"trials/{out.trial}/robustness.json", curves)
    out.draw(
        "robustness",
        f"{out.trial}_blur-robustness",
        "robustness",
        curves={out.trial: curves},
        labels=trial_labels(RunReader(out.writer.dir)),
        title=f"{out.trial}: test accuracy under blur ({condition})",
    )


def _trial_retrieval(out: Emitter, model: keras.Model, test_sets, class_names, sec) -> None:
    from kvision.insight.retrieval import FeatureIndex, encode, encoder, precision_at_k

    ret = sec.retrieval
    condition = next(iter(test_sets))
    images, labels = test_sets[condition]
    feats = encode(encoder(model, ret.layer), images, _batch_size(sec, images))
    index = FeatureIndex(feats, labels)
    p_at_k = precision_at_k(index, feats, labels, ret.k, exclude_self=True)
    queries = pick_samples(labels, 1)[: ret.queries]
    for q, hit in zip(
        queries, index.search(feats[queries], ret.k, ret.threshold, exclude=queries), strict=True
    ):
        captions = [
            f"{class_names[labels[i]]} d={d:.2f}"
            for i, d in zip(hit.indices, hit.distances, strict=True)
        ]
        out.draw(
            "retrieval",
            f"{out.trial}_query-{q}_top-{ret.k}",
            "strip",
            query=images[q],
            neighbours=[images[i] for i in hit.indices],
            captions=captions,
            query_caption=f"query: {class_names[labels[q]]}",
            title=f"{out.trial}: nearest {condition} test images (precision@{ret.k} {p_at_k:.3f})",
        )
    out.writer.write_json(
        f"trials/{out.trial}/retrieval.json",
        {
            "trial": out.trial,
            "condition": condition,
            "k": ret.k,
            "n": int(len(labels)),
            "precision_at_k": p_at_k,
        },
    )


def run_artifacts(writer: RunWriter, *, cfg: Any, renderer: Any = None) -> list[dict]:
    """The comparison figures over trials (curves, fits) and the robustness comparison;
    ``renderer`` draws them (default: here, at once)."""
    from kvision.insight.curves import trial_labels

    sec = insight_section(cfg)
    if not sec.enabled:
        return []
    out = Emitter(writer, None, renderer)
    reader = RunReader(writer.dir)
    if sec.curves:
        out.draw("curves", "comparison_validation", "comparison", reader=RUN_READER)
    fits = _read_trial_json(writer.dir, reader.trials(), "fit.json")
    if fits:
        out.draw("fit", "comparison_fit", "fit_comparison", reader=RUN_READER, fits=fits)
    curves = _read_trial_json(writer.dir, reader.trials(), "robustness.json")
    if curves:
        from kvision.insight.robustness import summarise

        baseline = sec.robustness.baseline or next(iter(curves))
        if baseline not in curves:
            baseline = _unknown_baseline(baseline, curves)
        summary = summarise(curves, baseline)
        writer.write_json(
            "robustness.json", {"baseline": baseline, "curves": curves, "summary": summary}
        )
        out.draw(
            "robustness",
            "comparison_blur-robustness",
            "robustness",
            curves=curves,
            labels=trial_labels(reader),
            title="Test accuracy under blur, all trials",
        )
    return out.events


def _unknown_baseline(baseline: str, curves: dict) -> str:
    from kvision.errors import KvisionError, did_you_mean

    raise KvisionError(
        f"insight.robustness.baseline '{baseline}' is not a trial of this run."
        f"{did_you_mean(baseline, curves)} Trials: {', '.join(curves)}."
    )


def _read_trial_json(run_dir: Path, trials: list[str], name: str) -> dict[str, dict]:
    import json

    found = {}
    for trial in trials:
        path = Path(run_dir) / "trials" / trial / name
        if path.is_file():
            found[trial] = json.loads(path.read_text("utf-8"))
    return found
