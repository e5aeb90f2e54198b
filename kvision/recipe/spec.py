"""A small typed-schema DSL: recipe sections are frozen dataclasses whose fields say their rules.

A field is declared with :func:`option` (default, help text, allowed choices, numeric bounds).
:func:`parse` turns a TOML table into an instance, collecting *every* problem with its full key
path (``arms[1].stages[0].condition``) instead of stopping at the first, so a user fixes a
recipe in one round. A dataclass may name a ``dict`` field in ``EXTRA_KEYS: ClassVar[str]`` to collect keys
it does not declare (a model's architecture options); with ``EXTRA_SCHEMA: ClassVar[type]`` those
keys must be fields of that dataclass and are checked against them (a stage's training
overrides). Supported annotations: ``bool``, ``int``, ``float`` (ints accepted),
``str``, ``X | None``, unions, ``tuple[T, ...]`` / ``tuple[A, B]`` (TOML arrays),
``dict[str, T]`` (tables with user-chosen keys) and nested dataclasses (tables).

A dataclass may define ``check(self) -> list[tuple[str, str]]`` for cross-field rules; it
returns (relative key, message) pairs. Never imports keras, torch or cv2.
"""

from __future__ import annotations

import dataclasses
import types
import typing
from collections.abc import Callable
from dataclasses import MISSING, dataclass
from typing import Any

from kvision.errors import RecipeError, did_you_mean

_META = "kvision"


@dataclass(frozen=True)
class Rules:
    """Validation rules and documentation attached to one field."""

    help: str
    choices: tuple | None = None
    ge: float | None = None
    gt: float | None = None
    le: float | None = None
    lt: float | None = None
    min_len: int | None = None
    max_len: int | None = None


def option(
    default: Any = MISSING,
    *,
    help: str,
    choices: typing.Iterable | None = None,
    ge: float | None = None,
    gt: float | None = None,
    le: float | None = None,
    lt: float | None = None,
    min_len: int | None = None,
    max_len: int | None = None,
    default_factory: Callable[[], Any] | Any = MISSING,
) -> Any:
    """Declare a recipe field. Omit ``default`` to make the key required."""
    rules = Rules(
        help, tuple(choices) if choices is not None else None, ge, gt, le, lt, min_len, max_len
    )
    return dataclasses.field(
        default=default, default_factory=default_factory, metadata={_META: rules}
    )


def rules_of(field: dataclasses.Field) -> Rules:
    """The rules of a field (an empty help text when declared without :func:`option`)."""
    return field.metadata.get(_META, Rules(""))


@dataclass
class Context:
    """Where problems are reported: the recipe file and a key-path -> line locator."""

    file: str | None = None
    locate: Callable[[str], int | None] = lambda key: None
    errors: list[RecipeError] = dataclasses.field(default_factory=list)

    def error(self, key: str, message: str) -> None:
        """Record one problem at ``key``."""
        self.errors.append(
            RecipeError(
                message, file=self.file, key=key or None, line=self.locate(key) if key else None
            )
        )


class _Invalid:
    """Marker for a value that failed validation (its error is already recorded)."""


INVALID = _Invalid()


def parse(cls: type, data: Any, ctx: Context, path: str = "") -> Any:
    """Validate ``data`` against dataclass ``cls``; returns an instance or INVALID."""
    if not isinstance(data, dict):
        ctx.error(path, f"expected a table, got {_describe(data)}.")
        return INVALID
    hints = typing.get_type_hints(cls)
    fields = {f.name: f for f in dataclasses.fields(cls) if f.init}
    extra = getattr(cls, "EXTRA_KEYS", None)  # a dict field that collects free-form keys
    values: dict[str, Any] = {}
    ok = True
    if extra:
        fields.pop(extra)
        values[extra], ok = _extras(
            cls, {k: v for k, v in data.items() if k not in fields}, list(fields), ctx, path
        )
        data = {k: v for k, v in data.items() if k in fields}
    for key in data:
        if key not in fields:
            _unknown(key, list(fields), ctx, path)
    ok = ok and all(key in fields for key in data)
    for name, field in fields.items():
        key = _join(path, name)
        if name in data:
            value = _convert(hints[name], data[name], rules_of(field), ctx, key)
        elif field.default is not MISSING or field.default_factory is not MISSING:
            continue
        else:
            ctx.error(key, f"required key '{name}' is missing. {rules_of(field).help}".strip())
            value = INVALID
        ok = ok and value is not INVALID
        values[name] = value
    if not ok:
        return INVALID
    instance = cls(**values)
    for rel, message in getattr(instance, "check", lambda: [])():
        ctx.error(_join(path, rel), message)
    return instance


def _extras(cls: type, free: dict, own: list[str], ctx: Context, path: str) -> tuple[dict, bool]:
    """The keys an ``EXTRA_KEYS`` field collects, as written. With ``EXTRA_SCHEMA`` (a
    dataclass) each must be one of its fields and is checked against that field's type and
    rules (a stage's [training] overrides); otherwise any key is taken as it is."""
    schema = getattr(cls, "EXTRA_SCHEMA", None)
    if schema is None:
        return free, True
    allowed = {f.name: f for f in dataclasses.fields(schema) if f.init}
    hints = typing.get_type_hints(schema)
    ok = True
    for key, value in free.items():
        if key not in allowed:
            _unknown(key, [*own, *allowed], ctx, path)
            ok = False
        elif _convert(hints[key], value, rules_of(allowed[key]), ctx, _join(path, key)) is INVALID:
            ok = False
    return free, ok


def _unknown(key: str, allowed: list[str], ctx: Context, path: str) -> None:
    ctx.error(
        _join(path, key),
        f"unknown key '{key}' in [{path or 'recipe'}]."
        f"{did_you_mean(key, allowed)} Allowed: {', '.join(allowed)}.",
    )


def _convert(tp: Any, value: Any, rules: Rules, ctx: Context, key: str) -> Any:
    """Validate one value against annotation ``tp`` and the field's rules."""
    converted = _by_type(tp, value, ctx, key)
    if converted is INVALID:
        return INVALID
    problem = _rule_problem(converted, rules)
    if problem:
        ctx.error(key, problem)
        return INVALID
    return converted


def _by_type(tp: Any, value: Any, ctx: Context, key: str) -> Any:
    origin, args = typing.get_origin(tp), typing.get_args(tp)
    if origin in (typing.Union, types.UnionType):
        return _union(args, value, ctx, key)
    if dataclasses.is_dataclass(tp):
        return parse(tp, value, ctx, key)
    if origin is tuple:
        return _tuple(args, value, ctx, key)
    if origin is dict:
        return _mapping(args[1], value, ctx, key)
    if tp is Any:
        return value
    if _scalar_ok(tp, value):
        return float(value) if tp is float else value
    ctx.error(key, f"expected {_type_name(tp)}, got {_describe(value)}.")
    return INVALID


def _scalar_ok(tp: Any, value: Any) -> bool:
    if tp is bool:
        return isinstance(value, bool)
    if tp is int:
        return isinstance(value, int) and not isinstance(value, bool)
    if tp is float:
        return isinstance(value, (int, float)) and not isinstance(value, bool)
    return isinstance(tp, type) and isinstance(value, tp)


def _union(args: tuple, value: Any, ctx: Context, key: str) -> Any:
    options = [a for a in args if a is not type(None)]
    for alt in options:
        trial = Context(ctx.file, ctx.locate)
        result = _by_type(alt, value, trial, key)
        if not trial.errors:
            return result
    if len(options) == 1:  # X | None: report X's own, more precise, message
        return _by_type(options[0], value, ctx, key)
    ctx.error(
        key, f"expected {' or '.join(_type_name(a) for a in options)}, got {_describe(value)}."
    )
    return INVALID


def _tuple(args: tuple, value: Any, ctx: Context, key: str) -> Any:
    if not isinstance(value, list):
        ctx.error(key, f"expected an array, got {_describe(value)}.")
        return INVALID
    if len(args) == 2 and args[1] is Ellipsis:
        kinds = [args[0]] * len(value)
    else:
        if len(value) != len(args):
            ctx.error(key, f"expected an array of {len(args)} values, got {len(value)}.")
            return INVALID
        kinds = list(args)
    items = [
        _by_type(t, v, ctx, f"{key}[{i}]")
        for i, (t, v) in enumerate(zip(kinds, value, strict=True))
    ]
    return INVALID if any(i is INVALID for i in items) else tuple(items)


def _mapping(tp: Any, value: Any, ctx: Context, key: str) -> Any:
    if not isinstance(value, dict):
        ctx.error(key, f"expected a table, got {_describe(value)}.")
        return INVALID
    items = {k: _by_type(tp, v, ctx, _join(key, k)) for k, v in value.items()}
    return INVALID if any(v is INVALID for v in items.values()) else items


def _rule_problem(value: Any, r: Rules) -> str | None:
    if r.choices is not None:
        bad = [v for v in (value if isinstance(value, tuple) else (value,)) if v not in r.choices]
        if bad:
            hint = did_you_mean(str(bad[0]), [str(c) for c in r.choices])
            return f"'{bad[0]}' is not allowed.{hint} Allowed: {', '.join(map(str, r.choices))}."
    numbers = value if isinstance(value, tuple) else (value,)
    for v in numbers:
        if isinstance(v, (int, float)) and not isinstance(v, bool):
            for bound, ok, word in (
                (r.ge, lambda a, b: a >= b, ">="),
                (r.gt, lambda a, b: a > b, ">"),
                (r.le, lambda a, b: a <= b, "<="),
                (r.lt, lambda a, b: a < b, "<"),
            ):
                if bound is not None and not ok(v, bound):
                    return f"must be {word} {bound}, got {v}."
    if isinstance(value, (tuple, str, dict)):
        if r.min_len is not None and len(value) < r.min_len:
            return f"needs at least {r.min_len} entr{'y' if r.min_len == 1 else 'ies'}, got {len(value)}."
        if r.max_len is not None and len(value) > r.max_len:
            return f"allows at most {r.max_len} entries, got {len(value)}."
    return None


def to_plain(obj: Any) -> Any:
    """An instance back to plain TOML-able data (tuples -> lists, None dropped)."""
    if dataclasses.is_dataclass(obj):
        extra = getattr(obj, "EXTRA_KEYS", None)
        plain = {
            f.name: to_plain(getattr(obj, f.name))
            for f in dataclasses.fields(obj)
            if f.init and getattr(obj, f.name) is not None and f.name != extra
        }
        return {**plain, **to_plain(getattr(obj, extra))} if extra else plain
    if isinstance(obj, dict):
        return {k: to_plain(v) for k, v in obj.items() if v is not None}
    if isinstance(obj, (list, tuple)):
        return [to_plain(v) for v in obj]
    return obj


def _join(path: str, key: str) -> str:
    return f"{path}.{key}" if path else key


def _type_name(tp: Any) -> str:
    names = {bool: "true or false", int: "an integer", float: "a number", str: "a string"}
    if tp in names:
        return names[tp]
    if dataclasses.is_dataclass(tp):
        return "a table"
    origin = typing.get_origin(tp)
    return {tuple: "an array", dict: "a table"}.get(origin, getattr(tp, "__name__", str(tp)))


def _describe(value: Any) -> str:
    kind = {
        bool: "a boolean",
        int: "an integer",
        float: "a number",
        str: "a string",
        list: "an array",
        dict: "a table",
    }.get(type(value), type(value).__name__)
    shown = repr(value) if not isinstance(value, (dict, list)) or len(repr(value)) < 40 else ""
    return f"{kind} {shown}".strip()
