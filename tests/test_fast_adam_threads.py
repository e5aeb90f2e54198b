"""The fused Adam step of a small model runs in one intra-op thread: same bits, threads kept."""

from __future__ import annotations

import numpy as np
import pytest

import kvision  # noqa: F401  (selects the torch backend before keras is imported)
from kvision.models import _fast, create_model
from kvision.models._fast import adam as fast_adam

torch = pytest.importorskip("torch")
KERNEL = torch._fused_adam_


def _train(monkeypatch, single_max: int) -> tuple[list[np.ndarray], list[int]]:
    """LeNet, 4 fused Adam steps from one seed; the weights and the threads each step saw."""
    import keras

    monkeypatch.setattr(fast_adam, "SINGLE_THREAD_ELEMENTS", single_max)
    seen = []

    def recording(*args, **kwargs):
        seen.append(torch.get_num_threads())
        return KERNEL(*args, **kwargs)

    monkeypatch.setattr(torch, "_fused_adam_", recording)
    keras.utils.set_random_seed(5)
    model = _fast.direct_graph(create_model("lenet", input_shape=(28, 28, 1), num_classes=10))
    model.compile(
        optimizer=_fast.fuse_adam(keras.optimizers.Adam(1e-3)),
        loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
    )
    rng = np.random.default_rng(5)
    x = rng.integers(0, 256, (64, 28, 28, 1)).astype(np.float32) / 255
    model.fit(x, rng.integers(0, 10, 64), batch_size=16, epochs=1, verbose=0, shuffle=False)
    return [np.asarray(w) for w in model.get_weights()], seen


def test_small_parameter_sets_step_in_one_thread_with_the_same_bits(monkeypatch):
    before = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        split, split_threads = _train(monkeypatch, 0)  # every set split over the threads
        single, single_threads = _train(monkeypatch, 2**20)  # LeNet's 61k: one thread
        assert torch.get_num_threads() == 2  # restored after every step
    finally:
        torch.set_num_threads(before)
    assert split_threads == [2] * 4 and single_threads == [1] * 4
    # Adam is element-wise: how the elements are split over threads cannot change a bit.
    for a, b in zip(split, single, strict=True):
        np.testing.assert_array_equal(a, b)
