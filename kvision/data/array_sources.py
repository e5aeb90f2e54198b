"""``builtin:`` and ``idx:`` sources: uint8 arrays on disk, mapped instead of held in RAM.

An uncompressed IDX file is raw uint8 after a small header, so when the recipe keeps the
stored size and channels (and blurs nothing at the source) its images are a read-only
``np.memmap`` of the file itself: zero copies, zero decoding. Otherwise (a ``.gz`` file, the
compressed built-in ``.npz``, a resize, a channel change or source-blurred views) the arrays
are converted chunk by chunk into a cache entry (kvision.data.cache) keyed by the files and
the settings, and mapped from there like a folder's. Either way every split is a selection
(kvision.data.rows.Rows) of one mapped array.
"""

from __future__ import annotations

import gzip
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from kvision.data import cache
from kvision.data.conditions import PER_IMAGE
from kvision.data.dataset import SourceData, Split
from kvision.data.entries import entry_splits, mapped_or_built
from kvision.data.images import convert_channels, resize_images
from kvision.data.rows import Rows
from kvision.data.source_blur import SourceBlur
from kvision.errors import RecipeError
from kvision.recipe.schema_data import BUILTIN_NAMES, DataSection

BUILTIN_DIR = Path(__file__).parent / "builtin"
#: Bump when the conversion or the entry's layout changes, so old entries are not reused.
ARRAYS_VERSION = 1
#: Images converted per pass while an entry is written.
CHUNK = 1024
#: split -> (uint8 images (N, H, W[, C]), labels); read only when an entry must be built.
RawSplits = dict[str, tuple[np.ndarray, np.ndarray]]


def read_builtin(name: str, data: DataSection, source_blur: SourceBlur | None) -> SourceData:
    """The shipped dataset ``name`` (a compressed .npz) through a cache entry."""
    if name not in BUILTIN_NAMES:
        raise RecipeError(
            f"unknown built-in dataset '{name}'. Known: {', '.join(BUILTIN_NAMES)}.",
            key="data.source",
        )
    path = BUILTIN_DIR / f"{name}.npz"
    with np.load(path) as npz:
        class_names = [str(c) for c in npz["class_names"]]

    def raw() -> RawSplits:
        with np.load(path) as npz:
            return {s: (npz[f"{s}_images"], npz[f"{s}_labels"]) for s in ("train", "test")}

    splits, info = _stored(data.source, [path], raw, data, source_blur)
    return SourceData(f"builtin:{name}", class_names, splits, info)


# IDX (MNIST format): files named like train-images-idx3-ubyte[.gz] / t10k-labels-idx1-ubyte.
_IDX_PREFIXES = {"train": ("train",), "test": ("t10k", "test")}


def read_idx_folder(folder: Path, data: DataSection, source_blur: SourceBlur | None) -> SourceData:
    """The train (and t10k/test) IDX pairs in ``folder``: mapped, or through a cache entry."""
    if not folder.is_dir():
        raise RecipeError(
            f"'{folder}' is not a folder; idx: expects a folder holding "
            f"train-images-idx3-ubyte[.gz] and train-labels-idx1-ubyte[.gz] "
            f"(and t10k-* for the test split).",
            key="data.source",
        )
    pairs = {}
    for split, prefixes in _IDX_PREFIXES.items():
        images = _find_idx(folder, prefixes, "images")
        labels = _find_idx(folder, prefixes, "labels")
        if images and labels:
            pairs[split] = (images, labels)
    if "train" not in pairs:
        raise RecipeError(
            f"no train-images-idx3-ubyte[.gz] / train-labels-idx1-ubyte[.gz] pair in '{folder}'.",
            key="data.source",
        )

    def raw() -> RawSplits:
        return {s: (read_idx(i), read_idx(lab)) for s, (i, lab) in pairs.items()}

    files = [f for pair in pairs.values() for f in pair]
    splits, info = _stored(data.source, files, raw, data, source_blur)
    num = int(max(s.labels.max() for s in splits.values())) + 1
    names_file = folder / "class_names.txt"
    names = (
        names_file.read_text().split("\n")[:num]
        if names_file.exists()
        else [str(i) for i in range(num)]
    )
    return SourceData(f"idx:{folder}", [n.strip() for n in names], splits, info)


def _find_idx(folder: Path, prefixes: tuple[str, ...], kind: str) -> Path | None:
    for path in sorted(folder.iterdir()):
        low = path.name.lower()
        if low.startswith(prefixes) and f"-{kind}-idx" in low:
            return path
    return None


def read_idx(path: Path) -> np.ndarray:
    """An unsigned-byte IDX file: a read-only memory map of it, or (``.gz``) decompressed."""
    if path.suffix == ".gz":
        with gzip.open(path, "rb") as fh:
            raw = fh.read()
        dims, offset = _idx_header(path, raw[:4], raw, len(raw))
        return np.frombuffer(raw, np.uint8, offset=offset).reshape(dims)
    with open(path, "rb") as fh:
        head = fh.read(4 + 4 * 255)
    dims, offset = _idx_header(path, head[:4], head, path.stat().st_size)
    return np.memmap(path, np.uint8, mode="r", offset=offset, shape=tuple(dims))


def _idx_header(path: Path, magic: bytes, head: bytes, size: int) -> tuple[list[int], int]:
    """(dims, offset of the first value), checking the file holds exactly that many bytes."""
    if len(magic) < 4 or magic[:2] != b"\0\0" or magic[2] != 0x08:
        raise RecipeError(f"'{path}' is not an unsigned-byte IDX file.", key="data.source")
    ndim = magic[3]
    offset = 4 + 4 * ndim
    dims = [int.from_bytes(head[4 + 4 * i : 8 + 4 * i], "big") for i in range(ndim)]
    if len(head) < offset or size - offset != int(np.prod(dims)):
        raise RecipeError(
            f"'{path}' is truncated: its header promises {dims} values.", key="data.source"
        )
    return dims, offset


def _stored(
    source: str,
    files: list[Path],
    raw: Callable[[], RawSplits],
    data: DataSection,
    source_blur: SourceBlur | None,
) -> tuple[dict[str, Split], dict]:
    """The splits as selections of a mapped array, and the source's info (warnings)."""
    # Plain IDX files open as memory maps (cheap); compressed ones are read only to build.
    found = raw() if all(f.suffix not in (".gz", ".npz") for f in files) else None
    if found is not None and not source_blur and _unchanged(found, data):
        return {s: _mapped_split(s, im, lab) for s, (im, lab) in found.items()}, {}
    key = cache.folder_key(
        files[0].parent,
        [f.name for f in files],
        data.image_size,
        data.channels,
        ARRAYS_VERSION,
        source_blur.cache_key() if source_blur else "",
    )
    name = f"arrays-{cache.root_tag(files[0].parent)}-{key}" if data.cache else None

    def build(builder: cache.Builder) -> dict:
        return _Conversion(data, source_blur).write_entry(source, found or raw(), builder)

    arrays, meta, _, warnings = mapped_or_built(name, build, files[0].parent)
    if source_blur and "stored_range" in meta:
        source_blur.low, source_blur.high = (tuple(int(v) for v in r) for r in meta["stored_range"])
    return entry_splits(arrays, meta), {"warnings": warnings} if warnings else {}


def _unchanged(found: RawSplits, data: DataSection) -> bool:
    """Whether the recipe keeps every split's stored size and channel count."""
    for images, _ in found.values():
        channels = images.shape[3] if images.ndim == 4 else 1
        if data.channels not in (None, channels):
            return False
        if data.image_size is not None and tuple(data.image_size) != images.shape[1:3]:
            return False
    return True


def _mapped_split(split: str, images: np.ndarray, labels: np.ndarray) -> Split:
    if images.ndim == 3:
        images = images.reshape(*images.shape, 1)  # a view: still the memory map
    ids = [f"{split}/{i}" for i in range(len(labels))]
    return Split(Rows(images), np.asarray(labels, np.int64), ids)


@dataclass(frozen=True)
class _Conversion:
    """The recipe's size, channels and source blur, applied to stored arrays chunk by chunk
    into a cache entry's rows."""

    data: DataSection
    source_blur: SourceBlur | None

    def write_entry(self, source: str, found: RawSplits, builder: cache.Builder) -> dict:
        """Every split converted into the builder's rows; returns the meta."""
        data, source_blur = self.data, self.source_blur
        shape = _converted(next(iter(found.values()))[0][:1], data).shape[1:]
        total = sum(len(labels) for _, labels in found.values())
        names = ["images", *(f"view_{n}" for n in (source_blur.conditions if source_blur else ()))]
        arrays = {n: builder.array(n, (total, *shape)) for n in names}
        meta: dict = {"source": source, "shape": list(shape), "labels": [], "splits": [], "ids": []}
        start = 0
        for split, (raw_images, labels) in found.items():
            self.write_split(split, raw_images, arrays, start)
            start += len(labels)
            meta["labels"] += np.asarray(labels, np.int64).tolist()
            meta["splits"] += [split] * len(labels)
            meta["ids"] += [f"{split}/{i}" for i in range(len(labels))]
        meta.update(count=total, rows=list(range(total)), skipped=[])
        if source_blur and source_blur.low is not None:
            meta["stored_range"] = [list(source_blur.low), list(source_blur.high)]
        return meta

    def write_split(
        self, split: str, raw_images: np.ndarray, arrays: dict[str, np.ndarray], start: int
    ) -> None:
        """``split``'s images (and source-blurred views) into ``arrays`` from row ``start``."""
        data, source_blur = self.data, self.source_blur
        # Motion and glass blur draw across the whole array: those views are blurred in one
        # pass per split, as before the store, so their pixels do not depend on the chunking.
        per_image = not source_blur or all(
            c.blur.kind in PER_IMAGE for c in source_blur.conditions.values()
        )
        step = CHUNK if per_image else max(len(raw_images), 1)
        for i in range(0, len(raw_images), step):
            chunk = np.asarray(raw_images[i : i + step], np.uint8)
            chunk = chunk[..., None] if chunk.ndim == 3 else chunk
            rows = slice(start + i, start + i + len(chunk))
            arrays["images"][rows] = _converted(chunk, data)
            if source_blur:
                blurred = source_blur.views(chunk, data.image_size, split, data.channels)
                for name, view in blurred.items():
                    arrays[f"view_{name}"][rows] = view


def _converted(images: np.ndarray, data: DataSection) -> np.ndarray:
    images = images[..., None] if images.ndim == 3 else images
    return resize_images(convert_channels(images, data.channels), data.image_size)
