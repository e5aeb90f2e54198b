"""The `kvision` command line. Thin: each subcommand calls one library function.

Only argparse and kvision's light modules are imported here, so `kvision --help` answers
without loading Keras or torch; handlers import what they need.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Callable
from pathlib import Path

from kvision import __version__
from kvision.errors import (
    NESTED_TOO_DEEP,
    KvisionError,
    RecipeErrors,
    os_error_message,
    printable,
)
from kvision.keyvalue import add_set_option

Handler = Callable[[argparse.Namespace], int]


def build_parser() -> argparse.ArgumentParser:
    """The full argument parser (no heavy imports)."""
    parser = argparse.ArgumentParser(
        prog="kvision",
        description="Run, inspect and compare CNN image-classification experiments from TOML recipes.",
        epilog="Exit codes: 0 success, 1 unexpected failure (traceback in the run's run.log), "
        "2 bad input, 75 disk full (resumable once space is freed), "
        "130/143 stopped by Ctrl-C/SIGTERM (resumable).",
    )
    parser.add_argument("--version", action="version", version=f"kvision {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    _add_run(sub)
    _add_validate(sub)
    _add_show(sub)
    _add_ls(sub)
    p = sub.add_parser("datasets", help="list dataset sources and built-in datasets")
    p.set_defaults(handler=_datasets)
    for module in (
        "kvision.models.commands",
        "kvision.data.commands",
        "kvision.data.cache_commands",
        "kvision.insight.commands",
        "kvision.sweep.commands",
        "kvision.bench.commands",
        "kvision.insight.compare_commands",
        "kvision.portable.commands",
        "kvision.recipe.commands",
    ):
        _register_optional(sub, module)
    return parser


def _register_optional(sub: argparse._SubParsersAction, module: str) -> None:
    """Subcommands owned by other packages, registered through their light `register()`."""
    import importlib

    try:
        importlib.import_module(module).register(sub)
    except ModuleNotFoundError as exc:
        if not module.startswith(exc.name or "?"):
            raise


def _add_run(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "run",
        help="run a recipe (or --resume a stopped run)",
        description="Run every model x arm of a recipe into a new run directory.",
    )
    p.add_argument(
        "recipe",
        nargs="?",
        help="recipe TOML file, or the name of a shipped recipe "
        "(kvision recipes lists them; optional with --resume)",
    )
    _add_set(p)
    p.add_argument(
        "--runs-dir", help="folder for run directories (default: the recipe's output.runs_dir)"
    )
    p.add_argument("--run-dir", help="exact run directory to create (used by kvision-tui)")
    p.add_argument(
        "--resume", metavar="RUN_DIR", help="continue a stopped run from its last completed epoch"
    )
    p.add_argument(
        "--force",
        action="store_true",
        help="with --resume: resume even if the recipe file changed, or if the run "
        "seems to run on another machine that is down",
    )
    p.add_argument(
        "--gpus",
        type=int,
        metavar="N",
        help="train each trial data-parallel over N processes per machine "
        "(torchrun: NCCL on GPUs, gloo on CPU)",
    )
    p.add_argument(
        "--nnodes",
        type=int,
        default=1,
        metavar="N",
        help="machines in this data-parallel run: run the same command on each, "
        "with its own --node-rank (the run directory must be on a shared filesystem)",
    )
    p.add_argument(
        "--node-rank",
        type=int,
        default=0,
        metavar="R",
        help="this machine's number, 0..N-1; node 0 writes the run directory",
    )
    p.add_argument(
        "--rdzv-endpoint",
        metavar="HOST:PORT",
        help="where the machines meet (torchrun's rendezvous): node 0's address and a free port",
    )
    p.add_argument(
        "--repeats",
        type=int,
        help="run every trial with N seeds (same as --set experiment.repeats=N)",
    )
    p.add_argument(
        "--profile",
        action="store_true",
        help="print where the wall time went (start-up, data, blur, training, "
        "evaluation, insight, checkpoints, export; also in the run's profile.json)",
    )
    p.set_defaults(handler=_run)


def _add_set(p: argparse.ArgumentParser) -> None:
    add_set_option(p, "override a recipe key, e.g. --set training.batch_size=64 (repeatable)")


def _add_validate(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("validate", help="check a recipe and print it resolved")
    p.add_argument("recipe")
    _add_set(p)
    p.set_defaults(handler=_validate)


def _add_show(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("show", help="print a run's report tables")
    p.add_argument("run_dir")
    p.add_argument(
        "--format",
        choices=("auto", "text", "markdown"),
        default="auto",
        help="text: tables drawn for a terminal; markdown: the report's Markdown as is "
        "(for a file or a pipe); auto (default): text on a terminal, else markdown",
    )
    p.set_defaults(handler=_show)


def _add_ls(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("ls", help="list runs")
    p.add_argument("--runs-dir", default="runs")
    p.set_defaults(handler=_ls)


# -- handlers -------------------------------------------------------------------------------
def _run(args: argparse.Namespace) -> int:
    from kvision.train.runner import resume_run, run_recipe

    for flag, value in (("--gpus", args.gpus), ("--repeats", args.repeats)):
        if value is not None and value < 1:
            raise KvisionError(f"{flag} must be at least 1, got {value}.")
    launched, notes = _data_parallel(args)
    if launched is not None:
        return launched
    overrides = list(args.overrides) + (
        [f"experiment.repeats={args.repeats}"] if args.repeats is not None else []
    )
    if args.resume:
        result = resume_run(
            args.resume, recipe_path=args.recipe, overrides=overrides, force=args.force, notes=notes
        )
    elif not args.recipe:
        raise KvisionError("kvision run needs a RECIPE file (or --resume RUN_DIR).")
    else:
        from kvision.recipe.shipped import resolve

        result = run_recipe(
            resolve(args.recipe),
            overrides,
            runs_dir=args.runs_dir,
            run_dir=args.run_dir,
            notes=notes,
        )
    if args.profile:
        _print_profile(result.run_dir)
    return result.exit_code


def _data_parallel(args: argparse.Namespace) -> tuple[int | None, list[str]]:
    """Become torchrun when asked for several processes (the exit code when exec is stubbed),
    or (None, notes): train in this process, saying why in the run's warnings."""
    multi = (args.gpus or 1) > 1 or args.nnodes != 1 or args.node_rank
    if not multi or "WORLD_SIZE" in os.environ:
        return None, []
    backend = os.environ.get("KERAS_BACKEND", "torch")
    if backend == "torch":
        from kvision.train.launch import Nodes, launch

        return launch(
            args.gpus or 1, sys.argv[1:], Nodes(args.nnodes, args.node_rank, args.rdzv_endpoint)
        ), []
    # Data parallel is torchrun + torch DDP; other backends train in this one process.
    return None, [
        f"--gpus/--nnodes ignored: data-parallel training needs the torch backend "
        f"(KERAS_BACKEND is {backend}); training in one process."
    ]


def _print_profile(run_dir: Path) -> None:
    from kvision.runs.phases import PROFILE_FILE, format_profile, snapshot

    path = Path(run_dir) / PROFILE_FILE
    # A run that did not finish wrote no profile.json: show the process's phases so far.
    profile = json.loads(path.read_text("utf-8")) if path.is_file() else snapshot()
    print(format_profile(profile))


def _validate(args: argparse.Namespace) -> int:
    from kvision.recipe import dump_toml, load_recipe
    from kvision.recipe.shipped import resolve

    print(dump_toml(load_recipe(resolve(args.recipe), args.overrides)), end="")
    print(f"# {args.recipe}: valid", file=sys.stderr)
    return 0


def _show(args: argparse.Namespace) -> int:
    from kvision.runs import RunReader, is_run_dir
    from kvision.runs.reader import damage_guard
    from kvision.runs.show import render_terminal, show_markdown

    if not is_run_dir(args.run_dir):
        raise KvisionError(
            f"'{args.run_dir}' is not a kvision run directory (no meta.json / events.jsonl)."
        )
    for problem in RunReader(args.run_dir).problems():
        print(f"kvision: warning: {problem}", file=sys.stderr)
    with damage_guard(args.run_dir):
        text = show_markdown(args.run_dir)
    as_text = args.format == "text" or (args.format == "auto" and sys.stdout.isatty())
    # its text comes from the run's files: printed with control characters escaped
    print(printable(render_terminal(text) if as_text else text, one_line=False))
    return 0


def _ls(args: argparse.Namespace) -> int:
    from kvision.runs.listing import format_runs

    print(
        format_runs(
            args.runs_dir, warn=lambda text: print(f"kvision: warning: {text}", file=sys.stderr)
        )
    )
    return 0


def _datasets(args: argparse.Namespace) -> int:
    from kvision.recipe.schema_data import BUILTIN_NAMES, SOURCE_KINDS

    print('Sources ([data] source = "PREFIX:..."):')
    for prefix, text in SOURCE_KINDS.items():
        print(f"  {prefix + ':':9} {text}")
    print(
        "Built-in datasets (no network needed): " + ", ".join(f"builtin:{n}" for n in BUILTIN_NAMES)
    )
    return 0


def main(argv: list[str] | None = None) -> int:
    """Entry point of the `kvision` console script."""
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "handler", None):
        parser.print_help()
        return 0
    try:
        return args.handler(args)
    except RecipeErrors as exc:
        from kvision.recipe import recipe_error_text

        print(printable(recipe_error_text(exc.errors), one_line=False), file=sys.stderr)
        return 2
    except KvisionError as exc:  # messages quote file contents: printed with controls escaped
        print(f"kvision: error: {printable(exc, one_line=False)}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("kvision: interrupted", file=sys.stderr)
        return 130
    except RecursionError:  # a recipe, --set value or JSON file nested thousands deep
        print(f"kvision: error: {NESTED_TOO_DEEP}", file=sys.stderr)
        return 2
    except OSError as exc:
        return _os_error(exc)


def _os_error(exc: OSError) -> int:
    """A full disk (exit 75), a path the user gave that cannot be used (exit 2, naming the
    path and the cause), or a real failure (raised, with its traceback)."""
    from kvision.runs.disk_space import EXIT_DISK_FULL, disk_full_cause, disk_full_message

    full = disk_full_cause(exc)
    if full is not None:
        again = "run the same command again"
        print(f"kvision: error: {disk_full_message(full, next_step=again)}", file=sys.stderr)
        return EXIT_DISK_FULL
    message = os_error_message(exc)
    if message is None:
        raise exc
    print(f"kvision: error: {message}", file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main())
