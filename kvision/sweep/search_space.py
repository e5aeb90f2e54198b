"""A sweep's search space: reading ``[sweep]``, checking it against the recipe, sampling it.

Every candidate value is applied to the recipe as a ``--set`` override and the recipe
validated before any trial starts, so a sweep over a key that does not exist (or a value the
key does not accept) fails at once with the key path, not after hours of trials.
"""

from __future__ import annotations

import copy
import dataclasses
import itertools
import json
import math
from typing import Any

from kvision.errors import RecipeError, RecipeErrors
from kvision.recipe import apply_overrides, validate
from kvision.recipe.locate import line_locator
from kvision.recipe.schema_sweep import RangeSpec, SweepSection
from kvision.recipe.spec import INVALID, Context, parse

Space = tuple[Any, ...] | RangeSpec
DEFAULT_TRIALS = 20


def split_sweep(raw: dict, *, file: str, text: str = "") -> tuple[SweepSection, dict]:
    """(validated ``[sweep]`` section, the recipe without it); problems raise RecipeErrors."""
    if "sweep" not in raw:
        raise RecipeError(
            "the recipe has no [sweep] section, so there is nothing to sweep. Add "
            "[sweep.params] with recipe keys and their choices or ranges (see "
            "recipes/marine_sweep.toml).",
            file=file,
            key="sweep",
        )
    base = {k: v for k, v in raw.items() if k != "sweep"}
    ctx = Context(file=file, locate=line_locator(text))
    spec = parse(SweepSection, raw["sweep"], ctx, "sweep")
    if spec is INVALID or ctx.errors:
        raise RecipeErrors(ctx.errors)
    if spec.seed is None:  # the sampler follows the experiment's seed unless told otherwise
        spec = dataclasses.replace(spec, seed=base.get("experiment", {}).get("seed", 42))
    return spec, base


def check_space(spec: SweepSection, base: dict, *, file: str, text: str = "") -> None:
    """Validate the base recipe and every candidate value of every parameter; raise on problems."""
    _recipe, errors = validate(copy.deepcopy(base), file=file, text=text)
    locate = line_locator(text)
    for key, space in spec.spaces.items():
        for value in candidates(space):
            problem = _override_problem(base, key, value, file)
            if problem:
                errors.append(
                    RecipeError(
                        f"sweeping '{key}' to {toml_value(value)} does not fit the recipe: {problem}",
                        file=file,
                        key=f"sweep.params.{key}",
                        line=locate(f"sweep.params.{key}"),
                    )
                )
                break  # one bad value per parameter says enough
    if errors:
        raise RecipeErrors(errors)


def _override_problem(base: dict, key: str, value: Any, file: str) -> str | None:
    try:
        raw = apply_overrides(base, [override(key, value)], file)
    except RecipeErrors as exc:
        return " ".join(e.detail for e in exc.errors)
    # The base recipe is valid, so whatever fails now is this value's doing.
    _recipe, errors = validate(raw, file=file)
    return " ".join(f"key '{e.key}': {e.detail}" if e.key else e.detail for e in errors) or None


def candidates(space: Space) -> list[Any]:
    """Values worth validating: every choice, or a range's ends."""
    if isinstance(space, RangeSpec):
        return [space.low, space.high]
    return list(space)


def grid(spec: SweepSection) -> list[dict[str, Any]]:
    """Every combination of a grid sweep, in recipe order (the last key varies fastest)."""
    axes = [_grid_axis(space) for space in spec.spaces.values()]
    return [dict(zip(spec.params, combo, strict=True)) for combo in itertools.product(*axes)]


def _grid_axis(space: Space) -> list[Any]:
    if not isinstance(space, RangeSpec):
        return list(space)
    assert space.step is not None  # SweepSection.check requires it for grids
    count = math.floor((space.high - space.low) / space.step + 1e-9) + 1
    values = [space.low + i * space.step for i in range(count)]
    return [int(v) for v in values] if space.is_int else [round(v, 12) for v in values]


def budget(spec: SweepSection) -> int:
    """The number of trials: the recipe's, else 20; a grid never runs more than its size."""
    if spec.sampler == "grid":
        size = len(grid(spec))
        return min(spec.trials, size) if spec.trials else size
    return spec.trials or DEFAULT_TRIALS


def suggest(trial: Any, spec: SweepSection) -> dict[str, Any]:
    """Ask an Optuna trial for one value per parameter; returns recipe values."""
    values = {}
    for key, space in spec.spaces.items():
        if isinstance(space, RangeSpec):
            kind = trial.suggest_int if space.is_int else trial.suggest_float
            values[key] = kind(
                key,
                space.low,
                space.high,
                log=space.log,
                **({"step": space.step} if space.step is not None else {}),
            )
        else:
            labels = [_label(c) for c in space]
            values[key] = _unlabel(trial.suggest_categorical(key, labels))
    return values


def _label(choice: Any) -> Any:
    """Optuna stores scalars only: arrays and tables travel as their JSON text."""
    return (
        choice
        if choice is None or isinstance(choice, (bool, int, float, str))
        else json.dumps(choice)
    )


def _unlabel(label: Any) -> Any:
    if isinstance(label, str) and label[:1] in "[{":
        return json.loads(label)
    return label


def trial_params(spec: SweepSection, params: dict[str, Any]) -> dict[str, Any]:
    """Recipe values from a finished Optuna trial's stored params."""
    return {k: _unlabel(params[k]) for k in spec.params if k in params}


def grid_labels(combo: dict[str, Any]) -> dict[str, Any]:
    """A grid combination as Optuna stores it (for ``enqueue_trial``)."""
    return {k: _label(v) for k, v in combo.items()}


def override(key: str, value: Any) -> str:
    """``key=value`` as ``kvision run --set`` takes it."""
    return f"{key}={toml_value(value)}"


def toml_value(value: Any) -> str:
    """A value written as TOML (strings quoted, arrays and inline tables nested)."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float, str)):
        return json.dumps(value)  # JSON numbers and escaped strings are valid TOML
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(toml_value(v) for v in value) + "]"
    if isinstance(value, dict):
        return (
            "{ " + ", ".join(f"{json.dumps(k)} = {toml_value(v)}" for k, v in value.items()) + " }"
        )
    raise TypeError(f"cannot write {type(value).__name__} as TOML")
