"""kvision's direct functional graph (kvision.models._fast): stock layers run as torch calls,
ZeroPadding2D folded into the conv or pool it feeds, everything else left to Keras."""

from __future__ import annotations

import numpy as np
import pytest
from numerics import EPS32, assert_close_to_scale

import kvision  # noqa: F401  (selects the torch backend before keras is imported)
from kvision.models import _fast, create_model
from kvision.models._fast import layers as fast_layers


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


@pytest.fixture
def fast_calls(monkeypatch):
    """Names of the layers whose torch form ran (returned a tensor) in the graph walk."""
    names: list[str] = []
    for cls, form in list(fast_layers.FAST_CALLS.items()):

        def wrapped(layer, inputs, *, _form=form, **options):
            outputs = _form(layer, inputs, **options)
            if outputs is not None:
                names.append(layer.name)
            return outputs

        monkeypatch.setitem(fast_layers.FAST_CALLS, cls, wrapped)
    return names


def _twins(arch: str, seed: int, **options):
    """The same model (same weights) as Keras runs it, and as kvision's fast graph does."""
    import keras

    models = []
    for enabled in (False, True):
        _fast.ENABLED = enabled
        keras.utils.set_random_seed(3 + seed)
        model = create_model(
            arch, input_shape=(16, 16, 1), num_classes=3, preprocess=([0.5], [0.5]), **options
        )
        model.compile(
            optimizer=keras.optimizers.SGD(0.05, momentum=0.9),
            loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
        )
        models.append(model)
    return models


@pytest.mark.numeric_cap(3)
@pytest.mark.parametrize(
    ("arch", "options"),
    [
        ("resnet20", {}),  # Add, strided convs after a folded ZeroPadding2D, BN, the shortcut
        ("alexnet_small", {"dropout": 0.0, "norm": "lrn", "head": 8}),
    ],
)
def test_direct_graph_trains_like_keras(
    arch, options, keras_calls, fast_calls, monkeypatch, numeric_seed
):
    monkeypatch.setattr(_fast, "ENABLED", True)
    rng = np.random.default_rng(numeric_seed)
    x = rng.integers(0, 256, size=(16, 16, 16, 1)).astype("uint8")
    y = rng.integers(0, 3, size=16)
    keras_model, direct_model = _twins(arch, numeric_seed, **options)
    results = []
    for enabled, model in ((False, keras_model), (True, direct_model)):
        _fast.ENABLED = enabled
        model.train_on_batch(x[:4], y[:4])  # Keras' first step also builds with numpy inputs
        keras_calls.clear()
        fast_calls.clear()
        losses = [float(model.train_on_batch(x[i::2], y[i::2])) for i in range(2)]
        called, fast = set(keras_calls), list(fast_calls)
        results.append((losses, model.get_weights(), model.predict(x, verbose=0), called, fast))
    (
        (keras_losses, keras_weights, keras_out, keras_called, keras_fast),
        (losses, weights, out, called, fast),
    ) = results
    # No layer takes Keras' call: the uint8 input's Rescaling has a torch form too.
    assert called == set()
    assert keras_called == {layer.name for layer in keras_model.layers[1:]}
    assert not keras_fast
    torch_formed = {
        layer.name for layer in direct_model.layers if type(layer) in fast_layers.FAST_CALLS
    }
    assert set(fast) == torch_formed and len(fast) == 2 * len(torch_formed)
    # Three SGD steps with momentum on each side: the float32 reordering of each forward and
    # backward pass (tests/numerics.py) carries into the next weights, so after the steps
    # weights (BN moving statistics included) and outputs agree to 1e-3 of their scale and
    # losses to 1e-4 relative; a wrong layer form moves them by >1e-2.
    np.testing.assert_allclose(losses, keras_losses, rtol=1e-4, atol=1e-5)
    for a, b in zip(weights, keras_weights, strict=True):
        assert_close_to_scale(a, b, eps_units=1e-3 / EPS32)
    assert_close_to_scale(out, keras_out, eps_units=1e-3 / EPS32)
    assert all(
        type(layer).__module__.startswith("keras.")
        for layer in direct_model.layers
        if not layer.name.endswith("_lrn")
    )


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


@pytest.mark.numeric_cap(3)
def test_direct_graph_keeps_model_class_config_and_saving(tmp_path, numeric_seed):
    import keras

    from kvision.models import load_model

    keras.utils.set_random_seed(numeric_seed)
    model = create_model("resnet20", input_shape=(8, 8, 3), num_classes=2)
    assert "direct_graph" in model.call.__qualname__  # create_model applies it
    config = model.get_config()
    assert _fast.direct_graph(model) is model
    assert type(model).__name__ == "Functional" and model.get_config() == config
    path = tmp_path / "m.keras"
    model.save(path)
    loaded = load_model(path)  # kvision's loader: safe mode, direct graph
    assert "direct_graph" in loaded.call.__qualname__
    plain = keras.saving.load_model(path, safe_mode=True)
    assert "direct_graph" not in plain.call.__qualname__
    x = np.random.default_rng(numeric_seed).normal(size=(3, 8, 8, 3)).astype("float32")
    assert_close_to_scale(loaded.predict(x, verbose=0), plain.predict(x, verbose=0))


def _padded_graph(keras, *, pool_input_relu: bool, pad_shared: bool = False):
    """Input -> ZeroPadding2D -> strided conv -> [ReLU] -> ZeroPadding2D -> max-pool."""
    inputs = keras.Input((9, 8, 3))
    padded = keras.layers.ZeroPadding2D((1, 2), name="conv_pad")(inputs)
    x = keras.layers.Conv2D(4, 3, strides=2, name="conv")(padded)
    if pool_input_relu:
        x = keras.layers.ReLU(name="relu")(x)
    x = keras.layers.ZeroPadding2D(1, name="pool_pad")(x)
    outputs = keras.layers.MaxPooling2D(3, strides=2, name="pool")(x)
    if pad_shared:  # the padded input also feeds a second layer: no fold
        side = keras.layers.GlobalAveragePooling2D(name="side")(padded)
        outputs = [outputs, side]
    return keras.Model(inputs, outputs)


@pytest.mark.parametrize(("relu", "shared"), [(True, False), (False, False), (True, True)])
def test_zero_padding_folds_into_conv_and_relu_pool_only(
    relu, shared, keras_calls, monkeypatch, numeric_seed
):
    """The fold computes what the stock graph computes, gradients included, and pads a
    max-pool (torch: -inf) only where the input is a ReLU's."""
    import keras
    import torch

    from kvision.models._fast import graph

    monkeypatch.setattr(_fast, "ENABLED", True)
    keras.utils.set_random_seed(numeric_seed)
    model = _padded_graph(keras, pool_input_relu=relu, pad_shared=shared)
    plan = graph._Plan(model)
    folded = {pad.name: target.name for pad, target in plan.folded.items()}
    expected = {} if shared else {"conv_pad": "conv"}
    if relu:
        expected["pool_pad"] = "pool"
    assert folded == expected
    x_np = np.random.default_rng(2 + numeric_seed).normal(size=(2, 9, 8, 3)).astype("float32")
    x_np -= 0.5
    results = []
    for direct in (False, True):
        x = torch.tensor(x_np, requires_grad=True)
        out = (_fast.direct_graph(model) if direct else model)(x)
        first = out[0] if shared else out
        grad = torch.autograd.grad(first.sum(), x)[0]
        results.append((first.detach().numpy(), grad.numpy()))
    assert results[0][0].shape == (2, 3, 3, 4)
    for direct, keras_side in zip(*results, strict=True):
        assert_close_to_scale(direct, keras_side)


def test_folded_padding_falls_back_to_padding_then_keras(monkeypatch, numeric_seed):
    """A folded conv whose torch form does not apply (groups) still gets its padding."""
    import keras
    import torch

    from kvision.models._fast import graph

    monkeypatch.setattr(_fast, "ENABLED", True)
    keras.utils.set_random_seed(numeric_seed)
    inputs = keras.Input((6, 6, 4))
    x = keras.layers.ZeroPadding2D(1, name="pad")(inputs)
    outputs = keras.layers.Conv2D(4, 3, groups=2, name="grouped")(x)
    model = keras.Model(inputs, outputs)
    x = torch.from_numpy(np.random.default_rng(numeric_seed).random((2, 6, 6, 4), dtype="float32"))
    expected = model(x)  # Keras: pad, then conv
    assert [layer.name for layer in graph._Plan(model).folded] == ["pad"]
    assert fast_layers.conv_call(model.get_layer("grouped"), x, pads=(1, 1)) is None
    direct = _fast.direct_graph(model)
    assert_close_to_scale(direct(x).detach().numpy(), expected.detach().numpy())


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


def test_builders_keep_pytorch_padding_as_zero_padding_layers():
    """Strided padded convs and ResNet's padded stem pool: a ZeroPadding2D named <layer>_pad
    before a "valid" stock layer; stride-1 "same"-sized padding stays Keras' "same"."""
    model = create_model("resnet18", input_shape=(32, 32, 3), num_classes=2)
    stem_pad = model.get_layer("stem_conv_pad")
    assert type(stem_pad).__name__ == "ZeroPadding2D" and stem_pad.padding == ((3, 3), (3, 3))
    assert model.get_layer("stem_conv").padding == "valid"
    assert model.get_layer("stem_pool_pad").padding == ((1, 1), (1, 1))
    assert model.get_layer("layer1_block1_conv1").padding == "same"
    assert model.get_layer("layer2_block1_conv1").padding == "valid"
    assert tuple(model.get_layer("stem_pool").output.shape) == (None, 8, 8, 64)


def test_a_layer_changed_after_the_first_call_is_seen(keras_calls, fast_calls):
    """The walk keeps each node's caller between calls; a layer given an activity
    regulariser (no longer plain) after it ran fast goes to Keras from the next call on, and
    back to the fast form once it is plain again."""
    import keras
    import torch

    inputs = keras.Input((4,))
    model = _fast.direct_graph(keras.Model(inputs, keras.layers.Dense(2, name="d")(inputs)))
    x = torch.ones(2, 4)
    model(x)
    assert fast_calls == ["d"] and keras_calls == []
    model.get_layer("d").activity_regularizer = keras.regularizers.L2(0.1)
    model(x)
    assert keras_calls == ["d"] and fast_calls == ["d"]
    assert len(model.losses) == 1
    model.get_layer("d").activity_regularizer = None
    model(x)
    assert fast_calls == ["d", "d"] and keras_calls == ["d"]


def test_walk_lets_each_activation_go_after_its_last_use(monkeypatch):
    """Keras' own walk keeps every intermediate tensor until the forward pass ends; kvision's
    drops each after its last consumer, so the allocator reuses warm memory (VGG11/8
    inference: 11.7 -> 9.0 ms a batch). Checked with weak references to the activations
    entering each torch form: by the time a layer runs, every earlier one is gone."""
    import weakref

    import torch

    monkeypatch.setattr(_fast, "ENABLED", True)
    model = _fast.direct_graph(
        create_model("vgg11", input_shape=(32, 32, 3), num_classes=3, width=16, head=8)
    )
    seen: list[weakref.ref] = []
    alive_at_call: list[int] = []
    for cls, form in list(fast_layers.FAST_CALLS.items()):

        def wrapped(layer, inputs, *, _form=form, **options):
            alive_at_call.append(sum(ref() is not None for ref in seen))
            seen.append(weakref.ref(inputs))
            return _form(layer, inputs, **options)

        monkeypatch.setitem(fast_layers.FAST_CALLS, cls, wrapped)
    images = torch.from_numpy(np.random.default_rng(0).random((2, 32, 32, 3), dtype="float32"))
    with torch.no_grad():
        model(images, training=False)
    assert len(alive_at_call) > 10
    # The first form sees the caller's own tensor (alive throughout); then the chain's
    # input of each layer is the only activation still referenced when the next one runs.
    assert max(alive_at_call[2:]) <= 2, alive_at_call


def test_lean_predict_equals_keras_predict(monkeypatch, numeric_seed):
    """kvision's quiet predict (no progress bar, no callbacks) gives Keras' predictions for
    a PyDataset and an array; anything else (verbose, callbacks) goes to Keras' own."""
    import keras

    from kvision.data import make_batches

    monkeypatch.setattr(_fast, "ENABLED", True)
    keras.utils.set_random_seed(numeric_seed)
    model = create_model("lenet", input_shape=(16, 16, 1), num_classes=3)
    rng = np.random.default_rng(numeric_seed)
    images = rng.integers(0, 256, size=(37, 16, 16, 1), dtype=np.uint8)
    batches = make_batches(images, np.zeros(37, int), batch_size=8, seed=0, shuffle=False)
    keras_out = type(model).predict(model, batches, verbose=0)
    _fast.direct_graph(model)
    calls = []
    monkeypatch.setattr(type(model), "predict", lambda self, *a, **k: calls.append(k) or keras_out)
    lean = model.predict(batches, verbose=0)
    lean_array = model.predict(images.astype("float32"), batch_size=8, verbose=0)
    assert not calls  # neither went through Keras' predict
    assert_close_to_scale(lean, keras_out)
    assert_close_to_scale(lean_array, keras_out)
    model.predict(batches, verbose=1)
    assert len(calls) == 1  # a progress bar: Keras' own predict


def _relu_inputs_overwritten(monkeypatch) -> list[tuple[str, bool]]:
    """(ReLU layer name, whether its output is its input's memory) for each ReLU form run."""
    import keras

    records: list[tuple[str, bool]] = []
    form = fast_layers.FAST_CALLS[keras.layers.ReLU]

    def wrapped(layer, inputs, **options):
        pointer = inputs.data_ptr()
        outputs = form(layer, inputs, **options)
        records.append((layer.name, outputs.data_ptr() == pointer))
        return outputs

    monkeypatch.setitem(fast_layers.FAST_CALLS, keras.layers.ReLU, wrapped)
    return records


def test_relu_overwrites_its_producers_output_only_when_nothing_else_reads_it(monkeypatch):
    """Without gradients, a ReLU whose input is a Conv2D's, Dense's or BatchNorm's own output,
    read by nothing else and not returned, runs in place (no new tensor); a ReLU whose input
    another layer also reads, or that the model returns, does not; nor does any ReLU while a
    gradient is recorded. The outputs are those of Keras' own walk in every case."""
    import keras
    import torch

    monkeypatch.setattr(_fast, "ENABLED", True)
    keras.utils.set_random_seed(5)
    inputs = keras.Input((8, 8, 2))
    conv = keras.layers.Conv2D(4, 3, padding="same", name="conv")(inputs)
    norm = keras.layers.BatchNormalization(name="norm")(conv)
    alone = keras.layers.ReLU(name="alone")(norm)  # norm's only reader
    conv2 = keras.layers.Conv2D(4, 3, padding="same", name="conv2")(alone)
    shared = keras.layers.ReLU(name="shared")(conv2)  # conv2 is also read by the pool below
    pooled = keras.layers.GlobalAveragePooling2D()(conv2)
    head = keras.layers.Dense(3, name="head")(keras.layers.GlobalAveragePooling2D()(shared))
    returned = keras.layers.ReLU(name="returned")(head)  # head is also a model output
    model = keras.Model(inputs, [returned, head, pooled, norm])
    images = np.random.default_rng(5).normal(size=(4, 8, 8, 2)).astype("float32")
    with torch.no_grad():
        expected = [t.numpy() for t in model(torch.from_numpy(images), training=False)]
    assert (expected[3] < 0).any() and (expected[1] < 0).any()  # so a ReLU on them would show

    records = _relu_inputs_overwritten(monkeypatch)
    _fast.direct_graph(model)
    with torch.no_grad():
        outputs = [t.numpy() for t in model(torch.from_numpy(images), training=False)]
    # norm and head are returned, conv2 is read twice: no ReLU may overwrite its input.
    assert dict(records) == {"alone": False, "shared": False, "returned": False}
    for got, want in zip(outputs, expected, strict=True):
        np.testing.assert_array_equal(got, want)

    # The same layers in a model returning neither norm nor head: their ReLUs run in place;
    # conv2 is still read by the pool as well.
    inner = _fast.direct_graph(keras.Model(inputs, [returned, pooled]))
    records.clear()
    with torch.no_grad():
        got = [t.numpy() for t in inner(torch.from_numpy(images), training=False)]
    assert dict(records) == {"alone": True, "shared": False, "returned": True}
    np.testing.assert_array_equal(got[0], expected[0])  # relu_ computes what relu does
    np.testing.assert_array_equal(got[1], expected[2])
    records.clear()
    inner(torch.from_numpy(images), training=False)  # gradients recorded: never in place
    assert dict(records) == {"alone": False, "shared": False, "returned": False}
