"""The lean train step (kvision.models._fast.train_step) computes Keras' train step exactly."""

from __future__ import annotations

import numpy as np
import pytest

import kvision  # noqa: F401  (selects the torch backend before keras is imported)
from kvision.models import _fast, create_model
from kvision.recipe.schema_training import OptimizerSpec, TrainingSection
from kvision.train.compile import compile_model, with_overrides
from kvision.train.fit import SeedEpoch

pytestmark = pytest.mark.usefixtures("_count_lean_steps")

_LEAN_STEPS: list[int] = []


@pytest.fixture
def _count_lean_steps(monkeypatch):
    """Counts the steps the lean path takes (Keras' fallback is not counted)."""
    from kvision.models._fast import train_step

    real = train_step._step
    _LEAN_STEPS.clear()

    def counted(*args, **kwargs):
        _LEAN_STEPS.append(1)
        return real(*args, **kwargs)

    monkeypatch.setattr(train_step, "_step", counted)


class _Logs:
    """Every batch's logs, as callbacks see them."""

    def __init__(self):
        import keras

        self.seen: list[dict] = []
        outer = self

        class Record(keras.callbacks.Callback):
            def on_train_batch_end(self, batch, logs=None):
                outer.seen.append(dict(logs or {}))

        self.callback = Record()


def _models(training: TrainingSection, dropout: float = 0.3):
    """Two compiled LeNets with the same weights: the lean step, and Keras' own step."""
    import keras

    keras.utils.set_random_seed(3)
    base = create_model(
        "lenet", input_shape=(16, 16, 1), num_classes=4, preprocess=([0.5], [0.25]), dropout=dropout
    )
    pair = []
    for _ in range(2):
        model = keras.models.clone_model(base)
        model.set_weights(base.get_weights())
        model = with_overrides(model, training)
        compile_model(model, training)
        pair.append(model)
    lean, plain = pair
    del plain.train_step  # the instance's lean step: back to the class's (Keras') own
    return lean, plain


def _fit(model, x, y, **kwargs) -> tuple[list[dict], dict]:
    logs = _Logs()
    history = model.fit(
        x,
        y,
        batch_size=8,
        epochs=2,
        verbose=0,
        shuffle=False,
        callbacks=[SeedEpoch(11), logs.callback],
        **kwargs,
    )
    return logs.seen, history.history


def _data():
    rng = np.random.default_rng(0)
    x = rng.integers(0, 256, size=(40, 16, 16, 1)).astype("uint8")
    return x, rng.integers(0, 4, size=40)


def _assert_same_training(lean, plain, **fit_kwargs) -> None:
    x, y = _data()
    lean_logs, lean_history = _fit(lean, x, y, **fit_kwargs)
    plain_logs, plain_history = _fit(plain, x, y, **fit_kwargs)
    # Exact: the same torch operations in the same order (dropout masks from the same seed),
    # so every batch's logs, the epochs' metrics and every weight and Adam slot are equal bits.
    assert lean_logs == plain_logs and len(lean_logs) == 10
    assert lean_history == plain_history
    for a, b in zip(lean.get_weights(), plain.get_weights(), strict=True):
        np.testing.assert_array_equal(a, b)
    for a, b in zip(lean.optimizer.variables, plain.optimizer.variables, strict=True):
        np.testing.assert_array_equal(np.asarray(a.value), np.asarray(b.value))


def test_lean_step_trains_exactly_as_keras():
    lean, plain = _models(TrainingSection(optimizer=OptimizerSpec(learning_rate=1e-3)))
    _assert_same_training(lean, plain)
    assert len(_LEAN_STEPS) == 10  # every step of the lean model took the lean path


def test_class_weights_take_keras_step_with_the_same_result():
    lean, plain = _models(TrainingSection(optimizer=OptimizerSpec(learning_rate=1e-3)))
    _assert_same_training(lean, plain, class_weight={0: 2.0, 1: 1.0, 2: 0.5, 3: 1.0})
    assert _LEAN_STEPS == []  # sample weights: Keras' own step


def test_regularisation_losses_take_keras_step():
    training = TrainingSection(optimizer=OptimizerSpec(learning_rate=1e-3), l2=1e-3)
    lean, plain = _models(training)
    assert lean.losses  # the L2 penalties the step would otherwise miss
    _assert_same_training(lean, plain)
    assert _LEAN_STEPS == []


def test_other_losses_and_paths_off_take_keras_step(monkeypatch):
    import keras

    model, _ = _models(TrainingSection(optimizer=OptimizerSpec(learning_rate=1e-3)))
    x, y = _data()
    model.compile(optimizer="adam", loss="mse", metrics=["mae"])  # the lean step stays on it
    model.fit(x, np.eye(4)[y], batch_size=8, epochs=1, verbose=0)
    assert _LEAN_STEPS == []
    compile_model(model, TrainingSection(optimizer=OptimizerSpec(learning_rate=1e-3)))
    monkeypatch.setattr(_fast, "ENABLED", False)
    model.fit(x, y, batch_size=8, epochs=1, verbose=0)
    assert _LEAN_STEPS == []
    monkeypatch.setattr(_fast, "ENABLED", True)
    model.fit(x, y, batch_size=8, epochs=1, verbose=0)
    assert len(_LEAN_STEPS) == 5
    assert isinstance(model.optimizer, keras.optimizers.Adam)
