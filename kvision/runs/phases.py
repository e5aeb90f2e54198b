"""Where a run's wall time goes: a few named phases, timed around the runner's calls.

Always on and cheap (two clock reads per phase; the runner enters a few hundred phases a
run). Phases nest: an inner phase's time is taken out of the outer one, so blurring done
lazily inside an evaluation counts as blurring, and the phases add up to at most the wall
time. The wall time starts when the process started (the interpreter's start-up and the
imports before the runner count as "startup"); what no phase covers is reported as
"other". Only the main thread is timed (loader threads would double-count).
"""

from __future__ import annotations

import functools
import os
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any, TypeVar

#: The phases in the order a run meets them (the report's rows); "other" is the rest.
PHASES = (
    "startup",
    "imports",
    "data",
    "blur",
    "build",
    "train",
    "evaluate",
    "insight",
    "checkpoint",
    "export",
)
PROFILE_FILE = "profile.json"

_totals: dict[str, float] = {}
_counts: dict[str, int] = {}
_stack: list[list[Any]] = []  # [name, started, seconds spent in nested phases]
F = TypeVar("F", bound=Callable[..., Any])


#: Seconds by which a process's age may exceed its CPU time before process_started takes it
#: for an exec late in the life of another program (a loaded machine delays a start-up by
#: less: a kvision process reaches this module after a fraction of a second of CPU).
EXEC_GAP_S = 2.0


def process_started() -> float:
    """When this process started, on the ``time.monotonic`` clock.

    Linux's /proc/self/stat gives the start in clock ticks since boot, /proc/uptime the
    time since boot; elsewhere (or if they cannot be read) the moment this module was
    first imported stands in.

    That start is the fork's, and a shell execs the last command of a list in place:
    ``bash -c '... && pip install -e . && kvision run R'`` (the README's first command) made
    the whole install the run's "startup", 55 s of a 129 s wall time. The start-up up to
    here is CPU work (the interpreter, imports), so when far more time has passed than this
    process has used CPU (EXEC_GAP_S), it was another program before, and the CPU time it
    has used stands in for its age.
    """
    try:
        with open("/proc/self/stat", encoding="ascii") as fh:
            ticks = int(fh.read().rsplit(")", 1)[1].split()[19])
        with open("/proc/uptime", encoding="ascii") as fh:
            uptime = float(fh.read().split()[0])
        age = uptime - ticks / os.sysconf("SC_CLK_TCK")
        cpu = sum(os.times()[:2])
        if age - cpu > EXEC_GAP_S:
            age = cpu
        return time.monotonic() - max(age, 0.0)
    except (OSError, ValueError, IndexError):
        return _IMPORTED


_IMPORTED = time.monotonic()
_STARTED = process_started()
_origin: float | None = None  # where the current run's wall time starts


@contextmanager
def phase(name: str) -> Iterator[None]:
    """Time the block as phase ``name`` (exclusive of the phases nested inside it)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    frame = [name, time.monotonic(), 0.0]
    _stack.append(frame)
    try:
        yield
    finally:
        _stack.pop()
        spent = time.monotonic() - frame[1]
        _totals[name] = _totals.get(name, 0.0) + spent - frame[2]
        _counts[name] = _counts.get(name, 0) + 1
        if _stack:
            _stack[-1][2] += spent


def timed(name: str) -> Callable[[F], F]:
    """Decorator form of :func:`phase`."""

    def wrap(fn: F) -> F:
        @functools.wraps(fn)
        def inner(*args: Any, **kwargs: Any) -> Any:
            with phase(name):
                return fn(*args, **kwargs)

        return inner  # type: ignore[return-value]

    return wrap


def start_run() -> None:
    """Start timing a run: the first in this process counts its start-up as "startup"; a
    later one (tests, a notebook) starts afresh from now."""
    global _origin
    first = _origin is None
    reset()
    _origin = _STARTED if first else time.monotonic()
    _totals["startup"] = max(time.monotonic() - _origin, 0.0)
    _counts["startup"] = 1


def reset() -> None:
    """Forget every phase timed so far."""
    _totals.clear()
    _counts.clear()
    _stack.clear()


def snapshot() -> dict[str, Any]:
    """Seconds per phase so far, the wall time since the process started, and shares."""
    wall = time.monotonic() - (_STARTED if _origin is None else _origin)
    seconds = {name: round(_totals[name], 3) for name in _ordered()}
    other = max(wall - sum(_totals.values()), 0.0)
    seconds["other"] = round(other, 3)
    shares = {name: round(s / wall, 4) if wall > 0 else 0.0 for name, s in seconds.items()}
    not_training = 1.0 - shares.get("train", 0.0)
    return {
        "wall_seconds": round(wall, 3),
        "seconds": seconds,
        "share": shares,
        "counts": {name: _counts.get(name, 0) for name in _ordered()},
        "not_training_share": round(not_training, 4),
    }


def _ordered() -> list[str]:
    known = [p for p in PHASES if p in _totals]
    return known + sorted(set(_totals) - set(known))


def format_profile(profile: dict[str, Any]) -> str:
    """A small table: seconds and share of the wall time per phase."""
    lines = [f"{'phase':<12}{'seconds':>9}{'share':>8}{'calls':>7}"]
    counts = profile.get("counts", {})
    for name, seconds in profile["seconds"].items():
        share = profile["share"].get(name, 0.0)
        calls = counts.get(name, "")
        lines.append(f"{name:<12}{seconds:>9.2f}{share:>8.1%}{calls!s:>7}")
    lines.append(f"{'wall':<12}{profile['wall_seconds']:>9.2f}{1:>8.0%}")
    lines.append(f"not training: {profile['not_training_share']:.1%} of the wall time")
    return "\n".join(lines)


__all__ = [
    "PHASES",
    "PROFILE_FILE",
    "format_profile",
    "phase",
    "reset",
    "snapshot",
    "start_run",
    "timed",
]
