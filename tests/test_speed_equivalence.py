"""The torch fast paths (kvision.models._fast) train exactly like the keras.ops fallback."""

from __future__ import annotations

import numpy as np
import pytest

import kvision  # noqa: F401  (selects the torch backend before keras is imported)
from kvision.models import _fast, create_model


def _train(arch: str, enabled: bool, monkeypatch, **options) -> tuple[list[float], list, np.ndarray]:
    """Loss per step of 4 SGD steps, the final weights and eval-mode outputs, seed fixed.

    SGD, not Adam: a conv bias feeding BatchNorm has a gradient of ~0 made of rounding noise,
    which Adam would scale up to full steps and so compare noise with noise.
    """
    import keras

    monkeypatch.setattr(_fast, "ENABLED", enabled)
    keras.utils.set_random_seed(7)
    model = create_model(arch, input_shape=(16, 16, 1), num_classes=3,
                         preprocess=([0.5], [0.5]), **options)
    model.compile(optimizer=keras.optimizers.SGD(0.05, momentum=0.9),
                  loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    rng = np.random.default_rng(0)
    x = rng.integers(0, 256, size=(32, 16, 16, 1)).astype("float32")
    y = rng.integers(0, 3, size=32)
    losses = [float(model.train_on_batch(x[i::4], y[i::4])) for i in range(4)]
    return losses, model.get_weights(), model.predict(x, verbose=0)


@pytest.mark.parametrize(("arch", "options"), [
    ("lenet", {"dropout": 0.0}),
    ("alexnet_small", {"dropout": 0.0, "norm": "lrn", "head": 8}),
    ("resnet20", {}),  # strided convs after explicit padding, shortcuts
])
def test_fast_path_matches_keras_ops(arch, options, monkeypatch):
    fast_losses, fast_weights, fast_out = _train(arch, True, monkeypatch, **options)
    slow_losses, slow_weights, slow_out = _train(arch, False, monkeypatch, **options)
    np.testing.assert_allclose(fast_losses, slow_losses, rtol=1e-4, atol=1e-5)
    # Weights include BatchNorm's moving mean/variance: the update rule is Keras' too.
    for fast, slow in zip(fast_weights, slow_weights, strict=True):
        np.testing.assert_allclose(fast, slow, rtol=1e-3, atol=1e-5)
    np.testing.assert_allclose(fast_out, slow_out, rtol=1e-3, atol=1e-4)
    assert fast_losses[-1] != fast_losses[0]  # it trained


def test_fast_layers_are_used_and_save(tmp_path):
    import keras

    model = create_model("lenet", input_shape=(12, 12, 1), num_classes=2)
    layer = model.get_layer("conv1_bn")
    assert isinstance(layer, _fast.BatchNormalization)
    assert isinstance(layer, keras.layers.BatchNormalization)
    path = tmp_path / "m.keras"
    model.save(path)
    loaded = keras.saving.load_model(path, safe_mode=True)
    assert type(loaded.get_layer("conv1_bn")) is _fast.BatchNormalization
    x = np.random.default_rng(1).integers(0, 256, size=(4, 12, 12, 1)).astype("float32")
    np.testing.assert_allclose(loaded.predict(x, verbose=0), model.predict(x, verbose=0),
                               rtol=1e-6, atol=1e-6)


def test_frozen_batchnorm_keeps_moving_stats(monkeypatch):
    """A non-trainable BN runs in inference mode on the fast path too (transfer learning)."""
    import keras

    monkeypatch.setattr(_fast, "ENABLED", True)
    layer = _fast.BatchNormalization(momentum=0.9)
    x = np.random.default_rng(2).normal(3.0, 2.0, size=(8, 4, 4, 5)).astype("float32")
    layer(x, training=True)
    trained_mean = keras.ops.convert_to_numpy(layer.moving_mean)
    assert np.all(np.abs(trained_mean - 0.3) < 0.2)  # 0.1 of the batch mean ~3 mixed in
    layer.trainable = False
    layer(x, training=True)
    np.testing.assert_array_equal(keras.ops.convert_to_numpy(layer.moving_mean), trained_mean)
