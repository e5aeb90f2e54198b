"""One front door: viz, predict and export resolve "the model the user points at" alike."""

from __future__ import annotations

import json

import pytest

from kvision.errors import KvisionError
from kvision.portable.target import ModelArg, resolve


@pytest.fixture
def run(tmp_path):
    """A run directory with two trials, one of them with a saved model."""
    run = tmp_path / "run"
    (run / "trials/cnn-naive").mkdir(parents=True)
    (run / "trials/cnn-expert").mkdir(parents=True)
    (run / "meta.json").write_text("{}")
    events = [
        {"event": "trial_started", "trial": "cnn-naive", "model": "cnn", "arm": "naive"},
        {"event": "trial_started", "trial": "cnn-expert", "model": "cnn", "arm": "expert"},
        {"event": "data_loaded", "class_names": ["x", "y"]},
    ]
    (run / "events.jsonl").write_text("".join(json.dumps(e) + "\n" for e in events))
    (run / "trials/cnn-naive/model.keras").write_bytes(b"PK")
    return run


def test_a_run_a_trial_directory_and_a_file_resolve_to_model_files(run, tmp_path):
    model = run / "trials/cnn-naive/model.keras"
    whole = resolve(ModelArg(run))
    assert whole.models == {"cnn-naive": model} and whole.run_dir == run
    assert whole.waiting == ["cnn-expert"] and whole.class_names() == ["x", "y"]
    trial_dir = resolve(ModelArg(run / "trials/cnn-naive"))
    assert trial_dir.models == {"cnn-naive": model} and trial_dir.trial == "cnn-naive"
    assert resolve(ModelArg(run, "cnn-naive")).only() == ("cnn-naive", model)
    # the run's own model.keras named as a file is its trial: the run's class names apply
    inside = resolve(ModelArg(model))
    assert inside.models == {"cnn-naive": model} and inside.class_names() == ["x", "y"]
    shared = tmp_path / "shared.onnx"
    shared.write_bytes(b"")
    assert resolve(ModelArg(shared)).models == {"shared": shared}


def test_the_same_mistake_gets_the_same_paragraph(run, tmp_path):
    with pytest.raises(KvisionError, match=r"has no trial 'cnn-naiv' with a saved model\. Did yo"):
        resolve(ModelArg(run, "cnn-naiv"))
    with pytest.raises(KvisionError, match=r"no saved model for cnn-expert yet"):
        resolve(ModelArg(run / "trials/cnn-expert"))
    notes = tmp_path / "notes.txt"
    notes.write_text("hi")
    with pytest.raises(KvisionError, match=r"'.*notes.txt' is neither a kvision run directory"):
        resolve(ModelArg(notes))
    with pytest.raises(KvisionError, match=r"nope.keras' does not exist: give a kvision run"):
        resolve(ModelArg(tmp_path / "nope.keras"))
    (tmp_path / "shared.onnx").write_bytes(b"")
    with pytest.raises(KvisionError, match=r"is neither .* nor a model file \(\.keras\)"):
        resolve(ModelArg(tmp_path / "shared.onnx"), reads=(".keras",))  # viz reads .keras only
    with pytest.raises(KvisionError, match=r"is not a kvision run directory"):
        resolve(ModelArg(notes), reads=())  # export needs the run itself


def test_a_run_without_models_resolves_only_where_none_are_needed(run):
    (run / "trials/cnn-naive/model.keras").unlink()
    assert resolve(ModelArg(run), need_models=False).models == {}
    with pytest.raises(KvisionError, match=r"has no saved model for cnn-naive, cnn-expert"):
        resolve(ModelArg(run))


def test_more_than_one_model_asks_for_a_trial(run):
    (run / "trials/cnn-expert/model.keras").write_bytes(b"PK")
    with pytest.raises(KvisionError, match=r"has 2 trained models; choose one with --trial"):
        resolve(ModelArg(run)).only()
