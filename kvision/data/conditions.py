"""Conditions: views of a split as a stage or evaluation sees it (clear, blurred, ...)."""

from __future__ import annotations

import zlib

import numpy as np

from kvision.data.blur import apply_blur, severity_params
from kvision.data.dataset import Dataset
from kvision.data.rows import Rows
from kvision.errors import KvisionError
from kvision.recipe.schema_data import BlurSpec, ConditionSection

#: Blur kinds whose output for an image depends on that image alone (no draws across the
#: array), so blurring batch by batch gives the same pixels as blurring the whole split.
PER_IMAGE = ("gaussian", "defocus", "zoom")


class BlurredRows:
    """A selection of rows seen through a blur applied to each gathered batch."""

    def __init__(self, images: Rows, kind: str, params: dict) -> None:
        self.images, self.kind, self.params = images, kind, params
        self.shape, self.dtype, self.ndim = images.shape, images.dtype, images.ndim

    def __len__(self) -> int:
        return len(self.images)

    def __getitem__(self, key) -> np.ndarray:
        batch = self.images[key]
        single = batch.ndim == 3
        out = apply_blur(batch[None] if single else batch, self.kind, self.params)
        return out[0] if single else out

    def take(self, index: np.ndarray) -> BlurredRows:
        """The blurred rows at ``index``, still lazy."""
        return BlurredRows(self.images.take(index), self.kind, self.params)

    def astype(self, dtype) -> np.ndarray:
        """The whole selection, blurred, as an ndarray (a copy: for small selections)."""
        return self[np.arange(len(self))].astype(dtype)

    def __array__(self, dtype=None, copy=None) -> np.ndarray:
        out = self[np.arange(len(self))]
        return out if dtype is None else out.astype(dtype)


def _mapped(images) -> bool:
    """Whether ``images`` select rows of a memory map (the store), not of an array in RAM."""
    return isinstance(images, Rows) and isinstance(images.base, np.memmap)


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
) -> np.ndarray | Rows | BlurredRows:
    """The ``split`` images under condition ``name``.

    Over the store's memory-mapped rows a blur that treats every image on its
    own is applied per batch as batches are gathered (:class:`BlurredRows`), so no blurred
    copy of the split is held; motion and glass blur draw their random parts across the whole
    array, so they (and splits of arrays already in RAM, where the blurred copy costs less
    than blurring every batch again) are computed once and kept.
    """
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
        images = dataset.splits[split].images
        if condition.blur is None:
            return images
        if _mapped(images) and condition.blur.kind in PER_IMAGE:
            params = blur_params(condition.blur, images.shape[1:3], seed)
            dataset.views[key] = BlurredRows(images, condition.blur.kind, params)
        else:
            dataset.views[key] = apply_condition(np.asarray(images), condition, seed=seed)
    return dataset.views[key]
