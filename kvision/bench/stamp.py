"""Benchmark tables as Markdown, stamped with where, when and how they were measured.

Measured figures in the docs come from the script that measured them: every benchmark's
``--markdown OUT`` writes its table with the machine (CPU model, cores, GPU), the date, the
command line and the library versions, so a table pasted into a page carries its origin.
"""

from __future__ import annotations

import os
import platform
import shlex
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path


def cpu_model() -> str:
    """The CPU's model name (Linux /proc/cpuinfo; ``platform.processor()`` elsewhere)."""
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as fh:
            for line in fh:
                if line.lower().startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine() or "unknown CPU"


def _versions() -> str:
    from importlib import metadata

    parts = [f"Python {platform.python_version()}"]
    for name in ("torch", "keras", "kvision"):
        try:
            parts.append(f"{name} {metadata.version(name)}")
        except metadata.PackageNotFoundError:
            continue
    return ", ".join(parts)


def _gpu() -> str | None:
    torch = sys.modules.get("torch")  # never import torch just to say there is no GPU
    if torch is not None and torch.cuda.is_available():
        return torch.cuda.get_device_name(0)
    return None


def stamp_lines(command: list[str] | None = None) -> list[str]:
    """Markdown bullet lines: machine, date (UTC), command, software versions (the fields
    tests/test_docs.py asks every measured file for)."""
    cores = os.cpu_count() or 0
    machine = f"{cpu_model()}, {cores} cores"
    gpu = _gpu()
    if gpu:
        machine += f", GPU {gpu}"
    argv = command if command is not None else _argv()
    return [
        f"- machine: {machine}",
        f"- date: {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}",
        f"- command: `{shlex.join(argv)}`",
        f"- software: {_versions()}",
    ]


def _argv() -> list[str]:
    """This process's command line as typed: ``kvision ...`` for the console script or
    ``python -m kvision``, ``python benchmarks/x.py ...`` for a script."""
    first = Path(sys.argv[0])
    if first.name in ("kvision", "kvision-tui") or first.parts[-2:] == ("kvision", "__main__.py"):
        return ["kvision", *sys.argv[1:]]
    return ["python", *sys.argv] if first.suffix == ".py" else [first.name, *sys.argv[1:]]


def write_markdown(
    path: str | os.PathLike,
    title: str,
    body: str,
    command: list[str] | None = None,
    note: str | None = None,
) -> Path:
    """Write ``body`` under a heading and the stamp to ``path`` (atomically); ``note`` (e.g.
    "the machine was shared") goes with the stamp."""
    from kvision.runs import atomic_write_text

    lines = [*stamp_lines(command), *([f"- note: {note}"] if note else [])]
    text = "\n".join([f"## {title}", "", *lines, "", body.rstrip(), ""])
    return atomic_write_text(Path(path), text)


def publish(table: str, title: str, markdown: str | None, note: str | None = None) -> None:
    """A benchmark's last step: print ``table``; with ``markdown`` (its ``--markdown OUT``)
    also write it there under ``title`` and the stamp (see write_markdown)."""
    print(table)
    if markdown:
        write_markdown(markdown, title, table, note=note)


def rounds_parser(doc: str, rounds: int):
    """The command line every alternating-rounds benchmark shares: ``--rounds N`` (default
    ``rounds``), ``--markdown OUT`` and ``--note``; a benchmark adds its own options."""
    import argparse

    parser = argparse.ArgumentParser(description=doc.split("\n\n")[0])
    parser.add_argument(
        "--rounds", type=int, default=rounds, help=f"alternating rounds (default {rounds})"
    )
    parser.add_argument("--markdown", metavar="OUT", help="also write the table, stamped")
    parser.add_argument("--note", help="with --markdown: a note under the stamp")
    return parser


def rounds_main(doc: str, title: str, table_of: Callable[[int], str], rounds: int) -> int:
    """The command line of a benchmark whose table comes from N alternating rounds
    (:func:`rounds_parser`); prints the table ``table_of(N)`` and, with ``--markdown``,
    writes it under ``title`` (see publish)."""
    args = rounds_parser(doc, rounds).parse_args()
    publish(table_of(args.rounds), title, args.markdown, args.note)
    return 0


def two_ways_table(ways: tuple[str, str], agreed: str, rows: list[dict]) -> str:
    """The Markdown table of a benchmark timing two ways of one job per model: each way's
    median seconds over the rounds, and whether the two gave the same result in all of them.
    ``rows``: {"model", "seconds": [way 1's list, way 2's list], "same": bool}."""
    lines = [
        f"| model | {ways[0]}, median s | {ways[1]}, median s | {agreed} |",
        "|---|---:|---:|---|",
    ]
    for row in rows:
        a, b = (statistics.median(seconds) for seconds in row["seconds"])
        lines.append(f"| {row['model']} | {a:.3f} | {b:.3f} | {'yes' if row['same'] else 'no'} |")
    return "\n".join(lines)
