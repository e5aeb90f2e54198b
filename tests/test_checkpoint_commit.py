"""Checkpoints committed on a background thread, and evaluation records that link weights.

The trainer's thread only writes the files; fsync, hashing, the rename into place and the
pruning run behind it. These tests check what a resume depends on: a linked checkpoint is
intact and shares the weights file, a commit's failure reaches the trainer (as DiskFull for
a full disk) with the folder removed, and the previous checkpoint stays the newest then.
"""

from __future__ import annotations

import errno
import os

import numpy as np
import pytest

import kvision  # noqa: F401  (selects the torch backend before keras is imported)
from kvision.models import create_model
from kvision.recipe.schema_training import OptimizerSpec, TrainingSection
from kvision.runs.disk_space import DiskFull
from kvision.train import checkpoint
from kvision.train.compile import compile_model


@pytest.fixture
def model():
    net = create_model("lenet", input_shape=(16, 16, 1), num_classes=3)
    compile_model(net, TrainingSection(optimizer=OptimizerSpec(learning_rate=1e-3)))
    net.optimizer.build(net.trainable_variables)
    return net


def _state(n: int) -> dict:
    return {"trial": {"n": n}, "plan": "t"}


def test_same_weights_link_the_newest_checkpoint(tmp_path, model):
    folder = tmp_path / "checkpoints"
    first = checkpoint.save_checkpoint(folder, "a", model, _state(1))
    second = checkpoint.save_checkpoint(folder, "b", model, _state(2), same_weights=True)
    checkpoint.wait_for_commits()
    weights = "model.weights.h5"
    assert os.stat(first / weights).st_ino == os.stat(second / weights).st_ino
    assert checkpoint.checkpoint_damage(first) is None
    assert checkpoint.checkpoint_damage(second) is None
    found = checkpoint.find_checkpoint(folder).intact
    assert found[0] == second and found[1]["trial"] == {"n": 2}
    model.layers[-1].kernel.assign(np.ones(model.layers[-1].kernel.shape, "float32"))
    third = checkpoint.save_checkpoint(folder, "c", model, _state(3))
    checkpoint.wait_for_commits()
    assert os.stat(third / weights).st_ino != os.stat(second / weights).st_ino
    assert not first.exists()  # KEEP = 2: pruned once the third was in place
    assert not [p for p in folder.iterdir() if p.name.startswith(".")]


def test_a_failed_commit_reaches_the_trainer(tmp_path, model, monkeypatch):
    folder = tmp_path / "checkpoints"
    kept = checkpoint.save_checkpoint(folder, "a", model, _state(1))
    checkpoint.wait_for_commits()

    def full_disk(path):
        raise OSError(errno.ENOSPC, "No space left on device", str(path))

    monkeypatch.setattr(checkpoint, "file_digest", full_disk)
    checkpoint.save_checkpoint(folder, "b", model, _state(2))  # returns: the commit is behind
    # The commit's own error path (sizing the DiskFull report) must finish without the
    # trainer waiting on it: let it fail on its own first.
    checkpoint._COMMITS._pending.exception(timeout=60)
    with pytest.raises(DiskFull):
        checkpoint.wait_for_commits()
    checkpoint.wait_for_commits()  # reported once
    assert [p.name for p in folder.iterdir() if p.is_dir()] == [kept.name]
    assert checkpoint.find_checkpoint(folder).intact[0] == kept


def test_the_export_goes_on_while_a_checkpoint_commits(tmp_path, model, monkeypatch):
    """model.keras is sized from the model alone, so a trial's export runs beside the commit of
    its last checkpoint (the evaluation's record) instead of waiting for it; the commit then
    lands intact."""
    import threading
    from types import SimpleNamespace

    from kvision.runs import RunWriter
    from kvision.train.trial import export_model

    run = tmp_path / "run"
    writer = RunWriter(run)
    release, digest = threading.Event(), checkpoint.file_digest

    def held_digest(path):  # the commit thread waits here until the export is done
        release.wait(30)
        return digest(path)

    monkeypatch.setattr(checkpoint, "file_digest", held_digest)
    folder = run / "trials" / "t" / "checkpoints"
    committing = checkpoint.save_checkpoint(folder, "a", model, _state(1))
    trial = SimpleNamespace(
        dir=run / "trials" / "t",
        checkpoints=folder,
        model=model,
        out=SimpleNamespace(writer=writer),
        plan=SimpleNamespace(name="t"),
    )
    try:
        export_model(trial)
        exported_while_committing = not checkpoint._COMMITS._pending.done()
    finally:
        release.set()
        checkpoint.wait_for_commits()
        writer.close()
    assert exported_while_committing
    assert (run / "trials" / "t" / "model.keras").is_file()
    assert checkpoint.find_checkpoint(folder).intact[0] == committing
