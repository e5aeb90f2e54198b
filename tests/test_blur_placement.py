"""Where a condition's blur is applied: at the model's input size, or at the source's stored
resolution before the resize (report 000), with the effective size at the model's input."""

from __future__ import annotations

import cv2
import numpy as np
import pytest
from sections import data_section, parsed, valid

import kvision  # noqa: F401
from kvision.data import load_dataset
from kvision.data.blur import gaussian_blur
from kvision.data.conditions import condition_view
from kvision.data.images import resize_images
from kvision.errors import RecipeError
from kvision.recipe.schema_data import ConditionSection
from kvision.runs.result_tables import blur_facts


def _conditions(at: str, sigma: float = 2.0) -> dict[str, ConditionSection]:
    cond = valid(ConditionSection, {"blur": {"kind": "gaussian", "sigma": sigma, "at": at}})
    return {"clear": ConditionSection(), "blurred": cond}


@pytest.fixture(autouse=True)
def _private_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("KVISION_CACHE", str(tmp_path / "cache"))


def test_source_blur_is_applied_at_the_stored_size_then_resized():
    small = dict(source="builtin:fashion7k", limit_per_class=3, val_fraction=0.25)
    stored = load_dataset(data_section(**small), 5)  # 28x28, the same split (same seed)
    at_source = load_dataset(
        data_section(**small, image_size=[56, 56]), 5, conditions=_conditions("source")
    )
    at_input = load_dataset(
        data_section(**small, image_size=[56, 56]), 5, conditions=_conditions("input")
    )
    expected = resize_images(gaussian_blur(np.asarray(stored.splits["test"].images), 2.0), (56, 56))
    view = condition_view(at_source, "test", "blurred", _conditions("source")["blurred"])
    np.testing.assert_array_equal(view, expected)
    other = condition_view(at_input, "test", "blurred", _conditions("input")["blurred"])
    np.testing.assert_array_equal(
        other, gaussian_blur(np.asarray(at_input.splits["test"].images), 2.0)
    )
    assert np.abs(view.astype(int) - other).mean() > 1  # sigma 2 at 28 px is sigma 4 at 56
    placement = at_source.info["blur_placement"]["blurred"]
    assert placement["effective"] == pytest.approx([4.0, 4.0])
    assert placement["stored_size"] == [[28, 28], [28, 28]]
    assert at_input.info["blur_placement"]["blurred"]["effective"] == pytest.approx([2.0, 2.0])
    assert "effective sigma 4 at 56x56" in blur_facts(at_source.info["blur_placement"])["blurred"]


def test_source_views_follow_limits_and_balancing():
    small = dict(
        source="builtin:fashion7k",
        limit_per_class=4,
        val_fraction=0.25,
        image_size=[32, 32],
        balance={"method": "oversample", "per_class": 6},
    )
    ds = load_dataset(data_section(**small), 1, conditions=_conditions("source"))
    for split in ds.splits.values():
        assert (
            set(split.views) == {"blurred"} and split.views["blurred"].shape == split.images.shape
        )


def _folder(root, sizes):
    rng = np.random.default_rng(0)
    for cls in ("a", "b"):
        (root / cls).mkdir(parents=True)
        for i, side in enumerate(sizes):
            image = rng.integers(0, 255, (side, side, 3), dtype=np.uint8)
            cv2.imwrite(str(root / cls / f"{i}.png"), image)


def test_folder_of_mixed_sizes_reports_the_effective_range_also_from_the_cache(tmp_path):
    _folder(tmp_path / "imgs", [40, 80, 80])
    data = data_section(source=f"folder:{tmp_path / 'imgs'}", image_size=[20, 20], val_fraction=0.0)
    first = load_dataset(data, 0, conditions=_conditions("source", 4.0))
    again = load_dataset(data, 0, conditions=_conditions("source", 4.0))
    assert again.info["cache_hit"] and not first.info["cache_hit"]
    for ds in (first, again):
        p = ds.info["blur_placement"]["blurred"]
        assert p["stored_size"] == [[40, 40], [80, 80]]
        assert p["effective"] == pytest.approx([1.0, 2.0])  # 4 x 20/80 .. 4 x 20/40
    np.testing.assert_array_equal(
        first.splits["train"].views["blurred"], again.splits["train"].views["blurred"]
    )
    assert "effective sigma 1 to 2 at 20x20" in blur_facts(first.info["blur_placement"])["blurred"]


def test_blur_at_is_validated_with_a_suggestion():
    _, errors = parsed(
        ConditionSection,
        {"blur": {"kind": "gaussian", "sigma": 1.0, "at": "sourc"}},
        "conditions.blurred",
    )
    assert len(errors) == 1 and "Did you mean: 'source'" in str(errors[0])
    assert errors[0].key == "conditions.blurred.blur.at"


def test_static_augmentation_with_source_blur_is_refused():
    data = data_section(
        source="builtin:fashion7k", limit_per_class=2, augment={"static": [[{"op": "hflip"}]]}
    )
    with pytest.raises(RecipeError, match="blur.at"):
        load_dataset(data, 0, conditions=_conditions("source"))
