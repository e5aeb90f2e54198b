"""AlexNet family: the reference layout, report 000's visual-pathway variant and report 004's
small AlexNet with Local Response Normalization."""

from __future__ import annotations

from typing import Annotated

from kvision.errors import KvisionError
from kvision.models.catalog.blocks import (
    batch_norm,
    check_divisor,
    classifier,
    conv,
    dense_head,
    lrn,
    max_pool,
    relu,
)
from kvision.models.catalog.registry import Dropout, Tensor, Width, register_model

# (stage, filters, kernel, stride, pad, max-pool after) of the five AlexNet convolutions.
_ALEXNET_CONVS = (
    ("retina", 64, 11, 4, 2, True),
    ("lgn", 192, 5, 1, 2, True),
    ("v1", 384, 3, 1, 1, False),
    ("v2", 256, 3, 1, 1, False),
    ("v4", 256, 3, 1, 1, True),
)


@register_model(
    "alexnet_seed",
    family="alexnet",
    input=(256, 256, 3),
    classes=2,
    min_input=63,
    description="AlexNet variant of report 000 with stages retina, lgn, v1, v2, v4, it, classifier",
)
def build_alexnet_seed(
    x: Tensor,
    *,
    arch: str,
    num_classes: int,
    dropout: Dropout = 0.5,
    downscale: Annotated[int, "divide every conv and dense width by this"] = 1,
) -> Tensor:
    """Report 000's AlexNet: conv, ReLU, then BatchNorm per stage; 6x6 adaptive pool; dense.

    Stages are named after the visual pathway (retina, lgn, v1, v2, v4, it, classifier).
    """
    import keras

    check_divisor(arch, "downscale", downscale)
    for stage, filters, kernel, stride, pad, pool in _ALEXNET_CONVS:
        x = conv(x, filters // downscale, kernel, stride=stride, pad=pad, name=f"{stage}_conv")
        x = relu(x, name=f"{stage}_relu")
        x = batch_norm(x, name=f"{stage}_bn")
        if pool:
            x = max_pool(x, 3, 2, name=f"{stage}_pool")
    x = keras.layers.AdaptiveAveragePooling2D(6, name="avgpool")(x)
    x = keras.layers.Flatten(name="flatten")(x)
    x = dense_head(
        x, [4096 // downscale, 1024 // downscale], dropout=dropout, stage="it", dropout_first=True
    )
    return classifier(x, num_classes)


def _alexnet_features(x, *, batchnorm: bool, width: int):
    """The five reference convolutions as stages conv1..conv5 (optionally conv-BN-ReLU)."""
    for i, (_, filters, kernel, stride, pad, pool) in enumerate(_ALEXNET_CONVS, start=1):
        x = conv(x, filters // width, kernel, stride=stride, pad=pad, name=f"conv{i}_conv")
        if batchnorm:
            x = batch_norm(x, name=f"conv{i}_bn")
        x = relu(x, name=f"conv{i}_relu")
        if pool:
            x = max_pool(x, 3, 2, name=f"conv{i}_pool")
    return x


@register_model(
    "alexnet",
    family="alexnet",
    input=(224, 224, 3),
    classes=1000,
    min_input=63,
    description="AlexNet as in the common reference implementation (torchvision layout)",
)
def build_alexnet(
    x: Tensor, *, arch: str, num_classes: int, dropout: Dropout = 0.5, width: Width = 1
) -> Tensor:
    """AlexNet in the torchvision layout (61,100,840 parameters at 224x224, 1,000 classes)."""
    import keras

    check_divisor(arch, "width", width)
    x = _alexnet_features(x, batchnorm=False, width=width)
    x = keras.layers.AdaptiveAveragePooling2D(6, name="avgpool")(x)
    x = keras.layers.Flatten(name="flatten")(x)
    hidden = 4096 // width
    x = dense_head(x, [hidden, hidden], dropout=dropout, stage="head", dropout_first=True)
    return classifier(x, num_classes)


@register_model(
    "mynet_pro",
    family="mynet",
    input=(224, 224, 3),
    classes=19,
    min_input=63,
    description="MyNetPro of report 001: AlexNet with BatchNorm and dropout 0.3",
)
def build_mynet_pro(
    x: Tensor, *, arch: str, num_classes: int, dropout: Dropout = 0.3, width: Width = 1
) -> Tensor:
    """Report 001's MyNetPro: AlexNet features with BatchNorm, flattened directly (no pooling)."""
    import keras

    check_divisor(arch, "width", width)
    x = _alexnet_features(x, batchnorm=True, width=width)
    x = keras.layers.Flatten(name="flatten")(x)
    hidden = 4096 // width
    x = dense_head(x, [hidden, hidden], dropout=dropout, stage="head", dropout_first=True)
    return classifier(x, num_classes)


_SMALL_CONVS = ((16, 5, True), (32, 5, True), (96, 3, False), (64, 3, False), (64, 3, False))
_NORMS = ("lrn", "batchnorm", "none")


@register_model(
    "alexnet_small",
    family="alexnet",
    input=(28, 28, 1),
    classes=12,
    min_input=4,
    description="Small AlexNet of report 004 with Local Response Normalization (28x28 grayscale)",
)
def build_alexnet_small(
    x: Tensor,
    *,
    arch: str,
    num_classes: int,
    dropout: Dropout = 0.5,
    norm: Annotated[
        str,
        "normalisation after the first two convs: "
        "'lrn', 'batchnorm' or 'none' (report 004's ablation)",
    ] = "lrn",
    head: Annotated[int, "width of the two hidden dense layers"] = 2048,
) -> Tensor:
    """Report 004's small AlexNet; ``norm`` picks LRN (as reported), BatchNorm or nothing."""
    import keras

    if norm not in _NORMS:
        raise KvisionError(
            f"Option 'norm' of model architecture '{arch}' must be one of "
            f"{', '.join(repr(n) for n in _NORMS)}. Received: norm={norm!r}."
        )
    for i, (filters, kernel, pool) in enumerate(_SMALL_CONVS, start=1):
        x = conv(x, filters, kernel, pad=kernel // 2, name=f"conv{i}_conv")
        x = relu(x, name=f"conv{i}_relu")
        if pool:
            x = max_pool(x, 2, name=f"conv{i}_pool")
            if norm == "lrn":
                # PyTorch's LocalResponseNorm(size) with size = the channel count, as in 004.
                x = lrn(x, filters, name=f"conv{i}_lrn")
            elif norm == "batchnorm":
                x = batch_norm(x, name=f"conv{i}_bn")
    x = keras.layers.Flatten(name="flatten")(x)
    x = dense_head(x, [head, head], dropout=dropout, stage="head", dropout_first=True)
    return classifier(x, num_classes)
