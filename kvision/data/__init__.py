"""Data: sources (builtin, idx, folder, tfds), splits, balance, blur, augmentation,
normalisation and the input pipeline into Keras ``fit``.

Images are uint8 NHWC: a memory map of the cache entry for folders (kvision.data.store),
an array in RAM for the small built-in and IDX sources; splits are index selections of them
(kvision.data.rows). Batches leave the pipeline as uint8 and Keras casts them on the device;
models normalise internally, so the pipeline feeds raw 0..255 pixels.

Importing this package is cheap: the names below load their modules (OpenCV, scikit-learn,
Keras) on first use, so ``kvision --help`` and ``kvision.data.commands`` stay light.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from kvision.data.balance import class_weights
    from kvision.data.conditions import apply_condition, condition_view
    from kvision.data.dataset import Dataset, Split
    from kvision.data.feed import Feed
    from kvision.data.load import load_dataset
    from kvision.data.normalize import NORMALIZE_PRESETS, normalization
    from kvision.data.pipeline import make_batches
    from kvision.data.splits import split_manifest

_EXPORTS = {
    "Dataset": "dataset",
    "Split": "dataset",
    "Feed": "feed",
    "load_dataset": "load",
    "split_manifest": "splits",
    "condition_view": "conditions",
    "apply_condition": "conditions",
    "normalization": "normalize",
    "NORMALIZE_PRESETS": "normalize",
    "class_weights": "balance",
    "make_batches": "pipeline",
}
__all__ = [
    "NORMALIZE_PRESETS",
    "Dataset",
    "Feed",
    "Split",
    "apply_condition",
    "class_weights",
    "condition_view",
    "load_dataset",
    "make_batches",
    "normalization",
    "split_manifest",
]


def __getattr__(name: str) -> Any:
    if name not in _EXPORTS:
        raise AttributeError(f"module 'kvision.data' has no attribute '{name}'")
    value = getattr(importlib.import_module(f"kvision.data.{_EXPORTS[name]}"), name)
    globals()[name] = value  # later look-ups skip this function
    return value
