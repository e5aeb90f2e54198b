"""Report 001's MyNet (its MyNetPro shares AlexNet's features, in kvision.models.alexnet)."""

from __future__ import annotations

import keras

from kvision.models._blocks import classifier, conv, max_pool, relu


def build_mynet(x, *, arch: str, num_classes: int):
    """Two valid 5x5 convs (10, 20 filters) with max-pooling, one ReLU, dense 500, dense."""
    x = conv(x, 10, 5, name="conv1_conv")
    x = max_pool(x, 2, name="conv1_pool")
    x = conv(x, 20, 5, name="conv2_conv")
    x = max_pool(x, 2, name="conv2_pool")
    x = relu(x, name="conv2_relu")
    x = keras.layers.Flatten(name="flatten")(x)
    x = keras.layers.Dense(500, name="head_dense1")(x)
    x = relu(x, name="head_relu1")
    return classifier(x, num_classes)
