"""The input pipeline: raw uint8 batches, per-epoch order as a function of (seed, epoch),
worker threads that do not change results, and Keras fit on the torch backend."""

from __future__ import annotations

import numpy as np
import pytest

import kvision  # noqa: F401  (torch backend before keras)
from kvision.data import make_batches
from kvision.recipe.schema_data import AugmentOp
from kvision.recipe.spec import Context, parse


@pytest.fixture(scope="module")
def arrays():
    rng = np.random.default_rng(0)
    return rng.integers(0, 255, (50, 8, 8, 1), dtype=np.uint8), np.arange(50) % 5


def epoch(seq) -> tuple[np.ndarray, np.ndarray]:
    xs, ys = zip(*(seq[i] for i in range(len(seq))), strict=True)
    return np.concatenate(xs), np.concatenate(ys)


def test_batches_are_raw_uint8_pixels(arrays):
    images, labels = arrays
    seq = make_batches(images, labels, batch_size=16, seed=0, shuffle=False)
    x, y = epoch(seq)
    assert len(seq) == 4 and x.dtype == np.uint8  # cast to float on the device, by Keras
    assert np.array_equal(x, images) and np.array_equal(y, labels)


def test_epoch_order_depends_only_on_seed_and_epoch(arrays):
    images, labels = arrays
    seq = make_batches(images, labels, batch_size=16, seed=3, shuffle=True)
    orders = []
    for e in range(3):
        seq.set_epoch(e)
        orders.append(epoch(seq)[1])
    assert not np.array_equal(orders[0], orders[1])
    assert sorted(orders[2].tolist()) == sorted(labels.tolist())
    resumed = make_batches(images, labels, batch_size=16, seed=3, shuffle=True)
    resumed.set_epoch(2)  # a resumed run jumps straight to epoch 2
    assert np.array_equal(epoch(resumed)[0], epoch(seq)[0])


def test_dynamic_augmentation_same_with_and_without_workers(arrays):
    images, labels = arrays
    ctx = Context()
    flips = (
        parse(AugmentOp, {"op": "hflip", "p": 0.5}, ctx, "op"),
        parse(AugmentOp, {"op": "rotate", "degrees": 30}, ctx, "op"),
    )
    one = make_batches(images, labels, batch_size=8, seed=1, shuffle=True, augment=flips)
    many = make_batches(
        images, labels, batch_size=8, seed=1, shuffle=True, augment=flips, workers=2
    )
    for e in (0, 1):
        one.set_epoch(e)
        many.set_epoch(e)
        assert np.array_equal(epoch(one)[0], epoch(many)[0])
    one.set_epoch(0)
    first = epoch(one)[0]
    one.set_epoch(1)
    assert not np.array_equal(first, epoch(one)[0])  # new augmentation every epoch


def test_keras_fit_with_worker_threads(arrays):
    import keras  # after kvision, which picks the torch backend

    class SetEpoch(keras.callbacks.Callback):
        """What the runner does: fix each epoch's order before it starts."""

        def __init__(self, seq):
            super().__init__()
            self.seq, self.seen = seq, []

        def on_epoch_begin(self, epoch, logs=None):
            self.seq.set_epoch(epoch)
            self.seen.append(epoch)

    images, labels = arrays
    train = make_batches(images, labels, batch_size=16, seed=0, shuffle=True, workers=2)
    val = make_batches(images, labels, batch_size=25, seed=0, shuffle=False)
    inputs = keras.Input((8, 8, 1))
    x = keras.layers.Rescaling(1 / 255)(inputs)
    x = keras.layers.Conv2D(4, 3, activation="relu")(x)
    x = keras.layers.GlobalAveragePooling2D()(x)
    model = keras.Model(inputs, keras.layers.Dense(5)(x))
    model.compile(
        "adam", keras.losses.SparseCategoricalCrossentropy(from_logits=True), metrics=["accuracy"]
    )
    callback = SetEpoch(train)
    history = model.fit(
        train, validation_data=val, epochs=2, shuffle=False, verbose=0, callbacks=[callback]
    )
    assert callback.seen == [0, 1] and len(history.history["val_loss"]) == 2
    assert np.isfinite(history.history["loss"]).all()
