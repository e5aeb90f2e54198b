"""Grad-CAM / Grad-CAM++ against the formulas computed independently, and layer lookup."""

from __future__ import annotations

import kvision  # noqa: F401  (selects the torch backend before keras is imported)

# isort: split
import keras
import numpy as np
import pytest
from numerics import EPS32, assert_close_to_scale

from kvision.errors import KvisionError
from kvision.insight import _layers
from kvision.insight.cam import class_activation_maps, overlay
from kvision.models.inference import probabilities


def _model(frozen: bool = True, seed: int = 0) -> keras.Model:
    """Conv -> conv (explained layer) -> flatten -> dense tanh -> dense logits."""
    keras.utils.set_random_seed(3 + seed)
    inp = keras.Input((6, 6, 2))
    x = keras.layers.Conv2D(3, 3, padding="same", activation="relu", name="v1_conv")(inp)
    x = keras.layers.Conv2D(4, 3, activation="relu", name="v2_conv")(x)
    x = keras.layers.Flatten(name="flatten")(x)
    x = keras.layers.Dense(5, activation="tanh", name="it_dense")(x)
    model = keras.Model(inp, keras.layers.Dense(3, name="classifier")(x))
    model.trainable = not frozen
    return model


def _head(model: keras.Model):
    """The layers after v2_conv in float64 numpy: (h, w, k) feature maps -> logits."""
    w1, b1 = (np.asarray(v, np.float64) for v in model.get_layer("it_dense").get_weights())
    w2, b2 = (np.asarray(v, np.float64) for v in model.get_layer("classifier").get_weights())
    return lambda feats: np.tanh(feats.reshape(-1) @ w1 + b1) @ w2 + b2


def _numeric_grad(model, feats: np.ndarray, c: int, eps: float = 1e-5) -> np.ndarray:
    """Central finite differences of logit ``c`` with respect to every feature value."""
    head, grad = _head(model), np.zeros_like(feats, dtype=np.float64)
    for idx in np.ndindex(*feats.shape):
        up, down = feats.astype(np.float64), feats.astype(np.float64)
        up[idx] += eps
        down[idx] -= eps
        grad[idx] = (head(up)[c] - head(down)[c]) / (2 * eps)
    return grad


def _gradcam_loops(a: np.ndarray, g: np.ndarray) -> np.ndarray:
    cam = np.zeros(a.shape[:2])
    for k in range(a.shape[-1]):
        cam += g[..., k].mean() * a[..., k]
    return np.maximum(cam, 0)


def _gradcam_pp_loops(a: np.ndarray, g: np.ndarray) -> np.ndarray:
    cam = np.zeros(a.shape[:2])
    for k in range(a.shape[-1]):
        gk, total = g[..., k], a[..., k].sum()
        weight = 0.0
        for i, j in np.ndindex(*gk.shape):
            denom = 2 * gk[i, j] ** 2 + total * gk[i, j] ** 3
            alpha = gk[i, j] ** 2 / denom if denom != 0 else 0.0
            weight += alpha * max(gk[i, j], 0.0)
        cam += weight * a[..., k]
    return np.maximum(cam, 0)


@pytest.mark.parametrize("method", ["gradcam", "gradcam++"])
def test_cam_matches_formula_on_frozen_model(method, numeric_seed):
    model = _model(frozen=True, seed=numeric_seed)
    # Small pixel values keep tanh out of saturation, so the gradients are far from zero.
    images = np.random.default_rng(numeric_seed).uniform(0, 2, (4, 6, 6, 2)).astype(np.float32)
    feats = keras.Model(model.inputs, model.get_layer("v2_conv").output).predict(images, verbose=0)
    reference = _gradcam_loops if method == "gradcam" else _gradcam_pp_loops
    # A class's map can rightly be all zero (ReLU of a negative weighted sum) for some random
    # weights: explain, per image, the class whose reference map is largest.
    references = []
    for n in range(len(images)):
        options = []
        for c in range(3):
            grad = _numeric_grad(model, feats[n], c)
            assert np.abs(grad).max() > 0  # the check means something only if gradients flow
            options.append((reference(feats[n].astype(np.float64), grad), c))
        references.append(max(options, key=lambda option: option[0].max()))
    assert any(expected.max() > 0 for expected, _ in references)
    classes = np.array([c for _, c in references])
    maps, outputs = class_activation_maps(model, "v2_conv", images, classes, method)
    assert_close_to_scale(outputs, model.predict(images, verbose=0))
    for n, (expected, _) in enumerate(references):
        # The reference is float64 central differences (error ~1e-9); kvision's maps come from
        # float32 autograd and sums, which cancel: 1e-4 of the map's own scale (floor 0, CAM
        # maps have no natural unit), ~800 float32 eps.
        assert_close_to_scale(maps[n], expected, eps_units=1e-4 / EPS32, floor=0.0)


def test_gradients_flow_through_trainable_and_frozen_models_alike():
    from kvision.insight._grad import layer_gradients

    images = np.random.default_rng(1).uniform(0, 255, (3, 6, 6, 2)).astype(np.float32)
    frozen = layer_gradients(_model(True), "v2_conv", images, np.array([0, 1, 2]))
    trainable = layer_gradients(_model(False), "v2_conv", images, np.array([0, 1, 2]))
    for a, b in zip(frozen, trainable, strict=True):
        assert_close_to_scale(a, b)


def test_cam_layer_and_layer_errors_name_the_candidates():
    model = _model()
    assert _layers.cam_layer(model) == "v2_conv"
    assert _layers.cam_layer(model, "v1") == "v1_conv"  # a stage name resolves to its layer
    with pytest.raises(KvisionError, match=r"no stage or layer 'v2_cnv'.*Did you mean: 'v2_conv'"):
        _layers.cam_layer(model, "v2_cnv")
    with pytest.raises(
        KvisionError, match=r"'it_dense'.*not a spatial map.*Spatial stages: v1, v2"
    ):
        _layers.cam_layer(model, "it_dense")


def test_model_without_conv_is_refused():
    inp = keras.Input((4, 4, 1))
    mlp = keras.Model(inp, keras.layers.Dense(2)(keras.layers.Flatten()(inp)), name="mlp")
    with pytest.raises(KvisionError, match="'mlp' has no convolution layer, so Grad-CAM"):
        _layers.cam_layer(mlp)


def test_overlay_puts_the_hot_spot_where_the_map_peaks():
    image = np.full((8, 8, 1), 128, np.uint8)
    cam = np.zeros((2, 2))
    cam[1, 1] = 3.0
    out = overlay(image, cam)
    assert out.shape == (8, 8, 3) and out.dtype == np.uint8
    assert out[7, 7, 0] > out[7, 7, 2]  # red where the map peaks (jet colour map)
    assert out[0, 0, 2] > out[0, 0, 0]  # blue where it is zero


def test_probabilities_softmax_logits_but_keep_probabilities():
    logits = np.array([[2.0, 0.0, -1.0]])
    np.testing.assert_allclose(probabilities(logits).sum(), 1.0)
    probs = np.array([[0.2, 0.8]])
    np.testing.assert_array_equal(probabilities(probs), probs)
