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
from collections.abc import Callable
from pathlib import Path

from kvision.data import cache
from kvision.data.dataset import SPLIT_ALIASES, SourceData
from kvision.data.entries import entry_splits, mapped_or_built
from kvision.data.progress import Progress
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
    sink: Callable[..., None] | None = None,
) -> SourceData:
    """Decode (or map from the cache) every image under ``root`` (and, with ``source_blur``,
    its blurred views, blurred at each file's stored resolution before the resize).

    ``sink`` receives the decoding progress (kvision.data.progress) while an entry is built."""
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
    if data.store == "stream":
        return _streamed(job, class_names, skipped)
    label = f"decoding {root.name}"

    def build(builder: cache.Builder) -> dict:  # a fresh count for a retry in memory
        return decode_into(job, builder, Progress(len(files), label, sink=sink))

    name = _entry_name(job) if data.cache else None
    arrays, meta, hit, warnings = mapped_or_built(name, build, root)
    if source_blur and "stored_range" in meta:  # the stored sizes the views were made from
        source_blur.low, source_blur.high = (tuple(int(v) for v in r) for r in meta["stored_range"])
    skipped = skipped + meta["skipped"]
    if not meta["count"]:
        _none_readable(root, skipped)
    return SourceData(
        f"folder:{root.name}",
        class_names,
        entry_splits(arrays, meta),
        {"skipped": skipped, "folder": str(root), "cache_hit": hit, "warnings": warnings},
    )


def _streamed(job: FolderFiles, class_names: list[str], skipped: list[dict]) -> SourceData:
    """data.store = "stream": nothing decoded now; rows are decoded as batches ask."""
    from kvision.data.stream import stream_splits

    splits, unusable = stream_splits(job)
    skipped = skipped + unusable
    if not splits:
        _none_readable(job.root, skipped)
    info = {"skipped": skipped, "folder": str(job.root), "store": "stream"}
    return SourceData(f"folder:{job.root.name}", class_names, splits, info)


def _none_readable(root: Path, skipped: list[dict]) -> None:
    raise RecipeError(
        f"no readable images in '{root}' ({len(skipped)} file(s) skipped, "
        f"e.g. {skipped[:2]}). Expected {root}/<class>/<image>.jpg|png|...",
        key="data.source",
    )


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
