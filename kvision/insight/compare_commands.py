"""`kvision compare RUN RUN ...`: registered by kvision.cli through :func:`register`.

Only argparse here; the tables come from :mod:`kvision.runs.compare` and the PNG from
:mod:`kvision.insight.curves` (matplotlib), loaded when the command runs. No Keras.
"""

from __future__ import annotations

import argparse
import sys


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add ``kvision compare RUN RUN ... [--png PATH | --no-png]``."""
    p = subparsers.add_parser(
        "compare",
        help="compare runs: final scores, paired differences, overlaid curves PNG",
        description="Print the final scores of two or more runs side by side (the first run "
        "is the baseline A), the paired differences of trials with the same "
        "model, arm and repeat, and write their validation curves overlaid in "
        "one PNG. Works over SSH: nothing but text and a file.",
    )
    p.add_argument("runs", nargs="+", metavar="RUN", help="run directories (two or more)")
    p.add_argument(
        "--png",
        metavar="PATH",
        help="where to write the overlaid curves (default: compare-<A>-vs-<B>.png "
        "in the current folder)",
    )
    p.add_argument("--no-png", action="store_true", help="print the tables only")
    p.set_defaults(handler=_compare)


def _compare(args: argparse.Namespace) -> int:
    from pathlib import Path

    from kvision.errors import printable
    from kvision.runs import RunReader
    from kvision.runs.compare import compare, format_comparison

    comparison = compare(args.runs)
    for run in args.runs:  # what was skipped in a damaged run, said once per run
        for problem in RunReader(run).problems():
            print(f"kvision: warning: {printable(run)}: {problem}", file=sys.stderr)
    print(printable(format_comparison(comparison), one_line=False))  # names from run files
    if args.no_png:
        return 0
    from kvision.insight.curves import plot_runs_comparison

    names = [Path(r).name for r in args.runs]
    target = Path(args.png or f"compare-{names[0]}-vs-{'-'.join(names[1:3])}.png")
    written = plot_runs_comparison(args.runs, target)
    print(
        f"\nCurves: {written}"
        if written
        else "\nCurves: no epochs in these runs yet, no PNG written."
    )
    return 0
