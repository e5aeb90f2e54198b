"""`kvision sweep`: registered by kvision.cli through :func:`register` (argparse only here)."""

from __future__ import annotations

import argparse

from kvision.keyvalue import add_set_option


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add ``kvision sweep RECIPE [--set ...] [--sweep-dir DIR] [--parallel N] [--trials N]
    [--resume DIR] [--storage URL [--study NAME]]`` and ``kvision sweep report URL|SWEEP_DIR``."""
    p = subparsers.add_parser(
        "sweep",
        help="run a recipe's [sweep]: many trials, ranked by an objective",
        usage="kvision sweep [RECIPE] [options]\n       kvision sweep report URL|SWEEP_DIR [--study NAME] [--out DIR]",
        description="Run the recipe's [sweep] section with Optuna: each trial is a normal run "
        "directory under SWEEP_DIR/trials/; results go to sweep.md, sweep.json and "
        "sweep.png. A stopped or killed sweep continues with --resume SWEEP_DIR. "
        "With --storage URL the study lives in a database, and the same command on "
        "other machines joins it: they share the budget, and a trial whose machine "
        "died is retried (resumed from its run directory when reachable). "
        "`kvision sweep report URL|SWEEP_DIR` rebuilds the ranked report from any machine.",
    )
    p.add_argument(
        "recipe", nargs="?", help="recipe TOML file with a [sweep] section (optional with --resume)"
    )
    p.add_argument("target", nargs="?", help=argparse.SUPPRESS)  # kvision sweep report TARGET
    add_set_option(
        p,
        "override a recipe key for every trial, e.g. --set data.source=folder:~/data (repeatable)",
    )
    p.add_argument(
        "--sweep-dir",
        help="sweep directory (default: RUNS_DIR/<time>-<name>-sweep); "
        "an existing sweep there is resumed",
    )
    p.add_argument(
        "--parallel", type=int, help="trials at once on this machine (overrides sweep.parallel)"
    )
    p.add_argument(
        "--trials",
        type=int,
        help="trial budget, for all machines together (overrides sweep.trials)",
    )
    p.add_argument("--resume", metavar="SWEEP_DIR", help="continue a stopped or killed sweep")
    p.add_argument(
        "--storage",
        metavar="URL",
        help="share the study through a database: an SQLAlchemy URL such as "
        "postgresql://user@host:5432/db (pip install 'kvision[postgres]'), "
        "mysql://... or sqlite:////shared/sweeps.db",
    )
    p.add_argument(
        "--study",
        metavar="NAME",
        help="study name in the database (default: the experiment's name)",
    )
    p.add_argument(
        "--heartbeat",
        type=int,
        metavar="S",
        help="with --storage: seconds between a worker's heartbeats for its trials (default 30)",
    )
    p.add_argument(
        "--grace",
        type=int,
        metavar="S",
        help="with --storage: seconds without a heartbeat after which a trial is "
        "retried by another worker (default 4 heartbeats)",
    )
    p.add_argument(
        "--out",
        metavar="DIR",
        help="with report: where to write sweep.md/json/png "
        "(default: the sweep directory, or . for a URL)",
    )
    p.set_defaults(handler=_sweep)


def _sweep(args: argparse.Namespace) -> int:
    from kvision.errors import KvisionError

    if args.recipe == "report":
        if not args.target:
            raise KvisionError(
                "kvision sweep report needs a database URL or a sweep directory: "
                "kvision sweep report URL|SWEEP_DIR [--study NAME] [--out DIR]."
            )
        from kvision.sweep.summary import report_sweep

        print(report_sweep(args.target, study=args.study, out=args.out))
        return 0
    if args.target:
        raise KvisionError(f"kvision sweep takes one RECIPE, got also '{args.target}'.")
    from kvision.sweep.study import run_sweep

    result = run_sweep(
        args.recipe,
        args.overrides,
        sweep_dir=args.sweep_dir,
        resume=args.resume,
        trials=args.trials,
        parallel=args.parallel,
        storage=args.storage,
        study=args.study,
        heartbeat=args.heartbeat,
        grace=args.grace,
    )
    return result.exit_code
