"""Splits (ratios, given folders), the split manifest, class balance, limits, normalisation
and conditions."""

from __future__ import annotations

import json

import cv2
import numpy as np
import pytest

import kvision  # noqa: F401
from kvision.data import (
    class_weights,
    condition_view,
    load_dataset,
    normalization,
    split_manifest,
)
from kvision.data.blur import apply_blur
from kvision.errors import KvisionError
from kvision.recipe.schema_data import ConditionSection, DataSection
from kvision.recipe.spec import Context, parse


def section(cls=DataSection, **table):
    ctx = Context()
    value = parse(cls, table, ctx, "data")
    assert not ctx.errors, ctx.errors
    return value


# Pooled built-in data re-split by ratio: a quick stand-in for any class-per-folder tree.
POOLED = {"source": "builtin:fashion7k", "use_given_splits": False}


def test_ratio_split_8_1_1_is_stratified_and_seeded():
    data = section(**POOLED, split=[0.8, 0.1, 0.1])
    ds = load_dataset(data, seed=42)
    assert ds.info["counts"] == {"train": 5600, "val": 700, "test": 700}
    for split in ds.splits.values():
        counts = np.bincount(split.labels, minlength=10)
        assert counts.max() - counts.min() <= 1
    again = load_dataset(data, seed=42)
    other = load_dataset(data, seed=43)
    assert again.splits["test"].ids == ds.splits["test"].ids
    assert other.splits["test"].ids != ds.splits["test"].ids
    ids = [set(s.ids) for s in ds.splits.values()]
    assert not (ids[0] & ids[1] or ids[0] & ids[2] or ids[1] & ids[2])


def test_manifest_reproduces_split_exactly_through_json():
    data = section(**POOLED, split=[0.6, 0.2, 0.2], balance={"method": "oversample"})
    ds = load_dataset(data, seed=5)
    manifest = json.loads(json.dumps(split_manifest(ds)))
    # a different seed would split differently; the manifest wins
    again = load_dataset(data, seed=99, manifest=manifest)
    for name, split in ds.splits.items():
        assert again.splits[name].ids == split.ids
        assert np.array_equal(again.splits[name].images, split.images)
    assert again.info["reproduced_split"]


def test_manifest_naming_missing_images_is_refused():
    data = section(**POOLED, split=[0.6, 0.2, 0.2])
    manifest = split_manifest(load_dataset(data, seed=5))
    manifest["splits"]["train"].append("train/999999")
    with pytest.raises(KvisionError, match="no longer in the source"):
        load_dataset(data, seed=5, manifest=manifest)


def test_too_few_images_per_class_for_the_split(tmp_path):
    for cls, n in (("many", 10), ("few", 2)):
        (tmp_path / cls).mkdir()
        for i in range(n):
            cv2.imwrite(str(tmp_path / cls / f"{i}.png"), np.full((9, 9), i, np.uint8))
    data = section(source=f"folder:{tmp_path}", split=[0.4, 0.3, 0.3], cache=False)
    with pytest.raises(
        KvisionError,
        match="key 'data.split'.*needs at least 4 images in every class.*'few' \\(2\\)",
    ):
        load_dataset(data, seed=0)


def test_undersample_before_split_as_report_001():
    data = section(
        **POOLED,
        split=[0.8, 0.1, 0.1],
        balance={"method": "undersample", "per_class": 100, "before_split": True},
    )
    ds = load_dataset(data, seed=0)
    assert ds.info["counts"] == {"train": 800, "val": 100, "test": 100}
    assert ds.info["class_counts_before"]["train"]["t-shirt"] == 600
    assert ds.info["class_counts"]["val"] == dict.fromkeys(ds.class_names, 10)


def test_oversample_and_class_weights_on_imbalanced_train():
    base = {"source": "builtin:fashion7k", "limit_per_class": 20}
    data = section(**base, balance={"method": "oversample", "per_class": 30})
    ds = load_dataset(data, seed=0)
    assert np.bincount(ds.splits["train"].labels).tolist() == [30] * 10
    assert ds.info["class_counts_before"]["train"]["bag"] == 600
    weighted = section(**base, balance={"method": "class_weights"})
    wds = load_dataset(weighted, seed=0)
    keep = wds.splits["train"].labels != 0  # drop most of class 0 to make it rare
    keep[np.flatnonzero(~keep)[:5]] = True
    labels = wds.splits["train"].labels[keep]
    wds.splits["train"] = wds.splits["train"].take(np.flatnonzero(keep))
    weights = class_weights(weighted, wds)
    expected = len(labels) / (10 * np.bincount(labels, minlength=10))
    assert weights[0] == pytest.approx(expected[0]) and weights[0] > 3 * weights[1]
    assert class_weights(data, ds) is None


def test_normalization_presets_and_dataset_statistics():
    data = section(source="builtin:fashion7k", limit_per_class=10, normalize="dataset")
    ds = load_dataset(data, seed=0)
    mean, std = normalization(data, ds)
    pixels = ds.splits["train"].images / 255.0
    assert mean == pytest.approx([pixels.mean()]) and std == pytest.approx([pixels.std()])
    assert normalization(section(source="builtin:fashion7k"), ds) == ([0.5], [0.5])
    rgb = load_dataset(section(source="builtin:fashion7k", channels=3, limit_per_class=2), 0)
    assert normalization(section(source="builtin:fashion7k", normalize="imagenet"), rgb) == (
        [0.485, 0.456, 0.406],
        [0.229, 0.224, 0.225],
    )


def test_condition_views_are_cached_and_blurred():
    ds = load_dataset(section(source="builtin:fashion7k", limit_per_class=3), seed=0)
    clear = condition_view(ds, "test", "clear", section(ConditionSection))
    assert clear is ds.splits["test"].images
    blurred_cfg = section(ConditionSection, blur={"kind": "gaussian", "sigma": 2.0})
    blurred = condition_view(ds, "test", "blurred", blurred_cfg)
    assert condition_view(ds, "test", "blurred", blurred_cfg) is blurred
    clear_pixels = np.asarray(ds.splits["test"].images)
    assert np.array_equal(blurred, apply_blur(clear_pixels, "gaussian", {"sigma": 2.0}))
    severe = section(ConditionSection, blur={"kind": "zoom", "severity": 3})
    assert condition_view(ds, "val", "zoom3", severe).shape == ds.splits["val"].images.shape
    with pytest.raises(KvisionError, match="no 'tst' split"):
        condition_view(ds, "tst", "clear", section(ConditionSection))


def test_manifest_leaves_out_static_copies_and_they_are_remade():
    data = section(
        source="builtin:fashion7k",
        limit_per_class=3,
        augment={"static": [[{"op": "rotate", "degrees": 30}]]},
    )
    ds = load_dataset(data, seed=7)
    manifest = split_manifest(ds)
    assert len(manifest["splits"]["train"]) == 30 and len(ds.splits["train"]) == 60
    again = load_dataset(data, seed=7, manifest=manifest)
    assert again.splits["train"].ids == ds.splits["train"].ids
    assert np.array_equal(again.splits["train"].images, ds.splits["train"].images)
