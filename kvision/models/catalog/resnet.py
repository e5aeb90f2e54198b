"""ResNet-18/34/50 in torchvision's layout and ResNet-20 for CIFAR-10 (He et al. 2016)."""

from __future__ import annotations

from typing import Annotated

from kvision.models.catalog.blocks import (
    batch_norm,
    check_divisor,
    classifier,
    conv,
    max_pool,
    relu,
)
from kvision.models.catalog.registry import Tensor, Width, register_model

# depth -> (block kind, blocks per stage layer1..layer4)
_IMAGENET_DEPTHS = {
    18: ("basic", (2, 2, 2, 2)),
    34: ("basic", (3, 4, 6, 3)),
    50: ("bottleneck", (3, 4, 6, 3)),
}
_INIT = "he_normal"  # torchvision initialises ResNet convs with Kaiming-normal


def _shortcut(x, filters: int, stride: int, *, name: str):
    """Identity, or a 1x1 projection + BN (torchvision's ``downsample``) when shapes change."""
    if stride == 1 and x.shape[-1] == filters:
        return x
    x = conv(
        x, filters, 1, stride=stride, use_bias=False, initializer=_INIT, name=f"{name}_down_conv"
    )
    return batch_norm(x, name=f"{name}_down_bn")


def _basic_block(x, filters: int, stride: int, *, name: str, shortcut=_shortcut):
    import keras

    skip = shortcut(x, filters, stride, name=name)
    x = conv(
        x, filters, 3, stride=stride, pad=1, use_bias=False, initializer=_INIT, name=f"{name}_conv1"
    )
    x = relu(batch_norm(x, name=f"{name}_bn1"), name=f"{name}_relu1")
    x = conv(x, filters, 3, pad=1, use_bias=False, initializer=_INIT, name=f"{name}_conv2")
    x = batch_norm(x, name=f"{name}_bn2")
    x = keras.layers.Add(name=f"{name}_add")([x, skip])
    return relu(x, name=f"{name}_out")


def _bottleneck_block(x, filters: int, stride: int, *, name: str, stride_in_1x1: bool):
    """1x1 -> 3x3 -> 1x1 (x4). torchvision (v1.5) strides the 3x3; Keras' ImageNet ResNet50
    weights were trained striding the first 1x1, so ``stride_in_1x1`` rebuilds that layout."""
    import keras

    skip = _shortcut(x, filters * 4, stride, name=name)
    first, middle = (stride, 1) if stride_in_1x1 else (1, stride)
    x = conv(x, filters, 1, stride=first, use_bias=False, initializer=_INIT, name=f"{name}_conv1")
    x = relu(batch_norm(x, name=f"{name}_bn1"), name=f"{name}_relu1")
    x = conv(
        x, filters, 3, stride=middle, pad=1, use_bias=False, initializer=_INIT, name=f"{name}_conv2"
    )
    x = relu(batch_norm(x, name=f"{name}_bn2"), name=f"{name}_relu2")
    x = conv(x, filters * 4, 1, use_bias=False, initializer=_INIT, name=f"{name}_conv3")
    x = batch_norm(x, name=f"{name}_bn3")
    x = keras.layers.Add(name=f"{name}_add")([x, skip])
    return relu(x, name=f"{name}_out")


_STRIDE_IN_1X1 = (
    "stride the first 1x1 conv of each downsampling block (ResNet v1, as Keras' ImageNet "
    "weights) instead of the 3x3 conv (v1.5, torchvision); set automatically for imagenet"
)


def build_resnet(
    x: Tensor,
    *,
    arch: str,
    num_classes: int,
    depth: int,
    stride_in_1x1: Annotated[bool, _STRIDE_IN_1X1] = False,
    width: Width = 1,
) -> Tensor:
    """ResNet-18/34/50: stem (7x7/2 conv, BN, ReLU, 3x3/2 maxpool), layer1..layer4, avgpool."""
    import keras

    check_divisor(arch, "width", width)
    kind, repeats = _IMAGENET_DEPTHS[depth]
    x = conv(
        x, 64 // width, 7, stride=2, pad=3, use_bias=False, initializer=_INIT, name="stem_conv"
    )
    x = relu(batch_norm(x, name="stem_bn"), name="stem_relu")
    x = max_pool(x, 3, 2, pad=1, name="stem_pool")
    for stage, (blocks, full) in enumerate(zip(repeats, (64, 128, 256, 512), strict=True), 1):
        filters = full // width
        for block in range(1, blocks + 1):
            stride = 2 if block == 1 and stage > 1 else 1
            name = f"layer{stage}_block{block}"
            if kind == "basic":
                x = _basic_block(x, filters, stride, name=name)
            else:
                x = _bottleneck_block(x, filters, stride, name=name, stride_in_1x1=stride_in_1x1)
    x = keras.layers.GlobalAveragePooling2D(name="avgpool")(x)
    return classifier(x, num_classes)


for _depth in (18, 34, 50):
    # Only the bottleneck blocks (ResNet-50) have a 1x1 conv to stride: 18 and 34 fix it off.
    register_model(
        f"resnet{_depth}",
        family="resnet",
        input=(224, 224, 3),
        classes=1000,
        min_input=1,
        description=f"ResNet-{_depth} (torchvision layout: stem, layer1..layer4, avgpool, "
        "classifier)",
        depth=_depth,
        **({} if _IMAGENET_DEPTHS[_depth][0] == "bottleneck" else {"stride_in_1x1": False}),
    )(build_resnet)


def _pad_shortcut(x, filters: int, stride: int, *, name: str):
    """He et al.'s CIFAR "option A": subsample and zero-pad channels, no parameters.

    In stock layers, as Keras has none that pads channels: a 1x1 max-pool with the stride
    keeps every ``stride``-th row and column; the map, seen as (H, W, C, 1), gets its
    channels padded by ZeroPadding3D; ``<name>_shortcut`` reshapes it back to (H, W, C').
    """
    import keras

    if stride == 1 and x.shape[-1] == filters:
        return x
    extra = filters - x.shape[-1]
    x = keras.layers.MaxPooling2D(1, strides=stride, name=f"{name}_shortcut_subsample")(x)
    height, width, channels = x.shape[1:]
    x = keras.layers.Reshape((height, width, channels, 1), name=f"{name}_shortcut_expand")(x)
    x = keras.layers.ZeroPadding3D(
        ((0, 0), (0, 0), (extra // 2, extra - extra // 2)), name=f"{name}_shortcut_pad"
    )(x)
    return keras.layers.Reshape((height, width, filters), name=f"{name}_shortcut")(x)


@register_model(
    "resnet20",
    family="resnet",
    input=(32, 32, 3),
    classes=10,
    min_input=1,
    description="ResNet-20 for CIFAR (3 stages of 3 basic blocks, 16/32/64 filters, identity "
    "shortcuts)",
)
def build_resnet20(x: Tensor, *, arch: str, num_classes: int) -> Tensor:
    """ResNet-20: 3x3 conv (16), three stages of three basic blocks (16/32/64), avgpool."""
    import keras

    x = conv(x, 16, 3, pad=1, use_bias=False, initializer=_INIT, name="stem_conv")
    x = relu(batch_norm(x, name="stem_bn"), name="stem_relu")
    for stage, filters in enumerate((16, 32, 64), start=1):
        for block in range(1, 4):
            stride = 2 if block == 1 and stage > 1 else 1
            x = _basic_block(
                x, filters, stride, name=f"layer{stage}_block{block}", shortcut=_pad_shortcut
            )
    x = keras.layers.GlobalAveragePooling2D(name="avgpool")(x)
    return classifier(x, num_classes)
