"""``folder:`` source: one sub-folder per class, optionally inside train/val/test folders.

Real folders are messy: corrupt or truncated files, non-images, gray / RGBA / 16-bit / CMYK
images, EXIF rotation, upper-case extensions, hidden files and symlinks. Every file is either
decoded correctly (OpenCV applies EXIF orientation and converts depth and colour) or skipped
and listed in ``info["skipped"]`` as {path, reason}. Decoded, resized images are written into
a cache entry (kvision.data.cache, kvision.data.store) keyed by the folder's listing and read
back as a memory map, so a second run skips decoding and no run holds the images in RAM.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from kvision.data import cache
from kvision.data.dataset import SPLIT_ALIASES, SourceData, Split
from kvision.data.progress import Progress
from kvision.data.rows import Rows
from kvision.data.source_blur import SourceBlur
from kvision.data.store import FolderFiles, decode_into
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
#: Bump when decoding or the entry's layout changes, so old cache entries are not reused.
DECODER_VERSION = 2


def read_folder(
    root: Path,
    data: DataSection,
    source_blur: SourceBlur | None = None,
    progress: Progress | None = None,
) -> SourceData:
    """Decode (or map from the cache) every image under ``root`` (and, with ``source_blur``,
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
    job = FolderFiles(root, files, data.channels or 3, data, source_blur)
    arrays, meta, hit, warnings = _cached_or_built(job, progress)
    if source_blur and "stored_range" in meta:  # the stored sizes the views were made from
        source_blur.low, source_blur.high = (tuple(int(v) for v in r) for r in meta["stored_range"])
    skipped = skipped + meta["skipped"]
    if not meta["count"]:
        raise RecipeError(
            f"no readable images in '{root}' ({len(skipped)} file(s) skipped, "
            f"e.g. {skipped[:2]}). Expected {root}/<class>/<image>.jpg|png|...",
            key="data.source",
        )
    return SourceData(
        f"folder:{root.name}",
        class_names,
        _splits(arrays, meta),
        {"skipped": skipped, "folder": str(root), "cache_hit": hit, "warnings": warnings},
    )


def _splits(arrays: dict[str, np.ndarray], meta: dict) -> dict[str, Split]:
    """Each split as a selection of the entry's rows (no image is copied)."""
    rows = np.asarray(meta["rows"], np.int64)
    labels = np.asarray(meta["labels"], np.int64)
    splits = np.asarray(meta["splits"])
    result = {}
    for split in dict.fromkeys(meta["splits"]):
        pick = np.flatnonzero(splits == split)
        index = rows[pick]
        result[split] = Split(
            Rows(arrays["images"], index),
            labels[pick],
            [meta["ids"][i] for i in pick],
            {n[5:]: Rows(a, index) for n, a in arrays.items() if n.startswith("view_")},
        )
    return result


def _entry_name(job: FolderFiles) -> str:
    key = cache.folder_key(
        job.root,
        [rel for _, rel, _ in job.files],
        job.data.image_size,
        job.channels,
        job.data.min_image_size,
        DECODER_VERSION,
        job.source_blur.cache_key() if job.source_blur else "",
    )
    return f"folder-{cache.root_tag(job.root)}-{key}"


def _cached_or_built(job: FolderFiles, progress: Progress | None) -> tuple:
    """(arrays, meta, cache hit, warnings): the entry mapped, built under its lock if new."""
    progress = progress or Progress(len(job.files), f"decoding {job.root.name}")
    if not job.data.cache:
        return (*_build(job, cache.Builder("", in_memory=True), progress), False, [])
    name = _entry_name(job)
    entry = cache.open_entry(name)  # committed entries never change: no lock to read one
    if entry is not None:
        return _mapped(entry), entry.meta, True, []
    try:
        with cache.locked(name):  # one builder; a second process waits, then maps its entry
            entry = cache.open_entry(name)
            if entry is not None:
                return _mapped(entry), entry.meta, True, []
            builder = cache.Builder(name)
            _, meta = _build(job, builder, progress)
            entry = builder.commit(meta)
        cache.prune(cache.budget_bytes(), keep=name)
        return _mapped(entry), entry.meta, False, []
    except OSError as exc:  # an unwritable or full cache costs speed, not the run
        progress = Progress(progress.total, progress.label, stream=progress.stream)
        arrays, meta = _build(job, cache.Builder("", in_memory=True), progress)
        return arrays, meta, False, [("cache_not_written", cache.unwritable(job.root, exc))]


def _build(job: FolderFiles, builder: cache.Builder, progress: Progress) -> tuple[dict, dict]:
    try:
        meta = decode_into(job, builder, progress)
    except BaseException:
        builder.abort()
        raise
    meta["bytes"] = int(sum(a.nbytes for a in builder.arrays.values()))
    return dict(builder.arrays), meta


def _mapped(entry: cache.Entry) -> dict[str, np.ndarray]:
    names = [p.stem for p in entry.path.glob("*.npy")]
    return {n: entry.array(n) for n in names if n == "images" or n.startswith("view_")}


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
