"""Measured figures as Markdown files the docs include: each stamped with the machine, the
date and the command that measured it, so no figure in the docs is typed by hand.

Light (standard library only): ``benchmarks/tui_startup.py`` uses it without Keras or torch.
"""

from __future__ import annotations

import os
import platform
import shlex
import subprocess
import sys
from datetime import UTC, datetime
from importlib import metadata
from pathlib import Path

from kvision.runs.atomic import atomic_write_text


def machine() -> str:
    """CPU model and core count, the GPU when torch is loaded and sees one, the OS."""
    parts = [f"{_cpu_model()}, {os.cpu_count()} CPU cores"]
    torch = sys.modules.get("torch")
    if torch is not None and torch.cuda.is_available():
        parts.append(f"GPU {torch.cuda.get_device_name(0)}")
    parts.append(f"{platform.system()} {platform.release()}")
    return "; ".join(parts)


def versions() -> str:
    """Python and the installed versions of the packages that decide speed."""
    found = [f"Python {platform.python_version()}"]
    for name in ("kvision", "torch", "keras", "opencv-python-headless", "textual"):
        try:
            found.append(f"{name} {metadata.version(name)}")
        except metadata.PackageNotFoundError:
            continue
    return ", ".join(found)


def stamp(argv: list[str] | None = None, note: str | None = None) -> str:
    """The lines that say where, when and how a figure was measured."""
    command = shlex.join(argv if argv is not None else _argv())
    lines = [f"- machine: {machine()}", f"- software: {versions()}",
             f"- date: {datetime.now(UTC).strftime('%Y-%m-%d %H:%M UTC')}, commit {_commit()}",
             f"- command: `{command}`"]
    if note:
        lines.append(f"- note: {note}")
    return "\n".join(lines) + "\n"


def write_markdown(path: str | os.PathLike, body: str, *, note: str | None = None,
                   argv: list[str] | None = None) -> Path:
    """``body`` followed by the stamp, written atomically to ``path``."""
    return atomic_write_text(Path(path), body.rstrip() + "\n\n" + stamp(argv, note))


def _argv() -> list[str]:
    """This process's command line as typed: ``kvision ...`` rather than the script's path."""
    first = Path(sys.argv[0])
    if first.name in ("kvision", "kvision-tui") or first.parts[-2:] == ("kvision", "__main__.py"):
        return ["kvision", *sys.argv[1:]]  # the console script, or python -m kvision
    return ["python", *sys.argv] if first.suffix == ".py" else sys.argv


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def _commit() -> str:
    try:
        out = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True,
                             text=True, timeout=10, cwd=Path(__file__).parent)
    except (OSError, subprocess.TimeoutExpired):
        return "unknown"
    return out.stdout.strip() or "unknown"
