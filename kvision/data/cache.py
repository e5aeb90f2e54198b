"""Disk cache of decoded, resized folder images, reused across runs.

The key covers every file's relative path, size and modification time plus the decoding
settings, so adding, removing or editing a file (or changing image_size) makes a new entry;
the previous entry of the same folder is then deleted. Location: ``$KVISION_CACHE`` or
``~/.cache/kvision``.
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
from pathlib import Path

import numpy as np


def cache_dir() -> Path:
    """Where cached arrays live."""
    return Path(os.environ.get("KVISION_CACHE") or Path.home() / ".cache" / "kvision")


def _root_tag(root: Path) -> str:
    return hashlib.sha256(str(root.resolve()).encode()).hexdigest()[:16]


def folder_key(root: Path, files: list[str], *settings: object) -> str:
    """A digest of the folder's listing (path, size, mtime) and the decoding settings."""
    digest = hashlib.sha256(repr(settings).encode())
    for rel in files:
        st = (root / rel).stat()
        digest.update(f"{rel}\0{st.st_size}\0{st.st_mtime_ns}\n".encode())
    return digest.hexdigest()[:24]


def _path(root: Path, key: str) -> Path:
    return cache_dir() / f"folder-{_root_tag(root)}-{key}.npz"


def load(root: Path, key: str) -> tuple | None:
    """The cached (images, labels, ids, splits, skipped, views) for this key, or None."""
    path = _path(root, key)
    if not path.exists():
        return None
    try:
        with np.load(path, allow_pickle=False) as npz:
            names = json.loads(str(npz["view_names"])) if "view_names" in npz else []
            return (
                npz["images"],
                npz["labels"],
                npz["ids"].tolist(),
                npz["splits"],
                json.loads(str(npz["skipped"])),
                {n: npz[f"view_{n}"] for n in names},
            )
    except (OSError, ValueError, KeyError):  # a damaged entry is rebuilt, not fatal
        return None


def store(root: Path, key: str, entry: tuple) -> str | None:
    """Write an entry atomically and drop older entries of the same folder.

    A read-only or full cache disk only costs speed, so the run goes on: the reason is
    returned (None when stored) for the run to show as a warning.
    """
    images, labels, ids, splits, skipped, views = entry
    target = _path(root, key)
    tmp = None
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=target.parent, suffix=".tmp")
        with os.fdopen(fd, "wb") as fh:
            np.savez(
                fh,
                images=images,
                labels=labels,
                ids=np.array(ids, dtype=str),
                splits=splits,
                skipped=json.dumps(skipped),
                view_names=json.dumps(list(views)),
                **{f"view_{n}": v for n, v in views.items()},
            )
        os.chmod(tmp, 0o666 & ~_umask())  # mkstemp makes 0600; the cache follows the umask
        os.replace(tmp, target)
    except OSError as exc:
        if tmp is not None:
            Path(tmp).unlink(missing_ok=True)
        return (
            f"The decoded images of '{root}' could not be cached in '{target.parent}' "
            f"({exc.strerror or exc}); the run goes on, and the next run decodes them again."
        )
    for old in target.parent.glob(f"folder-{_root_tag(root)}-*.npz"):
        if old != target:
            old.unlink(missing_ok=True)
    return None


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask
