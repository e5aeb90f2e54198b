"""The main job end to end: ``kvision run RECIPE`` in a fresh runs folder, timed, with its results.

Prints (and with ``--markdown OUT`` writes, stamped with machine, date and command) the
wall time of the whole command, the time inside the run, the peak memory of the run
process, its console output as the user sees it, and the final accuracy table of its
report. The docs' main-job figures come from here, never typed by hand.

    python benchmarks/main_job.py [RECIPE] [--set KEY=VALUE ...] [--markdown OUT]
"""

from __future__ import annotations

import argparse
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path


def run_once(recipe: str, overrides: list[str], runs_dir: Path) -> tuple[float, str, Path]:
    """Wall seconds, console output and run directory of one ``kvision run``."""
    cmd = [sys.executable, "-m", "kvision", "run", recipe, "--runs-dir", str(runs_dir)]
    for item in overrides:
        cmd += ["--set", item]
    start = time.perf_counter()
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=3600)
    wall = time.perf_counter() - start
    if done.returncode != 0:
        raise SystemExit(f"kvision run exited {done.returncode}:\n{done.stdout}{done.stderr}")
    from kvision.runs import find_runs

    return wall, done.stdout, find_runs(runs_dir)[-1]


def report(recipe: str, wall: float, console: str, run_dir: Path) -> str:
    """Markdown: times, memory, the console and the final table."""
    from kvision.runs import RunReader
    from kvision.runs.result_tables import result_sections

    reader = RunReader(run_dir)
    inside = reader.of("run_finished")[-1]["seconds"]
    peak_mib = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024  # kB on Linux
    heading, table = result_sections(reader)[0]
    return (
        f"`kvision run {recipe}`: {wall:.1f} s for the whole command, {inside:.1f} s inside "
        f"the run, peak RSS of the run process {peak_mib:,.0f} MiB.\n\n"
        f"Console output (no TTY):\n\n```text\n{console.rstrip()}\n```\n\n"
        f"{heading}:\n\n{table}{_phases(run_dir)}"
    )


def _phases(run_dir: Path) -> str:
    """Where the run's time went (its profile.json, kvision.runs.phases), if it has one."""
    import json

    from kvision.runs.phases import PROFILE_FILE, format_profile

    path = run_dir / PROFILE_FILE
    if not path.is_file():
        return ""
    profile = format_profile(json.loads(path.read_text("utf-8")))
    return f"\n\nWhere the time went ({PROFILE_FILE}):\n\n```text\n{profile}\n```\n"


def main() -> None:
    """Run the recipe once and print (or write) what it gave."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("recipe", nargs="?", default="recipes/naive_vs_expert.toml")
    parser.add_argument(
        "--set",
        dest="overrides",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="recipe override (repeatable)",
    )
    parser.add_argument(
        "--markdown",
        metavar="OUT",
        help="also write the results to OUT, stamped with machine, date, command",
    )
    parser.add_argument("--note", help="with --markdown: a note under the results")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        wall, console, run_dir = run_once(args.recipe, args.overrides, Path(tmp))
        text = report(args.recipe, wall, console, run_dir)
    print(text, end="")
    if args.markdown:
        from kvision.bench.stamp import write_markdown

        write_markdown(args.markdown, "The main job (benchmarks/main_job.py)", text, note=args.note)


if __name__ == "__main__":
    main()
