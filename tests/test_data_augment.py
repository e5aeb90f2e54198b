"""Augmentation with OpenCV: each op's effect, determinism, static copies, bad sizes."""

from __future__ import annotations

import numpy as np
import pytest

import kvision  # noqa: F401
from kvision.data import load_dataset
from kvision.data.augment import Augmenter, check_pipeline
from kvision.errors import KvisionError
from kvision.recipe.schema_data import AugmentOp, DataSection
from kvision.recipe.spec import Context, parse


def ops(*tables) -> tuple[AugmentOp, ...]:
    ctx = Context()
    result = tuple(parse(AugmentOp, t, ctx, "op") for t in tables)
    assert not ctx.errors, ctx.errors
    return result


@pytest.fixture(scope="module")
def image() -> np.ndarray:
    return np.random.default_rng(0).integers(0, 255, (16, 16, 3), dtype=np.uint8)


def run(pipeline, image, seed=0, out_hw=(16, 16)):
    return Augmenter(pipeline, out_hw)(image, np.random.default_rng(seed))


def test_flips_and_exact_rotation(image):
    assert np.array_equal(run(ops({"op": "hflip"}), image), image[:, ::-1])
    assert np.array_equal(run(ops({"op": "vflip"}), image), image[::-1])
    # 90 degrees counter-clockwise (PIL's direction) lands exactly on the pixel grid
    assert np.array_equal(run(ops({"op": "rotate", "angle": 90}), image), np.rot90(image))


def test_crops_and_resize(image):
    centre = run(ops({"op": "center_crop", "size": [8, 8]}), image, out_hw=(8, 8))
    assert np.array_equal(centre, image[4:12, 4:12])
    crop = run(ops({"op": "random_crop", "size": [8, 8]}), image, out_hw=(8, 8))
    windows = [image[i : i + 8, j : j + 8] for i in range(9) for j in range(9)]
    assert any(np.array_equal(crop, w) for w in windows)
    full = run(ops({"op": "random_resized_crop", "scale": [1.0, 1.0], "ratio": [1.0, 1.0]}), image)
    assert np.array_equal(full, image)  # the whole image, resized to itself
    assert run(ops({"op": "resize", "size": [32, 24]}), image, out_hw=(32, 24)).shape == (32, 24, 3)


def test_grayscale_and_jitter(image):
    gray = run(ops({"op": "grayscale"}), image)
    assert np.array_equal(gray[..., 0], gray[..., 1]) and np.array_equal(gray[..., 1], gray[..., 2])
    brighter = run(ops({"op": "color_jitter", "brightness": 0.5}), image, seed=1)
    assert not np.array_equal(brighter, image)
    ratio = brighter[image > 20].astype(float) / image[image > 20]
    assert ratio[brighter[image > 20] < 255].std() < 0.02  # one factor for the whole image


def test_random_ops_are_deterministic_per_seed(image):
    pipeline = ops(
        {"op": "random_resized_crop", "scale": [0.3, 1.0]},
        {"op": "hflip", "p": 0.5},
        {"op": "rotate", "degrees": 45},
        {"op": "grayscale", "p": 0.5},
    )
    batch = np.stack([image] * 6)
    aug = Augmenter(pipeline, (16, 16))
    first = aug.batch(batch, np.random.default_rng(7))
    assert np.array_equal(first, aug.batch(batch, np.random.default_rng(7)))
    assert not np.array_equal(first, aug.batch(batch, np.random.default_rng(8)))
    assert len({first[i].tobytes() for i in range(6)}) == 6  # each image drew its own params


def test_probability_zero_never_applies(image):
    assert np.array_equal(run(ops({"op": "hflip", "p": 0.0}), image), image)


def test_crop_larger_than_image_names_the_key():
    with pytest.raises(KvisionError, match=r"key 'data.augment.dynamic\[1\].size'.*larger than"):
        check_pipeline(
            ops({"op": "resize", "size": [20, 20]}, {"op": "random_crop", "size": [24, 24]}),
            (64, 64),
            "data.augment.dynamic",
        )


def test_static_augmentation_enlarges_train_only():
    ctx = Context()
    data = parse(
        DataSection,
        {
            "source": "builtin:fashion7k",
            "limit_per_class": 4,
            "augment": {
                "static": [
                    [{"op": "rotate", "angle": 45}],
                    [{"op": "hflip"}],
                    [{"op": "resize", "size": [40, 40]}, {"op": "random_crop", "size": [28, 28]}],
                ]
            },
        },
        ctx,
        "data",
    )
    assert not ctx.errors
    ds = load_dataset(data, seed=0)
    train = ds.splits["train"]
    assert len(train) == 4 * 40 and len(ds.splits["val"]) == 40
    assert train.ids[40].endswith("#static0") and train.ids[-1].endswith("#static2")
    assert np.array_equal(train.images[80:120], train.images[:40, :, ::-1])
    again = load_dataset(data, seed=0)
    assert np.array_equal(again.splits["train"].images, train.images)
