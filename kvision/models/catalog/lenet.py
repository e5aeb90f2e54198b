"""LeNet as report 004 trains it on 28x28 grayscale images."""

from __future__ import annotations

from kvision.models.catalog.blocks import batch_norm, classifier, conv, max_pool, relu
from kvision.models.catalog.registry import Dropout, Tensor, register_model


@register_model(
    "lenet",
    family="lenet",
    input=(28, 28, 1),
    classes=12,
    min_input=4,
    description="LeNet of report 004: 2x (conv 5x5 + BN + ReLU + maxpool), dropout, dense",
)
def build_lenet(x: Tensor, *, arch: str, num_classes: int, dropout: Dropout = 0.5) -> Tensor:
    """Two conv stages (16 and 32 filters, 5x5 "same", BN, ReLU, maxpool 2), dropout, dense."""
    import keras

    for i, filters in enumerate((16, 32), start=1):
        x = conv(x, filters, 5, pad=2, name=f"conv{i}_conv")
        x = batch_norm(x, name=f"conv{i}_bn")
        x = relu(x, name=f"conv{i}_relu")
        x = max_pool(x, 2, name=f"conv{i}_pool")
    x = keras.layers.Flatten(name="flatten")(x)
    if dropout:
        x = keras.layers.Dropout(dropout, name="head_dropout")(x)
    return classifier(x, num_classes)
