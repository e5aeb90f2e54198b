"""VGG11/13/16/19 with and without BatchNorm, and report 000's 256px variant (``*_seed``)."""

from __future__ import annotations

import keras

from kvision.errors import KvisionError
from kvision.models._blocks import batch_norm, classifier, conv, dense_head, max_pool, relu

# Convolutions per block (filters 64, 128, 256, 512, 512), as in Simonyan & Zisserman.
_BLOCK_DEPTHS = {
    11: (1, 1, 2, 2, 2),
    13: (2, 2, 2, 2, 2),
    16: (2, 2, 3, 3, 3),
    19: (2, 2, 4, 4, 4),
}
_BLOCK_FILTERS = (64, 128, 256, 512, 512)


def _parse(arch: str) -> tuple[int, bool, bool]:
    """'vgg16_bn' -> (16, batchnorm=True, seed=False)."""
    base, _, variant = arch.partition("_")
    return int(base[3:]), variant == "bn", variant == "seed"


def build_vgg(x, *, arch: str, num_classes: int, dropout: float, width: int, head: int):
    """VGG features (``block<i>_conv<j>``, ``block<i>_pool``), a two-layer head, classifier.

    The reference layout pools to 7x7 and orders its head Dense, ReLU, Dropout (torchvision);
    report 000's ``*_seed`` flattens 512 x H/32 x W/32 directly and puts Dropout first. Keras'
    default Glorot-uniform initializer is the Xavier-uniform init report 000 asks for.
    """
    depth, use_bn, seed = _parse(arch)
    if width < 1 or 64 % width:
        raise KvisionError(
            f"Option 'width' of model architecture '{arch}' must be a positive divisor of 64 "
            f"(1, 2, 4, ..., 64) so every layer keeps an integer width. Received: width={width}."
        )
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
            if use_bn:
                x = batch_norm(x, name=f"block{block}_bn{j}")
            x = relu(x, name=f"block{block}_relu{j}")
        x = max_pool(x, 2, name=f"block{block}_pool")
    if not seed:
        x = keras.layers.AdaptiveAveragePooling2D(7, name="avgpool")(x)
    x = keras.layers.Flatten(name="flatten")(x)
    hidden = max(1, head // width)
    x = dense_head(x, [hidden, hidden], dropout=dropout, stage="head", dropout_first=seed)
    return classifier(x, num_classes)
