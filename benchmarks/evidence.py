"""The evidence tables: repeated runs' means and paired arm differences with 95% intervals.

Reads run directories written by ``kvision run ... --repeats N`` (finished, interrupted or
still running: only finished trials count, and a difference pairs only the repeats both arms
finished) and prints one markdown section per run, stamped with the machine, the date and the
command that made the run. The figures come from the runs' events through
``kvision.runs.repeats``, the same code as the Repeats section of each run's report.md.

    python benchmarks/evidence.py RUN_DIR [RUN_DIR ...] [--cells "blurred test,clear test"] \
        --markdown docs/measured/evidence.md

docs/methods.md includes docs/measured/evidence.md as written (the docs' ``measured`` marker).
"""

from __future__ import annotations

import argparse
import shlex
from pathlib import Path

from kvision.bench.stamp import cpu_model, stamp_lines
from kvision.runs import RunReader, is_run_dir
from kvision.runs.atomic import atomic_write_text
from kvision.runs.repeats import cell_summaries, final_groups, paired_differences


def _command(meta: dict) -> str:
    argv = list(meta.get("argv") or [])
    if argv and argv[0].endswith("__main__.py"):
        argv[0] = "kvision"
    return shlex.join(argv)


def _data(reader: RunReader) -> str:
    loaded = reader.of("data_loaded")
    if not loaded:
        return "?"
    d = loaded[-1]
    counts = ", ".join(f"{k} {v}" for k, v in d.get("counts", {}).items())
    return f"{d.get('dataset')} ({counts}; image {'x'.join(map(str, d.get('image_shape', [])))})"


def section(run_dir: Path, cells: list[tuple[str, str]]) -> str:
    """One run's stamp, its means per (model, arm) and its paired differences."""
    reader = RunReader(run_dir)
    meta = reader.meta()
    groups = final_groups(reader)
    repeats = reader.recipe().get("experiment", {}).get("repeats", 1)
    planned = {(i.model, i.arm) for i in reader.identities().values()}
    done = sum(all(r in groups.get(g, {}) for g in planned) for r in range(repeats))
    lines = [
        f"### {_data(reader)}",
        "",
        f"- run `{run_dir.name}` ({reader.status()}), {done} of {repeats} repeats "
        f"finished in every arm; started {meta.get('started')} on {meta.get('host')} "
        f"({cpu_model()}, {meta.get('threads')} threads), kvision {meta.get('kvision')}, "
        f"torch {meta.get('torch')}",
        f"- command: `{_command(meta)}`",
        "",
        "| model | arm | cell | mean accuracy (%) | std | n |",
        "|---|---|---|---:|---:|---:|",
    ]
    lines += [
        f"| {c.model} | {c.arm} | {c.cell[0]} {c.cell[1]} | {100 * c.mean:.2f} | "
        f"{100 * c.std:.2f} | {c.n} |"
        for c in cell_summaries(groups)
        if c.cell in cells
    ]
    lines += [
        "",
        "Paired by repeat (same initial weights and data order); 95% interval from "
        "Student's t over the per-repeat differences.",
        "",
        "| model | difference | cell | mean (pp) | 95% CI (pp) | n | interval excludes 0 |",
        "|---|---|---|---:|---|---:|---|",
    ]
    for d in paired_differences(reader):
        if d.cell not in cells:
            continue
        interval = "–" if d.n < 2 else f"[{100 * d.low:+.2f}, {100 * d.high:+.2f}]"
        verdict = "–" if d.n < 2 else ("yes" if d.excludes_zero else "no")
        lines.append(
            f"| {d.model} | {d.arm} − {d.other} | {d.cell[0]} {d.cell[1]} | "
            f"{100 * d.mean:+.2f} | {interval} | {d.n} | {verdict} |"
        )
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("runs", nargs="+", type=Path, help="run directories")
    parser.add_argument(
        "--markdown",
        type=Path,
        metavar="FILE",
        help="also write the markdown to FILE (e.g. docs/measured/evidence.md)",
    )
    parser.add_argument(
        "--cells",
        default="blurred test,clear test",
        help="condition-split cells to show, comma-separated",
    )
    args = parser.parse_args(argv)
    bad = [str(r) for r in args.runs if not is_run_dir(r)]
    if bad:
        parser.exit(2, f"error: not a run directory: {', '.join(bad)}\n")
    cells = [tuple(c.strip().split(" ", 1)) for c in args.cells.split(",")]
    command = ["python", "benchmarks/evidence.py", *map(str, argv)] if argv is not None else None
    stamp = "\n".join(["## Repeated runs (benchmarks/evidence.py)", "", *stamp_lines(command), ""])
    text = "\n".join([stamp, *(section(r, cells) for r in args.runs)])
    print(text)
    if args.markdown:
        atomic_write_text(args.markdown, text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
