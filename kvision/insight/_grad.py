"""Gradients of class scores with respect to a layer's output, per Keras backend.

Keras 3 has no backend-independent gradient API, so this is the one place that talks to
torch.autograd (kvision's backend), tf.GradientTape or jax.grad. Gradients are taken with
respect to the layer's output, never the weights, so frozen (trainable=False) models work.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from kvision.errors import KvisionError

if TYPE_CHECKING:
    import keras


def layer_gradients(
    model: keras.Model,
    layer_name: str,
    images: np.ndarray,
    classes: np.ndarray,
    batch_size: int = 16,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """For each image: the layer's output A, dY_c/dA for its class c, and the model outputs.

    ``images`` are raw pixel values (N, H, W, C); ``classes`` holds one class index per image.
    Returns (A, grads, outputs) as float32 arrays of shapes (N, h, w, k), (N, h, w, k),
    (N, num_classes). Y_c is the model's output for class c as the model computes it.
    """
    import keras

    backend = keras.backend.backend()
    compute = {"torch": _torch, "tensorflow": _tensorflow, "jax": _jax}.get(backend)
    if compute is None:
        raise KvisionError(
            f"Grad-CAM needs gradients, which kvision computes with the torch, tensorflow or "
            f"jax backend; the active Keras backend is '{backend}'. Set KERAS_BACKEND=torch."
        )
    from kvision.insight._layers import probe_model

    probe = probe_model(model, [model.get_layer(layer_name).output, model.output])
    parts = [
        compute(
            model,
            layer_name,
            probe,
            images[i : i + batch_size].astype(np.float32),
            np.asarray(classes[i : i + batch_size], dtype=np.int64),
        )
        for i in range(0, len(images), batch_size)
    ]
    return tuple(np.concatenate([p[j] for p in parts]) for j in range(3))


def _torch(model: keras.Model, layer_name, probe, x, classes):
    import keras
    import torch

    xt = keras.ops.convert_to_tensor(x)
    # The input, not the weights, carries requires_grad: frozen layers still pass gradients.
    xt.requires_grad_(True)
    with torch.enable_grad():
        feats, out = probe(xt, training=False)
        rows = torch.arange(len(classes), device=out.device)
        score = out[rows, torch.as_tensor(classes, device=out.device)].sum()
        (grads,) = torch.autograd.grad(score, feats)
    return _np(feats), _np(grads), _np(out)


def _tensorflow(model: keras.Model, layer_name, probe, x, classes):
    import tensorflow as tf

    xt = tf.convert_to_tensor(x)
    with tf.GradientTape() as tape:
        tape.watch(xt)  # records the forward pass even when no variable is trainable
        feats, out = probe(xt, training=False)
        score = tf.reduce_sum(tf.gather(out, classes, batch_dims=1))
    grads = tape.gradient(score, feats)
    return feats.numpy(), grads.numpy(), out.numpy()


def _jax(model: keras.Model, layer_name, probe, x, classes):
    import jax
    import keras

    # jax differentiates functions, so split the graph at the layer: A = front(x), Y = head(A).
    try:
        head = keras.Model(model.get_layer(layer_name).output, model.output)
    except ValueError as err:
        raise KvisionError(
            f"Layer '{layer_name}' does not split the model into a front and a head (a skip "
            f"connection crosses it), which Grad-CAM on the jax backend needs: {err}"
        ) from err
    feats, out = probe(x, training=False)

    def score(a):
        return head(a, training=False)[np.arange(len(classes)), classes].sum()

    grads = jax.grad(score)(feats)
    return np.asarray(feats), np.asarray(grads), np.asarray(out)


def _np(tensor) -> np.ndarray:
    return tensor.detach().float().cpu().numpy()  # .float(): numpy has no bfloat16
