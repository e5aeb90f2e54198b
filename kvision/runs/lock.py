"""One writer per folder, guaranteed by the operating system.

A process that writes a run directory (or a sweep folder) holds an exclusive ``flock`` on
the folder's lock file from before it reads the folder's state until it is done. The kernel
drops the lock when the process dies, so a ``kill -9`` never leaves a stale lock, and a
second writer is refused at once with one paragraph naming the holder. Readers never take
the lock; :func:`probe` tells them whether someone holds it without disturbing the holder.

Who holds the lock (pid, host, command, since when) is written into the lock file after
the lock is taken, only to name the holder in messages: the lock itself is the kernel's.

On a network filesystem that does not honour ``flock`` across machines (some NFS setups),
two machines can both take it; the run's ``meta.json`` pid and host stay the second line
of defence there (``kvision run --resume`` refuses a run whose writer is on another host).
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import json
import os
import shlex
import socket
import sys
import time
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path

from kvision.errors import KvisionError, printable, redact

#: The lock file inside a run directory (and a sweep folder).
LOCK_FILE = "writer.lock"
#: A would-be writer retries this long before it is refused: a reader's probe holds a
#: shared lock for microseconds, and must not turn a lone writer away.
PROBE_GRACE_S = 0.3
#: How long a refused writer waits for the holder to finish writing who it is.
HOLDER_WAIT_S = 0.5

# Folders this process holds: {real path: open lock file descriptor}.
_HELD: dict[str, int] = {}


class Busy(KvisionError):
    """Another process holds the folder's lock."""


def is_writer_rank() -> bool:
    """Whether this process is the one that writes (rank 0 of a data-parallel run, or alone).

    Read from torchrun's environment, so it can be asked before torch is imported.
    """
    return os.environ.get("RANK", "0") == "0"


def hold(folder: str | os.PathLike, *, what: str = "run") -> Path:
    """Take ``folder``'s writer lock for this process, or raise :class:`Busy` naming the
    holder. Re-entrant within a process; released by :func:`release` or at exit.

    ``folder`` must exist. Returns the lock file's path.
    """
    folder = Path(folder)
    key = _key(folder)
    lock = folder / LOCK_FILE
    if key in _HELD:
        return lock
    fd = _open_lock(lock, what)
    if not _try_lock(fd, fcntl.LOCK_EX, PROBE_GRACE_S):
        holder = _read_holder(fd)
        os.close(fd)
        raise Busy(busy_message(folder, holder, what))
    _HELD[key] = fd
    _write_holder(fd)
    return lock


@contextlib.contextmanager
def writing_into(path: str | os.PathLike, *, what: str = "run") -> Iterator[None]:
    """Hold the writer lock of the run directory that ``path`` lies in (``kvision export
    --to RUN/...``) while writing there; nothing when ``path`` is in no run directory."""
    run = next(
        (
            p
            for p in (
                Path(path).expanduser().absolute(),
                *Path(path).expanduser().absolute().parents,
            )
            if (p / "meta.json").is_file() and (p / "events.jsonl").is_file()
        ),
        None,
    )
    if run is None or holds(run):
        yield
        return
    hold(run, what=what)
    try:
        yield
    finally:
        release(run)


def release(folder: str | os.PathLike) -> None:
    """Drop this process's lock of ``folder`` (nothing when it holds none)."""
    fd = _HELD.pop(_key(Path(folder)), None)
    if fd is not None:
        os.close(fd)  # closing the last descriptor releases the flock


def holds(folder: str | os.PathLike) -> bool:
    """Whether this very process holds ``folder``'s lock."""
    return _key(Path(folder)) in _HELD


def probe(folder: str | os.PathLike) -> bool | None:
    """Whether some process holds ``folder``'s lock: True, False, or None when the folder has
    no lock file (written by an older kvision, or never claimed). Never blocks; takes no
    lock a writer could notice (a shared lock held for microseconds, see PROBE_GRACE_S)."""
    folder = Path(folder)
    if holds(folder):
        return True
    try:
        fd = os.open(folder / LOCK_FILE, os.O_RDONLY)
    except OSError:
        return None
    try:
        if not _try_lock(fd, fcntl.LOCK_SH, 0.0):
            return True
        fcntl.flock(fd, fcntl.LOCK_UN)
        return False
    finally:
        os.close(fd)


def holder(folder: str | os.PathLike) -> dict:
    """Who holds (or last held) ``folder``'s lock, as written in the lock file; {} if unknown."""
    try:
        return json.loads((Path(folder) / LOCK_FILE).read_text("utf-8"))
    except (OSError, ValueError):
        return {}


def busy_message(folder: Path, who: dict, what: str) -> str:
    """One paragraph: which folder, who writes it, since when, what to do."""
    if who:
        name = (
            f"pid {who.get('pid')} on {printable(str(who.get('host')))}, started "
            f"{printable(str(who.get('since')))}: {printable(str(who.get('command')))}"
        )
    else:
        name = "a process that has not yet written who it is"
    return (
        f"The {what} in '{printable(str(folder))}' is being written by another process ({name}). "
        f"Only one process may write a {what} at a time; nothing was written. Wait for it "
        "to finish or stop it (then resume), or read it meanwhile with kvision show / ls."
    )


def _key(folder: Path) -> str:
    return os.path.realpath(folder)


def _open_lock(lock: Path, what: str) -> int:
    try:
        return os.open(lock, os.O_RDWR | os.O_CREAT | getattr(os, "O_CLOEXEC", 0), 0o666)
    except OSError as exc:
        raise KvisionError(
            f"Cannot lock the {what} in '{lock.parent}' for writing: {exc.strerror or exc} "
            f"({lock})."
        ) from None


def _try_lock(fd: int, kind: int, grace_s: float) -> bool:
    deadline = time.monotonic() + grace_s
    while True:
        try:
            fcntl.flock(fd, kind | fcntl.LOCK_NB)
            return True
        except OSError as exc:
            if exc.errno not in (errno.EWOULDBLOCK, errno.EAGAIN, errno.EACCES):
                raise
        if time.monotonic() >= deadline:
            return False
        time.sleep(0.02)


def _write_holder(fd: int) -> None:
    record = {
        "pid": os.getpid(),
        "host": socket.gethostname(),
        "command": redact(shlex.join(sys.argv) if sys.argv and sys.argv[0] else sys.executable),
        "since": datetime.now().astimezone().isoformat(timespec="seconds"),
    }
    data = (json.dumps(record) + "\n").encode("utf-8")
    with contextlib.suppress(OSError):  # naming the holder is a courtesy; the lock is held
        os.ftruncate(fd, 0)
        os.pwrite(fd, data, 0)


def _read_holder(fd: int) -> dict:
    """The holder's record; it writes it just after taking the lock, so wait a moment."""
    deadline = time.monotonic() + HOLDER_WAIT_S
    while True:
        with contextlib.suppress(OSError, ValueError):
            size = os.fstat(fd).st_size
            found = json.loads(os.pread(fd, max(size, 1), 0).decode("utf-8"))
            if isinstance(found, dict) and _current(found):
                return found
        if time.monotonic() >= deadline:
            return {}
        time.sleep(0.02)


def _current(record: dict) -> bool:
    """Whether a holder record can be the lock's present holder: one left by an earlier
    holder that died names a process that is gone (checkable on this host only)."""
    if record.get("host") != socket.gethostname():
        return True
    try:
        os.kill(int(record.get("pid")), 0)
    except (ProcessLookupError, ValueError, TypeError):
        return False
    except PermissionError:
        return True
    return True
