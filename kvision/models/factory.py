"""``create_model``: the one way from a registered name to a built Keras functional model."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import keras

from kvision.errors import KvisionError
from kvision.models import _fast
from kvision.models import layers as _layers  # noqa: F401  (registers LRN)
from kvision.models.catalog import ModelEntry, check_options, get_entry
from kvision.recipe.compat import too_small


def create_model(
    arch: str,
    *,
    input_shape: Sequence[int],
    num_classes: int,
    preprocess: tuple[list[float], list[float]] | None = None,
    **options: Any,
) -> keras.Model:
    """Build architecture ``arch`` as a functional model taking raw 0..255 NHWC float32 images.

    ``preprocess=(mean, std)`` (per channel, 0..1 scale) adds a first layer named
    ``preprocess`` computing ``(x/255 - mean) / std``. ``options`` are the architecture's own
    (see ``kvision.models.catalog``); ``weights`` loads pretrained or saved weights.
    The graph holds stock Keras layers only (and LRN, kvision's own); on the torch backend
    it runs them through kvision's fast paths (``kvision.models._fast.direct_graph``).
    """
    entry = get_entry(arch)
    opts = check_options(entry, options)
    weights = opts.pop("weights", None)
    shape = _check_input(entry, input_shape)
    if not isinstance(num_classes, int) or isinstance(num_classes, bool) or num_classes < 1:
        raise KvisionError(
            f"num_classes for model '{arch}' must be a positive integer. "
            f"Received: num_classes={num_classes!r}."
        )
    if weights == "imagenet":
        from kvision.models.weights import imagenet_build_options

        extra, preprocess = imagenet_build_options(entry, shape, preprocess)
        opts.update(extra)
    inputs = keras.Input(shape, name="input")
    x = _preprocess_layer(inputs, preprocess, shape) if preprocess is not None else inputs
    outputs = entry.builder(x, arch=arch, num_classes=num_classes, **entry.preset, **opts)
    model = keras.Model(inputs, outputs, name=arch)
    if weights is not None:
        from kvision.models.weights import load_weights

        load_weights(model, weights, arch=arch)
    return _fast.direct_graph(model)


def _check_input(entry: ModelEntry, input_shape: Sequence[int]) -> tuple[int, ...]:
    shape = tuple(input_shape)
    image = len(entry.default_input) == 3
    if image and (len(shape) != 3 or not all(isinstance(s, int) and s > 0 for s in shape)):
        raise KvisionError(
            f"Model '{entry.name}' takes images: input_shape must be (height, width, channels) "
            f"with positive integers. Received: input_shape={input_shape!r}."
        )
    if not image and (len(shape) != 1 or shape[0] < 1):
        raise KvisionError(
            f"Model '{entry.name}' takes feature vectors: input_shape must be (features,). "
            f"Received: input_shape={input_shape!r}."
        )
    if image and (problem := too_small(entry.name, shape[:2])):
        raise KvisionError(problem)  # the recipe's validation says the same, earlier
    return shape


def _preprocess_layer(inputs, preprocess, shape):
    """(x/255 - mean) / std as one Rescaling layer (built in, so it saves with the model)."""
    mean, std = (list(map(float, v)) for v in preprocess)
    channels = shape[-1]
    if len(mean) != len(std) or len(mean) not in (1, channels) or min(std) <= 0:
        raise KvisionError(
            f"preprocess must be (mean, std) with 1 or {channels} values each (one per input "
            f"channel) and positive std. Received: mean={mean}, std={std}."
        )
    scale = [1.0 / (255.0 * s) for s in std]
    offset = [-m / s for m, s in zip(mean, std, strict=True)]
    return keras.layers.Rescaling(scale, offset, name="preprocess")(inputs)
