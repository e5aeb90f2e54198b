"""The multilayer perceptron report 002 fits y = x^2 + 2cos(x) + 2/exp(x) with."""

from __future__ import annotations

from typing import Annotated

from kvision.errors import KvisionError
from kvision.models.catalog.registry import Tensor, register_model


@register_model(
    "mlp",
    family="mlp",
    input=(1,),
    classes=1,
    min_input=1,
    description="MLP 1-64-64-1 with sigmoid hidden units for function fitting (report 002)",
)
def build_mlp(
    x: Tensor,
    *,
    arch: str,
    num_classes: int,
    hidden: Annotated[list[int], "hidden layer widths"] = [64, 64],  # noqa: B006  (read only)
    activation: Annotated[str, "hidden activation (a Keras activation name)"] = "sigmoid",
) -> Tensor:
    """Dense layers ``hidden1..`` with ``activation``; a linear ``output`` of ``num_classes``."""
    import keras

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
