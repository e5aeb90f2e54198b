"""Disk cache of decoded images: one entry per source and settings, read as memory maps.

An entry is a folder of raw ``.npy`` arrays (``images.npy``, one ``view_<condition>.npy`` per
source-blurred condition, ``labels.npy`` ...) and a ``meta.json``. ``.npy`` is numpy's own
format: written in place row by row through :func:`numpy.lib.format.open_memmap` (each
decoding thread fills its own rows) and read back with ``mmap_mode="r"`` without a copy or a
new dependency, so a run holds only the batches it is assembling; the page cache keeps the
rest and the kernel can drop it under pressure.

Keys cover every file's relative path, size and modification time plus the decoding settings,
so an edit makes a new entry; several entries per folder are kept (``kvision data`` and
``kvision run`` with other settings do not evict each other) and the least recently used ones
are dropped when the cache exceeds its budget (``$KVISION_CACHE_BUDGET``, e.g. ``20G``).

Writes are atomic: an entry is built in a hidden temporary folder, every file fsynced, then
renamed into place, so a killed build leaves nothing that reads as an entry. Builders of the
same entry take an exclusive ``flock`` on ``<entry>.lock``: the second one waits and then
reads what the first built. Location: ``$KVISION_CACHE`` or ``~/.cache/kvision``.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import hashlib
import json
import os
import re
import shutil
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from numpy.lib.format import open_memmap

META = "meta.json"
#: Default size budget of the whole cache; least recently used entries go beyond it.
DEFAULT_BUDGET = 64 * 2**30
_UNITS = {"": 1, "K": 2**10, "M": 2**20, "G": 2**30, "T": 2**40}


def cache_dir() -> Path:
    """Where cached arrays live."""
    return Path(os.environ.get("KVISION_CACHE") or Path.home() / ".cache" / "kvision")


def budget_bytes() -> int:
    """The cache's size budget: ``$KVISION_CACHE_BUDGET`` (bytes, or with K/M/G/T)."""
    return parse_size(os.environ.get("KVISION_CACHE_BUDGET") or str(DEFAULT_BUDGET))


def parse_size(text: str) -> int:
    """'20G' -> bytes; a plain number is bytes. ValueError names what was wrong."""
    match = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([KMGT]?)i?B?\s*", text, re.IGNORECASE)
    if not match:
        raise ValueError(f"'{text}' is not a size; write bytes or e.g. 500M, 20G")
    return int(float(match[1]) * _UNITS[match[2].upper()])


def root_tag(root: Path) -> str:
    """A short digest of a source's absolute path, so entries name their source."""
    return hashlib.sha256(str(root.resolve()).encode()).hexdigest()[:16]


def folder_key(root: Path, files: list[str], *settings: object) -> str:
    """A digest of the folder's listing (path, size, mtime) and the decoding settings."""
    digest = hashlib.sha256(repr(settings).encode())
    for rel in files:
        st = (root / rel).stat()
        digest.update(f"{rel}\0{st.st_size}\0{st.st_mtime_ns}\n".encode())
    return digest.hexdigest()[:24]


@dataclass
class Entry:
    """A committed cache entry: its folder and what meta.json says about it."""

    path: Path
    meta: dict

    def array(self, name: str) -> np.ndarray:
        """One of the entry's arrays, memory-mapped read-only."""
        return np.load(self.path / f"{name}.npy", mmap_mode="r", allow_pickle=False)

    def size(self) -> int:
        """Bytes on disk."""
        return sum(p.stat().st_size for p in self.path.iterdir())


def open_entry(name: str) -> Entry | None:
    """The committed entry ``name`` (its last use noted for eviction), or None."""
    path = cache_dir() / name
    try:
        meta = json.loads((path / META).read_text())
    except (OSError, ValueError):  # absent or damaged: rebuilt, never fatal
        return None
    with contextlib.suppress(OSError):  # a read-only cache is still read
        os.utime(path / META)  # last use, for least-recently-used eviction
    return Entry(path, meta)


@contextlib.contextmanager
def locked(name: str) -> Iterator[None]:
    """Hold the entry's build lock (blocks while another process builds it)."""
    folder = cache_dir()
    folder.mkdir(parents=True, exist_ok=True)
    with open(folder / f"{name}.lock", "a") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


class Builder:
    """A new entry written in a hidden temporary folder and renamed into place by commit.

    ``in_memory`` builds plain arrays instead (the cache is off or cannot be written).
    """

    def __init__(self, name: str, *, in_memory: bool = False) -> None:
        self.name, self.in_memory = name, in_memory
        self.arrays: dict[str, np.ndarray] = {}
        self.tmp = cache_dir() / f".{name}.tmp-{os.getpid()}"
        if not in_memory:
            for stale in cache_dir().glob(f".{name}.tmp-*"):  # killed builds (we hold the lock)
                shutil.rmtree(stale, ignore_errors=True)
            self.tmp.mkdir(parents=True)

    def array(self, name: str, shape: tuple[int, ...], dtype=np.uint8) -> np.ndarray:
        """A writable array of ``shape``, on disk (preallocated) unless in memory."""
        if self.in_memory:
            out = np.zeros(shape, dtype)
        else:
            path = self.tmp / f"{name}.npy"
            out = open_memmap(path, mode="w+", dtype=dtype, shape=shape)
            # Reserve the blocks now: a full disk then fails here with ENOSPC instead of
            # killing the process with SIGBUS when a thread writes a row of the map.
            with open(path, "r+b") as fh:
                os.posix_fallocate(fh.fileno(), 0, os.fstat(fh.fileno()).st_size)
        self.arrays[name] = out
        return out

    def put(self, name: str, values: np.ndarray) -> None:
        """A small array stored whole (labels, index)."""
        self.array(name, values.shape, values.dtype)[...] = values

    def commit(self, meta: dict) -> Entry | None:
        """Make the entry durable and visible; None when built in memory."""
        if self.in_memory:
            return None
        for name, arr in self.arrays.items():
            arr.flush()
            _fsync_file(self.tmp / f"{name}.npy")
        (self.tmp / META).write_text(json.dumps(meta))
        _fsync_file(self.tmp / META)
        _fsync_dir(self.tmp)
        target = cache_dir() / self.name
        shutil.rmtree(target, ignore_errors=True)  # a damaged entry of the same name
        os.replace(self.tmp, target)
        _fsync_dir(target.parent)
        return open_entry(self.name)

    def abort(self) -> None:
        """Drop the half-built entry."""
        self.arrays.clear()
        if not self.in_memory:
            shutil.rmtree(self.tmp, ignore_errors=True)


def _fsync_file(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _fsync_dir(path: Path) -> None:
    with contextlib.suppress(OSError):  # some filesystems cannot fsync a folder
        _fsync_file(path)


def scratch_array(shape: tuple[int, ...], dtype=np.uint8) -> np.ndarray:
    """A writable memory map that lives as long as the process: its file is unlinked at
    once (in the cache folder, else the temp folder), so nothing is left behind."""
    import tempfile

    for folder in (cache_dir() / ".scratch", Path(tempfile.gettempdir())):
        try:
            folder.mkdir(parents=True, exist_ok=True)
            fd, name = tempfile.mkstemp(dir=folder, suffix=".npy")
            break
        except OSError:
            continue
    else:
        return np.empty(shape, dtype)  # nowhere to write: RAM it is
    try:
        os.close(fd)
        return open_memmap(name, mode="w+", dtype=dtype, shape=shape)
    finally:
        os.unlink(name)  # the mapping keeps the data; the name goes now


def unwritable(root: Path, exc: OSError) -> str:
    """The warning for a cache that could not be written (the run goes on)."""
    reason = exc.strerror or str(exc)
    if exc.errno == errno.ENOSPC:
        reason = "No space left on device"
    return (
        f"The decoded images of '{root}' could not be cached in '{cache_dir()}' "
        f"({reason}); the run goes on, and the next run decodes them again."
    )


def entries() -> list[Entry]:
    """Every committed entry, most recently used first."""
    folder = cache_dir()
    if not folder.is_dir():
        return []
    found = [e for p in folder.iterdir() if not p.name.startswith(".") if (e := _peek(p))]
    return sorted(found, key=lambda e: -(e.path / META).stat().st_mtime)


def _peek(path: Path) -> Entry | None:
    if not path.is_dir():
        return None
    try:
        return Entry(path, json.loads((path / META).read_text()))
    except (OSError, ValueError):
        return None


def prune(budget: int, *, keep: str | None = None) -> list[Entry]:
    """Remove least recently used entries until the cache fits ``budget`` bytes.

    ``keep`` (an entry name) is never removed; nor is an entry another process is building.
    A removed entry that a running process has mapped stays readable to it (the kernel
    keeps an unlinked file until it is unmapped). Returns the removed entries.
    """
    found = entries()
    sizes = {e.path: e.size() for e in found}
    total = sum(sizes.values())
    removed = []
    for entry in reversed(found):  # least recently used first
        if total <= budget:
            break
        if entry.path.name == keep or not _remove_unlocked(entry):
            continue
        total -= sizes[entry.path]
        removed.append(entry)
    return removed


def _remove_unlocked(entry: Entry) -> bool:
    lock = entry.path.parent / f"{entry.path.name}.lock"
    with open(lock, "a") as fh:
        try:
            fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            return False
        shutil.rmtree(entry.path, ignore_errors=True)
        lock.unlink(missing_ok=True)
    return True


def describe(entry: Entry) -> dict:
    """One row of ``kvision cache ls``."""
    meta = entry.meta
    used = (entry.path / META).stat().st_mtime
    return {
        "entry": entry.path.name,
        "source": meta.get("source", "?"),
        "images": meta.get("count", 0),
        "shape": meta.get("shape"),
        "bytes": entry.size(),
        "last_used": time.strftime("%Y-%m-%d %H:%M", time.localtime(used)),
    }
