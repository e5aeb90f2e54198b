"""The [data] and [conditions.NAME] tables: what is accepted, and the messages for mistakes."""

from __future__ import annotations

import pytest

from kvision.errors import RecipeError
from kvision.recipe.schema_data import ConditionSection, DataSection
from kvision.recipe.spec import INVALID, Context, parse


def _parse(cls, table, path):
    ctx = Context()
    result = parse(cls, table, ctx, path)
    return result, [str(e) for e in ctx.errors]


def _errors(cls, table, path="data"):
    result, errors = _parse(cls, table, path)
    assert errors, "expected a validation error"
    return errors


def test_defaults_and_report_001_shape():
    data, errors = _parse(
        DataSection,
        {
            "source": "folder:~/marine",
            "image_size": [224, 224],
            "split": [0.8, 0.1, 0.1],
            "normalize": "dataset",
            "balance": {"method": "undersample", "per_class": 500, "before_split": True},
            "augment": {
                "static": [[{"op": "rotate", "angle": 45}], [{"op": "hflip"}]],
                "dynamic": [
                    {"op": "random_resized_crop", "scale": [0.5, 1.0]},
                    {"op": "hflip", "p": 0.5},
                ],
            },
        },
        "data",
    )
    assert errors == []
    assert data.fractions() == (0.1, 0.1)
    assert data.augment.splits == ("train",)
    assert DataSection(source="builtin:fashion7k").normalize == "half"


@pytest.mark.parametrize(
    "source,expected",
    [
        ("folde:/x", "unknown source prefix 'folde:'. Did you mean: 'folder'?"),
        ("/data/pets", "has no source prefix"),
        ("builtin:fashion", "unknown built-in dataset 'fashion'. Did you mean: 'fashion7k'?"),
        ("tfds:", "names no dataset after 'tfds:'"),
    ],
)
def test_bad_source_names_the_key(source, expected):
    (error,) = _errors(DataSection, {"source": source})
    assert "key 'data.source'" in error and expected in error


def test_split_must_sum_to_one():
    (error,) = _errors(DataSection, {"source": "builtin:fashion7k", "split": [0.8, 0.1, 0.2]})
    assert "key 'data.split'" in error and "must sum to 1" in error and "sum 1.1" in error


def test_fractions_too_large():
    (error,) = _errors(
        DataSection, {"source": "builtin:fashion7k", "val_fraction": 0.5, "test_fraction": 0.5}
    )
    assert "key 'data.test_fraction'" in error and "must stay below 1" in error


def test_augment_op_parameter_that_does_not_belong():
    (error,) = _errors(
        DataSection,
        {"source": "builtin:fashion7k", "augment": {"static": [[{"op": "hflip", "size": [3, 3]}]]}},
    )
    assert "key 'data.augment.static[0][0].size'" in error
    assert "'size' does not apply to op 'hflip'" in error


def test_balance_rules():
    (error,) = _errors(
        DataSection,
        {"source": "builtin:fashion7k", "balance": {"method": "oversample", "before_split": True}},
    )
    assert "key 'data.balance.before_split'" in error


@pytest.mark.parametrize(
    "blur,key,expected",
    [
        ({"kind": "gaussian", "radius": 3}, "radius", "'radius' does not apply to gaussian blur"),
        ({"kind": "gaussian", "sigma": 60}, "sigma", "must be <= 50.0, got 60"),
        ({"kind": "motion", "severity": 2, "angle": 10}, "severity", "not both"),
        ({"kind": "glass", "sigma": 1.0}, "max_delta", "glass blur needs severity (1-5) or"),
        ({"kind": "zoom", "zooms": [1.2, 1.1, 0.01]}, "zooms", "start < stop"),
        ({"kind": "defocus", "severity": 6}, "severity", "must be <= 5"),
        ({"kind": "motion", "radius": 5, "sigma": 0}, "sigma", "motion blur needs sigma > 0"),
        ({"kind": "gausian", "sigma": 1}, "kind", "Did you mean: 'gaussian'?"),
    ],
)
def test_blur_errors_name_the_key(blur, key, expected):
    errors = _errors(ConditionSection, {"blur": blur}, "conditions.blurred")
    assert any(f"key 'conditions.blurred.blur.{key}'" in e and expected in e for e in errors), (
        errors
    )


def test_clear_condition_is_an_empty_table():
    condition, errors = _parse(ConditionSection, {}, "conditions.clear")
    assert errors == [] and condition.blur is None
    condition, errors = _parse(
        ConditionSection, {"blur": {"kind": "motion", "severity": 3}}, "conditions.m"
    )
    assert errors == [] and condition.blur.params() == {}


def test_errors_are_recipe_errors():
    ctx = Context()
    assert parse(DataSection, {"source": "nope:x"}, ctx, "data") is not INVALID
    assert all(isinstance(e, RecipeError) and e.key == "data.source" for e in ctx.errors)
