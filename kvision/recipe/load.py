"""Reading a recipe file, applying ``--set`` overrides, validating, and writing it back."""

from __future__ import annotations

import copy
import os
import re
import tomllib
from pathlib import Path
from typing import Any

import tomli_w

from kvision.errors import (
    NESTED_TOO_DEEP,
    KvisionError,
    RecipeError,
    RecipeErrors,
    did_you_mean,
)
from kvision.keyvalue import split_key_value
from kvision.recipe.locate import line_locator
from kvision.recipe.schema import Recipe, StageSection
from kvision.recipe.schema_training import TrainingSection
from kvision.recipe.spec import INVALID, Context, parse, to_plain

# A key path segment is a bare name or a "quoted" one, which may hold dots (sweep.params keys).
_SEGMENT = r'(?:"[^"]+"|[^.\[\]="]+)'
_TOKEN = re.compile(r'"([^"]+)"|([^.\[\]"]+)|\[(\d+)\]')
_KEY = re.compile(rf"{_SEGMENT}(\[\d+\])*(\.{_SEGMENT}(\[\d+\])*)*")


def load_recipe(path: str | os.PathLike, overrides: list[str] | tuple[str, ...] = ()) -> Recipe:
    """Read, override and validate a recipe; raises RecipeErrors listing every problem."""
    recipe, errors = check_recipe(path, overrides)
    if errors:
        raise RecipeErrors(errors)
    assert recipe is not None
    return recipe


def check_recipe(
    path: str | os.PathLike, overrides: list[str] | tuple[str, ...] = ()
) -> tuple[Recipe | None, list[RecipeError]]:
    """Validate without raising: (recipe or None, problems). Used by the TUI and `validate`."""
    file = str(path)
    try:
        text = read_text(path)
        raw = parse_toml(text, file)
        raw = apply_overrides(raw, overrides, file)
        return validate(raw, file=file, text=text)
    except RecipeErrors as exc:
        return None, exc.errors
    except RecipeError as exc:
        return None, [exc]
    except RecursionError:
        return None, [RecipeError(NESTED_TOO_DEEP, file=file)]


def validate(
    raw: dict, *, file: str | None = None, text: str = ""
) -> tuple[Recipe | None, list[RecipeError]]:
    """Validate already-parsed TOML data."""
    ctx = Context(file=file, locate=line_locator(text))
    recipe = parse(Recipe, raw, ctx)
    if recipe is INVALID or ctx.errors:
        return None, ctx.errors
    object.__setattr__(recipe, "raw", copy.deepcopy(raw))
    for i, arm in enumerate(recipe.arms):
        for j, stage in enumerate(arm.stages):
            _resolve_training(stage, raw.get("training", {}), ctx, f"arms[{i}].stages[{j}]")
    _check_archs(recipe, ctx)
    if not ctx.errors:
        _check_fit(recipe, ctx)
    return (None, ctx.errors) if ctx.errors else (recipe, [])


def read_text(path: str | os.PathLike) -> str:
    """The recipe file's text, or a RecipeError saying why it cannot be read."""
    p = Path(path).expanduser()
    if not p.exists():
        raise RecipeError(f"recipe file '{path}' does not exist.", file=str(path))
    if not p.is_file():
        raise RecipeError(f"'{path}' is not a file (a recipe is a .toml file).", file=str(path))
    try:
        return p.read_text("utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise RecipeError(f"cannot read the recipe: {exc}.", file=str(path)) from None


def parse_toml(text: str, file: str | None) -> dict:
    """TOML text to a dict; a syntax error becomes a RecipeError with its line."""
    try:
        return tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        # Python < 3.14 keeps the position only in the message: "... (at line 3, column 8)"
        found = re.search(r"\(at line (\d+), column (\d+)\)", str(exc))
        msg = re.sub(r"\s*\(at line \d+, column \d+\)", "", str(exc))
        where = f" (column {found.group(2)})" if found else ""
        raise RecipeError(
            f"not valid TOML: {msg}{where}.", file=file, line=int(found.group(1)) if found else None
        ) from None


def apply_overrides(raw: dict, overrides: list[str] | tuple[str, ...], file: str | None) -> dict:
    """Apply ``key.path=value`` overrides (values in TOML syntax; bare words are strings)."""
    data = copy.deepcopy(raw)
    errors = []
    for item in overrides:
        try:
            key, value = _split_override(item)
            _set_path(data, key, value)
        except RecipeError as exc:
            errors.append(RecipeError(exc.detail, file=file, key=exc.key))
    if errors:
        raise RecipeErrors(errors)
    return data


def _split_override(item: str) -> tuple[str, Any]:
    try:
        return split_key_value(item, "training.optimizer.learning_rate=1e-3")
    except KvisionError as exc:
        raise RecipeError(str(exc)) from None


def _set_path(data: dict, key: str, value: Any) -> None:
    """Set ``a.b[1].c`` in nested dicts/lists; missing tables are created."""
    if not _KEY.fullmatch(key):
        raise RecipeError(
            f"override key '{key}' is not a key path such as "
            "'data.image_size', 'arms[0].stages[1].epochs' or (a key with dots "
            "in it quoted) 'sweep.params.\"training.batch_size\"'.",
            key=key,
        )
    tokens = [(m.group(1) or m.group(2), m.group(3)) for m in _TOKEN.finditer(key)]
    node: Any = data
    for pos, (name, index) in enumerate(tokens):
        last = pos == len(tokens) - 1
        here = ".".join(t[0] or f"[{t[1]}]" for t in tokens[: pos + 1]).replace(".[", "[")
        if name is not None:
            if not isinstance(node, dict):
                raise RecipeError(
                    f"cannot set '{name}': '{here}' is inside a value, not a table.", key=key
                )
            if last:
                node[name] = value
            else:
                nxt = tokens[pos + 1]
                if nxt[1] is not None and name not in node:
                    # an index into an array the recipe does not have: a mistyped key, not
                    # an index out of range (``oarms[0]`` for ``arms[0]``)
                    raise RecipeError(
                        f"unknown key '{here}' in override '{key}': the recipe has no "
                        f"array '{name}' to index.{did_you_mean(name, node)}",
                        key=here,
                    )
                node = node.setdefault(name, [] if nxt[1] is not None else {})
        else:
            i = int(index)
            if not isinstance(node, list) or i >= len(node):
                size = len(node) if isinstance(node, list) else 0
                raise RecipeError(
                    f"index [{i}] is out of range in override '{key}' "
                    f"(the array has {size} entries).",
                    key=here,
                )
            if last:
                node[i] = value
            else:
                node = node[i]


def _resolve_training(stage: StageSection, defaults: dict, ctx: Context, path: str) -> None:
    """A stage's training settings: the recipe's defaults deep-merged with its overrides,
    validated together (problems of the merge are recorded at the stage's path)."""
    result = parse(TrainingSection, _deep_merge(defaults, stage.overrides), ctx, path)
    if result is not INVALID:
        object.__setattr__(stage, "training", result)


def _deep_merge(base: dict, over: dict) -> dict:
    out = copy.deepcopy(base)
    for k, v in over.items():
        out[k] = (
            _deep_merge(out[k], v) if isinstance(v, dict) and isinstance(out.get(k), dict) else v
        )
    return out


def _check_archs(recipe: Recipe, ctx: Context) -> None:
    """Architectures and their options, checked against the catalog (which needs no keras)."""
    from kvision.models.catalog import check_options, get_entry, model_names

    known = model_names()
    for name, model in recipe.models.items():
        if model.arch not in known:
            ctx.error(
                f"models.{name}.arch",
                f"unknown architecture '{model.arch}'."
                f"{did_you_mean(model.arch, known)} Known: {', '.join(sorted(known))}.",
            )
            continue
        takes_images = len(get_entry(model.arch).default_input) == 3
        if takes_images == recipe.data.regression:
            wants = "feature vectors (e.g. mlp)" if recipe.data.regression else "images"
            ctx.error(
                f"models.{name}.arch",
                f"architecture '{model.arch}' does not fit this "
                f"{recipe.task} recipe: its data source gives {wants}.",
            )
        for key, value in model.options.items():
            try:
                check_options(get_entry(model.arch), {key: value})
            except KvisionError as exc:
                ctx.error(f"models.{name}.{key}", str(exc))


def _check_fit(recipe: Recipe, ctx: Context) -> None:
    """Input size against each model's smallest input, and the images against the memory,
    where the recipe alone tells (kvision.recipe.compat): refused before any work starts."""
    from kvision.recipe.compat import input_size, memory_problem, too_small

    size = input_size(recipe)
    key = "data.image_size" if recipe.data.image_size else "data.source"
    if size is not None and not recipe.data.regression:
        for name, model in recipe.models.items():
            if problem := too_small(model.arch, size):
                ctx.error(key, f"{problem} (models.{name})")
    if problem := memory_problem(recipe):
        ctx.error(key, problem)


def dump_toml(recipe: Recipe) -> str:
    """The resolved recipe as TOML (what `kvision validate` prints and runs save)."""
    return _ONE_LINE_ARRAY.sub(_join_array, tomli_w.dumps(to_plain(recipe)))


# tomli-w puts every array element on its own line; arrays of scalars read better on one.
_ONE_LINE_ARRAY = re.compile(r"\[\n((?:[ \t]+[^\[\]{}\n]+,\n)+)\]")


def _join_array(match: re.Match) -> str:
    items = [line.strip().rstrip(",") for line in match.group(1).splitlines()]
    return "[" + ", ".join(items) + "]"


def recipe_error_text(errors: list[RecipeError]) -> str:
    """Problems as the CLI prints them: a count line, then one per line."""
    head = f"The recipe has {len(errors)} problem{'s' if len(errors) != 1 else ''}:"
    return "\n".join([head] + [f"  - {e}" for e in errors])


__all__ = [
    "KvisionError",
    "apply_overrides",
    "check_recipe",
    "dump_toml",
    "load_recipe",
    "recipe_error_text",
    "validate",
]
