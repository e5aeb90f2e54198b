"""Each blur kind against a reference written here from the published ImageNet-C definition
(scipy.ndimage for the filters, plain loops for the sampling), not from kvision's code."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import ndimage

import kvision  # noqa: F401  (selects the Keras backend before anything imports keras)
from kvision.data.blur import BLUR_KINDS, apply_blur, severity_params
from kvision.errors import KvisionError


@pytest.fixture(scope="module")
def images() -> np.ndarray:
    """Smooth shapes plus noise: blur changes them a lot, so differences show."""
    rng = np.random.default_rng(3)
    yy, xx = np.mgrid[0:32, 0:32]
    base = ((np.sin(xx / 3.0) + np.cos(yy / 4.0)) * 60 + 128)[None, ..., None]
    noisy = base + rng.normal(0, 25, (3, 32, 32, 3))
    return np.clip(noisy, 0, 255).astype(np.uint8)


def _round(x: np.ndarray) -> np.ndarray:
    return np.clip(np.rint(x * 255), 0, 255).astype(np.uint8)


def _gauss(x: np.ndarray, sigma: float) -> np.ndarray:
    """skimage.filters.gaussian as ImageNet-C calls it: truncate 4, nearest-edge borders."""
    return ndimage.gaussian_filter(x, sigma=(0, sigma, sigma, 0), mode="nearest", truncate=4.0)


def _assert_close(ours: np.ndarray, ref: np.ndarray, max_diff: int, mean_diff: float) -> None:
    diff = np.abs(ours.astype(int) - ref.astype(int))
    assert ours.shape == ref.shape and ours.dtype == np.uint8
    assert diff.max() <= max_diff, diff.max()
    assert diff.mean() <= mean_diff, diff.mean()


@pytest.mark.parametrize("sigma", [0.4, 1.0, 2.5])
def test_gaussian_matches_published(images, sigma):
    ref = _round(_gauss(images / 255.0, sigma))
    _assert_close(apply_blur(images, "gaussian", {"sigma": sigma}), ref, 1, 0.05)


def test_gaussian_sigma_zero_is_clear(images):
    assert np.array_equal(apply_blur(images, "gaussian", {"sigma": 0.0}), images)


def _reference_disk(radius: float, alias_blur: float) -> np.ndarray:
    half = 8 if radius <= 8 else math.ceil(radius)
    axis = np.arange(-half, half + 1)
    xx, yy = np.meshgrid(axis, axis)
    disk = (xx**2 + yy**2 <= radius**2).astype(np.float64)
    disk /= disk.sum()
    k = 3 if radius <= 8 else 5
    g = np.exp(-((np.arange(k) - k // 2) ** 2) / (2 * alias_blur**2))
    g /= g.sum()
    # cv2.GaussianBlur's default border (reflect-101) is scipy's "mirror".
    return ndimage.correlate(disk, np.outer(g, g), mode="mirror")


@pytest.mark.parametrize("radius,alias", [(0.3, 0.4), (1.5, 0.1), (3, 0.5)])
def test_defocus_matches_published(images, radius, alias):
    kernel = _reference_disk(radius, alias)
    x = images / 255.0
    ref = np.stack(
        [
            np.stack([ndimage.correlate(img[..., c], kernel, mode="mirror") for c in range(3)], -1)
            for img in x
        ]
    )
    _assert_close(
        apply_blur(images, "defocus", {"radius": radius, "alias_blur": alias}), _round(ref), 1, 0.05
    )


def _reference_motion(image: np.ndarray, radius: float, sigma: float, angle: float):
    """ImageMagick MotionBlurImage: taps i = 0..2*ceil(r), weight exp(-i^2/2s^2), sample at
    round(i * (cos a, sin a)) from the pixel, edge pixels repeated outside the image."""
    width = 2 * math.ceil(radius) + 1
    pad = width
    padded = np.pad(image.astype(np.float64), ((pad, pad), (pad, pad), (0, 0)), mode="edge")
    h, w = image.shape[:2]
    weights = np.exp(-(np.arange(width) ** 2) / (2 * sigma**2))
    weights /= weights.sum()
    out = np.zeros(image.shape)
    a = math.radians(angle)
    for i, wt in enumerate(weights):
        dx = math.ceil(i * math.cos(a) - 0.5)
        dy = math.ceil(i * math.sin(a) - 0.5)
        out += wt * padded[pad + dy : pad + dy + h, pad + dx : pad + dx + w]
    return np.clip(np.rint(out), 0, 255).astype(np.uint8)


@pytest.mark.parametrize("angle", [0.0, 30.0, -45.0, 135.0])
def test_motion_matches_published(images, angle):
    ref = np.stack([_reference_motion(img, 6, 2.0, angle) for img in images])
    ours = apply_blur(images, "motion", {"radius": 6, "sigma": 2.0, "angle": angle})
    _assert_close(ours, ref, 1, 0.05)


def test_motion_random_angle_per_image_is_seeded(images):
    params = {"radius": 6, "sigma": 2.0, "seed": 5}
    angles = np.random.default_rng(5).uniform(-45, 45, len(images))
    ref = np.stack(
        [_reference_motion(img, 6, 2.0, a) for img, a in zip(images, angles, strict=True)]
    )
    _assert_close(apply_blur(images, "motion", params), ref, 1, 0.05)
    assert np.array_equal(
        apply_blur(images, "motion", params), apply_blur(images, "motion", params)
    )


def _reference_zoom(image: np.ndarray, factors: np.ndarray) -> np.ndarray:
    x = image.astype(np.float32) / 255.0
    out = np.zeros_like(x)
    h = x.shape[0]
    for z in factors:
        ch = int(np.ceil(h / z))
        top = (h - ch) // 2
        zoomed = ndimage.zoom(x[top : top + ch, top : top + ch], (z, z, 1), order=1)
        trim = (zoomed.shape[0] - h) // 2
        out += zoomed[trim : trim + h, trim : trim + h]
    return _round((x + out) / (len(factors) + 1))


@pytest.mark.parametrize("zooms", [(1.0, 1.11, 0.01), (1.0, 1.31, 0.03)])
def test_zoom_matches_published(images, zooms):
    ref = np.stack([_reference_zoom(img, np.arange(*zooms)) for img in images])
    # OpenCV interpolates at 1/32-pixel positions, scipy exactly: allow rounding-level gaps.
    _assert_close(apply_blur(images, "zoom", {"zooms": zooms}), ref, 3, 0.3)


def _published_glass(images, sigma, delta, iterations, seed):
    """ImageNet-C's glass_blur as published (Hendrycks & Dietterich, corruptions code), with
    224 replaced by the image size and skimage's gaussian by its scipy equivalent; the
    swap line is the published one, whose view copies duplicate pixels."""
    np.random.seed(seed)
    out = []
    for img in images:
        h_max, w_max = img.shape[:2]
        x = np.uint8(_gauss(np.array(img)[None] / 255.0, sigma)[0] * 255)
        for _ in range(iterations):
            for h in range(h_max - delta, delta, -1):
                for w in range(w_max - delta, delta, -1):
                    dx, dy = np.random.randint(-delta, delta, size=(2,))
                    h_prime, w_prime = h + dy, w + dx
                    x[h, w], x[h_prime, w_prime] = x[h_prime, w_prime], x[h, w]
        out.append(np.uint8(np.clip(_gauss(x[None] / 255.0, sigma)[0], 0, 1) * 255))
    return np.stack(out)


def _swapped_glass(images, sigma, delta, iterations, seed):
    """The same loop with a true swap (copies on the right-hand side)."""
    rng = np.random.default_rng(seed)
    out = []
    for img in images:
        x = np.uint8(_gauss(img[None] / 255.0, sigma)[0] * 255)
        h, w = x.shape[:2]
        # the same random numbers, drawn in visiting order
        offsets = rng.integers(-delta, delta, size=(iterations, h - 2 * delta, w - 2 * delta, 2))
        for i in range(iterations):
            for hi, row in enumerate(range(h - delta, delta, -1)):
                for wi, col in enumerate(range(w - delta, delta, -1)):
                    dx, dy = offsets[i, hi, wi]
                    hp, wp = row + dy, col + dx
                    x[row, col], x[hp, wp] = x[hp, wp].copy(), x[row, col].copy()
        out.append(_round(_gauss(x[None] / 255.0, sigma)[0]))
    return np.stack(out)


@pytest.mark.parametrize("sigma,delta,iterations", [(0.4, 1, 2), (0.7, 2, 1)])
def test_glass_default_is_the_published_corruption_bit_for_bit(images, sigma, delta, iterations):
    params = {"sigma": sigma, "max_delta": delta, "iterations": iterations, "seed": 9}
    ref = _published_glass(images, sigma, delta, iterations, 9)
    np.testing.assert_array_equal(apply_blur(images, "glass", params), ref)
    np.testing.assert_array_equal(
        apply_blur(images, "glass", {**params, "variant": "imagenet_c"}), ref
    )


@pytest.mark.parametrize("sigma,delta,iterations", [(0.4, 1, 2), (0.7, 2, 1)])
def test_glass_swap_variant_moves_pixels(images, sigma, delta, iterations):
    params = {
        "sigma": sigma,
        "max_delta": delta,
        "iterations": iterations,
        "seed": 9,
        "variant": "swap",
    }
    ref = _swapped_glass(images, sigma, delta, iterations, 9)
    # The first pass truncates to uint8 like the original; a 1-level tie can flip there.
    _assert_close(apply_blur(images, "glass", params), ref, 2, 0.05)


def test_published_glass_duplicates_and_swap_keeps_the_histogram():
    from kvision.data.blur import glass_duplicate, glass_offsets, glass_shuffle

    image = np.arange(12 * 12, dtype=np.uint8).reshape(12, 12, 1)  # every pixel distinct
    offsets = glass_offsets(np.random.default_rng(1), (12, 12), 2, 2)
    swapped, duplicated = glass_shuffle(image, offsets, 2), glass_duplicate(image, offsets, 2)
    assert sorted(swapped.ravel()) == sorted(image.ravel())
    assert len(np.unique(duplicated)) < image.size


def test_severity_presets_are_the_published_tables():
    assert severity_params("gaussian", 5, (224, 224)) == {"sigma": 6.0}
    assert severity_params("motion", 4, (32, 32)) == {"radius": 8.0, "sigma": 2.0}
    assert severity_params("defocus", 2, (64, 64)) == {"radius": 1.0, "alias_blur": 0.1}
    assert severity_params("glass", 1, (224, 224)) == {
        "sigma": 0.7,
        "max_delta": 1,
        "iterations": 2,
    }
    assert severity_params("zoom", 5, (224, 224))["zooms"] == (1.0, 1.31, 0.03)
    # auto picks by size; an explicit preset overrides it
    assert severity_params("gaussian", 1, (28, 28)) == {"sigma": 0.4}
    assert severity_params("gaussian", 1, (28, 28), preset="imagenet_c") == {"sigma": 1.0}


@pytest.mark.parametrize("kind", BLUR_KINDS)
def test_severity_grows_with_level(images, kind):
    """Higher severity moves images further from the clear ones, for every kind."""
    change = [
        np.abs(
            apply_blur(
                images,
                kind,
                {
                    **severity_params(kind, s, (32, 32)),
                    **({"angle": 0.0} if kind == "motion" else {}),
                },
            ).astype(int)
            - images
        ).mean()
        for s in (1, 5)
    ]
    assert change[1] > change[0] > 0


def test_bad_kind_and_input_are_user_errors(images):
    with pytest.raises(KvisionError, match="Did you mean: 'gaussian'"):
        apply_blur(images, "gausian", {"sigma": 1})
    with pytest.raises(KvisionError, match="uint8 images shaped"):
        apply_blur(images[0], "gaussian", {"sigma": 1})
    with pytest.raises(KvisionError, match=r"gaussian blur takes sigma .*got \['radius'\]"):
        apply_blur(images, "gaussian", {"radius": 2})
    with pytest.raises(KvisionError, match="motion blur needs sigma > 0"):
        apply_blur(images, "motion", {"radius": 3, "sigma": 0})
    with pytest.raises(KvisionError, match="severity must be 1 to 5"):
        severity_params("zoom", 6, (32, 32))
