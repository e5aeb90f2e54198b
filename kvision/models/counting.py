"""Parameter counts without allocating the weights (100M+-parameter VGGs take seconds to init).

Keras has no API for a weightless build; on the torch backend, building under the "meta"
device creates shape-only tensors. Other backends fall back to an ordinary build.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import keras

from kvision.models.factory import create_model


def trainable_count(model: keras.Model) -> int:
    """Trainable parameters, as torch's ``parameters()`` counts them (BN moving stats excluded)."""
    return sum(math.prod(w.shape) for w in model.trainable_weights)


def build_shapes_only(
    arch: str, *, input_shape: Sequence[int], num_classes: int, **options: Any
) -> keras.Model:
    """``create_model`` without initialising weights where the backend allows it."""
    options.pop("weights", None)  # counting never needs real weights
    if keras.backend.backend() == "torch":
        with keras.device("meta"):
            return create_model(arch, input_shape=input_shape, num_classes=num_classes, **options)
    return create_model(arch, input_shape=input_shape, num_classes=num_classes, **options)


def count_parameters(
    arch: str, *, input_shape: Sequence[int], num_classes: int, **options: Any
) -> int:
    """Trainable parameter count of ``arch`` at ``input_shape`` with ``num_classes`` outputs."""
    return trainable_count(
        build_shapes_only(arch, input_shape=input_shape, num_classes=num_classes, **options)
    )
