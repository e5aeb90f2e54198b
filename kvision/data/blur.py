"""The blur family: Gaussian, defocus (disk), motion, zoom and glass blur, with OpenCV.

Each kind follows the published definition of the ImageNet-C corruptions (Hendrycks &
Dietterich, 2019) on the 0..1 scale, and offers its five severities as presets in three
published parameter sets: ImageNet-C (224 px), Tiny-ImageNet-C (64 px) and CIFAR-10-C (32 px).
Results are rounded back to uint8 (the published scripts truncate; rounding is unbiased).

    blurred = apply_blur(images, "gaussian", {"sigma": 5.0})
    blurred = apply_blur(images, "zoom", severity_params("zoom", 3, (64, 64)))
"""

from __future__ import annotations

import dataclasses
import math
import os
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor

import cv2
import numpy as np

from kvision.errors import KvisionError, did_you_mean
from kvision.recipe.schema_data import (
    BLUR_PARAMS,
    BLURS,
    GLASS_VARIANTS,
    REQUIRED_BLUR_PARAMS,
)

BLUR_KINDS = BLURS.names()  # declared in kvision.recipe.schema_data, implemented below
PRESETS = ("imagenet_c", "tiny_imagenet_c", "cifar10_c")

# Severity 1..5 parameters, as published for each image size.
_SEVERITIES: dict[str, dict[str, list]] = {
    "imagenet_c": {
        "gaussian": [1, 2, 3, 4, 6],
        "defocus": [(3, 0.1), (4, 0.5), (6, 0.5), (8, 0.5), (10, 0.5)],
        "motion": [(10, 3), (15, 5), (15, 8), (15, 12), (20, 15)],
        "zoom": [
            (1, 1.11, 0.01),
            (1, 1.16, 0.01),
            (1, 1.21, 0.02),
            (1, 1.26, 0.02),
            (1, 1.31, 0.03),
        ],
        "glass": [(0.7, 1, 2), (0.9, 2, 1), (1, 2, 3), (1.1, 3, 2), (1.5, 4, 2)],
    },
    "tiny_imagenet_c": {
        "gaussian": [0.5, 0.75, 1, 1.25, 1.5],
        "defocus": [(0.5, 0.6), (1, 0.1), (1.5, 0.1), (2.5, 0.01), (3, 0.1)],
        "motion": [(10, 1), (10, 1.5), (10, 2), (10, 2.5), (12, 3)],
        "zoom": [
            (1, 1.06, 0.01),
            (1, 1.11, 0.01),
            (1, 1.16, 0.01),
            (1, 1.21, 0.01),
            (1, 1.26, 0.01),
        ],
        "glass": [(0.1, 1, 1), (0.5, 1, 1), (0.6, 1, 2), (0.7, 2, 1), (0.9, 2, 2)],
    },
    "cifar10_c": {
        "gaussian": [0.4, 0.6, 0.7, 0.8, 1],
        "defocus": [(0.3, 0.4), (0.4, 0.5), (0.5, 0.6), (1, 0.2), (1.5, 0.1)],
        "motion": [(6, 1), (6, 1.5), (6, 2), (8, 2), (9, 2.5)],
        "zoom": [
            (1, 1.06, 0.01),
            (1, 1.11, 0.01),
            (1, 1.16, 0.01),
            (1, 1.21, 0.01),
            (1, 1.26, 0.01),
        ],
        "glass": [(0.05, 1, 1), (0.25, 1, 1), (0.4, 1, 1), (0.25, 1, 2), (0.4, 1, 2)],
    },
}
# OpenCV's filters take at most this many channels at once; small images are stacked along
# the channel axis so that one call blurs many images (28x28 gray: ~20x fewer calls).
_MAX_CHANNELS = 128
_STACK_MAX_PIXELS = 64 * 64
#: Threads large-image blurs use (set to 1 to measure or pin one core).
MAX_THREADS = min(os.cpu_count() or 1, 8)


def preset_for(image_hw: tuple[int, int]) -> str:
    """The parameter set made for images of this size (the smaller side decides)."""
    side = min(image_hw)
    return "cifar10_c" if side <= 32 else "tiny_imagenet_c" if side <= 64 else "imagenet_c"


def severity_params(
    kind: str, severity: int, image_hw: tuple[int, int], *, preset: str = "auto"
) -> dict:
    """Explicit parameters of ``kind`` at ImageNet-C severity 1..5 for images of ``image_hw``.

    ``preset`` picks the published set (imagenet_c, tiny_imagenet_c, cifar10_c); ``auto``
    chooses by image size (<= 32 px: CIFAR-10-C, <= 64 px: Tiny-ImageNet-C, else ImageNet-C).
    """
    _check_kind(kind)
    if not 1 <= severity <= 5:
        raise KvisionError(f"Blur severity must be 1 to 5, got {severity}.")
    if preset == "auto":
        preset = preset_for(image_hw)
    if preset not in _SEVERITIES:
        raise KvisionError(
            f"Unknown blur preset '{preset}'.{did_you_mean(preset, PRESETS)} "
            f"Known: auto, {', '.join(PRESETS)}."
        )
    c = _SEVERITIES[preset][kind][severity - 1]
    # A published entry gives the kind's parameters in their declared order (a lone value:
    # the first); each takes its declared type.
    fields = dataclasses.fields(BLURS.params_of(kind))
    values = c if isinstance(c, tuple) and len(fields) > 1 else (c,)
    return {f.name: _typed(f.type, v) for f, v in zip(fields, values, strict=False)}


def _typed(annotation: str, value: object) -> object:
    if annotation.startswith("int"):
        return int(value)
    if annotation.startswith("tuple"):
        return tuple(float(v) for v in value)
    return float(value)


def apply_blur(images: np.ndarray, kind: str, params: dict) -> np.ndarray:
    """Blur a uint8 NHWC batch; returns a new uint8 array of the same shape.

    Parameters per kind: gaussian ``sigma`` (0 = unchanged); defocus ``radius``, ``alias_blur``
    (default 0.5); motion ``radius`` (streak length), ``sigma``, ``angle`` (degrees; default a
    random angle in [-45, 45] per image) and ``seed``; zoom ``zooms`` = (start, stop, step);
    glass ``sigma``, ``max_delta``, ``iterations`` and ``seed``.
    """
    _check_kind(kind)
    if images.ndim != 4 or images.dtype != np.uint8:
        raise KvisionError(
            f"apply_blur expects uint8 images shaped (N, H, W, C), got "
            f"{images.dtype} {images.shape}."
        )
    allowed = BLUR_PARAMS[kind]
    unknown = sorted(set(params) - set(allowed))
    missing = [p for p in REQUIRED_BLUR_PARAMS[kind] if params.get(p) is None]
    if unknown or missing:
        raise KvisionError(
            f"{kind} blur takes {', '.join(allowed)} (required: "
            f"{', '.join(REQUIRED_BLUR_PARAMS[kind])}); got {sorted(params)}."
        )
    if kind == "motion" and params["sigma"] <= 0:
        raise KvisionError(f"motion blur needs sigma > 0, got {params['sigma']}.")
    blur = BLURS.implementation(kind)
    return blur(images, **{k: v for k, v in params.items() if v is not None})


def _check_kind(kind: str) -> None:
    BLURS.check(kind)


def _to_uint8(x: np.ndarray) -> np.ndarray:
    return np.clip(np.rint(x * 255.0), 0, 255).astype(np.uint8)


def _stacked(
    images: np.ndarray, fn: Callable[[np.ndarray], np.ndarray], dtype: np.dtype | type | None = None
) -> np.ndarray:
    """Apply a per-channel, image-independent 2-D filter to every image and channel.

    Small images are stacked along the channel axis so one OpenCV call filters many of them
    (per-call overhead dominates at 28x28); large ones go one by one (cache-friendlier).
    ``dtype`` is the filter's output type (default: the input's).
    """
    n, h, w, c = images.shape
    dtype = dtype or images.dtype
    if h * w > _STACK_MAX_PIXELS:
        out = np.empty(images.shape, dtype)

        def one(i: int) -> None:
            out[i] = fn(images[i]).reshape(h, w, c)

        threads = min(MAX_THREADS, n)
        if threads > 1:  # OpenCV releases the GIL: threads use every core, no copies
            with ThreadPoolExecutor(threads) as pool:
                list(pool.map(one, range(n)))
        else:
            for i in range(n):
                one(i)
        return out
    planes = images.transpose(1, 2, 0, 3).reshape(h, w, n * c)
    out = np.empty(planes.shape, dtype)
    for start in range(0, n * c, _MAX_CHANNELS):
        part = planes[:, :, start : start + _MAX_CHANNELS]
        out[:, :, start : start + _MAX_CHANNELS] = fn(np.ascontiguousarray(part)).reshape(
            part.shape
        )
    return out.reshape(h, w, n, c).transpose(2, 0, 1, 3)


def _gaussian_float(x: np.ndarray, sigma: float) -> np.ndarray:
    """Gaussian blur to float32, four sigmas each side (scipy/scikit-image's truncate=4,
    which ImageNet-C used) and edge-replicated borders (their "nearest" mode)."""
    k = 2 * math.ceil(4.0 * sigma) + 1
    g = cv2.getGaussianKernel(k, sigma, cv2.CV_32F)
    # Separable filtering straight from uint8 into float32: exact, and faster than either
    # converting first or OpenCV's fixed-point uint8 Gaussian.
    return _stacked(
        x,
        lambda p: cv2.sepFilter2D(p, cv2.CV_32F, g, g, borderType=cv2.BORDER_REPLICATE),
        np.float32,
    )


@BLURS.implements("gaussian")
def gaussian_blur(images: np.ndarray, sigma: float) -> np.ndarray:
    """Gaussian blur of uint8 images (sigma in pixels; 0 returns a copy)."""
    if sigma <= 0:
        return images.copy()
    return np.clip(np.rint(_gaussian_float(images, sigma)), 0, 255).astype(np.uint8)


def disk_kernel(radius: float, alias_blur: float = 0.5) -> np.ndarray:
    """ImageNet-C's anti-aliased disk: a normalised disk smoothed by a small Gaussian."""
    half = 8 if radius <= 8 else int(math.ceil(radius))
    ksize = 3 if radius <= 8 else 5
    axis = np.arange(-half, half + 1, dtype=np.float32)
    xx, yy = np.meshgrid(axis, axis)
    disk = (xx**2 + yy**2 <= radius**2).astype(np.float32)
    disk /= disk.sum()
    return cv2.GaussianBlur(disk, (ksize, ksize), alias_blur)


@BLURS.implements("defocus")
def defocus_blur(images: np.ndarray, radius: float, alias_blur: float = 0.5) -> np.ndarray:
    """Defocus: convolution with :func:`disk_kernel` (reflected borders, as published)."""
    kernel = disk_kernel(radius, alias_blur)
    x = images.astype(np.float32) / 255.0
    return _to_uint8(_stacked(x, lambda p: cv2.filter2D(p, -1, kernel)))


def motion_kernel(radius: float, sigma: float, angle: float) -> np.ndarray:
    """ImageMagick's motion-blur kernel (used by ImageNet-C): a one-sided Gaussian streak.

    Tap i (0 <= i < 2*ceil(radius)+1) has weight exp(-i^2 / 2 sigma^2) and samples the pixel
    at round(i * (cos a, sin a)); the kernel is laid out so that cv2.filter2D does the same.
    """
    width = 2 * math.ceil(radius) + 1
    taps = np.arange(width, dtype=np.float64)
    weights = np.exp(-(taps**2) / (2.0 * sigma**2))
    weights /= weights.sum()
    rad = math.radians(angle)
    dx = np.ceil(taps * math.cos(rad) - 0.5).astype(int)
    dy = np.ceil(taps * math.sin(rad) - 0.5).astype(int)
    size = 2 * width + 1
    kernel = np.zeros((size, size), np.float32)
    np.add.at(kernel, (width + dy, width + dx), weights.astype(np.float32))
    return kernel


@BLURS.implements("motion")
def motion_blur(
    images: np.ndarray,
    radius: float,
    sigma: float,
    angle: float | None = None,
    seed: int | None = None,
) -> np.ndarray:
    """Motion blur along ``angle`` degrees (random in [-45, 45] per image when None)."""
    if angle is not None:  # one kernel for all: filter the whole batch in stacked calls
        kernel = motion_kernel(radius, sigma, angle)
        return _to_uint8(
            _stacked(
                images.astype(np.float32) / 255.0,
                lambda p: cv2.filter2D(p, -1, kernel, borderType=cv2.BORDER_REPLICATE),
            )
        )
    angles = np.random.default_rng(seed or 0).uniform(-45.0, 45.0, len(images))
    out = np.empty_like(images)
    for i, (image, a) in enumerate(
        zip(images, angles, strict=True)
    ):  # ImageNet-C: a new angle per image
        kernel = motion_kernel(radius, sigma, float(a))
        # ImageMagick's default virtual pixels repeat the edge.
        blurred = cv2.filter2D(
            image.astype(np.float32), -1, kernel, borderType=cv2.BORDER_REPLICATE
        )
        out[i] = np.clip(np.rint(blurred), 0, 255).reshape(image.shape)
    return out


def zoom_factors(zooms: tuple[float, float, float]) -> np.ndarray:
    """The zoom factors of ``zooms`` = (start, stop, step), as numpy.arange."""
    return np.arange(*zooms)


def _clipped_zoom_matrix(h: int, w: int, factor: float) -> np.ndarray:
    """Affine map from output pixel to source pixel of ImageNet-C's clipped zoom.

    The published version crops the centre (ceil(side / factor)), zooms it with linear
    interpolation (corners aligned, as scipy.ndimage.zoom) and trims back to the centre.
    """
    rows = []
    for side in (w, h):
        crop = int(math.ceil(side / factor))
        top = (side - crop) // 2
        zoomed = int(round(crop * factor))
        trim = (zoomed - side) // 2
        scale = (crop - 1) / (zoomed - 1) if zoomed > 1 else 0.0
        rows.append((scale, top + trim * scale))
    (sx, tx), (sy, ty) = rows
    return np.array([[sx, 0.0, tx], [0.0, sy, ty]], np.float64)


@BLURS.implements("zoom")
def zoom_blur(images: np.ndarray, zooms: tuple[float, float, float]) -> np.ndarray:
    """Zoom blur: the average of the image and its centre zoomed by each factor."""
    factors = zoom_factors(zooms)
    n, h, w, c = images.shape
    x = images.astype(np.float32) / 255.0
    total = x.copy()
    for factor in factors:
        m = _clipped_zoom_matrix(h, w, float(factor))
        total += _stacked(
            x,
            lambda p, m=m: cv2.warpAffine(
                p,
                m,
                (w, h),
                flags=cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP,
                borderMode=cv2.BORDER_REPLICATE,
            ),
        )
    return _to_uint8(total / (len(factors) + 1))


def glass_offsets(
    rng: np.random.Generator, image_hw: tuple[int, int], max_delta: int, iterations: int
) -> np.ndarray:
    """Random (dx, dy) per visited pixel, drawn in the order the shuffle visits them."""
    h, w = image_hw
    rows, cols = max(h - 2 * max_delta, 0), max(w - 2 * max_delta, 0)
    return rng.integers(-max_delta, max_delta, size=(iterations, rows, cols, 2))


def glass_shuffle(image: np.ndarray, offsets: np.ndarray, max_delta: int) -> np.ndarray:
    """ImageNet-C's local pixel shuffle: from the bottom-right inwards, swap each pixel with a
    random neighbour within ``max_delta``.

    Sequential by definition (later swaps move pixels that earlier ones placed), so the swaps
    run as a plain Python loop, but on integer source indices with every position computed
    beforehand by numpy; the pixels are gathered once at the end.
    """
    h, w = image.shape[:2]
    ys = np.arange(h - max_delta, max_delta, -1)
    xs = np.arange(w - max_delta, max_delta, -1)
    here = (ys[:, None] * w + xs[None, :]).ravel()
    source = list(range(h * w))
    for passes in offsets:  # one (rows, cols, 2) array of (dx, dy) per iteration
        there = here + (passes[..., 1] * w + passes[..., 0]).ravel()
        for a, b in zip(here.tolist(), there.tolist(), strict=True):
            source[a], source[b] = source[b], source[a]
    return image.reshape(h * w, -1)[source].reshape(image.shape)


def glass_duplicate(image: np.ndarray, offsets: np.ndarray, max_delta: int) -> np.ndarray:
    """The local "shuffle" as ImageNet-C's published code performs it: ``x[h, w], x[h', w'] =
    x[h', w'], x[h, w]`` on an (H, W, C) array swaps two *views*, so the first assignment
    copies the neighbour into (h, w) and the second writes it back unchanged; every visited
    pixel takes its neighbour's value and pixels are duplicated, not moved. Same visiting
    order and offsets as :func:`glass_shuffle`."""
    h, w = image.shape[:2]
    ys = np.arange(h - max_delta, max_delta, -1)
    xs = np.arange(w - max_delta, max_delta, -1)
    here = (ys[:, None] * w + xs[None, :]).ravel()
    source = list(range(h * w))
    for passes in offsets:
        there = here + (passes[..., 1] * w + passes[..., 0]).ravel()
        for a, b in zip(here.tolist(), there.tolist(), strict=True):
            source[a] = source[b]
    return image.reshape(h * w, -1)[source].reshape(image.shape)


@BLURS.implements("glass")
def glass_blur(
    images: np.ndarray,
    sigma: float,
    max_delta: int,
    iterations: int,
    seed: int | None = None,
    variant: str = "imagenet_c",
) -> np.ndarray:
    """Glass blur: Gaussian blur, local pixel shuffle, Gaussian blur again.

    ``variant`` "imagenet_c" (the default) is the published corruption bit for bit, so that
    accuracies under it compare with ImageNet-C's: its view-copy "swap" duplicates pixels
    (:func:`glass_duplicate`), its Gaussian is scikit-image's (scipy, truncate 4, nearest
    edges, in float64), its offsets come from numpy's legacy generator in visiting order and
    both uint8 conversions truncate. "swap" is the shuffle the published code meant: a true
    pixel swap (:func:`glass_shuffle`, which keeps the image's pixel histogram), with
    kvision's OpenCV Gaussian and rounding.
    """
    if variant == "imagenet_c":
        return _glass_published(images, sigma, max_delta, iterations, seed or 0)
    if variant != "swap":
        raise KvisionError(
            f"Unknown glass blur variant '{variant}'."
            f"{did_you_mean(variant, GLASS_VARIANTS)} Known: "
            f"{', '.join(GLASS_VARIANTS)}."
        )
    rng = np.random.default_rng(seed or 0)
    first = _gaussian_float(images, sigma) if sigma > 0 else images.astype(np.float32)
    shuffled = first.astype(np.uint8)  # truncated between the two blurs, as published
    for i in range(len(shuffled)):
        offsets = glass_offsets(rng, shuffled.shape[1:3], max_delta, iterations)
        shuffled[i] = glass_shuffle(shuffled[i], offsets, max_delta)
    return gaussian_blur(shuffled, sigma)


def _glass_published(
    images: np.ndarray, sigma: float, max_delta: int, iterations: int, seed: int
) -> np.ndarray:
    from scipy import ndimage

    def skimage_gaussian(x: np.ndarray) -> np.ndarray:  # skimage.filters.gaussian, multichannel
        return ndimage.gaussian_filter(x, sigma=(sigma, sigma, 0), mode="nearest", truncate=4.0)

    rng = np.random.RandomState(seed)  # the published code draws from np.random's legacy state
    out = np.empty_like(images)
    h, w = images.shape[1:3]
    rows, cols = max(h - 2 * max_delta, 0), max(w - 2 * max_delta, 0)
    for i, image in enumerate(images):
        x = np.uint8(skimage_gaussian(image / 255.0) * 255)
        # One bulk draw gives the same numbers as the published per-pixel randint(size=(2,)).
        offsets = rng.randint(-max_delta, max_delta, size=(iterations, rows, cols, 2))
        x = glass_duplicate(x, offsets, max_delta)
        out[i] = np.uint8(np.clip(skimage_gaussian(x / 255.0), 0, 1) * 255)
    return out
