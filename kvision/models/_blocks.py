"""Layer helpers shared by the model families: PyTorch-equivalent padding and BatchNorm."""

from __future__ import annotations

import keras

from kvision.models import _fast

# PyTorch's BatchNorm2d defaults (eps 1e-5, running stats updated with weight 0.1), so that
# imported state_dicts give the same outputs and the reports' training behaves the same.
BN_EPSILON = 1e-5
BN_MOMENTUM = 0.9


def conv(x, filters: int, kernel: int, *, name: str, stride: int = 1, pad: int = 0,
         use_bias: bool = True, initializer: str = "glorot_uniform"):
    """Conv2D with PyTorch's symmetric zero padding ``pad``.

    Keras' ``same`` pads asymmetrically when the stride is 2, so any padding other than the
    stride-1 "same" case is PyTorch's int padding of kvision's Conv2D, one torch call on the
    torch backend (a ZeroPadding2D layer before a valid conv would copy the activations).
    """
    padding = "same" if pad and stride == 1 and 2 * pad == kernel - 1 else pad
    # kvision's Conv2D: the Keras layer with a copy-free torch call (kvision.models._fast).
    return _fast.Conv2D(filters, kernel, strides=stride, padding=padding, use_bias=use_bias,
                        kernel_initializer=initializer, name=name)(x)


def batch_norm(x, *, name: str):
    """BatchNormalization over channels with PyTorch's epsilon and momentum.

    kvision's subclass of the Keras layer: one fused torch kernel on the torch backend.
    """
    return _fast.BatchNormalization(epsilon=BN_EPSILON, momentum=BN_MOMENTUM, name=name)(x)


def relu(x, *, name: str):
    """A named ReLU layer (named so activations can be read back by stage)."""
    return keras.layers.ReLU(name=name)(x)


def max_pool(x, size: int, stride: int | None = None, *, name: str, pad: int = 0):
    """MaxPool in PyTorch's floor mode (Keras ``valid``), with its -inf padding ``pad``."""
    return _fast.MaxPooling2D(size, strides=stride or size, padding=pad, name=name)(x)


def dense_head(x, widths: list[int], *, dropout: float, stage: str, dropout_first: bool):
    """Hidden dense layers ``<stage>_dense<i>`` with ReLU and dropout.

    ``dropout_first`` puts each Dropout before its Dense (report 000, AlexNet) rather than
    after its ReLU (torchvision's VGG).
    """
    for i, width in enumerate(widths, start=1):
        if dropout_first and dropout:
            x = keras.layers.Dropout(dropout, name=f"{stage}_dropout{i}")(x)
        x = _fast.Dense(width, name=f"{stage}_dense{i}")(x)
        x = relu(x, name=f"{stage}_relu{i}")
        if not dropout_first and dropout:
            x = keras.layers.Dropout(dropout, name=f"{stage}_dropout{i}")(x)
    return x


def classifier(x, num_classes: int):
    """The final logits layer, always named ``classifier`` (heads are swapped by name).

    kvision's Dense: the Keras layer with a single fused torch call (kvision.models._fast).
    """
    return _fast.Dense(num_classes, name="classifier")(x)
