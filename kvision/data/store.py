"""Decoding a folder straight into a cache entry: threads fill rows of memory-mapped arrays.

Each file is read, checked against the pixel cap from its header, decoded (OpenCV releases the
GIL, so a thread pool uses every core), blurred at its stored size for the source conditions,
resized and written into its own row of ``images.npy`` (and of each ``view_<name>.npy``). No
list of decoded images, no ``np.stack``: memory stays at a few images per thread whatever the
folder's size. Without ``data.image_size`` the first files' headers must agree on one size
before anything is decoded.
"""

from __future__ import annotations

import io
import os
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np
from PIL import Image, UnidentifiedImageError

from kvision.data.cache import Builder
from kvision.data.images import MAX_PIXELS, decode_image, resize_image
from kvision.data.progress import Progress
from kvision.data.source_blur import SourceBlur
from kvision.errors import RecipeError
from kvision.recipe.schema_data import DataSection

#: Headers read to refuse a folder of mixed sizes without data.image_size.
HEADERS_CHECKED = 16
#: EXIF orientations that swap width and height (OpenCV applies them while decoding).
_TRANSPOSED = (5, 6, 7, 8)


@dataclass
class FolderFiles:
    """The files to decode: (split, relative path, class index) in row order."""

    root: Path
    files: list[tuple[str, str, int]]
    channels: int
    data: DataSection
    source_blur: SourceBlur | None = None
    threads: int = field(default_factory=lambda: min(8, os.cpu_count() or 1))


def header_size(raw: bytes) -> tuple[int, int] | None:
    """(height, width) as decoded (EXIF rotation applied) from the header alone, or None."""
    try:
        with Image.open(io.BytesIO(raw)) as img:
            w, h = img.size
            orientation = img.getexif().get(0x0112, 1)
    except (UnidentifiedImageError, OSError, ValueError, SyntaxError):
        return None
    return (w, h) if orientation in _TRANSPOSED else (h, w)


def row_shape(job: FolderFiles) -> tuple[int, int, int]:
    """(H, W, C) of every row: image_size, or the one size the first headers agree on."""
    if job.data.image_size is not None:
        return (*job.data.image_size, job.channels)
    sizes = {}
    for _, rel, _ in job.files[:HEADERS_CHECKED]:
        with open(job.root / rel, "rb") as fh:
            hw = header_size(fh.read(1 << 16))
        if hw is not None:
            sizes[rel] = hw
    if len(set(sizes.values())) > 1:
        _mixed_sizes(job.root, sizes)
    if not sizes:  # no header PIL reads: decode the first file to learn the size
        return (*_first_decoded_size(job), job.channels)
    return (*next(iter(sizes.values())), job.channels)


def _first_decoded_size(job: FolderFiles) -> tuple[int, int]:
    from kvision.data.images import decode_image

    for _, rel, _ in job.files:
        image, _ = decode_image((job.root / rel).read_bytes(), job.channels, 0)
        if image is not None:
            return image.shape[:2]
    return (1, 1)


def _mixed_sizes(root: Path, sizes: dict[str, tuple[int, int]]) -> None:
    shown = sorted({f"{w}x{h}" for h, w in sizes.values()})
    example = ", ".join(f"{rel} is {w}x{h}" for rel, (h, w) in list(sizes.items())[:2])
    raise RecipeError(
        f"the images in '{root}' have different sizes ({', '.join(shown[:5])}"
        f"{' ...' if len(shown) > 5 else ''}; e.g. {example}); set data.image_size = "
        f"[height, width] to resize them to one size.",
        key="data.image_size",
    )


def decode_into(job: FolderFiles, builder: Builder, progress: Progress) -> dict:
    """Decode every file into the builder's rows; returns the entry's meta (kept rows...)."""
    shape = row_shape(job)
    n = len(job.files)
    images = builder.array("images", (n, *shape))
    names = list(job.source_blur.conditions) if job.source_blur else []
    views = {name: builder.array(f"view_{name}", (n, *shape)) for name in names}
    level = cv2.utils.logging.getLogLevel()
    # OpenCV's own warnings about broken files are silenced: they are listed in "skipped".
    cv2.utils.logging.setLogLevel(cv2.utils.logging.LOG_LEVEL_SILENT)
    reasons: list[str] = []
    try:
        with ThreadPoolExecutor(max_workers=job.threads) as pool:
            rows = pool.map(lambda i: _decode_row(job, i, shape, images, views), range(n))
            for reason in rows:
                reasons.append(reason)
                progress.step()
    finally:
        cv2.utils.logging.setLogLevel(level)
        progress.close()
    return _meta(job, shape, reasons)


def _meta(job: FolderFiles, shape: tuple[int, ...], reasons: list[str]) -> dict:
    kept = [i for i, r in enumerate(reasons) if not r]
    meta = {
        "source": f"folder:{job.root}",
        "shape": list(shape),
        "count": len(kept),
        "rows": kept,
        "labels": [job.files[i][2] for i in kept],
        "splits": [job.files[i][0] for i in kept],
        "ids": [job.files[i][1] for i in kept],
        "skipped": [{"path": job.files[i][1], "reason": r} for i, r in enumerate(reasons) if r],
    }
    if job.source_blur and job.source_blur.low is not None:
        meta["stored_range"] = [list(job.source_blur.low), list(job.source_blur.high)]
    return meta


def _decode_row(
    job: FolderFiles,
    row: int,
    shape: tuple[int, ...],
    images: np.ndarray,
    views: dict[str, np.ndarray],
) -> str:
    """Decode file ``row`` into its rows; the reason it was skipped, or ''."""
    rel = job.files[row][1]
    image, blurred, reason = decode_file(job, rel, shape)
    if image is None:
        return reason
    for name, view in blurred.items():
        views[name][row] = view
    images[row] = image
    return ""


def decode_file(
    job: FolderFiles, rel: str, shape: tuple[int, ...]
) -> tuple[np.ndarray | None, dict[str, np.ndarray], str]:
    """File ``rel`` as a row of ``shape`` and its source-blurred views: (image, views, '');
    (None, {}, why) when it is skipped.

    The decompression-bomb cap is decode_image's (kvision.data.images.MAX_PIXELS), checked
    here first from the header so the skip names the size."""
    try:
        raw = (job.root / rel).read_bytes()
    except OSError as exc:
        return None, {}, f"cannot read ({exc.strerror or exc})"
    hw = header_size(raw)
    if hw is not None and hw[0] * hw[1] > MAX_PIXELS:
        why = f"too large to decode safely ({hw[1]}x{hw[0]} px; the cap is {MAX_PIXELS:,} px)"
        return None, {}, why
    image, reason = decode_image(raw, job.channels, job.data.min_image_size)
    if image is None:
        return None, {}, reason
    views = {}
    if job.source_blur:
        blurred = job.source_blur.views(image[None], job.data.image_size, rel)
        views = {name: view[0] for name, view in blurred.items()}
    if job.data.image_size is not None:
        image = resize_image(image, job.data.image_size).reshape(shape)
    if image.shape != shape:
        h, w = shape[:2]
        _mixed_sizes(job.root, {job.files[0][1]: (h, w), rel: image.shape[:2]})
    return image, views, ""
