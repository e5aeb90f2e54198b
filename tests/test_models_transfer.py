"""Transfer learning: new heads and freezing by stage or layer-name pattern."""

from __future__ import annotations

import numpy as np
import pytest
from numerics import assert_close_to_scale

import kvision  # noqa: F401  (selects the torch backend before keras is imported)
from kvision.errors import KvisionError
from kvision.models import apply_trainable, create_model, replace_head
from kvision.models.counting import trainable_count


def to_numpy(tensor) -> np.ndarray:
    from keras import ops  # after kvision, which picks the backend

    return ops.convert_to_numpy(tensor)


@pytest.fixture(scope="module")
def resnet18():
    return create_model("resnet18", input_shape=(32, 32, 3), num_classes=1000)


def test_replace_head_keeps_the_backbone(resnet18):
    new = replace_head(resnet18, 19)
    assert new.output_shape == (None, 19)
    assert new.layers[-1].name == "classifier"
    assert new.get_layer("layer4_block2_conv2") is resnet18.get_layer("layer4_block2_conv2")
    assert trainable_count(new) == trainable_count(resnet18) - 513 * 1000 + 513 * 19


def test_report_001_frozen_backbone(resnet18):
    model = replace_head(resnet18, 19)
    frozen = apply_trainable(model, freeze=["*"], unfreeze=["layer4", "classifier"])
    assert "stem_conv" in frozen and "layer3_block2_bn2" in frozen
    assert "layer4_block1_conv1" not in frozen
    layer4 = sum(layer.count_params() for layer in model.layers if layer.name.startswith("layer4_"))
    bn_stats = sum(
        2 * layer.gamma.shape[0]
        for layer in model.layers
        if layer.name.startswith("layer4_") and "bn" in layer.name
    )
    assert trainable_count(model) == layer4 - bn_stats + 513 * 19


def test_frozen_batchnorm_runs_in_inference_mode():
    model = create_model("lenet", input_shape=(28, 28, 1), num_classes=3, dropout=0.0)
    x = np.random.default_rng(0).uniform(0, 255, size=(4, 28, 28, 1)).astype("float32")
    apply_trainable(model, freeze=["conv1", "conv2"])
    assert_close_to_scale(to_numpy(model(x, training=True)), to_numpy(model(x, training=False)))
    apply_trainable(model, unfreeze=["conv*"])
    assert not np.allclose(
        to_numpy(model(x, training=True)), to_numpy(model(x, training=False)), rtol=1e-3
    )


def test_pattern_matching_nothing_is_an_error(resnet18):
    with pytest.raises(
        KvisionError,
        match=r"The unfreeze entry 'layer5' matches no layer of "
        r"model 'resnet18'. Entries are stage names "
        r"\(classifier, layer1, layer2, layer3, layer4, stem\)",
    ):
        apply_trainable(resnet18, unfreeze=["layer5"])


def test_replace_head_survives_a_round_trip(tmp_path):
    from kvision.models import load_model

    model = replace_head(create_model("lenet", input_shape=(28, 28, 1), num_classes=10), 2)
    model.save(tmp_path / "m.keras")
    x = np.random.default_rng(1).uniform(0, 255, size=(2, 28, 28, 1)).astype("float32")
    np.testing.assert_array_equal(
        load_model(tmp_path / "m.keras").predict(x, verbose=0), model.predict(x, verbose=0)
    )
