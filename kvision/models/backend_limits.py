"""What a Keras backend cannot run, said before the first batch instead of deep inside it
(a trial checks its model after building it; ``kvision predict``, ``export`` and ``viz`` a file
they load, in ``kvision.portable.loading``).

Keras' TensorFlow backend computes adaptive pooling with fixed pooling windows that must fit
in the input, so ``AdaptiveAveragePooling2D(6)`` on a feature map smaller than 6x6 fails at
the first forward pass with a TensorFlow shape error (Keras 3.15; torch and JAX compute the
same layer, torch's bins, on any input size). The AlexNet variants at the main job's 64 px
reach their 6x6 pool with a 1x1 map. Nothing else is known to differ.
"""

from __future__ import annotations

import keras

from kvision.errors import KvisionError


def check_backend_limits(model: keras.Model) -> None:
    """Raise KvisionError naming the layer when the backend cannot run ``model``'s graph."""
    if keras.backend.backend() != "tensorflow":
        return
    for layer in model.layers:
        if isinstance(layer, keras.layers.AdaptiveAveragePooling2D):
            _check_adaptive_pool(model, layer)


def _check_adaptive_pool(model: keras.Model, layer: keras.layers.Layer) -> None:
    out_h, out_w = (
        (layer.output_size, layer.output_size)
        if isinstance(layer.output_size, int)
        else tuple(layer.output_size)
    )
    shape = tuple(layer.input.shape)
    in_h, in_w = shape[1:3] if layer.data_format == "channels_last" else shape[2:4]
    if in_h is None or in_w is None or (in_h >= out_h and in_w >= out_w):
        return
    raise KvisionError(
        f"Model '{model.name}' cannot run on Keras' TensorFlow backend at input "
        f"{tuple(model.input_shape[1:])}: its layer '{layer.name}' pools a {in_h}x{in_w} "
        f"feature map to {out_h}x{out_w}, and Keras' TensorFlow adaptive pooling needs a map "
        f"at least as large as its output. Use larger images (image_size), or the torch or "
        f"JAX backend (KERAS_BACKEND=torch or jax), which pool any size."
    )
