"""``kvision data``: load a dataset the way a recipe (or a bare source) says and report it.

Only argparse is imported at registration, so ``kvision --help`` stays fast; the handler
imports the data stack.
"""

from __future__ import annotations

import argparse

from kvision.keyvalue import add_set_option

DATA_HELP = """\
Load a dataset exactly as a run would and print what it holds: classes, images per split and
class (before and after balancing), files skipped with the reason, the cache, the
normalisation constants. Nothing is trained.

  kvision data recipes/marine_species.toml --set data.source="folder:~/data/marine"
  kvision data folder:~/data/pets --image-size 128 128
  kvision data builtin:fashion7k
"""


def register(subparsers) -> argparse.ArgumentParser:
    """Add the ``data`` command to the CLI's subparsers."""
    p = subparsers.add_parser(
        "data",
        help="load a recipe's dataset (or a source) and report counts, classes and skipped files",
        description=DATA_HELP,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("target", help="recipe TOML file, or a source such as folder:DIR")
    add_set_option(p, "recipe override (repeatable), e.g. data.image_size=[64,64]")
    p.add_argument(
        "--image-size",
        type=int,
        nargs=2,
        metavar=("H", "W"),
        help="with a bare source: resize to H x W",
    )
    p.add_argument("--channels", type=int, choices=(1, 3), help="with a bare source: 1 or 3")
    p.add_argument("--seed", type=int, help="split seed (default: the recipe's, or 42)")
    p.add_argument(
        "--max-skipped",
        type=int,
        default=20,
        help="skipped files listed (default 20; all are counted)",
    )
    p.set_defaults(handler=run)
    return p


def run(args: argparse.Namespace) -> int:
    """Handler of ``kvision data``."""
    from kvision.data.describe import describe_target

    print(
        describe_target(
            args.target,
            overrides=args.overrides,
            image_size=args.image_size,
            channels=args.channels,
            seed=args.seed,
            max_skipped=args.max_skipped,
        )
    )
    return 0
