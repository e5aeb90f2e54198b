"""The recipes shipped with kvision, usable by name (``kvision run naive_vs_expert``).

They live in the repository's ``recipes/`` folder, so that ``kvision run
recipes/naive_vs_expert.toml`` works in a checkout and the folder stays where people and
other tools look for it. The wheel maps that folder into the package as ``kvision/recipes``
(pyproject's package-dir), so an installed kvision has them too. An editable install
(``pip install -e .``) maps only the top-level packages, so there the checkout's folder is
used: the one beside the package, when a pyproject.toml says it is a checkout.
"""

from __future__ import annotations

import tomllib
from pathlib import Path

from kvision.errors import KvisionError, did_you_mean, printable

MAX_LINE = 100  # characters of a description in `kvision recipes`
_PACKAGE = Path(__file__).resolve().parents[1]  # .../kvision


def shipped_dir() -> Path | None:
    """The folder of shipped recipes: installed package data, else the checkout's."""
    installed = _PACKAGE / "recipes"
    if installed.is_dir():
        return installed
    checkout = _PACKAGE.parent
    if (checkout / "pyproject.toml").is_file() and (checkout / "recipes").is_dir():
        return checkout / "recipes"
    return None


def shipped_recipes() -> dict[str, Path]:
    """Shipped recipe names (file stems) and their files, sorted by name."""
    folder = shipped_dir()
    return {p.stem: p for p in sorted(folder.glob("*.toml"))} if folder else {}


def describe(path: Path) -> str:
    """One line: the first sentence of experiment.description (else of the first comment)."""
    try:
        text = path.read_text("utf-8")
        description = tomllib.loads(text).get("experiment", {}).get("description", "")
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError):
        return "(unreadable)"
    words = " ".join(str(description).split())
    if not words:  # no description: the recipe's opening comment
        words = next((s.lstrip("# ").strip() for s in text.splitlines() if s.startswith("#")), "")
    sentence = words.split(". ")[0].rstrip(".")
    return sentence if len(sentence) <= MAX_LINE else sentence[: MAX_LINE - 3].rstrip() + "..."


def resolve(recipe: str) -> str:
    """``recipe`` itself when it names a file (or looks like a path); else a shipped recipe.

    A name without a folder or ``.toml`` that is no file here is looked up among the shipped
    recipes; an unknown name gets the shipped names in its error.
    """
    p = Path(recipe).expanduser()
    if p.exists() or p.suffix == ".toml" or len(p.parts) > 1:
        return recipe
    shipped = shipped_recipes()
    if recipe in shipped:
        return str(shipped[recipe])
    raise KvisionError(
        f"No recipe file '{recipe}' here, and no shipped recipe of that name."
        f"{did_you_mean(recipe, shipped)} Shipped recipes: "
        f"{', '.join(shipped) or 'none found'} (kvision recipes lists them)."
    )


def copy_out(name: str, dest: str | None) -> Path:
    """Copy shipped recipe ``name`` to ``dest`` (a folder or a file name); never overwrites."""
    shipped = shipped_recipes()
    if name.removesuffix(".toml") not in shipped:
        raise KvisionError(
            f"Unknown shipped recipe '{name}'.{did_you_mean(name, shipped)} "
            f"Shipped recipes: {', '.join(shipped) or 'none found'}."
        )
    source = shipped[name.removesuffix(".toml")]
    target = Path(dest).expanduser() if dest else Path(source.name)
    if target.is_dir():
        target = target / source.name
    from kvision.runs.atomic import create_new_bytes

    try:
        return create_new_bytes(target, source.read_bytes())
    except FileExistsError:  # a file, a folder or a symlink: never replaced
        raise KvisionError(
            f"'{printable(target)}' already exists; kvision recipes copy never overwrites "
            "(nor replaces a symlink). Give another destination."
        ) from None
