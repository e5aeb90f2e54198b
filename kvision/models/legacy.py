"""The layer classes of kvision 0.1's ``.keras`` files, so those files still load.

kvision 0.1 built its models from subclasses of stock Keras layers and saved them as
``kvision>Conv2D``, ``kvision>Dense``, ``kvision>BatchNormalization``, ``kvision>MaxPooling2D``
(PyTorch's int padding folded into the config: ``padding: [2, 2]``),
``kvision>AdaptiveAveragePooling2D`` and ``kvision>ChannelPadShortcut``. Models are stock Keras
layers now; these classes exist only to read the old files (``kvision.models.load_model``
imports this module) and compute what the 0.1 layers computed. They subclass the stock
layers, so the fast graph executes them as it does those (see ``kvision.models._fast``).
"""

from __future__ import annotations

import keras
from keras import ops


def _explicit_padding(padding, *, layer: str) -> tuple[str, tuple[int, int] | None]:
    """Keras' padding string and PyTorch's symmetric (rows, cols) padding, from either form."""
    if isinstance(padding, str):
        return padding, None
    pads = (padding, padding) if isinstance(padding, int) else tuple(padding)
    if len(pads) != 2 or not all(
        isinstance(p, int) and not isinstance(p, bool) and p >= 0 for p in pads
    ):
        raise ValueError(
            f"{layer} padding must be 'valid', 'same', a non-negative int or a "
            f"pair of them (PyTorch's symmetric padding). Received: {padding!r}"
        )
    return "valid", pads if any(pads) else None


class _ExplicitPadding:
    """Shape, config and Keras call of a 0.1 layer padded PyTorch's way (explicit_padding)."""

    explicit_padding: tuple[int, int] | None = None
    pad_value = 0.0

    def _init_padding(self, padding, layer: str) -> str:
        keras_padding, self.explicit_padding = _explicit_padding(padding, layer=layer)
        return keras_padding

    def _padded(self, input_shape):
        shape = list(input_shape)
        for axis, pad in zip((1, 2), self.explicit_padding or (0, 0), strict=True):
            shape[axis] = None if shape[axis] is None else shape[axis] + 2 * pad
        return tuple(shape)

    def call(self, inputs):
        if self.explicit_padding:
            rows, cols = self.explicit_padding
            inputs = ops.pad(
                inputs, [[0, 0], [rows, rows], [cols, cols], [0, 0]], constant_values=self.pad_value
            )
        return super().call(inputs)

    def compute_output_shape(self, input_shape):
        return super().compute_output_shape(self._padded(input_shape))

    def get_config(self):
        config = super().get_config()
        if self.explicit_padding:
            config["padding"] = list(self.explicit_padding)
        return config


@keras.saving.register_keras_serializable("kvision")
class Conv2D(_ExplicitPadding, keras.layers.Conv2D):
    """kvision 0.1's Conv2D: ``padding`` may be PyTorch's symmetric zero padding."""

    def __init__(self, filters, kernel_size, strides=(1, 1), padding="valid", **kwargs):
        keras_padding = self._init_padding(padding, "Conv2D")
        super().__init__(filters, kernel_size, strides=strides, padding=keras_padding, **kwargs)


@keras.saving.register_keras_serializable("kvision")
class MaxPooling2D(_ExplicitPadding, keras.layers.MaxPooling2D):
    """kvision 0.1's MaxPooling2D: ``padding`` may be PyTorch's -inf padding (never the max)."""

    pad_value = float("-inf")

    def __init__(self, pool_size=(2, 2), strides=None, padding="valid", **kwargs):
        keras_padding = self._init_padding(padding, "MaxPooling2D")
        super().__init__(pool_size, strides=strides, padding=keras_padding, **kwargs)


@keras.saving.register_keras_serializable("kvision")
class Dense(keras.layers.Dense):
    """kvision 0.1's Dense (the stock layer)."""


@keras.saving.register_keras_serializable("kvision")
class BatchNormalization(keras.layers.BatchNormalization):
    """kvision 0.1's BatchNormalization (the stock layer)."""


@keras.saving.register_keras_serializable("kvision")
class AdaptiveAveragePooling2D(keras.layers.AdaptiveAveragePooling2D):
    """kvision 0.1's adaptive pooling: PyTorch's bins, as Keras' own layer computes them."""

    def __init__(self, output_size=6, **kwargs):
        super().__init__(output_size, **kwargs)


@keras.saving.register_keras_serializable("kvision")
class ChannelPadShortcut(keras.layers.Layer):
    """kvision 0.1's ResNet-20 shortcut: subsample by ``stride``, zero-pad the channels."""

    def __init__(self, filters: int, stride: int = 2, **kwargs):
        super().__init__(**kwargs)
        self.filters, self.stride = int(filters), int(stride)

    def call(self, inputs):
        sub = inputs[:, :: self.stride, :: self.stride, :]
        extra = self.filters - inputs.shape[-1]
        return ops.pad(sub, [[0, 0], [0, 0], [0, 0], [extra // 2, extra - extra // 2]])

    def compute_output_shape(self, input_shape):
        def down(size):
            return None if size is None else -(-size // self.stride)

        return (input_shape[0], down(input_shape[1]), down(input_shape[2]), self.filters)

    def get_config(self):
        return {**super().get_config(), "filters": self.filters, "stride": self.stride}
