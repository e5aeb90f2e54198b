"""kvision's direct functional graph and PyTorch-style padding (kvision.models._fast)."""

from __future__ import annotations

import numpy as np
import pytest

import kvision  # noqa: F401  (selects the torch backend before keras is imported)
from kvision.models import _fast, create_model


@pytest.fixture
def keras_calls(monkeypatch):
    """Names of the layers the graph walk handed to Keras' ``Layer.__call__``."""
    from keras.src.models import functional

    names: list[str] = []
    keras_operation_fn = functional.operation_fn

    def counting(operation, **context):
        call = keras_operation_fn(operation, **context)

        def wrapped(*args, **kwargs):
            names.append(operation.name)
            return call(*args, **kwargs)

        return wrapped

    monkeypatch.setattr(functional, "operation_fn", counting)
    return names


def _twins(arch: str, **options):
    """Two models with the same weights: one as Keras runs it, one through direct_graph."""
    import keras

    models = []
    for direct in (False, True):
        keras.utils.set_random_seed(3)
        model = create_model(arch, input_shape=(16, 16, 1), num_classes=3,
                             preprocess=([0.5], [0.5]), **options)
        model.compile(optimizer=keras.optimizers.SGD(0.05, momentum=0.9),
                      loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True))
        models.append(_fast.direct_graph(model) if direct else model)
    return models


@pytest.mark.parametrize(("arch", "options"), [
    ("resnet20", {}),  # Add, strided convs with folded padding, BatchNorm
    ("alexnet_small", {"dropout": 0.0, "norm": "lrn", "head": 8}),
])
def test_direct_graph_trains_like_keras(arch, options, keras_calls):
    rng = np.random.default_rng(0)
    x = rng.integers(0, 256, size=(16, 16, 16, 1)).astype("uint8")
    y = rng.integers(0, 3, size=16)
    keras_model, direct_model = _twins(arch, **options)
    results = []
    for model in (keras_model, direct_model):
        model.train_on_batch(x[:4], y[:4])  # Keras' first step also builds with numpy inputs
        keras_calls.clear()
        losses = [float(model.train_on_batch(x[i::2], y[i::2])) for i in range(2)]
        # Only the uint8 input's preprocessing layer needs Keras' dtype conversion.
        called = set(keras_calls)
        results.append((losses, model.get_weights(), model.predict(x, verbose=0), called))
    (keras_losses, keras_weights, keras_out, keras_called), (losses, weights, out, called) = results
    assert called == {"preprocess"}
    assert len(keras_called) == len(keras_model.layers) - 1  # every layer but the input
    np.testing.assert_allclose(losses, keras_losses, rtol=1e-6)
    for a, b in zip(weights, keras_weights, strict=True):  # incl. BN moving statistics
        np.testing.assert_allclose(a, b, rtol=1e-6, atol=1e-7)
    np.testing.assert_allclose(out, keras_out, rtol=1e-6, atol=1e-6)


@pytest.mark.filterwarnings("ignore:Layer 'functional.*mask:UserWarning")
def test_direct_graph_leaves_other_layers_and_calls_to_keras(keras_calls):
    """Regularised or mixed-precision layers, masks and symbolic inputs take Keras' path."""
    import keras
    import torch

    inputs = keras.Input((4,), name="x")
    hidden = keras.layers.Dense(3, activity_regularizer="l2", name="reg")(inputs)
    half = keras.layers.Dense(2, dtype="mixed_float16", name="half")(hidden)
    outputs = keras.layers.Dense(2, name="plain")(keras.layers.Activation("relu")(half))
    model = _fast.direct_graph(keras.Model(inputs, outputs))
    x = torch.ones(2, 4)
    model(x)
    assert set(keras_calls) == {"reg", "half", "activation"}  # float16 input: Keras casts
    assert len(model.losses) == 1  # the activity regulariser's loss was recorded
    keras_calls.clear()
    model(x, mask=torch.ones(2, 4, dtype=torch.bool))
    assert "plain" in keras_calls
    symbolic = model(keras.Input((4,)))
    assert tuple(symbolic.shape) == (None, 2)


def test_direct_graph_keeps_model_class_config_and_saving(tmp_path):
    import keras

    from kvision.models import load_model

    model = create_model("resnet20", input_shape=(8, 8, 3), num_classes=2)
    config = model.get_config()
    assert _fast.direct_graph(model) is model
    assert type(model).__name__ == "Functional" and model.get_config() == config
    path = tmp_path / "m.keras"
    model.save(path)
    loaded = load_model(path)  # kvision's loader: safe mode, direct graph
    assert "direct_graph" in loaded.call.__qualname__
    plain = keras.saving.load_model(path, safe_mode=True)
    x = np.random.default_rng(1).normal(size=(3, 8, 8, 3)).astype("float32")
    np.testing.assert_allclose(loaded.predict(x, verbose=0), plain.predict(x, verbose=0),
                               rtol=1e-6, atol=1e-6)


@pytest.mark.parametrize("enabled", [True, False])
def test_conv_padding_int_is_zero_padding_then_valid_conv(enabled, monkeypatch):
    """PyTorch's symmetric padding, folded into kvision's Conv2D, on either path."""
    import keras
    import torch

    monkeypatch.setattr(_fast, "ENABLED", enabled)
    folded = _fast.Conv2D(4, 3, strides=2, padding=(1, 2), name="folded")
    separate = keras.layers.Conv2D(4, 3, strides=2, padding="valid", name="separate")
    x = torch.tensor(np.random.default_rng(2).normal(size=(2, 9, 8, 3)).astype("float32"),
                     requires_grad=True)
    out = folded(x)
    separate.build((None, 11, 12, 3))
    separate.set_weights(folded.get_weights())
    reference = separate(keras.layers.ZeroPadding2D((1, 2))(x))
    assert tuple(out.shape) == tuple(reference.shape) == (2, 5, 5, 4)
    assert folded.compute_output_shape((None, 9, 8, 3)) == (None, 5, 5, 4)
    np.testing.assert_allclose(out.detach().numpy(), reference.detach().numpy(), rtol=1e-5,
                               atol=1e-5)
    grad = torch.autograd.grad(out.sum(), x)[0]
    reference_grad = torch.autograd.grad(reference.sum(), x)[0]
    np.testing.assert_allclose(grad.numpy(), reference_grad.numpy(), rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("enabled", [True, False])
def test_max_pool_padding_int_pads_with_minus_infinity(enabled, monkeypatch):
    """Padded cells never win the max, as in torch, even where every input is negative."""
    import torch

    monkeypatch.setattr(_fast, "ENABLED", enabled)
    x = -torch.rand(2, 6, 6, 3) - 1.0
    out = _fast.MaxPooling2D(3, strides=2, padding=1)(x)
    expected = torch.nn.functional.max_pool2d(x.permute(0, 3, 1, 2), 3, 2, padding=1)
    np.testing.assert_array_equal(out.numpy(), expected.permute(0, 2, 3, 1).numpy())
    assert (out < 0).all()


def test_padding_ints_save_load_and_are_checked(tmp_path):
    import keras

    inputs = keras.Input((10, 10, 2))
    x = _fast.Conv2D(3, 5, strides=2, padding=2, name="conv")(inputs)
    outputs = _fast.MaxPooling2D(3, strides=2, padding=1, name="pool")(x)
    model = keras.Model(inputs, outputs)
    assert model.get_layer("conv").get_config()["padding"] == [2, 2]
    path = tmp_path / "m.keras"
    model.save(path)
    loaded = keras.saving.load_model(path, safe_mode=True)
    assert loaded.get_layer("pool").explicit_padding == (1, 1)
    assert tuple(loaded.output.shape) == (None, 3, 3, 3)
    x = np.random.default_rng(5).normal(size=(2, 10, 10, 2)).astype("float32")
    np.testing.assert_allclose(loaded.predict(x, verbose=0), model.predict(x, verbose=0),
                               rtol=1e-6, atol=1e-6)
    with pytest.raises(ValueError, match="non-negative int"):
        _fast.Conv2D(3, 3, padding=-1)
    with pytest.raises(ValueError, match="more than half the pool size"):
        _fast.MaxPooling2D(2, padding=2)


@pytest.mark.filterwarnings("ignore:Layer .* was passed an input with a mask:UserWarning")
def test_direct_graph_applied_again_replaces_rather_than_nests(monkeypatch):
    """Each stage compiles (and so re-applies it to) the same model: one layer of checks."""
    import torch

    from kvision.models._fast import graph

    model = create_model("lenet", input_shape=(12, 12, 1), num_classes=2)
    for _ in range(3):
        _fast.direct_graph(model)
    checks = []
    as_torch = graph._as_torch
    monkeypatch.setattr(graph, "_as_torch", lambda inputs: checks.append(1) or as_torch(inputs))
    x = torch.zeros(2, 12, 12, 1)
    model(x, mask=torch.ones(2, 12, 12, 1, dtype=torch.bool))  # falls back to Keras
    assert len(checks) == 1


def test_zero_int_padding_is_keras_valid():
    """The model builders pass pad=0 for unpadded layers: config and fallback are "valid"."""
    for layer in (_fast.Conv2D(3, 3, padding=0), _fast.MaxPooling2D(2, padding=(0, 0))):
        assert (layer.padding, layer.explicit_padding) == ("valid", None)
        assert layer.get_config()["padding"] == "valid"
