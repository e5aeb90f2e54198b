"""`kvision compare RUN RUN ...`: registered by kvision.cli through :func:`register`.

Only argparse here; the tables come from :mod:`kvision.runs.compare` and the PNG from
:mod:`kvision.insight.curves` (matplotlib), loaded when the command runs. No Keras.
"""

from __future__ import annotations

import argparse
import sys


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add ``kvision compare RUN RUN ... [--png [PATH]] [--force]``."""
    p = subparsers.add_parser(
        "compare",
        help="compare runs: what their recipes change, final scores, paired differences",
        description="Print what each run's recipe changes against the first run's (the "
        "baseline A), the final scores side by side and, when the recipes differ in nothing "
        "but the seed, the paired differences of trials with the same model, arm and repeat, "
        "with a 95% interval per trial type. The validation curves (one panel per model) "
        "are drawn only when asked (--png). Works over SSH: nothing but text and a file.",
    )
    p.add_argument("runs", nargs="+", metavar="RUN", help="run directories (two or more)")
    p.add_argument(
        "--png",
        nargs="?",
        const="",
        metavar="PATH",
        help="also draw the validation curves: into PATH, or with no PATH into the folder "
        "that holds the first run (compare-<A>-vs-<B>.png)",
    )
    p.add_argument(
        "--force",
        action="store_true",
        help="compute paired differences even across recipes that differ in more than the "
        "seed (they then mix the seed's share with the effect of the changes)",
    )
    p.add_argument("--no-png", action="store_true", help=argparse.SUPPRESS)  # the default now
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
    # names come from the runs' files: printed with control characters escaped
    print(printable(format_comparison(comparison, force=args.force), one_line=False))
    if args.png is None or args.no_png:
        return 0
    from kvision.insight.curves import plot_runs_comparison

    names = [Path(r).name for r in args.runs]
    default = Path(args.runs[0]).parent / f"compare-{names[0]}-vs-{'-'.join(names[1:3])}.png"
    target = Path(args.png) if args.png else default
    written = plot_runs_comparison(args.runs, target)
    print(
        f"\nCurves: {written}"
        if written
        else "\nCurves: no epochs in these runs yet, no PNG written."
    )
    return 0
