"""The work behind ``kvision viz``: load models and images, draw, return the files written."""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from kvision.data import image_files
from kvision.errors import KvisionError
from kvision.insight import _layers
from kvision.insight._names import slug
from kvision.portable.loading import load_checked
from kvision.portable.target import ModelArg, resolve

if TYPE_CHECKING:
    import keras


@dataclass
class Target:
    """What ``kvision viz`` was pointed at: models by name, class names, where output goes."""

    models: dict[str, Path]
    class_names: list[str] | None
    out: Path
    run_dir: Path | None = None
    trial: str | None = None


def resolve_target(target: ModelArg, out: str | Path | None, *, need_models: bool = True) -> Target:
    """The .keras models ``target`` points at (kvision.portable.target) and the output folder:
    ``out``, else the run's images/ folder, else ./viz-<model> for a file."""
    pointed = resolve(target, reads=(".keras",), need_models=need_models)
    if pointed.run_dir is not None:
        default = pointed.run_dir / "images"
    else:
        default = Path(f"viz-{next(iter(pointed.models))}")
    return Target(
        pointed.models,
        pointed.class_names(),
        Path(out) if out else default,
        pointed.run_dir,
        pointed.trial,
    )


def _input_spec(model: keras.Model) -> tuple[tuple[int, int] | None, int]:
    _, h, w, c = model.inputs[0].shape
    return ((int(h), int(w)) if h and w else None), int(c)


def read_images(paths: list[str], model: keras.Model) -> np.ndarray:
    """Image files as one uint8 batch the model takes."""
    return image_files.read_images(paths, *_input_spec(model))


def read_image_folder(
    folder: str | Path, model: keras.Model
) -> tuple[np.ndarray, np.ndarray, list[str]]:
    """Every image under ``folder``: (images, labels, class names); sub-folders are classes."""
    return image_files.labelled_folder(folder, *_input_spec(model))


def _at_least(value: int, low: int, flag: str) -> int:
    if value < low:
        raise KvisionError(f"{flag} must be at least {low}, got {value}.")
    return value


def _out(target: Target, kind: str, name: str) -> Path:
    return target.out / kind / f"{slug(name)}.png"


def viz_filters(
    source: ModelArg, *, out: str | Path | None = None, max_filters: int = 16
) -> list[Path]:
    """First-conv filter grid of each model."""
    from kvision.insight.filters import conv_kernel, plot_filters

    target = resolve_target(source, out)
    written = []
    for name, path in target.models.items():
        model = load_checked(path)
        layer = _layers.first_conv(model)
        written.append(
            plot_filters(
                {name: conv_kernel(model, layer)},
                _out(target, "filters", f"{name}_first-conv_viz"),
                max_filters=_at_least(max_filters, 1, "--max-filters"),
                title=f"{name}: first conv '{layer}' filters",
            )
        )
    return written


def viz_activations(
    source: ModelArg,
    *,
    image: Sequence[str | Path],
    out: str | Path | None = None,
    layer: Sequence[str] = (),
    top_channels: int = 6,
) -> list[Path]:
    """Channel means per stage and the strongest channels of each stage, for ``image`` files."""
    from kvision.insight.activations import activation_maps, plot_stage_means, plot_top_channels

    _at_least(top_channels, 0, "--top-channels")
    target = resolve_target(source, out)
    titles = [Path(p).name for p in image]
    written = []
    for name, path in target.models.items():
        model = load_checked(path)
        images = read_images(image, model)
        maps = activation_maps(model, _layers.spatial_stages(model, list(layer)), images)
        written.append(
            plot_stage_means(
                images,
                maps,
                titles,
                _out(target, "activations", f"{name}_stage-means_viz"),
                title=f"{name}: channel-mean activations",
            )
        )
        for stage, fmap in maps.items() if top_channels > 0 else ():
            written.append(
                plot_top_channels(
                    images,
                    fmap,
                    titles,
                    _out(target, "activations", f"{name}_{stage}_top-channels_viz"),
                    k=top_channels,
                    title=f"{name}: strongest {stage} channels",
                )
            )
    return written


def viz_cam(
    source: ModelArg,
    *,
    image: Sequence[str | Path],
    out: str | Path | None = None,
    layer: str | None = None,
    method: str = "both",
    class_index: int | None = None,
    class_names: str | None = None,
) -> list[Path]:
    """Grad-CAM / Grad-CAM++ for the predicted class, or ``class_index``, of ``image`` files;
    ``class_names`` is comma-separated (default: the run's or the sidecar's)."""
    from kvision.insight.cam import METHODS, cam_panels, plot_cams

    target = resolve_target(source, out)
    methods = METHODS if method == "both" else (method,)
    written = []
    for name, path in target.models.items():
        model = load_checked(path)
        num_classes = int(model.outputs[0].shape[-1])
        names = _class_names(class_names, target.class_names, num_classes)
        explained = _layers.cam_layer(model, layer)
        images = read_images(image, model)
        if class_index is None:
            labels, targets = np.zeros(len(images), np.int64), ("predicted",)
        else:
            _check_class_index(class_index, num_classes)
            labels, targets = np.full(len(images), class_index), ("true",)
        panels = cam_panels(
            model, explained, images, labels, names, methods=methods, targets=targets
        )
        if class_index is not None:  # "true" here means "the class asked for"
            panels = {k.replace("(true)", "(asked)"): v for k, v in panels.items()}
        written.append(
            plot_cams(
                images,
                panels,
                [Path(p).name for p in image],
                _out(target, "cam", f"{name}_{method}_{explained}_viz"),
                title=f"{name}: class activation maps from '{explained}'",
            )
        )
    return written


def _check_class_index(index: int, num_classes: int) -> None:
    if not 0 <= index < num_classes:
        raise KvisionError(
            f"--class-index {index} is out of range: the model has "
            f"{num_classes} classes, so use 0 to {num_classes - 1}."
        )


def _class_names(given: str | None, from_run: list[str] | None, n: int) -> list[str]:
    if given:
        names = [s.strip() for s in given.split(",")]
        if len(names) != n:
            raise KvisionError(
                f"--class-names lists {len(names)} names but the model has "
                f"{n} classes; give exactly {n}, comma-separated."
            )
        return names
    if from_run and len(from_run) == n:
        return list(from_run)
    return [f"class {i}" for i in range(n)]


def viz_robustness(
    source: ModelArg,
    *,
    out: str | Path | None = None,
    data: str | Path | None = None,
    sigmas: str = "0,1,2,3,5",
    kinds: str = "gaussian,defocus,motion,zoom",
    max_images: int = 500,
) -> list[Path]:
    """A run's stored robustness curves, or curves measured on the ``data`` image folder for
    each model (``sigmas`` and ``kinds`` comma-separated, as on the command line)."""
    from kvision.insight.robustness import plot_robustness, robustness_curves, stratified_subset

    target = resolve_target(source, out, need_models=data is not None)
    if data is None:
        return _stored_robustness(target)
    curves = {}
    for name, path in target.models.items():
        model = load_checked(path)
        images, labels, _ = read_image_folder(data, model)
        keep = stratified_subset(labels, _at_least(max_images, 1, "--max-images"))
        curves[name] = robustness_curves(
            model,
            images[keep],
            labels[keep],
            sigmas=_floats(sigmas, "--sigmas"),
            kinds=_kinds(kinds),
            severities=(1, 2, 3, 4, 5),
        )
    _print_table(curves)
    return [
        plot_robustness(
            curves,
            {},
            _out(target, "robustness", "blur-robustness_viz"),
            title=f"Test accuracy under blur ({Path(data).name})",
        )
    ]


def _stored_robustness(target: Target) -> list[Path]:
    from kvision.insight.curves import trial_labels
    from kvision.insight.robustness import plot_robustness
    from kvision.runs import RunReader

    if target.run_dir is None:
        raise KvisionError(
            "A .keras model has no stored robustness results: pass --data DIR, "
            "an image folder with one sub-folder per class."
        )
    reader = RunReader(target.run_dir)
    curves = {}
    for t in reader.trials():
        file = target.run_dir / "trials" / t / "robustness.json"
        if file.is_file() and (target.trial is None or t == target.trial):
            curves[t] = json.loads(file.read_text("utf-8"))
    if not curves:
        raise KvisionError(
            f"Run '{target.run_dir}' has no robustness results (trials/*/"
            "robustness.json); measure them with --data DIR."
        )
    _print_table(curves)
    return [
        plot_robustness(
            curves,
            trial_labels(reader),
            _out(target, "robustness", "blur-robustness_viz"),
            title="Test accuracy under blur",
        )
    ]


def _print_table(curves: dict[str, dict]) -> None:
    from kvision.insight.robustness import markdown_table, summarise

    baseline = next(iter(curves))
    print(markdown_table(curves, summarise(curves, baseline), baseline))


def _floats(text: str, flag: str) -> tuple[float, ...]:
    try:
        values = tuple(float(s) for s in text.split(",") if s.strip())
    except ValueError:
        raise KvisionError(f"{flag} expects comma-separated numbers, got '{text}'.") from None
    if any(v < 0 for v in values):
        raise KvisionError(f"{flag} values must be >= 0, got '{text}'.")
    return values


def _kinds(text: str) -> tuple[str, ...]:
    from kvision.errors import unknown_name
    from kvision.recipe.schema_data import BLUR_KINDS

    kinds = tuple(s.strip() for s in text.split(",") if s.strip())
    for kind in kinds:
        if kind not in BLUR_KINDS:
            raise unknown_name("blur kind", kind, BLUR_KINDS)
    return kinds


def viz_retrieve(
    source: ModelArg,
    *,
    index: str | Path,
    query: Sequence[str | Path],
    out: str | Path | None = None,
    k: int = 5,
    threshold: float | None = None,
    layer: str | None = None,
) -> list[Path]:
    """Top-``k`` neighbours of each ``query`` image in the ``index`` folder, with precision@k
    by label; ``layer`` picks the features (default: the pooled ones)."""
    from kvision.insight.retrieval import FeatureIndex, encode, encoder, plot_strip, precision_at_k

    _at_least(k, 1, "--k")
    target = resolve_target(source, out)
    written = []
    for name, path in target.models.items():
        model = load_checked(path)
        enc = encoder(model, layer)
        images, labels, classes = read_image_folder(index, model)
        found = FeatureIndex(encode(enc, images), labels)
        if len(classes) > 1:
            p = precision_at_k(found, found.features, labels, k, exclude_self=True)
            print(f"{name}: precision@{k} by label over {len(labels)} index images: {p:.3f}")
        queries = read_images(query, model)
        for qpath, one, hit in zip(
            query,
            queries,
            found.search(encode(enc, queries), k, threshold),
            strict=True,
        ):
            captions = [
                f"{classes[labels[i]]} d={d:.2f}"
                for i, d in zip(hit.indices, hit.distances, strict=True)
            ]
            written.append(
                plot_strip(
                    one,
                    [images[i] for i in hit.indices],
                    captions,
                    _out(target, "retrieval", f"{name}_{Path(qpath).stem}_top-{k}_viz"),
                    title=f"{name}: nearest images in {Path(index).name}",
                )
            )
    return written


def viz_pending(source: ModelArg) -> list[Path]:
    """The figures a stopped run left queued for its drawing worker, drawn and recorded."""
    from kvision.insight.render_worker import rerender

    return rerender(source.target)


COMMANDS: dict[str, Callable[..., list[Path]]] = {
    "filters": viz_filters,
    "activations": viz_activations,
    "cam": viz_cam,
    "robustness": viz_robustness,
    "retrieve": viz_retrieve,
    "pending": viz_pending,
}
