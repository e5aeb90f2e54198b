"""A quiet predict's captured forward (kvision.models._fast.capture): made once a model's
forward is hot, the same predictions as the eager direct graph, following the weights."""

from __future__ import annotations

import gc
import weakref

import numpy as np
import pytest
from numerics import assert_close_to_scale

import kvision  # noqa: F401  (selects the torch backend before keras is imported)
from kvision.models import capture_forward, create_model
from kvision.models._fast import capture

# Stock layers the capture must replay: BN, folded ZeroPadding2D, the residual Add, LRN,
# Dropout, grayscale and colour inputs.
ARCHS = [
    ("lenet", (16, 16, 1), {}),
    ("resnet20", (16, 16, 3), {}),
    ("alexnet_small", (32, 32, 3), {"norm": "lrn", "head": 8}),
    ("vgg11", (32, 32, 3), {"width": 16}),
]


def _model(arch: str, shape: tuple, seed: int, compiled: bool = True, **options):
    import keras

    keras.utils.set_random_seed(seed)
    model = create_model(arch, input_shape=shape, num_classes=3, **options)
    if compiled:
        model.compile(optimizer="adam", loss="sparse_categorical_crossentropy")
    return model


def _eager(model, images, monkeypatch) -> np.ndarray:
    with monkeypatch.context() as m:
        m.setattr(capture, "ENABLED", False)
        return model.predict(images, batch_size=8, verbose=0)


def _images(shape: tuple, count: int, seed: int) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (count, *shape), dtype=np.uint8)


@pytest.mark.numeric_cap(3)
@pytest.mark.parametrize(("arch", "shape", "options"), ARCHS, ids=[a[0] for a in ARCHS])
def test_captured_predictions_equal_the_eager_ones(monkeypatch, numeric_seed, arch, shape, options):
    model = _model(arch, shape, numeric_seed, **options)
    images = _images(shape, 21, numeric_seed)  # batches of 8, 8 and 5: one capture serves all
    eager = _eager(model, images, monkeypatch)
    seconds = capture_forward(model, images[:8])
    assert seconds is not None and seconds > 0
    captured = model.predict(images, batch_size=8, verbose=0)
    assert capture._BY_MODEL[model].forwards  # the capture ran, not the eager walk
    assert_close_to_scale(captured, eager)


def test_a_replay_skips_the_input_checks_the_signature_already_made():
    """The recorded graph's own input checks are taken out and its checking pre-hook is not
    run (module_for has checked the signature and the batch); the replay computes what the
    graph with its checks computes, bit for bit."""
    import torch

    model = _model("lenet", (16, 16, 1), seed=1)
    images = _images((16, 16, 1), 16, seed=1)
    assert capture_forward(model, images[:8]) is not None
    (module,) = capture._BY_MODEL[model].forwards.values()
    targets = {node.target for node in module.graph.nodes}
    assert "_guards_fn" not in targets
    assert torch.ops.aten._assert_tensor_metadata.default not in targets
    hooked = []
    module.register_forward_pre_hook(lambda *args: hooked.append(1))
    replayed = model.predict(images, batch_size=8, verbose=0)
    assert not hooked  # its forward, not __call__ and its hooks
    with torch.no_grad():
        checked = torch.cat([module(torch.from_numpy(images[i : i + 8])) for i in (0, 8)])
    assert hooked  # the checked call, for the comparison
    np.testing.assert_array_equal(replayed, checked.numpy())


def test_a_capture_reads_the_weights_training_and_assigning_write(monkeypatch):
    """The capture holds the model's own tensors: a fit step and ``set_weights`` (each
    variable's ``assign``, as ``load_weights`` does) are seen."""
    shape = (16, 16, 1)
    model, other = _model("lenet", shape, 0), _model("lenet", shape, 1, compiled=False)
    images = _images(shape, 16, 0)
    capture_forward(model, images)
    before = model.predict(images, batch_size=8, verbose=0)
    model.fit(images, np.arange(16) % 3, batch_size=8, epochs=1, verbose=0)
    trained = model.predict(images, batch_size=8, verbose=0)
    assert np.abs(trained - before).max() > 1e-4  # the step moved the predictions
    assert_close_to_scale(trained, _eager(model, images, monkeypatch))
    model.set_weights(other.get_weights())
    assert_close_to_scale(
        model.predict(images, batch_size=8, verbose=0), _eager(other, images, monkeypatch)
    )
    assert len(capture._BY_MODEL[model].forwards) == 1  # still the one capture


def test_a_model_is_captured_once_it_has_predicted_hot_batches_eagerly(monkeypatch):
    monkeypatch.setattr(capture, "HOT_BATCHES", 4)
    made = []
    export = capture._export
    monkeypatch.setattr(capture, "_export", lambda *a: made.append(1) or export(*a))
    model = _model("lenet", (16, 16, 1), 0)
    images = _images((16, 16, 1), 32, 0)
    model.predict(images[:16], batch_size=4, verbose=0)  # four batches: still eager
    assert not made
    first = model.predict(images, batch_size=4, verbose=0)  # captured at its first batch
    assert made == [1]
    assert_close_to_scale(first, _eager(model, images, monkeypatch))
    model.predict(images, batch_size=4, verbose=0)
    model.predict(images[:3], batch_size=4, verbose=0)  # any batch size of the signature
    assert made == [1]


def _raising(tensor):
    raise RuntimeError("guard failed")


def test_what_no_capture_serves_runs_eagerly(monkeypatch):
    """A batch of one, a refused capture, a replay that raises and a changed layer take the
    eager walk."""
    model = _model("lenet", (16, 16, 1), 0)
    images = _images((16, 16, 1), 8, 0)
    eager = _eager(model, images, monkeypatch)
    assert capture_forward(model, images[:1]) is None  # torch would fix the batch at 1
    with monkeypatch.context() as m:
        m.setattr(capture, "_export", lambda *a: None)  # as when torch.export refuses
        assert capture_forward(model, images) is None
        assert_close_to_scale(model.predict(images, batch_size=8, verbose=0), eager)
    with monkeypatch.context() as m:  # a replay that raises (a guard torch did not foresee)
        m.setattr(capture, "_export", lambda *a: _raising)
        assert capture_forward(model, images) is not None
        assert_close_to_scale(model.predict(images, batch_size=8, verbose=0), eager)
        assert list(capture._BY_MODEL[model].forwards.values()) == [None]  # eager from now on
    assert capture_forward(model, images) is not None
    import keras

    conv = next(layer for layer in model.layers if hasattr(layer, "kernel"))
    conv.activity_regularizer = keras.regularizers.L2(0.1)  # not a plain layer now
    assert not capture._captures(model).forwards  # the capture no longer applies
    assert_close_to_scale(model.predict(images, batch_size=8, verbose=0), eager)


def test_a_capture_does_not_keep_its_model_alive():
    model = _model("lenet", (16, 16, 1), 0)
    assert capture_forward(model, _images((16, 16, 1), 4, 0)) is not None
    gone = weakref.ref(model)
    del model
    gc.collect()
    assert gone() is None  # nothing the capture keeps refers back to the model
