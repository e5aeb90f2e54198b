"""Initial weights: Keras' ImageNet weights (mapping and the offline failure), local files and
previous runs, with mismatches named by layer."""

from __future__ import annotations

import numpy as np
import pytest

import kvision  # noqa: F401  (selects the torch backend before keras is imported)
from kvision.errors import KvisionError
from kvision.models import create_model
from kvision.models.weights import map_application_weights


def _randomise(model) -> None:
    """Random values for every weight (BN variances positive), so a wrong mapping shows."""
    rng = np.random.default_rng(0)
    for layer in model.layers:
        values = []
        for w in layer.get_weights():
            scale = 0.05 if w.ndim > 1 else 0.1
            values.append(rng.normal(scale=scale, size=w.shape).astype("float32"))
        if layer.__class__.__name__ == "BatchNormalization":
            values[0] += 1.0
            values[3] = np.abs(values[3]) + 0.5
        layer.set_weights(values)


def _stage_output(model, name, x):
    import keras

    return np.asarray(keras.Model(model.input, model.get_layer(name).output).predict(x, verbose=0))


def test_vgg16_imagenet_mapping_matches_keras_applications():
    import keras

    source = keras.applications.VGG16(weights=None, include_top=False, input_shape=(32, 32, 3))
    _randomise(source)
    target = create_model("vgg16", input_shape=(32, 32, 3), num_classes=2, head=8)
    map_application_weights(source, target)
    bgr = np.random.default_rng(1).normal(size=(2, 32, 32, 3)).astype("float32")
    want = np.asarray(source.predict(bgr, verbose=0))
    got = _stage_output(target, "block5_pool", bgr[..., ::-1])  # kvision feeds RGB
    np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-4 * np.abs(want).max())


@pytest.mark.slow
def test_resnet50_imagenet_mapping_folds_conv_biases_into_batchnorm():
    import keras

    source = keras.applications.ResNet50(weights=None, include_top=False, input_shape=(64, 64, 3))
    _randomise(source)
    target = create_model("resnet50", input_shape=(64, 64, 3), num_classes=2, stride_in_1x1=True)
    map_application_weights(source, target)
    bgr = np.random.default_rng(2).normal(size=(1, 64, 64, 3)).astype("float32")
    want = np.asarray(source.predict(bgr, verbose=0))
    got = _stage_output(target, "layer4_block3_out", bgr[..., ::-1])
    np.testing.assert_allclose(got, want, rtol=1e-3, atol=1e-3 * np.abs(want).max())


def test_imagenet_without_network_says_so(monkeypatch):
    from keras.src.utils import file_utils

    def offline(*args, **kwargs):
        raise OSError("URL fetch failure: network unreachable")

    monkeypatch.setattr(file_utils, "get_file", offline)
    with (
        pytest.raises(KvisionError) as info,
        pytest.warns(UserWarning, match=r"normalises its input the way Keras trained"),
    ):
        create_model(
            "vgg16",
            input_shape=(32, 32, 3),
            num_classes=2,
            head=8,
            preprocess=([0.5] * 3, [0.5] * 3),
            weights="imagenet",
        )
    message = str(info.value)
    assert "Could not get the ImageNet weights for model 'vgg16'" in message
    assert "network unreachable" in message
    assert "does not fall back to random weights" in message
    assert "~/.keras/models/" in message


def test_imagenet_model_takes_raw_rgb_with_caffe_statistics(monkeypatch):
    from kvision.models import weights

    monkeypatch.setattr(weights, "load_imagenet", lambda model, arch: None)  # no download
    model = create_model(
        "vgg16", input_shape=(32, 32, 3), num_classes=2, head=8, weights="imagenet"
    )
    x = np.full((1, 32, 32, 3), 200.0, dtype="float32")
    from keras import ops

    got = ops.convert_to_numpy(model.get_layer("preprocess")(x))
    np.testing.assert_allclose(
        got[0, 0, 0], [200 - 123.68, 200 - 116.779, 200 - 103.939], rtol=1e-5
    )


def test_imagenet_for_an_architecture_keras_does_not_publish():
    with pytest.raises(
        KvisionError,
        match=r"not available for model 'resnet18'.*"
        r"resnet50, vgg16, vgg19 only",
    ):
        create_model("resnet18", input_shape=(32, 32, 3), num_classes=2, weights="imagenet")
    with pytest.raises(KvisionError, match=r"needs 3-channel"):
        create_model("vgg16", input_shape=(32, 32, 1), num_classes=2, weights="imagenet")


def _lenet(classes=3, **options):
    return create_model("lenet", input_shape=(28, 28, 1), num_classes=classes, **options)


def _same_weights(a, b) -> bool:
    return all(np.array_equal(x, y) for x, y in zip(a.get_weights(), b.get_weights(), strict=True))


def test_weights_h5_file_and_mismatch(tmp_path):
    source = _lenet()
    source.save_weights(tmp_path / "lenet.weights.h5")
    assert _same_weights(_lenet(weights=str(tmp_path / "lenet.weights.h5")), source)
    with pytest.raises(
        KvisionError,
        match=r"does not fit model 'lenet'.*first mismatching "
        r"layer is 'classifier'",
    ):
        create_model(
            "lenet",
            input_shape=(32, 32, 1),
            num_classes=3,
            weights=str(tmp_path / "lenet.weights.h5"),
        )


def test_run_directory_trial_and_keras_file(tmp_path):
    source = _lenet()
    trial = tmp_path / "run" / "trials" / "lenet-naive"
    trial.mkdir(parents=True)
    source.save(trial / "model.keras")
    for where in (tmp_path / "run", trial, trial / "model.keras"):
        assert _same_weights(_lenet(weights=str(where)), source)


def test_run_with_several_trials_asks_for_one(tmp_path):
    for name in ("a-naive", "a-expert"):
        (tmp_path / "trials" / name).mkdir(parents=True)
        _lenet().save(tmp_path / "trials" / name / "model.keras")
    with pytest.raises(KvisionError, match=r"Give one trial directory.*a-expert, a-naive"):
        _lenet(weights=str(tmp_path))


def test_keras_file_of_another_architecture_names_the_layer(tmp_path):
    other = create_model("alexnet_small", input_shape=(28, 28, 1), num_classes=3, head=16)
    other.save(tmp_path / "other.keras")
    with pytest.raises(
        KvisionError,
        match=r"first mismatching layer is 'conv1_bn', which is "
        r"missing there",
    ):
        _lenet(weights=str(tmp_path / "other.keras"))


def test_previous_run_with_other_classes_keeps_a_new_head(tmp_path):
    source = _lenet(classes=5)
    source.save(tmp_path / "model.keras")
    with pytest.warns(UserWarning, match=r"except the head 'classifier'"):
        model = _lenet(classes=3, weights=str(tmp_path / "model.keras"))
    for layer in model.layers[:-1]:
        for mine, theirs in zip(
            layer.get_weights(), source.get_layer(layer.name).get_weights(), strict=True
        ):
            np.testing.assert_array_equal(mine, theirs)


def test_missing_weights_path_is_an_error(tmp_path):
    with pytest.raises(KvisionError, match=r"Weights '.*nope.keras' for model 'lenet' not found"):
        _lenet(weights=str(tmp_path / "nope.keras"))
