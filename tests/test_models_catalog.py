"""The model registry: fast import, names, options and input-size checks."""

from __future__ import annotations

import subprocess
import sys
from typing import Annotated

import pytest

import kvision  # noqa: F401  (selects the torch backend before keras is imported)
from kvision.errors import KvisionError
from kvision.models import catalog
from kvision.models.catalog import MODELS, get_entry, model_names

IMAGE_MODELS = [name for name in model_names() if len(MODELS[name].default_input) == 3]


def test_catalog_imports_without_keras():
    code = (
        "import sys, kvision.models.catalog; print('keras' in sys.modules, 'torch' in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.split() == ["False", "False"]


def test_every_issue_architecture_is_registered():
    expected = {
        "lenet",
        "alexnet_small",
        "alexnet_seed",
        "alexnet",
        "mynet",
        "mynet_pro",
        "vgg11",
        "vgg13",
        "vgg16",
        "vgg19",
        "vgg11_bn",
        "vgg13_bn",
        "vgg16_bn",
        "vgg19_bn",
        "vgg11_seed",
        "vgg16_seed",
        "resnet18",
        "resnet34",
        "resnet50",
        "resnet20",
        "mlp",
    }
    assert expected <= set(model_names())


def test_unknown_architecture_suggests_the_closest():
    with pytest.raises(
        KvisionError,
        match=r"Unknown model architecture 'alexnt'\. "
        r"Did you mean: 'alexnet'\? Known: .*resnet50",
    ):
        get_entry("alexnt")


def test_unknown_option_names_it_and_the_allowed_ones():
    from kvision.models import create_model

    with pytest.raises(KvisionError) as info:
        create_model("alexnet_seed", input_shape=(64, 64, 3), num_classes=2, downscal=2)
    message = str(info.value)
    assert "Unknown option 'downscal' for model architecture 'alexnet_seed'" in message
    assert "Did you mean: 'downscale'?" in message
    assert "Allowed options: dropout, downscale, weights." in message


def test_option_type_is_checked():
    entry = get_entry("alexnet_seed")
    with pytest.raises(
        KvisionError,
        match=r"Option 'downscale' .* must be int .* "
        r"Received: downscale=True",
    ):
        catalog.check_options(entry, {"downscale": True})
    assert catalog.check_options(entry, {"dropout": 0})["dropout"] == 0  # TOML int for float


@pytest.mark.parametrize("name", IMAGE_MODELS)
def test_input_below_minimum_is_refused_before_building(name):
    from kvision.models.counting import build_shapes_only

    entry = MODELS[name]
    side = entry.min_input
    channels = entry.default_input[2]
    build_shapes_only(name, input_shape=(side, side, channels), num_classes=3)
    if side > 1:
        with pytest.raises(
            KvisionError,
            match=rf"too small for model '{name}'.*at least "
            rf"{side}x{side} pixels",
        ):
            build_shapes_only(name, input_shape=(side - 1, side + 5, channels), num_classes=3)


def test_divisor_options_are_validated():
    from kvision.models import create_model

    with pytest.raises(
        KvisionError,
        match=r"'downscale' .* positive divisor of 64.*"
        r"Received: downscale=3",
    ):
        create_model("alexnet_seed", input_shape=(64, 64, 3), num_classes=2, downscale=3)
    with pytest.raises(KvisionError, match=r"'norm' .* Received: norm='layer'"):
        create_model("alexnet_small", input_shape=(28, 28, 1), num_classes=2, norm="layer")


def test_input_shape_and_classes_are_validated():
    from kvision.models import create_model

    with pytest.raises(KvisionError, match=r"input_shape must be \(height, width, channels\)"):
        create_model("lenet", input_shape=(28, 28), num_classes=2)
    with pytest.raises(KvisionError, match=r"num_classes .* positive integer"):
        create_model("lenet", input_shape=(28, 28, 1), num_classes=0)


def test_list_models_matches_a_pattern_and_a_family():
    from kvision.models import list_models

    assert list_models("vgg1[16]_bn") == ["vgg11_bn", "vgg16_bn"]
    assert set(list_models(family="vgg")) >= {"vgg11", "vgg19_bn", "vgg16_seed"}
    assert "lenet" not in list_models(family="vgg")
    assert list_models() == sorted(list_models()) and "lenet" in list_models()
    assert list_models("nothing*") == []


def test_register_model_reads_options_from_the_builders_signature(monkeypatch):
    """Options are the builder's defaulted keyword parameters a variant leaves open; a
    parameter without a default must be fixed by each registration."""
    from kvision.models.catalog import registry

    monkeypatch.setattr(registry, "MODELS", {})

    def build_toy(
        x,
        *,
        arch: str,
        num_classes: int,
        depth: int,
        width: Annotated[int, "layer width"] = 8,
        bias: bool = True,
    ):
        return x

    registry.register_model(
        "toy4", family="toy", input=(8, 8, 1), classes=3, min_input=1, description="", depth=4
    )(build_toy)
    registry.register_model(
        "toy2",
        family="toy",
        input=(8, 8, 1),
        classes=3,
        min_input=1,
        description="",
        depth=2,
        bias=False,
    )(build_toy)
    toy4, toy2 = registry.MODELS["toy4"], registry.MODELS["toy2"]
    assert [(o.name, o.type, o.default, o.help) for o in toy4.options[:2]] == [
        ("width", int, 8, "layer width"),
        ("bias", bool, True, ""),
    ]
    assert toy2.option_names() == ["width", "weights"] and toy2.preset == {
        "depth": 2,
        "bias": False,
    }
    with pytest.raises(AssertionError, match="preset depth"):
        registry.register_model(
            "toy", family="toy", input=(8, 8, 1), classes=3, min_input=1, description=""
        )(build_toy)
