"""Augmentation with OpenCV (reports 001 and 003): flips, rotation, crops, gray, jitter.

A pipeline is a tuple of :class:`~kvision.recipe.schema_data.AugmentOp`; its output is always
resized back to the dataset's image size, so augmented and plain images batch together.
Randomness comes only from the generator passed in, so results are a function of the seed.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import cv2
import numpy as np

from kvision.data.dataset import Split
from kvision.data.images import resize_image, resize_images
from kvision.errors import RecipeError
from kvision.recipe.schema_data import AUGMENTS, AugmentOp

_DEFAULT_SCALE = (0.08, 1.0)
_DEFAULT_RATIO = (3 / 4, 4 / 3)


def check_pipeline(ops: Sequence[AugmentOp], image_hw: tuple[int, int], key: str) -> None:
    """Raise when a crop is larger than the image it would be cut from."""
    h, w = image_hw
    for i, op in enumerate(ops):
        if op.op in ("random_crop", "center_crop") and (op.size[0] > h or op.size[1] > w):
            raise RecipeError(
                f"the crop {list(op.size)} is larger than the {h}x{w} image it "
                f"is cut from at this step; use a smaller size or resize first.",
                key=f"{key}[{i}].size",
            )
        if op.op in ("random_crop", "center_crop", "resize", "random_resized_crop") and op.size:
            h, w = op.size


class Augmenter:
    """Applies one pipeline to batches of images, ending at ``out_hw``.

    Random parameters are drawn for the whole batch at once (vectorised), then OpenCV works
    image by image only where the parameters differ; a step skipped for an image (``p`` < 1)
    that changes the size still resizes it, so the batch keeps one shape.
    """

    def __init__(self, ops: Sequence[AugmentOp], out_hw: tuple[int, int]) -> None:
        self.ops, self.out_hw = tuple(ops), tuple(out_hw)

    def batch(self, images: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        """Augment every image of a uint8 NHWC batch; returns a new array."""
        x = images.copy()
        for op in self.ops:
            chosen = rng.random(len(x)) < op.p if op.p < 1.0 else np.ones(len(x), bool)
            x = AUGMENTS.implementation(op.op)(x, chosen, op, rng)
        return resize_images(x, self.out_hw)

    def __call__(self, image: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        """Augment one HWC uint8 image."""
        return self.batch(image[None], rng)[0]


Batch = np.ndarray  # uint8 (N, H, W, C)


def _flip(axis: int):
    def flip(x: Batch, chosen: np.ndarray, op: AugmentOp, rng: np.random.Generator) -> Batch:
        for i in np.flatnonzero(chosen):  # in place, image by image: no gather/scatter copies
            x[i] = np.flip(x[i], axis=axis - 1)
        return x

    return flip


_hflip = AUGMENTS.implements("hflip")(_flip(2))
_vflip = AUGMENTS.implements("vflip")(_flip(1))


@AUGMENTS.implements("rotate")
def _rotate(x: Batch, chosen: np.ndarray, op: AugmentOp, rng: np.random.Generator) -> Batch:
    n, h, w, c = x.shape
    angles = (
        np.full(n, op.angle) if op.angle is not None else rng.uniform(-op.degrees, op.degrees, n)
    )
    centre = ((w - 1) / 2, (h - 1) / 2)
    for i in np.flatnonzero(chosen):
        # Counter-clockwise like PIL's rotate; uncovered corners are black, as in PIL.
        m = cv2.getRotationMatrix2D(centre, float(angles[i]), 1.0)
        x[i] = cv2.warpAffine(
            x[i], m, (w, h), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT, borderValue=0
        ).reshape(h, w, c)
    return x


def _crop_boxes(n: int, h: int, w: int, op: AugmentOp, rng: np.random.Generator) -> np.ndarray:
    """torchvision's RandomResizedCrop boxes (top, left, height, width) for n images: up to
    10 draws of area and aspect ratio each, else the largest centred box within the ratios."""
    scale, ratio = op.scale or _DEFAULT_SCALE, op.ratio or _DEFAULT_RATIO
    area = h * w * rng.uniform(*scale, (n, 10))
    aspect = np.exp(rng.uniform(math.log(ratio[0]), math.log(ratio[1]), (n, 10)))
    cw, ch = np.rint(np.sqrt(area * aspect)), np.rint(np.sqrt(area / aspect))
    fits = (cw > 0) & (cw <= w) & (ch > 0) & (ch <= h)
    first = fits.argmax(axis=1)
    rows = np.arange(n)
    cw, ch = cw[rows, first].astype(int), ch[rows, first].astype(int)
    top = (rng.random(n) * (h - ch + 1)).astype(int)
    left = (rng.random(n) * (w - cw + 1)).astype(int)
    fallback = ~fits.any(axis=1)
    if fallback.any():
        clamp = min(max(w / h, ratio[0]), ratio[1])
        fw, fh = (w, round(w / clamp)) if w / h < clamp else (round(h * clamp), h)
        fw, fh = min(fw, w), min(fh, h)
        cw[fallback], ch[fallback] = fw, fh
        top[fallback], left[fallback] = (h - fh) // 2, (w - fw) // 2
    return np.stack([top, left, ch, cw], axis=1)


@AUGMENTS.implements("random_resized_crop")
def _random_resized_crop(
    x: Batch, chosen: np.ndarray, op: AugmentOp, rng: np.random.Generator
) -> Batch:
    n, h, w, c = x.shape
    size = tuple(op.size) if op.size else (h, w)
    boxes = _crop_boxes(n, h, w, op, rng)
    out = np.empty((n, *size, c), np.uint8)
    for i, (top, left, ch, cw) in enumerate(boxes):
        if not chosen[i]:
            out[i] = resize_image(x[i], size).reshape(*size, c)
            continue
        out[i] = resize_image(x[i, top : top + ch, left : left + cw], size).reshape(*size, c)
    return out


@AUGMENTS.implements("random_crop")
def _random_crop(x: Batch, chosen: np.ndarray, op: AugmentOp, rng: np.random.Generator) -> Batch:
    (ch, cw), (n, h, w, c) = op.size, x.shape
    tops = (rng.random(n) * (h - ch + 1)).astype(int)
    lefts = (rng.random(n) * (w - cw + 1)).astype(int)
    out = np.empty((n, ch, cw, c), np.uint8)
    for i in range(n):
        out[i] = (
            x[i, tops[i] : tops[i] + ch, lefts[i] : lefts[i] + cw]
            if chosen[i]
            else resize_image(x[i], (ch, cw)).reshape(ch, cw, c)
        )
    return out


@AUGMENTS.implements("center_crop")
def _center_crop(x: Batch, chosen: np.ndarray, op: AugmentOp, rng: np.random.Generator) -> Batch:
    (ch, cw), (h, w) = op.size, x.shape[1:3]
    top, left = (h - ch) // 2, (w - cw) // 2
    out = x[:, top : top + ch, left : left + cw].copy()
    if not chosen.all():
        out[~chosen] = resize_images(x[~chosen], (ch, cw))
    return out


@AUGMENTS.implements("resize")
def _resize(x: Batch, chosen: np.ndarray, op: AugmentOp, rng: np.random.Generator) -> Batch:
    return resize_images(x, tuple(op.size))  # a skipped resize would leave a wrong size


@AUGMENTS.implements("grayscale")
def _grayscale(x: Batch, chosen: np.ndarray, op: AugmentOp, rng: np.random.Generator) -> Batch:
    if x.shape[3] == 1 or not chosen.any():
        return x
    picked = np.ascontiguousarray(x[chosen])
    n, h, w, _ = picked.shape
    # One OpenCV call for all chosen images: stack them as one tall image.
    gray = cv2.cvtColor(picked.reshape(n * h, w, 3), cv2.COLOR_RGB2GRAY).reshape(n, h, w, 1)
    x[chosen] = np.repeat(gray, 3, axis=3)
    return x


@AUGMENTS.implements("color_jitter")
def _color_jitter(x: Batch, chosen: np.ndarray, op: AugmentOp, rng: np.random.Generator) -> Batch:
    n = len(x)
    b = op.brightness or 0.0
    c = op.contrast or 0.0
    bright = rng.uniform(1 - b, 1 + b, n)
    contrast = rng.uniform(1 - c, 1 + c, n)
    idx = np.flatnonzero(chosen)
    if not len(idx):
        return x
    y = x[idx].astype(np.float32) * bright[idx, None, None, None].astype(np.float32)
    if op.contrast:
        y = np.clip(y, 0, 255)
        luma = y if y.shape[3] == 1 else y @ np.float32([0.299, 0.587, 0.114])[:, None]
        mean = luma.mean(axis=(1, 2, 3), keepdims=True)
        y = (y - mean) * contrast[idx, None, None, None].astype(np.float32) + mean
    x[idx] = np.clip(np.rint(y), 0, 255).astype(np.uint8)
    return x


def static_copies(split: Split, pipelines: Sequence[Sequence[AugmentOp]], seed: int) -> Split:
    """The split followed by one augmented copy of every image per pipeline (report 001)."""
    if not pipelines:
        return split
    out_hw = split.images.shape[1:3]
    parts = [split]
    for k, ops in enumerate(pipelines):
        rng = np.random.default_rng([seed, 7919, k])
        images = Augmenter(ops, out_hw).batch(np.asarray(split.images), rng)
        ids = [f"{i}#static{k}" for i in split.ids] if split.ids is not None else None
        parts.append(Split(images, split.labels.copy(), ids))
    return Split.concat(parts)
