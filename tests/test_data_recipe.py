"""recipes/marine_species.toml (report 001's data handling) on a small class-per-folder tree."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np

import kvision  # noqa: F401
from kvision.data import load_dataset, normalization, split_manifest
from kvision.recipe.load import load_recipe

RECIPE = Path(__file__).resolve().parents[1] / "recipes" / "marine_species.toml"


def test_marine_recipe_on_an_imbalanced_tree(tmp_path, monkeypatch):
    monkeypatch.setenv("KVISION_CACHE", str(tmp_path / "cache"))
    rng = np.random.default_rng(0)
    sizes = {"turtle": 40, "shark": 10, "whale": 12}  # one over-represented class
    for cls, n in sizes.items():
        (tmp_path / "sea" / cls).mkdir(parents=True)
        for i in range(n):
            image = rng.integers(0, 255, (30 + i % 5, 36, 3), dtype=np.uint8)
            cv2.imwrite(str(tmp_path / "sea" / cls / f"{i}.jpg"), image)
    recipe = load_recipe(
        RECIPE,
        [
            f'data.source="folder:{tmp_path / "sea"}"',
            "data.image_size=[32, 32]",
            "data.balance.per_class=10",
        ],
    )
    ds = load_dataset(recipe.data, recipe.experiment.seed)
    # undersampled to 10 per class before the 8:1:1 split, then 3 static copies of train
    assert ds.info["class_counts_before"]["train"] == {"shark": 10, "turtle": 40, "whale": 12}
    assert ds.info["counts"] == {"train": 24 * 4, "val": 3, "test": 3}
    assert ds.info["class_counts"]["test"] == {"shark": 1, "turtle": 1, "whale": 1}
    mean, std = normalization(recipe.data, ds)
    pixels = np.asarray(ds.splits["train"].images).reshape(-1, 3) / 255.0  # static copies too
    # The same float64 statistics computed in another order (kvision streams the splits):
    # np.allclose's 1e-5 relative is far above float64's reordering error (~1e-15).
    assert np.allclose(mean, pixels.mean(0)) and np.allclose(std, pixels.std(0))
    again = load_dataset(recipe.data, recipe.experiment.seed, manifest=split_manifest(ds))
    assert again.splits["train"].ids == ds.splits["train"].ids
    assert np.array_equal(again.splits["train"].images, ds.splits["train"].images)
