"""Report 001's MyNet (its MyNetPro shares AlexNet's features, in the alexnet module)."""

from __future__ import annotations

from kvision.models.catalog.blocks import classifier, conv, max_pool, relu
from kvision.models.catalog.registry import Tensor, register_model


@register_model(
    "mynet",
    family="mynet",
    input=(224, 224, 3),
    classes=19,
    min_input=16,
    description="MyNet of report 001: 2x (conv 5x5 + maxpool), dense 500, dense",
)
def build_mynet(x: Tensor, *, arch: str, num_classes: int) -> Tensor:
    """Two valid 5x5 convs (10, 20 filters) with max-pooling, one ReLU, dense 500, dense."""
    import keras

    x = conv(x, 10, 5, name="conv1_conv")
    x = max_pool(x, 2, name="conv1_pool")
    x = conv(x, 20, 5, name="conv2_conv")
    x = max_pool(x, 2, name="conv2_pool")
    x = relu(x, name="conv2_relu")
    x = keras.layers.Flatten(name="flatten")(x)
    x = keras.layers.Dense(500, name="head_dense1")(x)
    x = relu(x, name="head_relu1")
    return classifier(x, num_classes)
