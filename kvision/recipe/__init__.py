"""TOML recipes: schema, loading, validation and overrides. Never imports keras or torch."""

from kvision.recipe.load import (
    apply_overrides,
    check_recipe,
    dump_toml,
    load_recipe,
    recipe_error_text,
    validate,
)
from kvision.recipe.schema import ArmSection, ModelSection, Recipe, StageSection

__all__ = [
    "ArmSection",
    "ModelSection",
    "Recipe",
    "StageSection",
    "apply_overrides",
    "check_recipe",
    "dump_toml",
    "load_recipe",
    "recipe_error_text",
    "validate",
]
