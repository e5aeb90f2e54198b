"""``folder:`` source: one sub-folder per class, optionally inside train/val/test folders.

Real folders are messy: corrupt or truncated files, non-images, gray / RGBA / 16-bit / CMYK
images, EXIF rotation, upper-case extensions, hidden files and symlinks. Every file is either
decoded correctly (OpenCV applies EXIF orientation and converts depth and colour) or skipped
and listed in ``info["skipped"]`` as {path, reason}. Decoded, resized images are kept in a
disk cache keyed by the folder's listing, so a second run skips decoding.
"""

from __future__ import annotations

import os
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import cv2
import numpy as np

from kvision.data import cache
from kvision.data.dataset import SPLIT_ALIASES, SourceData, Split
from kvision.data.images import resize_image
from kvision.data.source_blur import SourceBlur
from kvision.errors import RecipeError
from kvision.recipe.schema_data import DataSection

IMAGE_EXTENSIONS = {
    ".jpg",
    ".jpeg",
    ".jpe",
    ".png",
    ".bmp",
    ".tif",
    ".tiff",
    ".webp",
    ".pgm",
    ".ppm",
    ".pbm",
    ".pnm",
    ".jp2",
}
#: The cached views' entry holding the smallest and largest stored size (no condition name
#: starts with '_').
_STORED = "_stored_range"
#: Bump when decoding changes, so old cache entries are not reused.
DECODER_VERSION = 1


def read_folder(root: Path, data: DataSection, source_blur: SourceBlur | None = None) -> SourceData:
    """Decode (or load from the cache) every image under ``root`` (and, with ``source_blur``,
    its blurred views, blurred at each file's stored resolution before the resize)."""
    if not root.is_dir():
        raise RecipeError(
            f"'{root}' is not a folder; folder: expects a folder with one "
            f"sub-folder of images per class.",
            key="data.source",
        )
    layout, skipped = _layout(root)
    class_names = _class_names(root, layout)
    files = [
        (split, rel, class_names.index(cls))
        for split, entries in layout.items()
        for rel, cls in entries
    ]
    channels = data.channels or 3
    key = cache.folder_key(
        root,
        [rel for _, rel, _ in files],
        data.image_size,
        channels,
        data.min_image_size,
        DECODER_VERSION,
        source_blur.cache_key() if source_blur else "",
    )
    cached = cache.load(root, key) if data.cache else None
    hit = cached is not None
    warnings = []
    if cached is None:
        cached = _decode_all(root, files, data, channels, source_blur)
        if data.cache and (problem := cache.store(root, key, cached)):
            warnings.append(("cache_not_written", problem))
    images, labels, ids, splits, bad, views = cached
    if source_blur and _STORED in views:  # the stored sizes the views were made from
        views = dict(views)
        source_blur.low, source_blur.high = (
            tuple(int(v) for v in row) for row in views.pop(_STORED)
        )
    skipped = skipped + bad
    if not len(images):
        raise RecipeError(
            f"no readable images in '{root}' ({len(skipped)} file(s) skipped, "
            f"e.g. {skipped[:2]}). Expected {root}/<class>/<image>.jpg|png|...",
            key="data.source",
        )
    result = {}
    for split in dict.fromkeys(splits.tolist()):
        index = np.flatnonzero(splits == split)
        result[split] = Split(
            images[index],
            labels[index],
            [ids[i] for i in index],
            {n: v[index] for n, v in views.items()},
        )
    info = {"skipped": skipped, "folder": str(root), "cache_hit": hit, "warnings": warnings}
    return SourceData(f"folder:{root.name}", class_names, result, info)


def _layout(root: Path) -> tuple[dict[str, list[tuple[str, str]]], list[dict]]:
    """{split: [(relative path, class)]} and the hidden/non-image files skipped on the way."""
    subdirs = _visible_dirs(root)
    as_splits = {SPLIT_ALIASES.get(d.name.lower()) for d in subdirs}
    skipped: list[dict] = []
    if subdirs and None not in as_splits and "train" in as_splits:
        layout = {SPLIT_ALIASES[d.name.lower()]: _class_files(root, d, skipped) for d in subdirs}
    else:
        layout = {"train": _class_files(root, root, skipped)}
    return layout, skipped


def _visible_dirs(folder: Path) -> list[Path]:
    return sorted(p for p in folder.iterdir() if p.is_dir() and not p.name.startswith("."))


def _class_files(root: Path, folder: Path, skipped: list[dict]) -> list[tuple[str, str]]:
    entries = []
    for stray in sorted(p for p in folder.iterdir() if not p.is_dir()):
        skipped.append(
            {"path": stray.relative_to(root).as_posix(), "reason": "not inside a class folder"}
        )
    for class_dir in _visible_dirs(folder):
        seen: set[str] = set()
        for dirpath, dirnames, filenames in os.walk(class_dir, followlinks=True):
            real = os.path.realpath(dirpath)
            if real in seen:  # a symlink loop: each real folder is read once
                dirnames[:] = []
                continue
            seen.add(real)
            dirnames[:] = sorted(d for d in dirnames if not d.startswith("."))
            for name in sorted(filenames):
                path = Path(dirpath) / name
                rel = path.relative_to(root).as_posix()
                reason = _file_problem(path)
                if reason:
                    skipped.append({"path": rel, "reason": reason})
                else:
                    entries.append((rel, class_dir.name))
    return entries


def _file_problem(path: Path) -> str | None:
    if path.name.startswith("."):
        return "hidden file"
    if path.suffix.lower() not in IMAGE_EXTENSIONS:
        return f"not an image file (extension '{path.suffix or 'none'}')"
    if not path.exists():
        return "broken symbolic link"
    return None


def _class_names(root: Path, layout: dict[str, list[tuple[str, str]]]) -> list[str]:
    train = sorted({cls for _, cls in layout["train"]})
    if len(train) < 2:
        found = f"only the class '{train[0]}'" if train else "no class sub-folder with images"
        raise RecipeError(
            f"'{root}' has {found}; folder: needs one sub-folder per class and "
            f"at least 2 classes, e.g. {root}/cat/*.jpg and {root}/dog/*.jpg.",
            key="data.source",
        )
    for split, entries in layout.items():
        extra = sorted({cls for _, cls in entries} - set(train))
        if extra:
            raise RecipeError(
                f"the {split} folder has classes that train lacks: "
                f"{', '.join(extra)}. Every class needs training images.",
                key="data.source",
            )
    return train


def decode_image(raw: bytes, channels: int, min_side: int) -> tuple[np.ndarray | None, str]:
    """Decode one file's bytes to uint8 HWC RGB (or gray); (None, reason) when unusable."""
    if not raw:
        return None, "empty file"
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


def _decode_one(
    path: Path, data: DataSection, channels: int, source_blur: SourceBlur | None, tag: str
) -> tuple[np.ndarray | None, str, dict]:
    try:
        raw = path.read_bytes()
    except OSError as exc:
        return None, f"cannot read ({exc.strerror or exc})", {}
    image, reason = decode_image(raw, channels, data.min_image_size)
    views = {}
    if image is not None and source_blur:
        views = {n: v[0] for n, v in source_blur.views(image[None], data.image_size, tag).items()}
    if image is not None and data.image_size is not None:
        image = resize_image(image, data.image_size).reshape(*data.image_size, channels)
    return image, reason, views


def _decode_all(
    root: Path,
    files: list[tuple[str, str, int]],
    data: DataSection,
    channels: int,
    source_blur: SourceBlur | None = None,
) -> tuple:
    # OpenCV decoding releases the GIL, so threads use every core without copying images.
    # Its own warnings about broken files are silenced: they are listed in info["skipped"].
    level = cv2.utils.logging.getLogLevel()
    cv2.utils.logging.setLogLevel(cv2.utils.logging.LOG_LEVEL_SILENT)
    try:
        with ThreadPoolExecutor(max_workers=min(8, os.cpu_count() or 1)) as pool:
            decoded = list(
                pool.map(
                    lambda f: _decode_one(root / f[1], data, channels, source_blur, f[1]), files
                )
            )
    finally:
        cv2.utils.logging.setLogLevel(level)
    keep = [(f, img) for f, (img, _, _) in zip(files, decoded, strict=True) if img is not None]
    bad = [
        {"path": f[1], "reason": reason}
        for f, (img, reason, _) in zip(files, decoded, strict=True)
        if img is None
    ]
    kept_views = [v for img, _, v in decoded if img is not None]
    shapes = {img.shape for _, img in keep}
    if len(shapes) > 1:
        sizes = sorted({f"{s[1]}x{s[0]}" for s in shapes})
        raise RecipeError(
            f"the images in '{root}' have different sizes ({', '.join(sizes[:5])}"
            f"{' ...' if len(sizes) > 5 else ''}); set data.image_size = "
            f"[height, width] to resize them to one size.",
            key="data.image_size",
        )
    if not keep:
        return (
            np.zeros((0, 1, 1, channels), np.uint8),
            np.zeros(0, np.int64),
            [],
            np.zeros(0, dtype="<U5"),
            bad,
            {},
        )
    images = np.stack([img for _, img in keep])
    labels = np.array([f[2] for f, _ in keep], np.int64)
    ids = [f[1] for f, _ in keep]
    splits = np.array([f[0] for f, _ in keep], dtype="<U5")
    views = (
        {n: np.stack([v[n] for v in kept_views]) for n in kept_views[0]}
        if kept_views and kept_views[0]
        else {}
    )
    if views:
        views[_STORED] = np.array([source_blur.low, source_blur.high])
    return images, labels, ids, splits, bad, views
