"""``kvision recipes``: list the shipped recipes, or copy one out to edit (argparse only)."""

from __future__ import annotations

import argparse


def register(subparsers) -> None:
    """Add ``recipes`` (list) and ``recipes copy NAME [DEST]``."""
    p = subparsers.add_parser(
        "recipes",
        help="list the recipes shipped with kvision, or copy one out to edit",
        description="Shipped recipes run by name from any folder: kvision run NAME "
        "[--set KEY=VALUE ...]. `kvision recipes copy NAME [DEST]` writes a copy "
        "to edit (never overwriting).",
    )
    sub = p.add_subparsers(dest="recipes_command", metavar="ACTION")
    copy = sub.add_parser("copy", help="copy a shipped recipe to DEST (default: ./NAME.toml)")
    copy.add_argument("name", metavar="NAME")
    copy.add_argument("dest", nargs="?", metavar="DEST", help="file or folder (default: .)")
    copy.set_defaults(handler=_copy)
    sub.add_parser("list", help="list them (the default)").set_defaults(handler=_list)
    p.set_defaults(handler=_list)


def _list(args: argparse.Namespace) -> int:
    from kvision.recipe.shipped import describe, shipped_dir, shipped_recipes

    recipes = shipped_recipes()
    if not recipes:
        print("No shipped recipes found (this kvision install lacks kvision/recipes).")
        return 0
    width = max(map(len, recipes))
    for name, path in recipes.items():
        print(f"{name:<{width}}  {describe(path)}")
    print(f"\n{len(recipes)} recipes in {shipped_dir()}; run one with: kvision run NAME")
    return 0


def _copy(args: argparse.Namespace) -> int:
    from kvision.recipe.shipped import copy_out

    print(copy_out(args.name, args.dest))
    return 0
