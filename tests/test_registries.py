"""Blur kinds and augmentation ops are declared once (kvision.recipe.schema_data's registries)
and implemented by name in kvision.data, with the declared parameters and defaults."""

from __future__ import annotations

import dataclasses
import inspect

import pytest

from kvision.data import augment, blur  # noqa: F401  (attach the implementations)
from kvision.errors import KvisionError
from kvision.recipe.schema_data import (
    AUGMENT_PARAMS,
    AUGMENTS,
    BLUR_PARAMS,
    BLURS,
    REQUIRED_BLUR_PARAMS,
)


@pytest.mark.parametrize("kind", BLURS.names())
def test_each_blur_kind_is_implemented_with_its_declared_parameters(kind):
    """The implementation's signature (after the images) is the declaration: same names, same
    order, same defaults, so a default lives in one place and both say it."""
    signature = list(inspect.signature(BLURS.implementation(kind)).parameters.values())[1:]
    declared = dataclasses.fields(BLURS.params_of(kind))
    assert [p.name for p in signature] == [f.name for f in declared]
    for parameter, field in zip(signature, declared, strict=True):
        expected = (
            inspect.Parameter.empty if field.default is dataclasses.MISSING else field.default
        )
        assert parameter.default == expected, (kind, field.name)


@pytest.mark.parametrize("op", AUGMENTS.names())
def test_each_augmentation_op_is_implemented(op):
    assert callable(AUGMENTS.implementation(op))


def test_the_schema_tables_come_from_the_declarations():
    assert BLUR_PARAMS["motion"] == ("radius", "sigma", "angle", "seed")
    assert REQUIRED_BLUR_PARAMS["motion"] == ("radius", "sigma")
    assert REQUIRED_BLUR_PARAMS["defocus"] == ("radius",)
    assert AUGMENT_PARAMS["rotate"] == ("degrees", "angle")
    assert AUGMENTS.needs("random_crop") == ("size",) and AUGMENTS.needs("hflip") == ()


def test_an_unknown_name_is_a_user_error_with_a_suggestion():
    with pytest.raises(
        KvisionError, match="Unknown blur kind 'gausian'. Did you mean: 'gaussian'?"
    ):
        BLURS.implementation("gausian")
    with pytest.raises(ValueError, match="declared twice"):
        BLURS.declare("zoom")(type("Again", (), {}))
