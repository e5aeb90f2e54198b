"""The runner's hooks on a small fake run: files, artifact events, JSON tables, report."""

from __future__ import annotations

import kvision  # noqa: F401  (selects the torch backend before keras is imported)

# isort: split
import dataclasses
import json

import keras
import numpy as np
import pytest

from kvision.errors import KvisionError
from kvision.insight.hooks import (
    Samples,
    check_model,
    checkpoint_artifacts,
    pick_samples,
    run_artifacts,
    trial_artifacts,
)
from kvision.insight.report_sections import report_markdown
from kvision.recipe.schema_insight import InsightSection, RetrievalSpec, RobustnessSpec
from kvision.runs import RunReader, RunWriter

CLASSES = ["cat", "dog"]
TRIALS = (("tiny", "naive", [("train", 2)]), ("tiny", "expert", [("pretrain", 1), ("train", 2)]))


def _model(seed: int) -> keras.Model:
    """Layers named by stage (v1_..., v2_..., v4_...) as kvision's AlexNet variant does."""
    keras.utils.set_random_seed(seed)
    inp = keras.Input((16, 16, 3))
    x = keras.layers.Rescaling(1 / 255, name="preprocess")(inp)
    x = keras.layers.Conv2D(4, 3, activation="relu", name="v1_conv")(x)
    x = keras.layers.Conv2D(4, 3, strides=2, activation="relu", name="v2_conv")(x)
    x = keras.layers.Conv2D(6, 3, activation="relu", name="v4_conv")(x)
    x = keras.layers.GlobalAveragePooling2D(name="avgpool")(x)
    return keras.Model(inp, keras.layers.Dense(2, name="classifier")(x))


def _data() -> tuple[np.ndarray, np.ndarray]:
    """Bright images are dogs, dark ones cats, so even a tiny model can get some right."""
    rng = np.random.default_rng(0)
    labels = np.array([0, 1] * 6)
    images = rng.integers(0, 100, (12, 16, 16, 3)) + 120 * labels[:, None, None, None]
    return images.astype(np.uint8), labels


def _fake_run(tmp_path) -> RunWriter:
    """The events the runner writes around the hooks: trials, stages, epochs, evaluations."""
    w = RunWriter(tmp_path / "run")
    (w.dir / "meta.json").write_text("{}")
    w.event(
        "run_started",
        run="run",
        recipe_name="t",
        trials=[
            {
                "trial": f"{m}-{a}",
                "model": m,
                "arm": a,
                "stages": [{"name": s, "condition": "clear", "epochs": n} for s, n in stages],
            }
            for m, a, stages in TRIALS
        ],
    )
    w.event("data_loaded", dataset="toy", class_names=CLASSES, counts={"test": 12}, skipped=[])
    for m, a, stages in TRIALS:
        trial, g = f"{m}-{a}", 0
        w.event("trial_started", trial=trial, model=m, arm=a, params=1)
        w.event("evaluation", trial=trial, checkpoint="before", matrix={}, loss={})
        for stage, epochs in stages:
            for e in range(1, epochs + 1):
                g += 1
                w.event(
                    "epoch_end",
                    trial=trial,
                    stage=stage,
                    epoch=e,
                    global_epoch=g,
                    seconds=1,
                    metrics={
                        "loss": 1 / g,
                        "val_loss": 1.2 / g,
                        "accuracy": 0.5 + g / 20,
                        "val_accuracy": 0.5 + g / 25,
                    },
                )
            w.event("evaluation", trial=trial, checkpoint=f"after_{stage}", matrix={}, loss={})
    return w


@pytest.fixture(scope="module")
def finished_run(tmp_path_factory):
    """A run with both trials through all hooks; returns (writer, events per hook)."""
    tmp = tmp_path_factory.mktemp("insight")
    w = _fake_run(tmp)
    images, labels = _data()
    keep = pick_samples(labels, per_class=1)
    samples = Samples(images[keep], labels[keep], CLASSES)
    cfg = InsightSection(
        robustness=RobustnessSpec(
            sigmas=(0.0, 2.0), kinds=("gaussian", "motion"), severities=(1, 3), max_images=8
        ),
        retrieval=RetrievalSpec(enabled=True, k=2, queries=1),
    )
    emitted = {}
    for seed, (m, a, stages) in enumerate(TRIALS):
        trial = f"{m}-{a}"
        model = _model(seed)
        for label in ["before"] + [f"after_{s}" for s, _ in stages]:
            emitted[(trial, label)] = checkpoint_artifacts(
                w, trial=trial, label=label, model=model, samples=samples, cfg=cfg
            )
        emitted[trial] = trial_artifacts(
            w,
            trial=trial,
            model=model,
            class_names=CLASSES,
            samples=samples,
            cfg=cfg,
            test_sets={"clear": (images, labels), "blurred": (images // 2, labels)},
        )
    emitted["run"] = run_artifacts(w, cfg=cfg)
    w.close()
    return w, emitted, model


def test_checkpoint_hook_draws_filters_and_stage_activations(finished_run):
    w, emitted, _ = finished_run
    events = emitted[("tiny-expert", "after_pretrain")]
    paths = {e["path"]: e["kind"] for e in events}
    assert paths == {
        "images/filters/tiny-expert_first-conv_after_pretrain.png": "filters",
        "images/activations/tiny-expert_stage-means_after_pretrain.png": "activations",
        "images/activations/tiny-expert_v1_top-channels_after_pretrain.png": "activations",
        "images/activations/tiny-expert_v2_top-channels_after_pretrain.png": "activations",
        "images/activations/tiny-expert_v4_top-channels_after_pretrain.png": "activations",
    }
    for e in events:
        assert e["event"] == "artifact" and e["trial"] == "tiny-expert"
        assert (w.dir / e["path"]).read_bytes()[:4] == b"\x89PNG"
    assert events == [e for e in RunReader(w.dir).artifacts() if e in events]


def test_trial_hook_writes_every_kind(finished_run):
    w, emitted, _ = finished_run
    kinds = {e["kind"] for e in emitted["tiny-expert"]}
    assert kinds == {"curves", "filters", "confusion", "cam", "robustness", "retrieval"}
    paths = [e["path"] for e in emitted["tiny-expert"]]
    assert "images/curves/tiny-expert_loss-accuracy.png" in paths
    assert "images/filters/tiny-expert_first-conv_checkpoints.png" in paths
    assert "images/confusion/tiny-expert_blurred_test.png" in paths
    assert "images/cam/tiny-expert_gradcam-gradcampp_v4_conv.png" in paths
    assert all((w.dir / p).is_file() for p in paths)


def test_classification_json_agrees_with_the_models_predictions(finished_run):
    w, _, model = finished_run  # the last trial's model is tiny-expert's
    images, labels = _data()
    saved = json.loads((w.dir / "trials/tiny-expert/classification_clear.json").read_text())
    predicted = model.predict(images.astype(np.float32), verbose=0).argmax(-1)
    assert saved["accuracy"] == pytest.approx(float((predicted == labels).mean()))
    assert np.sum(saved["confusion_matrix"]) == 12 and saved["condition"] == "clear"


def test_robustness_tables_per_trial_and_for_the_run(finished_run):
    from kvision.data.blur import apply_blur
    from kvision.insight.robustness import stratified_subset

    w, emitted, model = finished_run  # the last trial's model is tiny-expert's
    trial = json.loads((w.dir / "trials/tiny-expert/robustness.json").read_text())
    assert set(trial["sigma"]) == {"0", "2"} and set(trial["severity"]) == {"gaussian", "motion"}
    assert trial["n"] == 8 and trial["condition"] == "clear"  # max_images, first condition
    images, labels = _data()
    keep = stratified_subset(labels, 8)

    def accuracy(x):
        return float(
            (model.predict(x.astype(np.float32), verbose=0).argmax(-1) == labels[keep]).mean()
        )

    assert trial["sigma"]["0"] == pytest.approx(accuracy(images[keep]))
    sigma2 = apply_blur(images[keep], "gaussian", {"sigma": 2.0})
    assert trial["sigma"]["2"] == pytest.approx(accuracy(sigma2))
    run = json.loads((w.dir / "robustness.json").read_text())
    assert run["baseline"] == "tiny-naive"
    assert run["summary"]["tiny-naive"]["mce"] in (None, pytest.approx(1.0))
    assert {e["path"] for e in emitted["run"]} == {
        "images/curves/comparison_validation.png",
        "images/robustness/comparison_blur-robustness.png",
    }
    assert all(e["trial"] is None for e in emitted["run"])


def test_retrieval_stores_precision_at_k(finished_run):
    w, _, _ = finished_run
    saved = json.loads((w.dir / "trials/tiny-naive/retrieval.json").read_text())
    assert saved["k"] == 2 and saved["n"] == 12 and 0.0 <= saved["precision_at_k"] <= 1.0


def test_report_markdown_embeds_existing_images_and_tables(finished_run):
    w, _, _ = finished_run
    text = report_markdown(w.dir)
    assert text.startswith("## Insight")
    assert "### Classification report (scikit-learn)" in text
    assert "#### tiny-naive: blurred test" in text and "| cat |" in text
    assert "### Blur robustness" in text and "| tiny-expert |" in text
    links = [line.split("](")[1].rstrip(")") for line in text.splitlines() if line.startswith("![")]
    assert "images/filters/tiny-expert_first-conv_checkpoints.png" in links
    assert "images/filters/tiny-expert_first-conv_before.png" not in links  # in the comparison
    assert "| tiny-naive | clear test | 12 | 2 |" in text  # retrieval precision@k row
    assert all((w.dir / link).is_file() for link in links)


def test_checkpoints_option_and_disabled_section_skip_work(tmp_path):
    w = _fake_run(tmp_path)
    images, labels = _data()
    samples = Samples(images[:2], labels[:2], CLASSES)
    cfg = InsightSection(checkpoints=("before",))
    assert (
        checkpoint_artifacts(
            w, trial="tiny-naive", label="after_train", model=_model(0), samples=samples, cfg=cfg
        )
        == []
    )
    off = dataclasses.replace(cfg, enabled=False)
    assert (
        trial_artifacts(
            w,
            trial="tiny-naive",
            model=_model(0),
            test_sets={},
            class_names=CLASSES,
            samples=samples,
            cfg=off,
        )
        == []
    )
    assert not (w.dir / "images").exists()


def test_check_model_catches_layer_typos_before_training():
    model = _model(0)
    check_model(model, InsightSection(stages=("v1", "v4_conv")))  # stage and layer names
    with pytest.raises(KvisionError, match="no stage or layer 'v3'"):
        check_model(model, InsightSection(stages=("v1", "v3")))
    with pytest.raises(KvisionError, match="'classifier'.*not a spatial map"):
        check_model(
            model,
            dataclasses.replace(
                InsightSection(), cam=dataclasses.replace(InsightSection().cam, layer="classifier")
            ),
        )


def test_report_of_a_stopped_run_summarises_the_finished_trials(finished_run, tmp_path):
    import shutil

    w, _, _ = finished_run
    stopped = shutil.copytree(w.dir, tmp_path / "stopped")
    (stopped / "robustness.json").unlink()  # run_artifacts never ran
    text = report_markdown(stopped)
    assert "mCE (vs tiny-naive)" in text and "| tiny-expert |" in text
