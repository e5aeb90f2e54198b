"""A checkpoint's weights written from a snapshot on the commit thread: the file
``save_weights`` writes, holding the values of the moment the snapshot was taken."""

from __future__ import annotations

from pathlib import Path

import h5py
import numpy as np
import pytest

import kvision  # noqa: F401  (selects the torch backend before keras is imported)
from kvision.models import create_model
from kvision.recipe.schema_training import TrainingSection
from kvision.train import checkpoint, weights_file
from kvision.train.compile import compile_model


def _trained(arch: str, shape: tuple[int, ...], **options):
    """A compiled model after one Adam step (so the optimizer's slots are in the file too);
    ResNet-20 brings BatchNormalization's moving statistics, AlexNet/2 seeded Dropout."""
    import keras

    keras.utils.set_random_seed(3)
    model = create_model(arch, input_shape=shape, num_classes=3, **options)
    compile_model(model, TrainingSection())
    x = np.random.default_rng(0).uniform(0, 255, (8, *shape)).astype("float32")
    model.fit(x, np.arange(8) % 3, batch_size=4, epochs=1, verbose=0)
    return model, x


def _tree(path: Path) -> dict:
    """Every group's and dataset's attributes, and every dataset's dtype and values."""
    found = {}
    with h5py.File(path, "r") as f:
        found["/"] = dict(f.attrs)

        def visit(name: str, obj) -> None:
            attrs = {k: (v.tolist() if hasattr(v, "tolist") else v) for k, v in obj.attrs.items()}
            if isinstance(obj, h5py.Dataset):
                found[name] = (attrs, str(obj.dtype), np.asarray(obj).tolist())
            else:
                found[name] = attrs

        f.visititems(visit)
    return found


CASES = [
    ("lenet", (28, 28, 1), {}),
    ("resnet20", (32, 32, 3), {}),
    ("alexnet_seed", (64, 64, 1), {"downscale": 16}),
]


@pytest.mark.parametrize(("arch", "shape", "options"), CASES, ids=[c[0] for c in CASES])
def test_the_snapshot_writes_the_file_save_weights_writes(tmp_path, arch, shape, options):
    model, _ = _trained(arch, shape, **options)
    model.save_weights(str(tmp_path / "keras.weights.h5"))
    snap = weights_file.snapshot(model)
    assert snap is not None
    snap.write(tmp_path / "snap.weights.h5")
    # the same groups (names, layer metadata), datasets, dtypes and values, bit for bit
    assert _tree(tmp_path / "snap.weights.h5") == _tree(tmp_path / "keras.weights.h5")


def test_the_snapshot_keeps_the_values_of_its_moment_and_loads_back(tmp_path):
    model, x = _trained("resnet20", (32, 32, 3))
    before = [np.array(v) for v in model.variables + model.optimizer.variables]
    predicted = model.predict(x, verbose=0)
    snap = weights_file.snapshot(model)
    model.fit(x, np.arange(8) % 3, batch_size=4, epochs=1, verbose=0)  # the trainer goes on
    assert any(
        not np.array_equal(a, np.array(v)) for a, v in zip(before, model.variables, strict=False)
    )
    snap.write(tmp_path / "snap.weights.h5")
    fresh, _ = _trained("resnet20", (32, 32, 3))
    fresh.load_weights(str(tmp_path / "snap.weights.h5"))
    after = [np.array(v) for v in fresh.variables + fresh.optimizer.variables]
    assert len(after) == len(before)
    for got, want in zip(after, before, strict=True):
        np.testing.assert_array_equal(got, want)  # a copy written as it was: exact
    np.testing.assert_array_equal(fresh.predict(x, verbose=0), predicted)


def test_a_keras_whose_walk_changed_falls_back_to_save_weights(tmp_path, monkeypatch):
    import keras

    model, _ = _trained("lenet", (28, 28, 1))

    def changed(*args, **kwargs):
        raise TypeError("_save_state() got an unexpected keyword argument 'weights_store'")

    monkeypatch.setattr(weights_file, "_save_state", changed)
    assert weights_file.snapshot(model) is None
    saved = []
    original = keras.Model.save_weights
    monkeypatch.setattr(
        keras.Model, "save_weights", lambda self, path: saved.append(path) or original(self, path)
    )
    folder = checkpoint.save_checkpoint(tmp_path, "epoch-0001", model, {"trial": "t"})
    checkpoint.wait_for_commits()
    assert saved and (folder / checkpoint.WEIGHTS).is_file()
    assert checkpoint.checkpoint_damage(folder) is None


def test_a_stage_end_checkpoint_holds_the_weights_without_the_optimizer_slots(tmp_path):
    """optimizer=False: the file save_weights writes minus the optimizer's group, a third of
    the size with Adam, and it restores the weights exactly."""
    model, x = _trained("alexnet_seed", (64, 64, 1), downscale=16)
    full = checkpoint.save_checkpoint(tmp_path / "full", "epoch-0001", model, {"trial": "t"})
    bare = checkpoint.save_checkpoint(
        tmp_path / "bare", "epoch-0001", model, {"trial": "t"}, optimizer=False
    )
    checkpoint.wait_for_commits()
    with_slots, without = _tree(full / checkpoint.WEIGHTS), _tree(bare / checkpoint.WEIGHTS)
    assert any(k.startswith("optimizer") for k in with_slots)
    assert without == {k: v for k, v in with_slots.items() if not k.startswith("optimizer")}
    sizes = [(f / checkpoint.WEIGHTS).stat().st_size for f in (full, bare)]
    assert sizes[1] < 0.4 * sizes[0]  # Adam's two slots per weight are gone
    assert checkpoint.checkpoint_damage(bare) is None
    fresh, _ = _trained("alexnet_seed", (64, 64, 1), downscale=16)
    compile_model(fresh, TrainingSection())  # a new stage's optimizer, not built yet
    checkpoint.restore_weights(bare, fresh)
    np.testing.assert_array_equal(fresh.predict(x, verbose=0), model.predict(x, verbose=0))


def test_the_trainer_leaves_the_slots_out_only_at_a_stage_end(tmp_path, monkeypatch):
    """Mid-stage checkpoints (resumed with the optimizer's state) keep the slots; a stage's
    end checkpoint and the evaluations' records after it (the next stage starts a fresh
    optimizer) leave them out."""
    from conftest import TINY_DATA, clear_and_blurred, naive_vs_expert, quiet, write_recipe

    from kvision.train import trial
    from kvision.train.runner import run_recipe

    calls = []
    real = trial.save_checkpoint

    def record(folder, name, model, state, **kwargs):
        calls.append((state["trial"]["stage_done"], kwargs["optimizer"]))
        return real(folder, name, model, state, **kwargs)

    monkeypatch.setattr(trial, "save_checkpoint", record)
    text = TINY_DATA + clear_and_blurred(2.0) + '\n[models.lenet]\narch = "lenet"\n'
    recipe = write_recipe(
        tmp_path, text + naive_vs_expert(2, 1, 1) + "\n[insight]\nenabled = false\n"
    )
    result = run_recipe(str(recipe), [], runs_dir=str(tmp_path / "runs"), console=quiet())
    assert result.status == "finished", result.message
    assert {done for done, _ in calls} == {False, True}  # both kinds were written
    assert all(optimizer == (not done) for done, optimizer in calls)
