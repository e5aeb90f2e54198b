"""Atomic, durable file writes: a reader (or a crash, or a power cut) sees the old file or the
new one, never half, and never a renamed but empty file.

Temporary files are created with mode 0666 filtered by the process umask, like any file the
user makes (``tempfile.mkstemp`` would make them 0600, and the rename keeps that mode).
"""

from __future__ import annotations

import errno
import hashlib
import json
import os
import secrets
from pathlib import Path
from typing import Any


def fsync_dir(folder: str | os.PathLike) -> None:
    """Make a rename or a new file inside ``folder`` durable (no-op where dirs cannot be opened)."""
    try:
        fd = os.open(folder, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0))
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass  # some filesystems refuse fsync on directories; the file itself is synced
    finally:
        os.close(fd)


def fsync_file(path: str | os.PathLike) -> None:
    """Flush a file another library wrote (Keras, matplotlib) to the disk."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def commit(tmp: str | os.PathLike, final: str | os.PathLike) -> Path:
    """Rename a complete temp file (or folder) into place durably: fsync, rename, fsync dir."""
    tmp, final = Path(tmp), Path(final)
    if tmp.is_file():
        fsync_file(tmp)
    os.replace(tmp, final)
    fsync_dir(final.parent)
    return final


def _temp_name(path: Path) -> Path:
    return path.with_name(f".{path.name}.{secrets.token_hex(4)}.tmp")


def atomic_write_bytes(path: str | os.PathLike, data: bytes) -> Path:
    """Write ``data`` to ``path`` via a temp file in the same folder, fsync, then rename."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = _temp_name(path)
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)  # the umask applies
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    fsync_dir(path.parent)
    return path


def create_new_bytes(path: str | os.PathLike, data: bytes) -> Path:
    """Write ``data`` to ``path`` only if nothing is there, not even a (dangling) symlink:
    the complete temp file is hard-linked into place, which fails when the name is taken,
    so there is no gap between a check and the write. Raises FileExistsError."""
    path = Path(path)
    tmp = _temp_name(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
    except FileExistsError:  # a file where a folder of the path should be
        raise NotADirectoryError(errno.ENOTDIR, os.strerror(errno.ENOTDIR), str(path)) from None
    try:
        atomic_write_bytes(tmp, data)
    except OSError as exc:  # named by the file asked for, not by its temp file
        raise OSError(exc.errno, exc.strerror, str(path)) from None
    try:
        os.link(tmp, path, follow_symlinks=False)
    except FileExistsError:
        raise
    except OSError:  # a filesystem without hard links: exclusive create, then the bytes
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o666)
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
    finally:
        tmp.unlink(missing_ok=True)
    fsync_dir(path.parent)
    return path


def atomic_write_text(path: str | os.PathLike, text: str) -> Path:
    """Atomically write UTF-8 text."""
    return atomic_write_bytes(path, text.encode("utf-8"))


def atomic_write_json(path: str | os.PathLike, obj: Any) -> Path:
    """Atomically write pretty JSON."""
    return atomic_write_text(path, json.dumps(obj, indent=2, sort_keys=False, default=str) + "\n")


def atomic_path(path: str | os.PathLike) -> tuple[Path, Path]:
    """A (temp, final) pair for libraries that write files themselves (Keras, matplotlib).

    Write to ``temp``, then ``commit(temp, final)``. The temp name keeps the suffix,
    because Keras and matplotlib choose the format from it.
    """
    final = Path(path)
    final.parent.mkdir(parents=True, exist_ok=True)
    tmp = final.with_name(f".{final.stem}.partial{final.suffix}")
    return tmp, final


def file_digest(path: str | os.PathLike) -> dict[str, Any]:
    """{size, sha256} of a file, as recorded for checkpoints and artifacts."""
    with open(path, "rb") as fh:
        digest = hashlib.file_digest(fh, "sha256").hexdigest()
    return {"size": os.path.getsize(path), "sha256": digest}


def damage(path: str | os.PathLike, record: dict) -> str | None:
    """Why ``path`` no longer matches its {size, sha256} record, or None when it does."""
    path = Path(path)
    try:
        size = path.stat().st_size
    except OSError as exc:
        return f"{path.name} is missing ({exc.strerror or exc})"
    if record.get("size") is not None and size != record["size"]:
        return f"{path.name} has {size} bytes, {record['size']} were written"
    if record.get("sha256") and file_digest(path)["sha256"] != record["sha256"]:
        return f"{path.name} has changed since it was written (SHA-256 differs)"
    return None
