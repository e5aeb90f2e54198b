"""Stratified, seeded train/val/test splits, and the manifest that reproduces them exactly."""

from __future__ import annotations

import re

import numpy as np
from sklearn.model_selection import train_test_split

from kvision.data.dataset import SPLIT_NAMES, Dataset, Split
from kvision.errors import RecipeError

MANIFEST_VERSION = 1
#: Suffix of the ids of static augmentation copies (see kvision.data.augment.static_copies).
STATIC_COPY = re.compile(r"#static\d+$")


def carve(
    split: Split, fraction: float, seed: int, *, key: str, what: str, class_names: list[str]
) -> tuple[Split, Split]:
    """Split off ``fraction`` of ``split``, stratified by class; returns (rest, carved)."""
    counts = np.bincount(split.labels, minlength=len(class_names))
    need = max(2, int(np.ceil(1 / fraction))) if fraction > 0 else 0
    short = [f"'{class_names[c]}' ({n})" for c, n in enumerate(counts) if 0 < n < need]
    if short:
        raise RecipeError(
            f"holding out {fraction:g} of the images as {what} needs at least {need} images "
            f"in every class so each class appears on both sides; too few in "
            f"{', '.join(short[:5])}{' ...' if len(short) > 5 else ''}. Lower the fraction, "
            f"add images or drop those classes.",
            key=key,
        )
    index = np.arange(len(split))
    try:
        rest, carved = train_test_split(
            index, test_size=fraction, random_state=seed, stratify=split.labels
        )
    except ValueError as exc:  # e.g. fewer held-out images than classes
        raise RecipeError(
            f"cannot hold out {fraction:g} of {len(split)} images as {what}, "
            f"stratified by class: {exc}. Lower the fraction or add images.",
            key=key,
        ) from None
    return split.take(np.sort(rest)), split.take(np.sort(carved))


def make_splits(
    given: dict[str, Split],
    fractions: tuple[float, float],
    seed: int,
    class_names: list[str],
    *,
    keys: tuple[str, str],
) -> dict[str, Split]:
    """Fill in the splits the source did not give: test and val are carved from train.

    ``keys`` are the recipe keys (val, test) named when a fraction cannot be honoured.
    """
    val_fraction, test_fraction = fractions
    splits = dict(given)
    train = splits["train"]
    if "test" not in splits and test_fraction > 0:
        train, splits["test"] = carve(
            train, test_fraction, seed, key=keys[1], what="test", class_names=class_names
        )
    if "val" not in splits and val_fraction > 0:
        # The val share is of the whole pool, so rescale it to what is left after test.
        share = val_fraction / (1.0 - (test_fraction if "test" not in given else 0.0))
        train, splits["val"] = carve(
            train, share, seed + 1, key=keys[0], what="validation", class_names=class_names
        )
    splits["train"] = train
    return {name: splits[name] for name in SPLIT_NAMES if name in splits}


def split_manifest(dataset: Dataset) -> dict:
    """JSON-able record of which source image (id) went to which split, in order.

    Ids repeat when a class was oversampled; static augmentation copies are not listed (they
    are re-made from the seed). Pass it back to load_dataset(manifest=...) to reproduce.
    """
    return {
        "version": MANIFEST_VERSION,
        "source": dataset.info.get("source", dataset.name),
        "class_names": list(dataset.class_names),
        "splits": {
            name: [i for i in split.ids if not STATIC_COPY.search(i)]
            for name, split in dataset.splits.items()
            if split.ids is not None
        },
    }


def apply_manifest(pool: Split, manifest: dict, class_names: list[str]) -> dict[str, Split]:
    """The splits a manifest records, taken from the pool of all source images."""
    if manifest.get("version") != MANIFEST_VERSION or "splits" not in manifest:
        raise RecipeError(
            "the recorded split (split manifest) is not one this kvision wrote; "
            "start a new run instead of resuming.",
            key="data",
        )
    if list(manifest.get("class_names", class_names)) != list(class_names):
        raise RecipeError(
            f"the recorded split has classes {manifest['class_names']} but the "
            f"source now has {class_names}; the data changed since the run "
            f"started.",
            key="data.source",
        )
    position = {image_id: i for i, image_id in enumerate(pool.ids)}
    splits = {}
    for name, ids in manifest["splits"].items():
        missing = [i for i in ids if i not in position]
        if missing:
            raise RecipeError(
                f"{len(missing)} image(s) of the recorded {name} split are no longer in the "
                f"source (e.g. {missing[:3]}); the data changed since the run started, so the "
                f"same split cannot be reproduced. Restore the files or start a new run.",
                key="data.source",
            )
        splits[name] = pool.take(np.array([position[i] for i in ids], dtype=np.int64))
    return splits
