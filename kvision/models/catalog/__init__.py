"""The model catalogue: architecture names -> builders, options and expected input.

Each family module here declares its architectures with ``@register_model`` beside the
builder (``kvision.models.catalog.registry``). Nothing in this package imports Keras at import
time (the recipe validator and ``kvision models`` read it): builders import it when they run.
"""

from __future__ import annotations

from typing import Any

from kvision.errors import KvisionError, did_you_mean, unknown_name

# Each family module registers its architectures when imported.
from kvision.models.catalog import alexnet, lenet, mlp, mynet, resnet, vgg  # noqa: F401
from kvision.models.catalog.registry import MODELS, ModelEntry, OptionSpec, register_model

__all__ = [
    "MODELS",
    "ModelEntry",
    "OptionSpec",
    "check_options",
    "get_entry",
    "list_models",
    "model_names",
    "register_model",
]


def model_names() -> list[str]:
    """Every registered architecture name, sorted."""
    return sorted(MODELS)


def list_models(pattern: str = "*", *, family: str | None = None) -> list[str]:
    """Registered names matching a shell-style ``pattern`` (``"vgg*_bn"``), sorted, as timm's
    ``list_models``; ``family`` keeps one family (``"resnet"``)."""
    from fnmatch import fnmatchcase

    return [
        name
        for name in model_names()
        if fnmatchcase(name, pattern) and (family is None or MODELS[name].family == family)
    ]


def get_entry(name: str) -> ModelEntry:
    """The entry for ``name``; an unknown name raises KvisionError with a suggestion."""
    try:
        return MODELS[name]
    except KeyError:
        raise unknown_name("model architecture", name, MODELS) from None


def check_options(entry: ModelEntry, options: dict[str, Any]) -> dict[str, Any]:
    """Return ``options`` completed with defaults; unknown or mistyped options raise."""
    specs = {o.name: o for o in entry.options}
    resolved = {name: spec.default for name, spec in specs.items()}
    for key, value in options.items():
        spec = specs.get(key)
        if spec is None:
            allowed = ", ".join(specs) or "none"
            raise KvisionError(
                f"Unknown option '{key}' for model architecture '{entry.name}'."
                f"{did_you_mean(key, specs)} Allowed options: {allowed}."
            )
        if not _type_ok(value, spec.type):
            raise KvisionError(
                f"Option '{key}' of model architecture '{entry.name}' must be "
                f"{_type_name(spec.type)} ({spec.help}). Received: {key}={value!r}."
            )
        resolved[key] = value
    return resolved


def _type_ok(value: Any, expected: type | tuple[type, ...]) -> bool:
    types = expected if isinstance(expected, tuple) else (expected,)
    if isinstance(value, bool) and bool not in types:
        return False  # bool is an int subclass, but `downscale = true` is a mistake
    if float in types and isinstance(value, int) and not isinstance(value, bool):
        return True  # TOML writes `dropout = 0` as an integer
    return isinstance(value, types)


def _type_name(expected: type | tuple[type, ...]) -> str:
    types = expected if isinstance(expected, tuple) else (expected,)
    names = ["none" if t is type(None) else t.__name__ for t in types]
    return " or ".join(names)
