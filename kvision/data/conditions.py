"""Conditions: views of a split as a stage or evaluation sees it (clear, blurred, ...)."""

from __future__ import annotations

import zlib

import numpy as np

from kvision.data.blur import apply_blur, severity_params
from kvision.data.dataset import Dataset
from kvision.errors import KvisionError
from kvision.recipe.schema_data import BlurSpec, ConditionSection


def blur_params(blur: BlurSpec, image_hw: tuple[int, int], default_seed: int) -> dict:
    """Explicit apply_blur parameters for a condition's blur (presets resolved)."""
    if blur.severity is not None:
        params = severity_params(blur.kind, blur.severity, image_hw, preset=blur.preset)
        if blur.variant is not None:
            params["variant"] = blur.variant
    else:
        params = blur.params()
        params.pop("seed", None)
    if blur.kind in ("motion", "glass"):
        params["seed"] = blur.seed if blur.seed is not None else default_seed
    return params


def apply_condition(
    images: np.ndarray, condition: ConditionSection, *, seed: int = 0
) -> np.ndarray:
    """The images as ``condition`` shows them (uint8 in, uint8 out; clear = unchanged)."""
    if condition.blur is None:
        return images
    params = blur_params(condition.blur, images.shape[1:3], seed)
    return apply_blur(images, condition.blur.kind, params)


def condition_view(
    dataset: Dataset, split: str, name: str, condition: ConditionSection
) -> np.ndarray:
    """The ``split`` images under condition ``name``, computed once and kept in memory."""
    if split not in dataset.splits:
        raise KvisionError(
            f"The dataset has no '{split}' split (it has: "
            f"{', '.join(dataset.splits)}). Set data.test_fraction or "
            f"data.split to hold out a test split, or evaluate other splits."
        )
    key = (split, name)
    if name in dataset.splits[split].views:  # blurred at the source resolution while loading
        return dataset.splits[split].views[name]
    if key not in dataset.views:
        # The random parts of motion/glass blur differ per split but repeat across runs.
        seed = zlib.crc32(f"{split}/{name}".encode())
        dataset.views[key] = apply_condition(dataset.splits[split].images, condition, seed=seed)
    return dataset.views[key]
