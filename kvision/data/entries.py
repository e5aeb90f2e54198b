"""One cache entry as a source's splits: mapped when committed, built under its lock if not.

Every source that goes through the store (folders, built-in and IDX arrays) shares this
protocol: look the entry up (committed entries never change, so no lock is needed to read
one), else take its build lock, build it with the source's own ``build`` function and map
what was committed. An unwritable or full cache costs speed, not the run: the build is
repeated in memory and a warning says why.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np

from kvision.data import cache
from kvision.data.dataset import Split
from kvision.data.rows import Rows

#: Fills a builder's arrays and returns the entry's meta (count, rows, labels, splits, ids).
BuildFn = Callable[[cache.Builder], dict]


def mapped_or_built(name: str | None, build: BuildFn, source: Path) -> tuple:
    """(arrays, meta, cache hit, warnings) of entry ``name``; ``name`` None: cache off."""
    if name is None:
        return (*_build(build, cache.Builder("", in_memory=True)), False, [])
    entry = cache.open_entry(name)
    if entry is not None:
        return mapped(entry), entry.meta, True, []
    try:
        with cache.locked(name):  # one builder; a second process waits, then maps its entry
            entry = cache.open_entry(name)
            if entry is not None:
                return mapped(entry), entry.meta, True, []
            builder = cache.Builder(name)
            _, meta = _build(build, builder)
            entry = builder.commit(meta)
        cache.prune(cache.budget_bytes(), keep=name)
        return mapped(entry), entry.meta, False, []
    except OSError as exc:
        arrays, meta = _build(build, cache.Builder("", in_memory=True))
        return arrays, meta, False, [("cache_not_written", cache.unwritable(source, exc))]


def _build(build: BuildFn, builder: cache.Builder) -> tuple[dict, dict]:
    try:
        meta = build(builder)
    except BaseException:
        builder.abort()
        raise
    meta["bytes"] = int(sum(a.nbytes for a in builder.arrays.values()))
    return dict(builder.arrays), meta


def mapped(entry: cache.Entry) -> dict[str, np.ndarray]:
    """The entry's image arrays (``images`` and ``view_<condition>``), memory-mapped."""
    names = [p.stem for p in entry.path.glob("*.npy")]
    return {n: entry.array(n) for n in names if n == "images" or n.startswith("view_")}


def entry_splits(arrays: dict[str, np.ndarray], meta: dict) -> dict[str, Split]:
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
