"""Recipe sections (DataSection, ConditionSection, ...) parsed from Python tables, as the
recipe loader parses them, for tests of the data layer."""

from __future__ import annotations

from typing import Any, TypeVar

from kvision.recipe.schema_data import DataSection
from kvision.recipe.spec import Context, parse

T = TypeVar("T")


def parsed(cls: type[T], table: dict[str, Any], path: str = "data") -> tuple[T, list]:
    """(the section, the recipe errors found in ``table``, each keyed under ``path``)."""
    ctx = Context()
    value = parse(cls, table, ctx, path)
    return value, ctx.errors


def valid(cls: type[T], table: dict[str, Any]) -> T:
    """The section of a ``table`` the test means to be valid."""
    value, errors = parsed(cls, table)
    assert not errors, errors
    return value


def data_section(**table: Any) -> DataSection:
    """A valid ``[data]`` section."""
    return valid(DataSection, table)
