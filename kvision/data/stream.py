"""``data.store = "stream"``: folder images decoded per batch in the loader threads, no cache.

For datasets whose decoded size exceeds the disk (or the cache budget). The splits are
selections (kvision.data.rows.Rows) of :class:`DecodedFiles`, an array-like whose rows are
read, decoded, blurred at the source (per image, as the cache build does) and resized only
when a batch gathers them, in a small thread pool (OpenCV releases the GIL) inside the
loader's own threads. Splits, limits, balancing, a resumed run's manifest and data-parallel
shards work as over the store's map; under data parallel each rank gathers only its own rows
of every batch (pipeline.BatchSequence.get with a shard), so it reads only its share of
the files.

Nothing is decoded at load: each file's header (and last bytes) is read to skip what the
cache build would skip (not an image, empty, too small, too large, a cut-off JPEG) and to
learn the stored sizes a source blur starts from. A file that passes those checks but still
fails to decode when its batch comes is replaced by a black image, once, with a warning.
"""

from __future__ import annotations

import os
import threading
import warnings
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace

import numpy as np

from kvision.data.entries import entry_splits
from kvision.data.images import MAX_PIXELS, decode_image
from kvision.data.source_blur import SourceBlur
from kvision.data.store import FolderFiles, decode_file, header_size

#: Bytes read from a file's start for its header (JPEG EXIF can sit a few KiB in).
HEAD_BYTES = 1 << 16
_POOL: ThreadPoolExecutor | None = None
_POOL_LOCK = threading.Lock()


def _pool() -> ThreadPoolExecutor:
    global _POOL
    with _POOL_LOCK:
        if _POOL is None:
            _POOL = ThreadPoolExecutor(min(8, os.cpu_count() or 1), "kvision-stream")
        return _POOL


class OnDemand:
    """A uint8 (N, H, W, C) array-like whose rows are made by ``_one(row)`` when indexed:
    a batch's rows in the shared thread pool. Subclasses set ``row`` and ``shape``."""

    decodes_per_batch = True  # conditions.condition_view blurs such rows per batch too
    dtype = np.dtype(np.uint8)
    ndim = 4
    row: tuple[int, int, int]
    shape: tuple[int, ...]

    def __len__(self) -> int:
        return self.shape[0]

    def __getitem__(self, key: int | slice | np.ndarray) -> np.ndarray:
        if np.ndim(key) == 0 and not isinstance(key, slice):
            return self._one(int(key))
        rows = np.arange(len(self))[key] if isinstance(key, slice) else np.asarray(key)
        out = np.empty((len(rows), *self.row), np.uint8)

        def fill(k: int) -> None:
            out[k] = self._one(int(rows[k]))

        list(_pool().map(fill, range(len(rows))))
        return out

    def _one(self, row: int) -> np.ndarray:
        raise NotImplementedError


class DecodedFiles(OnDemand):
    """``files`` decoded when indexed; ``view`` names a source-blurred condition: its rows
    are that condition's view. Every file of the folder has a row, kept or not (splits pick
    the kept ones)."""

    def __init__(self, job: FolderFiles, view: str | None = None) -> None:
        assert job.data.image_size is not None  # checked with the recipe (data.store)
        self.view = view
        blur = job.source_blur
        only = SourceBlur({view: blur.conditions[view]}) if view and blur else None
        self.job = replace(job, source_blur=only)  # decoding clear images blurs nothing
        self.row = (*job.data.image_size, job.channels)
        self.shape = (len(job.files), *self.row)
        self._failed: set[str] = set()

    def _one(self, row: int) -> np.ndarray:
        rel = self.job.files[row][1]
        image, views, reason = decode_file(self.job, rel, self.row)
        if image is None:
            if rel not in self._failed:
                self._failed.add(rel)
                warnings.warn(
                    f"stream: '{rel}' passed its header checks but could not be decoded "
                    f'({reason}); a black image stands in for it. data.store = "cache" '
                    f"decodes every file once and skips such files.",
                    stacklevel=2,
                )
            return np.zeros(self.row, np.uint8)
        return views[self.view] if self.view else image


def stream_splits(job: FolderFiles) -> tuple[dict, list[dict]]:
    """(splits as selections of decoded-on-demand files, files skipped by their headers)."""
    checks = list(_pool().map(lambda f: check_file(job, f[1]), job.files))
    kept = [i for i, (_, reason) in enumerate(checks) if not reason]
    if job.source_blur:  # the stored sizes the source blur starts from, for the report
        for i in kept:
            job.source_blur.note_stored(checks[i][0])
    meta = {
        "rows": kept,
        "labels": [job.files[i][2] for i in kept],
        "splits": [job.files[i][0] for i in kept],
        "ids": [job.files[i][1] for i in kept],
    }
    arrays = {"images": DecodedFiles(job)}
    for name in job.source_blur.conditions if job.source_blur else ():
        arrays[f"view_{name}"] = DecodedFiles(job, name)
    skipped = [{"path": job.files[i][1], "reason": r} for i, (_, r) in enumerate(checks) if r]
    return (entry_splits(arrays, meta) if kept else {}), skipped


def check_file(job: FolderFiles, rel: str) -> tuple[tuple[int, int], str]:
    """(stored (height, width), '') for a file the cache build would decode; else (_, why).

    The header, the size and the last bytes answer most cases unread; a file whose header
    Pillow cannot parse is decoded once to decide (and to give the build's own reason)."""
    path = job.root / rel
    try:
        size = path.stat().st_size
        with open(path, "rb") as fh:
            head = fh.read(HEAD_BYTES)
            fh.seek(max(size - 16, 0))
            tail = fh.read(16)
    except OSError as exc:
        return (0, 0), f"cannot read ({exc.strerror or exc})"
    hw = header_size(head) if size else None
    if hw is None:  # empty, or a format only OpenCV reads: decode it once to decide
        image, reason = decode_image(path.read_bytes(), job.channels, job.data.min_image_size)
        return ((image.shape[:2] if image is not None else (0, 0)), reason)
    if hw[0] * hw[1] > MAX_PIXELS:
        return hw, f"too large to decode safely ({hw[1]}x{hw[0]} px; the cap is {MAX_PIXELS:,} px)"
    if head[:2] == b"\xff\xd8" and b"\xff\xd9" not in tail:
        return hw, "truncated JPEG (no end-of-image marker)"
    if min(hw) < job.data.min_image_size:
        return hw, (
            f"too small ({hw[1]}x{hw[0]} px; data.min_image_size is {job.data.min_image_size})"
        )
    return hw, ""
