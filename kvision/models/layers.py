"""Custom Keras layers the reports' architectures need and Keras does not ship.

They are written with ``keras.ops``, so they run under every Keras backend (LRN takes the
fused torch kernel of ``kvision.models._fast`` on the torch backend), and are
registered under the ``kvision`` package name so ``.keras`` files load with ``safe_mode=True``
once this module is imported (``kvision.models.load_model`` does that).
"""

from __future__ import annotations

import keras
import numpy as np
from keras import ops

from kvision.models import _fast


def adaptive_pool_matrix(in_size: int, out_size: int) -> np.ndarray:
    """(out_size, in_size) averaging matrix with PyTorch's adaptive pooling bins.

    Bin ``i`` covers ``[floor(i * in / out), ceil((i + 1) * in / out))``; when ``in < out``
    the bins overlap and input cells repeat, exactly as ``AdaptiveAvgPool2d`` does.
    """
    matrix = np.zeros((out_size, in_size), dtype="float32")
    for i in range(out_size):
        start = (i * in_size) // out_size
        end = -((-(i + 1) * in_size) // out_size)  # ceil division
        matrix[i, start:end] = 1.0 / (end - start)
    return matrix


@keras.saving.register_keras_serializable("kvision")
class AdaptiveAveragePooling2D(keras.layers.Layer):
    """Average-pool an NHWC tensor to a fixed ``output_size``, binned like PyTorch.

    Keras has no adaptive pooling; report 000's AlexNet pools to 6x6 whatever the input size,
    so this layer computes the pooling as two small matrix products over the (static) height
    and width, which also covers feature maps smaller than the output (on the torch backend
    it is torch's own adaptive pooling, the same bins, see ``kvision.models._fast``).
    """

    def __init__(self, output_size: int | tuple[int, int] = 6, **kwargs):
        super().__init__(**kwargs)
        if isinstance(output_size, int):
            output_size = (output_size, output_size)
        self.output_size = tuple(int(s) for s in output_size)

    def call(self, inputs):
        if _fast.torch_active() and inputs.ndim == 4:
            return _fast.adaptive_avg_pool(inputs, self.output_size)
        height, width = inputs.shape[1], inputs.shape[2]
        rows = ops.convert_to_tensor(adaptive_pool_matrix(height, self.output_size[0]))
        cols = ops.convert_to_tensor(adaptive_pool_matrix(width, self.output_size[1]))
        rows = ops.cast(rows, inputs.dtype)
        cols = ops.cast(cols, inputs.dtype)
        return ops.einsum("oh,nhwc,pw->nopc", rows, inputs, cols)

    def compute_output_shape(self, input_shape):
        return (input_shape[0], *self.output_size, input_shape[3])

    def get_config(self):
        return {**super().get_config(), "output_size": list(self.output_size)}


@keras.saving.register_keras_serializable("kvision")
class LocalResponseNormalization(keras.layers.Layer):
    """Local Response Normalization across channels, PyTorch's convention.

    ``b_c = a_c / (k + alpha / size * sum_{c'} a_{c'}^2) ** beta`` where the sum runs over the
    channels ``c - size // 2 .. c + (size - 1) // 2`` that exist (zeros beyond the edges).
    The squared sum is divided by ``size`` (PyTorch, Caffe), unlike the AlexNet paper and
    ``tf.nn.local_response_normalization``, which multiply the plain sum by ``alpha``.
    """

    def __init__(self, size: int = 5, alpha: float = 1e-4, beta: float = 0.75,
                 k: float = 1.0, **kwargs):
        super().__init__(**kwargs)
        self.size, self.alpha, self.beta, self.k = int(size), float(alpha), float(beta), float(k)

    def call(self, inputs):
        if _fast.torch_active():
            return _fast.local_response_norm(inputs, size=self.size, alpha=self.alpha,
                                             beta=self.beta, k=self.k)
        squared = ops.square(inputs)
        front, back = self.size // 2, (self.size - 1) // 2
        # A leading zero makes window sums differences of one cumulative sum.
        padded = ops.pad(squared, [[0, 0], [0, 0], [0, 0], [front + 1, back]])
        cumulative = ops.cumsum(padded, axis=-1)
        channels = inputs.shape[-1]
        window = cumulative[..., self.size:self.size + channels] - cumulative[..., :channels]
        return inputs / ops.power(self.k + self.alpha / self.size * window, self.beta)

    def compute_output_shape(self, input_shape):
        return input_shape

    def get_config(self):
        return {**super().get_config(), "size": self.size, "alpha": self.alpha,
                "beta": self.beta, "k": self.k}


@keras.saving.register_keras_serializable("kvision")
class ChannelPadShortcut(keras.layers.Layer):
    """ResNet-20's parameter-free shortcut ("option A"): subsample by ``stride``, zero-pad channels.

    He et al. use it on CIFAR so that ResNet-20 keeps its 0.27M parameters; Keras has no
    layer that pads the channel axis.
    """

    def __init__(self, filters: int, stride: int = 2, **kwargs):
        super().__init__(**kwargs)
        self.filters, self.stride = int(filters), int(stride)

    def call(self, inputs):
        sub = inputs[:, ::self.stride, ::self.stride, :]
        extra = self.filters - inputs.shape[-1]
        return ops.pad(sub, [[0, 0], [0, 0], [0, 0], [extra // 2, extra - extra // 2]])

    def compute_output_shape(self, input_shape):
        def down(size):
            return None if size is None else -(-size // self.stride)

        return (input_shape[0], down(input_shape[1]), down(input_shape[2]), self.filters)

    def get_config(self):
        return {**super().get_config(), "filters": self.filters, "stride": self.stride}
