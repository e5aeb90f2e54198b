"""The torch fast paths (kvision.models._fast) train exactly like Keras' own stock layers."""

from __future__ import annotations

import numpy as np
import pytest
from numerics import EPS32, assert_close_to_scale

import kvision  # noqa: F401  (selects the torch backend before keras is imported)
from kvision.models import _fast, create_model


def _train(
    arch: str, enabled: bool, monkeypatch, seed: int, **options
) -> tuple[list[float], list, np.ndarray]:
    """Loss per step of 4 SGD steps, the final weights and eval-mode outputs for ``seed``.

    SGD, not Adam: a conv bias feeding BatchNorm has a gradient of ~0 made of rounding noise,
    which Adam would scale up to full steps and so compare noise with noise.
    """
    import keras

    monkeypatch.setattr(_fast, "ENABLED", enabled)
    keras.utils.set_random_seed(7 + seed)
    model = create_model(
        arch, input_shape=(16, 16, 1), num_classes=3, preprocess=([0.5], [0.5]), **options
    )
    model.compile(
        optimizer=keras.optimizers.SGD(0.05, momentum=0.9),
        loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
    )
    rng = np.random.default_rng(seed)
    x = rng.integers(0, 256, size=(32, 16, 16, 1)).astype("float32")
    y = rng.integers(0, 3, size=32)
    losses = [float(model.train_on_batch(x[i::4], y[i::4])) for i in range(4)]
    return losses, model.get_weights(), model.predict(x, verbose=0)


@pytest.mark.numeric_cap(3)
@pytest.mark.parametrize(
    ("arch", "options"),
    [
        ("lenet", {"dropout": 0.0}),
        ("alexnet_small", {"dropout": 0.0, "norm": "lrn", "head": 8}),
        ("resnet20", {}),  # strided convs after explicit padding, shortcuts
    ],
)
def test_fast_path_matches_keras_ops(arch, options, monkeypatch, numeric_seed):
    fast_losses, fast_weights, fast_out = _train(arch, True, monkeypatch, numeric_seed, **options)
    slow_losses, slow_weights, slow_out = _train(arch, False, monkeypatch, numeric_seed, **options)
    # Tolerances: both sides differ only by summation order (float32 reordering, ~1e-6 of the
    # scale per forward pass, tests/numerics.py). Four SGD steps with momentum feed each
    # step's rounding into the next weights, so the difference grows with the steps: losses
    # agree to 1e-4 relative, weights (BatchNorm's moving statistics included: Keras' update
    # rule) to 1e-3 of their scale, eval outputs to 1e-3 of theirs. A wrong update rule, a
    # missed bias or a transposed kernel moves them by >1e-2.
    np.testing.assert_allclose(fast_losses, slow_losses, rtol=1e-4, atol=1e-5)
    for fast, slow in zip(fast_weights, slow_weights, strict=True):
        assert_close_to_scale(fast, slow, eps_units=1e-3 / EPS32)
    assert_close_to_scale(fast_out, slow_out, eps_units=1e-3 / EPS32)
    assert fast_losses[-1] != fast_losses[0]  # it trained


def test_stock_layers_are_saved_and_load_in_plain_keras(tmp_path, numeric_seed):
    import keras

    keras.utils.set_random_seed(numeric_seed)
    model = create_model("lenet", input_shape=(12, 12, 1), num_classes=2)
    assert type(model.get_layer("conv1_bn")) is keras.layers.BatchNormalization
    path = tmp_path / "m.keras"
    model.save(path)
    loaded = keras.saving.load_model(path, safe_mode=True)
    assert type(loaded.get_layer("conv1_bn")) is keras.layers.BatchNormalization
    x = np.random.default_rng(numeric_seed).integers(0, 256, size=(4, 12, 12, 1)).astype("float32")
    assert_close_to_scale(loaded.predict(x, verbose=0), model.predict(x, verbose=0))


def test_frozen_batchnorm_keeps_moving_stats(monkeypatch):
    """A non-trainable BN runs in inference mode on the fast path too (transfer learning)."""
    import keras

    monkeypatch.setattr(_fast, "ENABLED", True)
    inputs = keras.Input((4, 4, 5))
    layer = keras.layers.BatchNormalization(momentum=0.9)
    model = _fast.direct_graph(keras.Model(inputs, layer(inputs)))
    x = np.random.default_rng(2).normal(3.0, 2.0, size=(8, 4, 4, 5)).astype("float32")
    called = []
    monkeypatch.setitem(
        _fast.layers.FAST_CALLS,
        keras.layers.BatchNormalization,
        lambda *a, **k: called.append(1) or _fast.layers.batch_norm_call(*a, **k),
    )
    model(x, training=True)
    assert called  # the torch form ran
    trained_mean = keras.ops.convert_to_numpy(layer.moving_mean)
    assert np.all(np.abs(trained_mean - 0.3) < 0.2)  # 0.1 of the batch mean ~3 mixed in
    layer.trainable = False
    model(x, training=True)
    np.testing.assert_array_equal(keras.ops.convert_to_numpy(layer.moving_mean), trained_mean)


def _adam_model(optimizer: str, seed: int):
    """alexnet_small (LRN, no BatchNorm) compiled with kvision's fused Adam(W), for ``seed``."""
    import keras

    keras.utils.set_random_seed(3 + seed)
    model = create_model(
        "alexnet_small", input_shape=(16, 16, 1), num_classes=3, dropout=0.0, norm="lrn", head=8
    )
    # epsilon=1e-3, lr=1e-3: Adam divides by sqrt(v) + epsilon, so with Keras' 1e-7 the
    # float32 reordering of a ~0 gradient (~1e-9) becomes a step of up to lr; 1e-3 bounds
    # that gain to lr/epsilon = 1. Where epsilon sits is still checked (and pinned exactly by
    # the single-step test below).
    opt = _fast.fuse_adam(
        keras.optimizers.Adam(1e-3, epsilon=1e-3)
        if optimizer == "adam"
        else keras.optimizers.AdamW(1e-3, weight_decay=0.05, epsilon=1e-3)
    )
    model.compile(optimizer=opt, loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    return model


def _adam_run(enabled: bool, monkeypatch, optimizer: str, seed: int = 0) -> list[float]:
    """Losses of 5 Adam(W) steps on a small conv net, fast paths on or off."""
    monkeypatch.setattr(_fast, "ENABLED", enabled)
    model = _adam_model(optimizer, seed)
    rng = np.random.default_rng(seed)
    x = rng.integers(0, 256, size=(16, 16, 16, 1)).astype("float32")
    y = rng.integers(0, 3, size=16)
    return [float(model.train_on_batch(x, y)) for _ in range(5)]


@pytest.mark.numeric_cap(5)
@pytest.mark.parametrize("optimizer", ["adam", "adamw"])
def test_fused_adam_matches_keras_adam(optimizer, monkeypatch, numeric_seed):
    """The fused kernel computes Keras' update (its epsilon placement), state included.

    Step-synchronised: before every step both sides hold the same weights and optimizer
    state, so each step's update is compared alone. Over a free-running trajectory the two
    drift apart at random although each step agrees (seen: 1 % of a conv kernel after 10
    steps for one seed in 30, every step's gradients equal to 3e-7 of their scale).
    """
    fast, slow = _adam_model(optimizer, numeric_seed), _adam_model(optimizer, numeric_seed)
    rng = np.random.default_rng(numeric_seed)
    x = rng.integers(0, 256, size=(16, 16, 16, 1)).astype("float32")
    y = rng.integers(0, 3, size=16)
    start = fast.get_weights()
    for _ in range(5):
        step = []
        for enabled, model in ((True, fast), (False, slow)):
            monkeypatch.setattr(_fast, "ENABLED", enabled)
            step.append(float(model.train_on_batch(x, y)))
        # One forward pass each: float32 reordering only (tests/numerics.py).
        np.testing.assert_allclose(step[0], step[1], rtol=1e-5)
        # One update from equal weights, gradients equal to ~3e-7 of their scale: weights
        # and state (iterations, momentums, velocities) agree to the reordering bound.
        for a, b in zip(fast.get_weights(), slow.get_weights(), strict=True):
            assert_close_to_scale(a, b)
        pairs = list(zip(fast.optimizer.variables, slow.optimizer.variables, strict=True))
        for a, b in pairs:
            assert_close_to_scale(np.asarray(a), np.asarray(b))
        fast.set_weights(slow.get_weights())
        for a, b in pairs:
            a.assign(b)
    assert not np.allclose(start[0], fast.get_weights()[0])  # it trained


def test_fused_adam_single_step_is_keras_formula(monkeypatch, numeric_seed):
    """One update on fixed gradients, against Keras' update rule written out in numpy."""
    import keras
    import torch

    rng = np.random.default_rng(5 + numeric_seed)
    start = rng.normal(size=(3, 4)).astype("float32")
    grads = [rng.normal(size=(3, 4)).astype("float32") for _ in range(3)]
    results = {}
    for enabled in (True, False):
        monkeypatch.setattr(_fast, "ENABLED", enabled)
        var = keras.Variable(start)
        opt = _fast.fuse_adam(keras.optimizers.Adam(0.1, beta_1=0.8, beta_2=0.9, epsilon=1e-3))
        for g in grads:
            opt.apply([torch.tensor(g)], [var])
        results[enabled] = keras.ops.convert_to_numpy(var)
    m = v = 0.0
    expected = start.astype("float64")
    for t, g in enumerate(grads, start=1):
        m, v = 0.8 * m + 0.2 * g, 0.9 * v + 0.1 * g * g
        expected = expected - 0.1 * np.sqrt(1 - 0.9**t) / (1 - 0.8**t) * m / (np.sqrt(v) + 1e-3)
    # float32 against the float64 formula: three element-wise updates of O(1) values, each
    # rounding to ~1e-7; 1e-5 relative (and 1e-6 absolute near 0) is 10x that, while a
    # misplaced epsilon or bias correction moves the result by >1e-3.
    for result in results.values():
        np.testing.assert_allclose(result, expected, rtol=1e-5, atol=1e-6)


def test_fused_adam_is_the_update_used_by_kvision_only(monkeypatch):
    """compile_model's Adam takes the fused step; an Adam users build themselves does not."""
    import keras

    from kvision.recipe.schema_training import TrainingSection
    from kvision.train.compile import compile_model

    called = []
    monkeypatch.setattr(_fast.adam, "_fused_adam_step", lambda *a: called.append(a))
    _adam_run(True, monkeypatch, "adam")
    assert called
    model = create_model("lenet", input_shape=(28, 28, 1), num_classes=3)
    compile_model(model, TrainingSection())
    plain = keras.optimizers.Adam()
    assert "fuse_adam" in model.optimizer._parallel_update_step.__qualname__
    assert "fuse_adam" not in plain._parallel_update_step.__qualname__
    assert type(model.optimizer) is type(plain)  # same class: config and .keras files unchanged


@pytest.mark.parametrize("size", [1, 4, 7, 13])
def test_adaptive_pool_fast_path_matches_keras(size, monkeypatch, numeric_seed):
    """torch's adaptive pooling on NHWC memory = Keras' layer, forward and gradient."""
    import keras
    import torch

    x = np.random.default_rng([size, numeric_seed]).normal(size=(2, size, size + 2, 3))
    x = x.astype("float32")
    layer = keras.layers.AdaptiveAveragePooling2D(6)
    results = []
    for fast in (True, False):
        inputs = torch.tensor(x, requires_grad=True)
        out = _fast.layers.adaptive_avg_pool_call(layer, inputs) if fast else layer(inputs)
        (out * torch.arange(out.numel()).view(out.shape)).sum().backward()
        results.append((out.detach().numpy(), inputs.grad.numpy()))
    for fast, slow in zip(*results, strict=True):
        assert_close_to_scale(fast, slow)


def test_kernels_in_torch_layout_keep_keras_shape_and_save(tmp_path, numeric_seed):
    """Conv/Dense kernels live in torch's memory order; Keras shape, values and .keras unchanged."""
    import keras
    import torch

    keras.utils.set_random_seed(3 + numeric_seed)
    model = create_model("alexnet_small", input_shape=(16, 16, 1), num_classes=3, head=8)
    conv, dense = model.get_layer("conv1_conv"), model.get_layer("head_dense1")
    assert type(dense) is keras.layers.Dense
    assert tuple(conv.kernel.shape) == (5, 5, 1, 16)
    assert conv.kernel.value.permute(3, 2, 0, 1).is_contiguous(memory_format=torch.channels_last)
    assert dense.kernel.value.t().is_contiguous()
    path = tmp_path / "m.keras"
    model.save(path)
    loaded = keras.saving.load_model(path, safe_mode=True)
    for a, b in zip(model.get_weights(), loaded.get_weights(), strict=True):
        np.testing.assert_array_equal(a, b)
    x = np.random.default_rng(6 + numeric_seed).integers(0, 256, size=(4, 16, 16, 1))
    x = x.astype("float32")
    expected = model.predict(x, verbose=0)
    assert_close_to_scale(loaded.predict(x, verbose=0), expected)


def test_kernel_views_follow_weight_changes(monkeypatch, numeric_seed):
    """predict sees an assigned kernel at once, on the fast path as on Keras' own."""
    import keras

    monkeypatch.setattr(_fast, "ENABLED", True)
    keras.utils.set_random_seed(numeric_seed)
    model = create_model("lenet", input_shape=(12, 12, 1), num_classes=3)
    x = np.random.default_rng(4 + numeric_seed).integers(0, 256, size=(4, 12, 12, 1))
    x = x.astype("float32")
    before = model.predict(x, verbose=0)
    np.testing.assert_array_equal(model.predict(x, verbose=0), before)
    model.get_layer("conv1_conv").kernel.assign(
        keras.ops.convert_to_numpy(model.get_layer("conv1_conv").kernel) * 0.5
    )
    after = model.predict(x, verbose=0)
    assert np.abs(after - before).max() > 1e-3
    monkeypatch.setattr(_fast, "ENABLED", False)
    assert_close_to_scale(model.predict(x, verbose=0), after)


def test_convs_on_small_maps_run_in_nchw_with_keras_results(monkeypatch, numeric_seed):
    """On <= 2x2 maps the fast Conv2D uses torch's NCHW layout; outputs and gradients are Keras'."""
    import keras
    import torch

    rng = np.random.default_rng(8 + numeric_seed)
    x_np = rng.normal(size=(4, 2, 2, 16)).astype("float32")
    weights = torch.tensor(rng.normal(size=(4, 2, 2, 8)).astype("float32"))
    results = []
    for enabled in (True, False):
        monkeypatch.setattr(_fast, "ENABLED", enabled)
        keras.utils.set_random_seed(2 + numeric_seed)
        inputs = keras.Input((2, 2, 16))
        conv = keras.layers.Conv2D(8, 3, padding="same")
        model = _fast.direct_graph(keras.Model(inputs, conv(inputs)))
        x = torch.tensor(x_np, requires_grad=True)
        out = model(x)
        kernel = conv.kernel.value
        kernel_grad, x_grad = torch.autograd.grad((out * weights).sum(), [kernel, x])
        if enabled:  # torch's (out, in, kh, kw) memory; the gradient arrives in it (fused Adam)
            assert kernel.permute(3, 2, 0, 1).is_contiguous()
            assert kernel_grad.stride() == kernel.stride()
        results.append((out.detach().numpy(), kernel_grad.numpy(), x_grad.numpy()))
    for fast, slow in zip(*results, strict=True):
        assert_close_to_scale(fast, slow)
    monkeypatch.setattr(_fast, "ENABLED", True)
    inputs = keras.Input((4, 4, 16))
    larger = keras.layers.Conv2D(8, 3)
    _fast.direct_graph(keras.Model(inputs, larger(inputs)))
    assert larger.kernel.value.permute(3, 0, 1, 2).is_contiguous()  # channels_last from 4x4 up


def test_missing_internal_turns_the_speed_paths_off_with_one_warning(monkeypatch, capsys):
    """A Keras/torch release without an internal the paths use: one line, then Keras' own
    layers and Adam train the model (the fast forms and the fused step never run)."""
    import keras
    import torch

    from kvision.models import speed_paths_status
    from kvision.recipe.schema_training import TrainingSection
    from kvision.train.compile import compile_model

    assert speed_paths_status() == (True, "torch speed paths on")
    monkeypatch.delattr(torch, "_fused_adam_")  # as if renamed in a later torch
    speed_paths_status.cache_clear()
    try:
        enabled, reason = speed_paths_status()
        err = capsys.readouterr().err
        assert not enabled and "torch:_fused_adam_ is missing" in reason
        assert err == f"kvision: warning: {reason}\n"  # one line
        speed_paths_status()
        assert capsys.readouterr().err == ""  # checked once, warned once
        ran = []
        for cls, form in list(_fast.layers.FAST_CALLS.items()):
            monkeypatch.setitem(
                _fast.layers.FAST_CALLS,
                cls,
                lambda *a, _form=form, **k: ran.append(1) or _form(*a, **k),
            )
        monkeypatch.setattr(_fast.adam, "_fused_adam_step", lambda *a: ran.append(1))
        keras.utils.set_random_seed(0)
        model = create_model(
            "lenet", input_shape=(12, 12, 1), num_classes=3, preprocess=([0.5], [0.5])
        )
        assert "direct_graph" not in model.call.__qualname__
        compile_model(model, TrainingSection())
        rng = np.random.default_rng(0)
        x = rng.integers(0, 256, size=(32, 12, 12, 1)).astype("float32")
        brightness = x.mean(axis=(1, 2, 3))  # learnable labels: random ones need not fall
        y = np.digitize(brightness, np.quantile(brightness, [1 / 3, 2 / 3]))
        before = model.get_weights()
        losses = model.fit(x, y, batch_size=8, epochs=3, verbose=0).history["loss"]
        assert not ran
        assert np.isfinite(losses).all() and losses[-1] < losses[0]
        assert any(
            np.abs(a - b).max() > 0 for a, b in zip(before, model.get_weights(), strict=True)
        )
    finally:
        speed_paths_status.cache_clear()  # the next test checks the real internals again


def test_every_internal_is_checked_even_from_inside_a_symbolic_build(monkeypatch, capsys):
    """The instance attributes the paths read (node order, output nesting, masks, Adam's
    slots) are probed on small objects, in a thread of their own, so a first check from
    inside a StatelessScope (a symbolic build refuses new variables) still finds them; a
    Keras that keeps masks elsewhere turns the paths off with one line naming it."""
    import keras
    from keras.src.backend.common import masking

    from kvision.models import speed_paths_status

    probes = [i for i in _fast.INTERNALS if i.startswith("probe:")]
    assert {"probe:Functional()._nodes_by_depth", "probe:Adam().build()._momentums"} <= set(probes)
    speed_paths_status.cache_clear()
    try:
        with keras.StatelessScope():
            assert speed_paths_status() == (True, "torch speed paths on")
        assert capsys.readouterr().err == ""
        # as if a later Keras kept a torch tensor's mask in a side table
        monkeypatch.setattr(masking, "set_keras_mask", lambda x, mask: None)
        speed_paths_status.cache_clear()
        enabled, reason = speed_paths_status()
        assert not enabled and "probe:torch.Tensor()._keras_mask is missing" in reason
        assert capsys.readouterr().err == f"kvision: warning: {reason}\n"
    finally:
        speed_paths_status.cache_clear()
