"""The one layer the reports' architectures need and Keras does not ship: LRN.

Every other layer of kvision's models is a stock Keras layer. LRN is written with
``keras.ops``, so it runs under every Keras backend (on the torch backend it is torch's fused
kernel, see ``kvision.models._fast``), and is registered under the ``kvision`` package name
(``kvision>LocalResponseNormalization``) when this module is imported; ``import kvision``
arranges that as soon as Keras is imported (``kvision._keras_layers``), so a ``.keras`` file
with LRN loads with ``keras.saving.load_model(path, safe_mode=True)`` after ``import kvision``.
"""

from __future__ import annotations

import keras
from keras import ops

from kvision.models import _fast


@keras.saving.register_keras_serializable("kvision")
class LocalResponseNormalization(keras.layers.Layer):
    """Local Response Normalization across channels, PyTorch's convention.

    ``b_c = a_c / (k + alpha / size * sum_{c'} a_{c'}^2) ** beta`` where the sum runs over the
    channels ``c - size // 2 .. c + (size - 1) // 2`` that exist (zeros beyond the edges).
    The squared sum is divided by ``size`` (PyTorch, Caffe), unlike the AlexNet paper and
    ``tf.nn.local_response_normalization``, which multiply the plain sum by ``alpha``.
    """

    def __init__(
        self, size: int = 5, alpha: float = 1e-4, beta: float = 0.75, k: float = 1.0, **kwargs
    ):
        super().__init__(**kwargs)
        self.size, self.alpha, self.beta, self.k = int(size), float(alpha), float(beta), float(k)

    def call(self, inputs):
        if _fast.torch_active():
            return _fast.local_response_norm(
                inputs, size=self.size, alpha=self.alpha, beta=self.beta, k=self.k
            )
        squared = ops.square(inputs)
        front, back = self.size // 2, (self.size - 1) // 2
        # A leading zero makes window sums differences of one cumulative sum.
        padded = ops.pad(squared, [[0, 0], [0, 0], [0, 0], [front + 1, back]])
        cumulative = ops.cumsum(padded, axis=-1)
        channels = inputs.shape[-1]
        window = cumulative[..., self.size : self.size + channels] - cumulative[..., :channels]
        return inputs / ops.power(self.k + self.alpha / self.size * window, self.beta)

    def compute_output_shape(self, input_shape):
        return input_shape

    def get_config(self):
        return {
            **super().get_config(),
            "size": self.size,
            "alpha": self.alpha,
            "beta": self.beta,
            "k": self.k,
        }
