"""The multilayer perceptron report 002 fits y = x^2 + 2cos(x) + 2/exp(x) with."""

from __future__ import annotations

import keras

from kvision.errors import KvisionError


def build_mlp(x, *, arch: str, num_classes: int, hidden: list, activation: str):
    """Dense layers ``hidden1..`` with ``activation``; a linear ``output`` of ``num_classes``."""
    if not hidden or not all(isinstance(h, int) and h > 0 for h in hidden):
        raise KvisionError(
            f"Option 'hidden' of model architecture '{arch}' must be a non-empty list of "
            f"positive integers (layer widths). Received: hidden={hidden!r}."
        )
    try:
        keras.activations.get(activation)
    except ValueError:
        raise KvisionError(
            f"Option 'activation' of model architecture '{arch}' must name a Keras "
            f"activation such as 'sigmoid', 'relu' or 'tanh'. Received: activation={activation!r}."
        ) from None
    for i, width in enumerate(hidden, start=1):
        x = keras.layers.Dense(width, activation=activation, name=f"hidden{i}")(x)
    return keras.layers.Dense(num_classes, name="output")(x)
