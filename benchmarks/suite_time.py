"""The test suite's wall time: the quick part (``-m "not slow"``) and the whole suite, as the
README's commands run them, with the slowest tests of each.

    python benchmarks/suite_time.py [--only PART ...] [--markdown OUT] [--note TEXT]
                                    [TEST ...]

PART is ``quick`` (``-m "not slow"``, in one process), ``whole`` (the README's command and
CI's: the whole suite on two pytest-xdist workers, ``-n 2 --dist worksteal``; the two by
default) or ``serial``: the whole suite in one process, for comparison (docs/architecture.md,
"Tests").

Each part runs once, as ``python -m pytest -q ... --durations=25`` in a child process from the
checkout, timed from the outside (``time.perf_counter``). The machine's load average before
and after each part goes with its time: on a shared machine the figure says little without
it, and so does the CPU time of the child and everything it waited for (user + system),
which a busy machine changes far less than the wall time. ``TEST ...`` (files or node ids) runs only those, to try the script out; the docs'
figure (``--markdown docs/measured/test_suite.md``) is of the whole, with no TEST given.
"""

from __future__ import annotations

import argparse
import os
import re
import resource
import shlex
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PARTS = {
    "quick": ["-m", "not slow"],
    "whole": ["-n", "2", "--dist", "worksteal"],
    "serial": [],
}
DEFAULT_PARTS = ["quick", "whole"]
DURATION = re.compile(r"^([\d.]+)s (call|setup|teardown) +(\S+)$")
SUMMARY = re.compile(r"^=*\s*(.*?) in [\d.]+s")


@dataclass
class Timed:
    """One part's run: its command, wall seconds, pytest's summary and slowest tests."""

    part: str
    command: list[str]
    seconds: float
    cpu: float
    exit_code: int
    summary: str
    slowest: list[tuple[float, str, str]]
    load: tuple[float, float]


def run_part(part: str, tests: list[str]) -> Timed:
    """Run one part of the suite in a child process from the checkout, timed."""
    command = [sys.executable, "-m", "pytest", "-q", *PARTS[part], "--durations=25", *tests]
    load_before = os.getloadavg()[0]
    used = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    done = subprocess.run(command, cwd=ROOT, capture_output=True, text=True)
    seconds = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - used.ru_utime) + (after.ru_stime - used.ru_stime)
    lines = done.stdout.splitlines()
    slowest = [
        (float(m.group(1)), m.group(2), m.group(3))
        for m in map(DURATION.match, lines)
        if m is not None
    ]
    summaries = [m.group(1) for m in map(SUMMARY.match, lines) if m is not None]
    shown = ["python", "-m", "pytest", *command[3:]]
    return Timed(
        part,
        shown,
        seconds,
        cpu,
        done.returncode,
        summaries[-1] if summaries else f"exit code {done.returncode}",
        slowest,
        (load_before, os.getloadavg()[0]),
    )


def minutes(seconds: float) -> str:
    """``754.3 s (12:34)``."""
    return f"{seconds:.1f} s ({int(seconds // 60)}:{int(seconds % 60):02d})"


def report(runs: list[Timed]) -> str:
    """Markdown: one line per part, then each part's slowest tests."""
    lines = [
        f"- {r.part} suite: {minutes(r.seconds)} wall, {r.cpu:.0f} CPU seconds, {r.summary}, "
        f"exit code {r.exit_code} "
        f"(load average {r.load[0]:.1f} before, {r.load[1]:.1f} after): `{shlex.join(r.command)}`"
        for r in runs
    ]
    for r in runs:
        lines += ["", f"The {r.part} suite's slowest tests:", "", "| seconds | phase | test |"]
        lines += ["|---:|---|---|"]
        lines += [f"| {s:.2f} | {phase} | `{test}` |" for s, phase, test in r.slowest]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("tests", nargs="*", metavar="TEST", help="only these files or node ids")
    parser.add_argument(
        "--only",
        nargs="+",
        choices=list(PARTS),
        help=f"these parts, in this order, instead of {' and '.join(DEFAULT_PARTS)}",
    )
    parser.add_argument("--markdown", metavar="OUT", help="also write the results to OUT, stamped")
    parser.add_argument("--note", help="with --markdown: a note under the stamp")
    args = parser.parse_args(argv)
    parts = args.only or DEFAULT_PARTS
    runs = [run_part(part, args.tests) for part in parts]
    text = report(runs)
    print(text, end="")
    if args.markdown:
        sys.path.insert(0, str(ROOT))
        from kvision.bench.stamp import write_markdown

        write_markdown(
            args.markdown, "The test suite (benchmarks/suite_time.py)", text, note=args.note
        )
    return max(r.exit_code for r in runs)


if __name__ == "__main__":
    sys.exit(main())
