"""The robustness sweep as one predict over every blurred variant: same numbers, one call."""

from __future__ import annotations

import numpy as np
import pytest

import kvision  # noqa: F401  (selects the torch backend before keras is imported)
from kvision.data.blur import apply_blur, severity_params
from kvision.insight._batches import ArrayBatches
from kvision.insight.robustness import robustness_curves
from kvision.models import _fast, create_model

SIGMAS, KINDS, SEVERITIES = (0.0, 1.0, 3.0), ("defocus", "motion"), (1, 3, 5)
BATCH = 64  # 150 images: two full batches and a partial one per variant


@pytest.fixture(scope="module")
def model_and_data():
    import keras  # after kvision chose the torch backend

    keras.utils.set_random_seed(3)
    model = _fast.direct_graph(
        create_model("lenet", input_shape=(28, 28, 1), num_classes=10, preprocess=([0.5], [0.5]))
    )
    rng = np.random.default_rng(3)
    # Smooth blobs rather than noise, so that blurring changes some predictions, not all.
    images = np.clip(
        rng.normal(128, 60, (150, 7, 7, 1)).repeat(4, axis=1).repeat(4, axis=2), 0, 255
    ).astype(np.uint8)
    # Labels: the model's own answers on the clear images (accuracy 1 at sigma 0, less after).
    labels = model.predict(images.astype(np.float32), batch_size=BATCH, verbose=0).argmax(-1)
    return model, images, labels


def _one_call_per_variant(model, images, labels) -> dict:
    """The sweep as it was computed before: one predict per blurred variant."""

    def acc(variant):
        out = model.predict(variant.astype(np.float32), batch_size=BATCH, verbose=0)
        return float((np.asarray(out).argmax(-1) == labels).mean())

    hw = images.shape[1:3]
    return {
        "n": len(labels),
        "sigma": {
            f"{s:g}": acc(images if s == 0 else apply_blur(images, "gaussian", {"sigma": s}))
            for s in SIGMAS
        },
        "severity": {
            k: {str(v): acc(apply_blur(images, k, severity_params(k, v, hw))) for v in SEVERITIES}
            for k in KINDS
        },
    }


def test_batched_sweep_gives_the_same_numbers_in_one_predict(model_and_data, monkeypatch):
    model, images, labels = model_and_data
    before = _one_call_per_variant(model, images, labels)
    calls = []
    predict = model.predict
    monkeypatch.setattr(model, "predict", lambda *a, **k: calls.append(1) or predict(*a, **k))
    after = robustness_curves(
        model, images, labels, sigmas=SIGMAS, kinds=KINDS, severities=SEVERITIES, batch_size=BATCH
    )
    assert after == before  # exact: the same batches run, so the same bits come out
    assert len(calls) == 1
    # Not a vacuous comparison: blur changes the answers, more with strength.
    assert after["sigma"]["0"] == 1.0 and min(after["severity"]["defocus"].values()) < 1.0


def test_batches_are_cut_where_each_array_ends_and_outputs_are_bitwise_equal(model_and_data):
    model, images, _ = model_and_data
    arrays = [images[:100], images[100:], images[:5]]
    batches = ArrayBatches(arrays, BATCH)
    assert [len(batches[i]) for i in range(len(batches))] == [64, 36, 50, 5]
    joint = model.predict(batches, verbose=0)
    apart = [model.predict(a.astype(np.float32), batch_size=BATCH, verbose=0) for a in arrays]
    np.testing.assert_array_equal(joint, np.concatenate(apart))


class _NoWholeCast(np.ndarray):
    """A uint8 array that refuses to be cast whole: the split a store maps from disk."""

    def astype(self, dtype, *args, **kwargs):
        if len(self) > BATCH:
            raise AssertionError(f"cast of all {len(self)} images at once")
        return np.asarray(self).astype(dtype, *args, **kwargs)


def test_classes_and_features_cast_one_batch_at_a_time(model_and_data):
    import keras

    from kvision.insight.classification import predict_classes
    from kvision.insight.retrieval import encode

    model, images, labels = model_and_data
    whole = model.predict(images.astype(np.float32), batch_size=BATCH, verbose=0)
    guarded = images.view(_NoWholeCast)
    # The same batches as predict cuts from the whole array, so the same bits, not "close".
    assert np.array_equal(predict_classes(model, guarded, BATCH), np.asarray(whole).argmax(-1))
    enc = keras.Model(model.inputs, model.outputs)
    feats = encode(enc, guarded, BATCH)
    expected = np.asarray(whole, np.float32)
    expected = expected / np.maximum(np.linalg.norm(expected, axis=1, keepdims=True), 1e-12)
    assert np.array_equal(feats, expected)


def test_variants_whose_pixels_were_already_predicted_are_not_predicted_again(
    model_and_data, monkeypatch
):
    """The trial's last evaluation predicted the clear test images and the recipe's blurred
    ones: the sweep takes those classes for the variants with the same pixels (sigma 0 and
    the recipe's sigma) and predicts only the rest; pixels that differ are predicted."""
    model, images, labels = model_and_data
    blurred = apply_blur(images, "gaussian", {"sigma": 3.0})
    # Deliberately not the model's answers, so a reused variant is told apart by its number.
    wrong = (labels + 1) % 10
    off_by_one = images.copy()
    off_by_one[0, 0, 0, 0] ^= 1  # one pixel differs: must be predicted, not reused
    seen = []  # the arrays each predict call was given
    predict = model.predict

    def counted(data, *args, **kwargs):
        seen.append(len(data.arrays))
        return predict(data, *args, **kwargs)

    monkeypatch.setattr(model, "predict", counted)
    curves = robustness_curves(
        model,
        images,
        labels,
        sigmas=SIGMAS,
        kinds=KINDS,
        severities=SEVERITIES,
        batch_size=BATCH,
        known=[(images, wrong), (blurred, labels), (off_by_one, labels)],
    )
    assert curves["sigma"]["0"] == 0.0  # the known (wrong) classes, not a prediction (1.0)
    assert curves["sigma"]["3"] == 1.0  # the known classes of the same blurred pixels
    # Every other variant was predicted, in one call, as without ``known``.
    assert seen == [len(SIGMAS) - 2 + len(KINDS) * len(SEVERITIES)]
    plain = robustness_curves(
        model, images, labels, sigmas=SIGMAS, kinds=KINDS, severities=SEVERITIES, batch_size=BATCH
    )
    assert curves["severity"] == plain["severity"] and curves["sigma"]["1"] == plain["sigma"]["1"]
