"""`kvision sweep`: registered by kvision.cli through :func:`register` (argparse only here)."""

from __future__ import annotations

import argparse

from kvision.keyvalue import add_set_option


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add ``kvision sweep RECIPE [--set ...] [--sweep-dir DIR] [--parallel N] [--trials N] [--resume DIR]``."""
    p = subparsers.add_parser(
        "sweep", help="run a recipe's [sweep]: many trials, ranked by an objective",
        description="Run the recipe's [sweep] section with Optuna: each trial is a normal run "
                    "directory under SWEEP_DIR/trials/; results go to sweep.md, sweep.json and "
                    "sweep.png. A stopped or killed sweep continues with --resume SWEEP_DIR.")
    p.add_argument("recipe", nargs="?", help="recipe TOML file with a [sweep] section (optional with --resume)")
    add_set_option(p, "override a recipe key for every trial, e.g. --set data.source=folder:~/data "
                      "(repeatable)")
    p.add_argument("--sweep-dir", help="sweep directory (default: RUNS_DIR/<time>-<name>-sweep); "
                                       "an existing sweep there is resumed")
    p.add_argument("--parallel", type=int, help="trials at once (overrides sweep.parallel)")
    p.add_argument("--trials", type=int, help="trial budget (overrides sweep.trials)")
    p.add_argument("--resume", metavar="SWEEP_DIR", help="continue a stopped or killed sweep")
    p.set_defaults(handler=_sweep)


def _sweep(args: argparse.Namespace) -> int:
    from kvision.sweep.study import run_sweep

    result = run_sweep(args.recipe, args.overrides, sweep_dir=args.sweep_dir, resume=args.resume,
                       trials=args.trials, parallel=args.parallel)
    return result.exit_code
