"""Conditions: views of a split as a stage or evaluation sees it (clear, blurred, ...)."""

from __future__ import annotations

import zlib

import numpy as np

from kvision.data.blur import apply_blur, severity_params
from kvision.data.dataset import Dataset
from kvision.data.rows import PerBatch, Rows, per_batch
from kvision.errors import KvisionError
from kvision.recipe.schema_data import BlurSpec, ConditionSection

#: Blur kinds whose output for an image depends on that image alone (no draws across the
#: array), so blurring batch by batch gives the same pixels as blurring the whole split.
PER_IMAGE = ("gaussian", "defocus", "zoom")


#: Images blurred per OpenCV pass when writing a scratch map.
CHUNK = 256


def blurred_map(images: Rows | np.ndarray, kind: str, params: dict) -> Rows:
    """``images`` blurred, written chunk by chunk into an unlinked scratch memory map."""
    from kvision.data.cache import scratch_array

    out = scratch_array(images.shape, images.dtype)
    for start in range(0, len(images), CHUNK):
        stop = min(start + CHUNK, len(images))
        out[start:stop] = apply_blur(images[start:stop], kind, params)
    return Rows(out)


def _mapped(images) -> bool:
    """Whether ``images`` are (rows of) a memory map (the store), not an array in RAM."""
    return isinstance(images.base if isinstance(images, Rows) else images, np.memmap)


def per_batch_blur(images: Rows, blur: BlurSpec, seed: int) -> Rows:
    """Streamed rows blurred batch by batch (a per-image kind: the recipe checks that)."""
    params = blur_params(blur, images.shape[1:3], seed)
    blurred = PerBatch(images.base, lambda batch: apply_blur(batch, blur.kind, params))
    return Rows(blurred, images.index)


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
) -> np.ndarray | Rows:
    """The ``split`` images under condition ``name``, computed once.

    Over the store's memory-mapped rows, a blur that treats every image on its own is
    written chunk by chunk into a scratch memory map (:func:`blurred_map`), so no blurred copy
    is held in RAM. Blurring every batch again instead was 20x slower to feed (Gaussian
    sigma 5 at 256 px; benchmarks/data_scale.py), but it is what stream mode does (no
    decoded copy exists to blur once). Motion and glass blur draw their random
    parts across the whole array, so they, and splits of arrays already in RAM, are blurred
    whole in memory.
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
        if per_batch(images):  # data.store = "stream": blurred as each batch is decoded
            dataset.views[key] = per_batch_blur(images, condition.blur, seed)
        elif _mapped(images) and condition.blur.kind in PER_IMAGE:
            params = blur_params(condition.blur, images.shape[1:3], seed)
            dataset.views[key] = blurred_map(images, condition.blur.kind, params)
        else:
            dataset.views[key] = apply_condition(np.asarray(images), condition, seed=seed)
    return dataset.views[key]
