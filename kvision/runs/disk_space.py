"""A full disk: checked before big writes, recognised in any OSError, told as one paragraph.

Writing an HDF5 file onto a full disk can crash h5py outright (a segmentation fault), so the
checkpoint and model writers check the free space first, from an estimate of what they are
about to write; every other write that fails with ENOSPC is recognised and becomes the same
clean stop. The run can then be continued with ``kvision run --resume`` once space is freed.
"""

from __future__ import annotations

import errno
import os
import shutil
from pathlib import Path

#: Exit code of a run stopped by a full disk: EX_TEMPFAIL from sysexits.h, "try again later".
EXIT_DISK_FULL = 75
#: Room left on top of every estimate (metadata, the events written on the way out).
MARGIN = 256 * 1024


class DiskFull(OSError):
    """No room on the disk holding ``folder`` for about ``needed`` bytes (``free`` left)."""

    def __init__(self, folder: str | os.PathLike, needed: int | None, free: int | None) -> None:
        super().__init__(errno.ENOSPC, f"No space left on the disk holding {folder}")
        self.folder, self.needed, self.free = Path(folder), needed, free


def free_bytes(folder: str | os.PathLike) -> int:
    """Bytes an unprivileged writer may still use on the disk holding ``folder``."""
    path = Path(folder)
    while not path.exists() and path != path.parent:
        path = path.parent
    return shutil.disk_usage(path).free


def ensure_space(folder: str | os.PathLike, needed: int) -> None:
    """Raise DiskFull unless ``needed`` bytes (plus a margin) fit on ``folder``'s disk."""
    free = free_bytes(folder)
    if free < needed + MARGIN:
        raise DiskFull(folder, needed + MARGIN, free)


def disk_full_cause(exc: BaseException, folder: str | os.PathLike | None = None) -> DiskFull | None:
    """The DiskFull behind ``exc`` (itself, or an ENOSPC/EDQUOT OSError in its chain);
    ``folder`` is named when the error does not say which file it was writing."""
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        if isinstance(current, DiskFull):
            return current
        if isinstance(current, OSError) and current.errno in (errno.ENOSPC, errno.EDQUOT):
            where = (
                Path(current.filename).parent if current.filename else Path(folder or Path.cwd())
            )
            return DiskFull(where, None, _free_or_none(where))
        if "No space left on device" in str(current) or "errno = 28" in str(current):
            where = Path(folder or Path.cwd())  # h5py/zip errors that lost the errno
            return DiskFull(where, None, _free_or_none(where))
        current = current.__cause__ or current.__context__
    return None


def _free_or_none(folder: Path) -> int | None:
    try:
        return free_bytes(folder)
    except OSError:
        return None


def human_bytes(n: int | None) -> str:
    """1.5 MB style sizes (decimal units, as df -H prints them)."""
    if n is None:
        return "unknown"
    value = float(n)
    for unit in ("B", "kB", "MB", "GB", "TB"):
        if value < 1000 or unit == "TB":
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1000
    return f"{n} B"


def disk_full_message(
    full: DiskFull, run_dir: str | os.PathLike | None = None, *, next_step: str | None = None
) -> str:
    """The one paragraph a user reads: where, how much is needed and free, how to go on."""
    need = f"about {human_bytes(full.needed)} is needed" if full.needed else "more space is needed"
    head = (
        f"The disk holding '{full.folder}' is full ({human_bytes(full.free)} free; "
        f"{need} for the next write)."
    )
    if next_step is not None:
        return f"{head} Nothing half-written was left behind. Free some space, then {next_step}."
    return (
        f"{head} The run stopped cleanly: everything up to its last checkpoint is kept and "
        f"the run directory stays readable. Free some space, then continue with: "
        f"kvision run --resume {run_dir}"
    )
