"""Layer helpers shared by the model families: PyTorch-equivalent padding and BatchNorm.

Every layer is a stock Keras layer, so saved models load in any Keras; on the torch backend
kvision executes them with one torch call each (``kvision.models._fast``). Keras is imported
inside each helper: the catalogue that holds them is read without Keras.
"""

from __future__ import annotations

from kvision.errors import KvisionError
from kvision.models.catalog.registry import Tensor

# PyTorch's BatchNorm2d defaults (eps 1e-5, running stats updated with weight 0.1), so that
# imported state_dicts give the same outputs and the reports' training behaves the same.
BN_EPSILON = 1e-5
BN_MOMENTUM = 0.9


def check_divisor(arch: str, option: str, value: int) -> None:
    """``width``-like options divide layer widths that are multiples of 64: refuse the rest."""
    if value < 1 or 64 % value:
        raise KvisionError(
            f"Option '{option}' of model architecture '{arch}' must be a positive divisor of "
            f"64 (1, 2, 4, 8, 16, 32 or 64) so every layer keeps an integer width. "
            f"Received: {option}={value}."
        )


def conv(
    x: Tensor,
    filters: int,
    kernel: int,
    *,
    name: str,
    stride: int = 1,
    pad: int = 0,
    use_bias: bool = True,
    initializer: str = "glorot_uniform",
) -> Tensor:
    """Conv2D with PyTorch's symmetric zero padding ``pad``.

    Keras' ``same`` pads asymmetrically when the stride is 2, so any padding other than the
    stride-1 "same" case is a ZeroPadding2D ``<name>_pad`` before a "valid" conv; on the
    torch backend the fast graph folds it into the conv's torch call (no padded copy).
    """
    import keras

    padding = "same" if pad and stride == 1 and 2 * pad == kernel - 1 else "valid"
    if pad and padding == "valid":
        x = keras.layers.ZeroPadding2D(pad, name=f"{name}_pad")(x)
    return keras.layers.Conv2D(
        filters,
        kernel,
        strides=stride,
        padding=padding,
        use_bias=use_bias,
        kernel_initializer=initializer,
        name=name,
    )(x)


def batch_norm(x: Tensor, *, name: str) -> Tensor:
    """BatchNormalization over channels with PyTorch's epsilon and momentum."""
    import keras

    return keras.layers.BatchNormalization(epsilon=BN_EPSILON, momentum=BN_MOMENTUM, name=name)(x)


def relu(x: Tensor, *, name: str) -> Tensor:
    """A named ReLU layer (named so activations can be read back by stage)."""
    import keras

    return keras.layers.ReLU(name=name)(x)


def max_pool(x: Tensor, size: int, stride: int | None = None, *, name: str, pad: int = 0) -> Tensor:
    """MaxPool in PyTorch's floor mode (Keras ``valid``), padded by ``pad`` on every side.

    PyTorch pads a max-pool with -inf; Keras has no such layer, so ``pad`` is a
    ZeroPadding2D ``<name>_pad``, the same wherever the input is a ReLU's (never negative),
    as in ResNet's stem, the only padded pool (the fast graph then folds it into the pool).
    """
    import keras

    if pad:
        x = keras.layers.ZeroPadding2D(pad, name=f"{name}_pad")(x)
    return keras.layers.MaxPooling2D(size, strides=stride or size, padding="valid", name=name)(x)


def dense_head(
    x: Tensor, widths: list[int], *, dropout: float, stage: str, dropout_first: bool
) -> Tensor:
    """Hidden dense layers ``<stage>_dense<i>`` with ReLU and dropout.

    ``dropout_first`` puts each Dropout before its Dense (report 000, AlexNet) rather than
    after its ReLU (torchvision's VGG).
    """
    import keras

    for i, width in enumerate(widths, start=1):
        if dropout_first and dropout:
            x = keras.layers.Dropout(dropout, name=f"{stage}_dropout{i}")(x)
        x = keras.layers.Dense(width, name=f"{stage}_dense{i}")(x)
        x = relu(x, name=f"{stage}_relu{i}")
        if not dropout_first and dropout:
            x = keras.layers.Dropout(dropout, name=f"{stage}_dropout{i}")(x)
    return x


def classifier(x: Tensor, num_classes: int) -> Tensor:
    """The final logits layer, always named ``classifier`` (heads are swapped by name)."""
    import keras

    return keras.layers.Dense(num_classes, name="classifier")(x)


def lrn(x: Tensor, size: int, *, name: str) -> Tensor:
    """kvision's LocalResponseNormalization (PyTorch's ``LocalResponseNorm(size)``).

    Taken from Keras' registry of serializable classes by its registered name, the lookup
    ``load_model`` makes: ``kvision.models.layers`` (which registers it) sits above this
    Keras-free catalogue, and ``create_model`` imports it before any builder runs.
    """
    import keras

    layer = keras.saving.get_registered_object("kvision>LocalResponseNormalization")
    return layer(size=size, name=name)(x)
