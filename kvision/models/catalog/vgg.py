"""VGG11/13/16/19 with and without BatchNorm, and report 000's 256px variant (``*_seed``)."""

from __future__ import annotations

from typing import Annotated

from kvision.errors import KvisionError
from kvision.models.catalog.blocks import (
    batch_norm,
    check_divisor,
    classifier,
    conv,
    dense_head,
    max_pool,
    relu,
)
from kvision.models.catalog.registry import Dropout, Tensor, Width, register_model

# Convolutions per block (filters 64, 128, 256, 512, 512), as in Simonyan & Zisserman.
_BLOCK_DEPTHS = {
    11: (1, 1, 2, 2, 2),
    13: (2, 2, 2, 2, 2),
    16: (2, 2, 3, 3, 3),
    19: (2, 2, 4, 4, 4),
}
_BLOCK_FILTERS = (64, 128, 256, 512, 512)


def build_vgg(
    x: Tensor,
    *,
    arch: str,
    num_classes: int,
    depth: int,
    batchnorm: bool,
    seed: bool,
    dropout: Dropout = 0.5,
    width: Width = 1,
    head: Annotated[int, "width of the two hidden dense layers (before `width`)"] = 4096,
) -> Tensor:
    """VGG features (``block<i>_conv<j>``, ``block<i>_pool``), a two-layer head, classifier.

    The reference layout pools to 7x7 and orders its head Dense, ReLU, Dropout (torchvision);
    report 000's ``*_seed`` flattens 512 x H/32 x W/32 directly and puts Dropout first. Keras'
    default Glorot-uniform initializer is the Xavier-uniform init report 000 asks for.
    """
    import keras

    check_divisor(arch, "width", width)
    if head < 1:
        raise KvisionError(
            f"Option 'head' of model architecture '{arch}' must be a positive layer width. "
            f"Received: head={head}."
        )
    for block, (repeats, filters) in enumerate(
        zip(_BLOCK_DEPTHS[depth], _BLOCK_FILTERS, strict=True), 1
    ):
        for j in range(1, repeats + 1):
            x = conv(x, filters // width, 3, pad=1, name=f"block{block}_conv{j}")
            if batchnorm:
                x = batch_norm(x, name=f"block{block}_bn{j}")
            x = relu(x, name=f"block{block}_relu{j}")
        x = max_pool(x, 2, name=f"block{block}_pool")
    if not seed:
        x = keras.layers.AdaptiveAveragePooling2D(7, name="avgpool")(x)
    x = keras.layers.Flatten(name="flatten")(x)
    hidden = max(1, head // width)
    x = dense_head(x, [hidden, hidden], dropout=dropout, stage="head", dropout_first=seed)
    return classifier(x, num_classes)


# The variants: the reference layout with and without BatchNorm (224px, 1,000 classes), and
# report 000's 256px, two-class head; (name suffix, BatchNorm, seed head, description).
_VARIANTS = (
    ("", False, False, "(reference layout, no BatchNorm)"),
    ("_bn", True, False, "with BatchNorm after every conv"),
    ("_seed", False, True, "of report 000 (256px head, Xavier-uniform init)"),
)
for _depth in (11, 13, 16, 19):
    for _suffix, _batchnorm, _seed, _what in _VARIANTS:
        if _seed and _depth not in (11, 16):
            continue  # report 000 trained these two
        register_model(
            f"vgg{_depth}{_suffix}",
            family="vgg",
            input=(256, 256, 3) if _seed else (224, 224, 3),
            classes=2 if _seed else 1000,
            min_input=32,
            description=f"VGG{_depth} {_what}",
            depth=_depth,
            batchnorm=_batchnorm,
            seed=_seed,
        )(build_vgg)
