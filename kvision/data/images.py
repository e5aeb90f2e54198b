"""Image-array helpers shared by the sources: resizing and channel conversion with OpenCV."""

from __future__ import annotations

import cv2
import numpy as np


def resize_image(image: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """Resize one HWC (or HW) uint8 image to ``size`` = (height, width).

    Shrinking uses area averaging (no aliasing); enlarging uses bilinear interpolation.
    """
    h, w = size
    if image.shape[:2] == (h, w):
        return image
    shrink = h * w < image.shape[0] * image.shape[1]
    out = cv2.resize(image, (w, h), interpolation=cv2.INTER_AREA if shrink else cv2.INTER_LINEAR)
    return out.reshape(h, w, *image.shape[2:])


def resize_images(images: np.ndarray, size: tuple[int, int] | None) -> np.ndarray:
    """Resize an NHWC batch (no copy when it already has ``size`` or size is None)."""
    if size is None or images.shape[1:3] == tuple(size):
        return images
    out = np.empty((len(images), *size, images.shape[3]), np.uint8)
    for i, image in enumerate(images):
        out[i] = resize_image(image, size).reshape(out.shape[1:])
    return out


def convert_channels(images: np.ndarray, channels: int | None) -> np.ndarray:
    """Gray <-> RGB for an NHWC batch (ITU-R BT.601 luma for RGB -> gray, as OpenCV)."""
    have = images.shape[3]
    if channels is None or channels == have:
        return images
    if channels == 3:
        return np.repeat(images, 3, axis=3)
    flat = images.reshape(-1, 1, 3)
    return cv2.cvtColor(flat, cv2.COLOR_RGB2GRAY).reshape(*images.shape[:3], 1)


#: Largest image decoded, in pixels (Pillow's own decompression-bomb limit): a 48 KB PNG can
#: claim 20000x20000 pixels, 1.2 GB once decoded. The size is read from the header first.
MAX_PIXELS = 89_478_485


def oversized(raw: bytes) -> str | None:
    """Why an image file is too large to decode, read from its header alone; else None."""
    import io
    import warnings

    from PIL import Image

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # DecompressionBombWarning: decided below
            with Image.open(io.BytesIO(raw)) as image:
                width, height = image.size
    except Image.DecompressionBombError:
        return f"its header claims more than {2 * Image.MAX_IMAGE_PIXELS:,} pixels"
    except Exception:  # noqa: BLE001 - any format Pillow cannot read: OpenCV decides
        return None
    if width * height <= MAX_PIXELS:
        return None
    return f"its header claims {width}x{height} pixels"


def decode_image(raw: bytes, channels: int, min_side: int) -> tuple[np.ndarray | None, str]:
    """Decode one file's bytes to uint8 HWC RGB (or gray); (None, reason) when unusable."""
    if not raw:
        return None, "empty file"
    if claim := oversized(raw):
        return None, (
            f"too large to decode ({claim}; at most {MAX_PIXELS:,} are decoded, a guard "
            "against decompression bombs)"
        )
    if raw[:2] == b"\xff\xd8" and b"\xff\xd9" not in raw[-16:]:
        # libjpeg fills a cut-off JPEG with gray and only warns; treat it as broken.
        return None, "truncated JPEG (no end-of-image marker)"
    flags = cv2.IMREAD_GRAYSCALE if channels == 1 else cv2.IMREAD_COLOR_RGB
    try:
        image = cv2.imdecode(np.frombuffer(raw, np.uint8), flags)  # applies EXIF orientation
    except cv2.error:
        image = None
    if image is None:
        return None, "cannot decode (corrupt, truncated or unsupported format)"
    if min(image.shape[:2]) < min_side:
        return None, (
            f"too small ({image.shape[1]}x{image.shape[0]} px; data.min_image_size is {min_side})"
        )
    return image.reshape(*image.shape[:2], channels), ""
