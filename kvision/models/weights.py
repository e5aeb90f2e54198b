"""Initial weights for a built model: Keras' ImageNet weights, a local file or a previous run.

Whatever the source, a weight that cannot be had is an error, never a silent random init.
"""

from __future__ import annotations

import re
import warnings
from pathlib import Path
from typing import Any

import keras
import numpy as np

from kvision.errors import KvisionError
from kvision.models.catalog import ModelEntry

# Architectures whose ImageNet weights Keras publishes, with the keras.applications builder.
IMAGENET_ARCHS = {"vgg16": "VGG16", "vgg19": "VGG19", "resnet50": "ResNet50"}
# Keras' ImageNet VGG/ResNet50 weights expect Caffe preprocessing: BGR, minus these means, no
# scaling. kvision feeds RGB and flips the first conv's input channels when it maps them, so
# the equivalent (x/255 - mean) / std is this.
IMAGENET_CAFFE_PREPROCESS = ([123.68 / 255, 116.779 / 255, 103.939 / 255], [1 / 255] * 3)
_HEADS = ("classifier", "output")


def imagenet_build_options(
    entry: ModelEntry, shape: tuple[int, ...], preprocess: Any
) -> tuple[dict[str, Any], Any]:
    """Build options and preprocessing that make ``entry`` match Keras' ImageNet weights.

    Keras' ResNet50 strides its first 1x1 conv (ResNet v1), so that layout is built, and the
    model normalises with the Caffe means the weights were trained with, whatever was asked.
    """
    if entry.name not in IMAGENET_ARCHS:
        raise KvisionError(
            f"weights = \"imagenet\" is not available for model '{entry.name}': Keras publishes "
            f"ImageNet weights for {', '.join(sorted(IMAGENET_ARCHS))} only. For other "
            f"architectures use a PyTorch state_dict (kvision.models.load_torch_state_dict), a "
            f"local .weights.h5/.keras file or a previous kvision run directory."
        )
    if shape[-1] != 3:
        raise KvisionError(
            f"weights = \"imagenet\" needs 3-channel (RGB) input for model '{entry.name}'. "
            f"Received: input_shape={shape}."
        )
    if preprocess is not None and not np.allclose(
        np.asarray(preprocess, dtype=float), np.asarray(IMAGENET_CAFFE_PREPROCESS)
    ):
        warnings.warn(
            f"Model '{entry.name}' with weights = \"imagenet\" normalises its input the way "
            f"Keras trained those weights (Caffe means, 0..255 scale) instead of the given "
            f"mean/std {preprocess}: other statistics would feed the pretrained filters "
            f"inputs on the wrong scale.",
            stacklevel=3,
        )
    extra = {"stride_in_1x1": True} if entry.name == "resnet50" else {}
    return extra, IMAGENET_CAFFE_PREPROCESS


def load_weights(model: keras.Model, source: str | Path, *, arch: str) -> None:
    """Load ``source`` into ``model``: "imagenet", a ``.weights.h5``/``.keras`` file, a kvision
    run directory (``runs/<run>``) or one of its trial directories (``trials/<trial>``)."""
    if source == "imagenet":
        load_imagenet(model, arch)
        return
    path = Path(source).expanduser()
    if path.is_dir():
        path = _model_file_in_run(path)
    if not path.is_file():
        raise KvisionError(
            f"Weights '{source}' for model '{arch}' not found. Allowed: \"imagenet\", a "
            f".weights.h5 or .keras file, or a kvision run/trial directory with model.keras."
        )
    if path.name.endswith(".weights.h5"):
        _load_h5(model, path, arch)
    elif path.suffix == ".keras":
        from kvision.models.saving import load_model

        copy_weights_by_name(load_model(path), model, origin=str(path))
    elif path.suffix in (".pt", ".pth"):
        # torchvision / the reports' checkpoints: a PyTorch state_dict of the same architecture
        from kvision.models.torch_import import load_torch_state_dict

        load_torch_state_dict(model, path)
    else:
        raise KvisionError(
            f"Weights file '{path}' for model '{arch}' has an unknown format. Allowed: "
            f".weights.h5 (model.save_weights), .keras (model.save), or a PyTorch state_dict "
            f"(.pt/.pth, e.g. torchvision's resnet18-f37072fd.pth)."
        )


def _model_file_in_run(directory: Path) -> Path:
    """``model.keras`` of a trial directory, or of the only trial in a run directory."""
    if (directory / "model.keras").is_file():
        return directory / "model.keras"
    found = sorted((directory / "trials").glob("*/model.keras"))
    if len(found) == 1:
        return found[0]
    trials = ", ".join(p.parent.name for p in found) or "none with a model.keras"
    raise KvisionError(
        f"Directory '{directory}' is not a kvision trial directory with one model.keras. "
        f"Give one trial directory (runs/<run>/trials/<trial>); trials found: {trials}."
    )


def _load_h5(model: keras.Model, path: Path, arch: str) -> None:
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # Keras warns before it raises; the error says it
            model.load_weights(path)
    except ValueError as error:
        found = re.search(r"name=([\w.\-]+)", str(error))
        layer = f" The first mismatching layer is '{found.group(1)}'." if found else ""
        raise KvisionError(
            f"Weights file '{path}' does not fit model '{arch}' (saved from another "
            f"architecture, input size or number of classes?).{layer}"
        ) from None


def copy_weights_by_name(source: keras.Model, target: keras.Model, *, origin: str = "") -> None:
    """Copy weights layer by layer, matching names; the first mismatch raises KvisionError.

    Only the head (``classifier``/``output``) may differ in shape, as when a previous run had
    another number of classes: it keeps its fresh init and a warning says so.
    """
    head_skipped = None
    for layer in target.layers:
        if not layer.weights:
            continue
        try:
            other = source.get_layer(layer.name)
        except ValueError:
            raise _mismatch(source, target, layer.name, "is missing there") from None
        mine, theirs = layer.get_weights(), other.get_weights()
        shapes = [w.shape for w in mine], [w.shape for w in theirs]
        if shapes[0] != shapes[1]:
            if layer.name in _HEADS and layer is target.layers[-1]:
                head_skipped = shapes
                continue
            raise _mismatch(
                source,
                target,
                layer.name,
                f"has weight shapes {shapes[1]} there but {shapes[0]} here",
            )
        layer.set_weights(theirs)
    if head_skipped:
        warnings.warn(
            f"Loaded weights from '{origin}' except the head '{target.layers[-1].name}' "
            f"(shapes {head_skipped[1]} there, {head_skipped[0]} here): it starts from a random "
            f"init for the new number of outputs.",
            stacklevel=2,
        )


def _mismatch(source: keras.Model, target: keras.Model, layer: str, what: str) -> KvisionError:
    return KvisionError(
        f"Weights from model '{source.name}' do not fit model '{target.name}': the first "
        f"mismatching layer is '{layer}', which {what}. Load weights saved from the same "
        f"architecture and input size."
    )


# --- Keras' ImageNet weights -----------------------------------------------------------------


def load_imagenet(model: keras.Model, arch: str) -> None:
    """Download (or take from Keras' cache) the ImageNet weights of ``arch`` and map them."""
    # The top (dense) layers exist only for 224x224 input; ResNet50's top is just the
    # 1,000-way classifier, worth downloading only when the model keeps that head.
    include_top = model.input_shape[1:3] == (224, 224) and (
        arch.startswith("vgg") or model.output_shape[-1] == 1000
    )
    builder = getattr(keras.applications, IMAGENET_ARCHS[arch])
    try:
        source = builder(
            weights="imagenet",
            include_top=include_top,
            input_shape=(224, 224, 3) if include_top else None,
        )
    except Exception as error:  # any download or file failure means there are no weights
        raise KvisionError(
            f"Could not get the ImageNet weights for model '{arch}' from Keras ({error}). "
            f"kvision does not fall back to random weights. Connect to the internet once (the "
            f"file is cached in ~/.keras/models/), copy the file there by hand, or set "
            f"weights to a local .weights.h5/.keras file or a previous kvision run."
        ) from None
    map_application_weights(source, model)


def map_application_weights(source: keras.Model, target: keras.Model) -> None:
    """Map a ``keras.applications`` VGG16/19 or ResNet50 onto the matching kvision graph.

    Keras' weights see BGR input, so the first conv's input channels are reversed (kvision
    feeds RGB). ResNet50's convs have biases that torchvision's layout lacks; a bias before
    BatchNorm only shifts the mean, so it is folded into ``moving_mean``. The ``classifier``
    is loaded only when both have the same number of outputs (a new head otherwise).
    """
    pairs = (_resnet_pairs if target.name.startswith("resnet") else _vgg_pairs)(source, target)
    biases: dict[str, np.ndarray] = {}
    first = True
    for src, dst in pairs:
        weights = src.get_weights()
        if isinstance(dst, keras.layers.Conv2D):
            if first:
                weights[0] = weights[0][:, :, ::-1, :]
                first = False
            if not dst.use_bias and len(weights) == 2:
                biases[dst.name] = weights.pop()
        if isinstance(dst, keras.layers.BatchNormalization):
            conv_name = dst.name.replace("_bn", "_conv", 1)
            weights[2] = weights[2] - biases.pop(conv_name, 0.0)
        if dst.name == "classifier" and [w.shape for w in weights] != [
            w.shape for w in dst.get_weights()
        ]:
            continue
        dst.set_weights(weights)
    assert not biases, f"conv biases not folded: {sorted(biases)}"


def _weighted(model: keras.Model, kind: type) -> list:
    return [layer for layer in model.layers if isinstance(layer, kind)]


def _vgg_pairs(source: keras.Model, target: keras.Model) -> list[tuple]:
    pairs = list(
        zip(
            _weighted(source, keras.layers.Conv2D),
            _weighted(target, keras.layers.Conv2D),
            strict=True,
        )
    )
    dense_src = _weighted(source, keras.layers.Dense)
    if dense_src:  # include_top: fc1, fc2, predictions -> head_dense1, head_dense2, classifier
        pairs += list(zip(dense_src, _weighted(target, keras.layers.Dense), strict=True))
    return pairs


_RESNET_NAME = re.compile(r"conv(\d)_block(\d+)_(\d)_(conv|bn)")


def _resnet_pairs(source: keras.Model, target: keras.Model) -> list[tuple]:
    """Keras' ``conv3_block2_1_bn`` is kvision's ``layer2_block2_bn1`` (0 = the shortcut)."""
    pairs = []
    for layer in source.layers:
        if not layer.weights:
            continue
        match = _RESNET_NAME.fullmatch(layer.name)
        if match:
            stage, block, index, kind = match.groups()
            prefix = f"layer{int(stage) - 1}_block{block}"
            name = f"{prefix}_down_{kind}" if index == "0" else f"{prefix}_{kind}{index}"
        else:
            name = {"conv1_conv": "stem_conv", "conv1_bn": "stem_bn", "predictions": "classifier"}[
                layer.name
            ]
        pairs.append((layer, target.get_layer(name)))
    # Convs first, so each bias is known when its BatchNorm is mapped.
    return sorted(pairs, key=lambda p: not isinstance(p[1], keras.layers.Conv2D))
