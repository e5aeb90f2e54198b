"""``@register_model``: an architecture is declared beside its builder, once.

A builder is ``build_x(x, *, arch, num_classes, ...)``. Its keyword parameters with defaults
are the options a recipe's ``[models.X]`` table may set (type and help from the annotation,
``Annotated[float, "help"]``); parameters without a default pick the variant and are fixed by
each registration (``depth=16, batchnorm=True``), as is any defaulted one a variant does not
expose. Every architecture also takes ``weights`` (resolved in kvision.models.weights).

Nothing here imports Keras: builders import it when they run, so the recipe validator and
``kvision models`` read the catalogue without it.
"""

from __future__ import annotations

import inspect
import types
import typing
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Annotated, Any

#: What builders and block helpers take and return: a KerasTensor. Any, not the Keras
#: class: the catalogue imports no Keras, and _options_of evaluates every annotation.
Tensor = Any

# Option types shared by several families (the help text travels with the type).
Dropout = Annotated[float, "dropout rate in the dense head"]
Width = Annotated[int, "divide every conv and dense width by this (small CPU runs)"]


@dataclass(frozen=True)
class OptionSpec:
    """One builder option as a recipe's ``[models.X]`` table may set it."""

    name: str
    type: type | tuple[type, ...]
    default: Any
    help: str


@dataclass(frozen=True)
class ModelEntry:
    """A registered architecture: its builder, the variant's fixed arguments, its options."""

    name: str
    family: str
    builder: Callable[..., Any]
    description: str
    default_input: tuple[int, ...]  # (H, W, C) for images, (features,) for the MLP
    min_input: int  # smallest square side the pooling stack accepts
    default_classes: int = 1000
    options: tuple[OptionSpec, ...] = field(default_factory=tuple)
    preset: dict[str, Any] = field(default_factory=dict)  # the variant: depth=16, ...

    def option_names(self) -> list[str]:
        """Names of the options this architecture accepts, in declaration order."""
        return [o.name for o in self.options]


_WEIGHTS = OptionSpec(
    "weights",
    (str, type(None)),
    None,
    "None (random init), 'imagenet', a .weights.h5/.keras file, or a kvision run directory",
)
# Passed by create_model itself, never options.
_CALLER_ARGS = ("x", "arch", "num_classes")

MODELS: dict[str, ModelEntry] = {}

Builder = typing.TypeVar("Builder", bound=Callable[..., Any])


def register_model(
    name: str,
    *,
    family: str,
    input: tuple[int, ...],
    classes: int,
    min_input: int,
    description: str,
    **preset: Any,
) -> Callable[[Builder], Builder]:
    """Register ``name`` as built by the decorated builder with the arguments ``preset``."""

    def register(builder: Builder) -> Builder:
        assert name not in MODELS, name
        MODELS[name] = ModelEntry(
            name=name,
            family=family,
            builder=builder,
            description=description,
            default_input=tuple(input),
            min_input=min_input,
            default_classes=classes,
            options=(*_options_of(builder, preset), _WEIGHTS),
            preset=dict(preset),
        )
        return builder

    return register


def _options_of(builder: Callable[..., Any], preset: dict[str, Any]) -> list[OptionSpec]:
    """The builder's defaulted keyword parameters that ``preset`` leaves open, in order."""
    hints = typing.get_type_hints(builder, include_extras=True)
    options = []
    for param in inspect.signature(builder).parameters.values():
        if param.name in _CALLER_ARGS or param.name in preset:
            continue
        # A variant parameter left unset would fail at build time: say so at import.
        assert param.default is not param.empty, f"{builder.__name__}: preset {param.name}"
        hint = hints[param.name]
        help_text = next(iter(getattr(hint, "__metadata__", ())), "")
        options.append(OptionSpec(param.name, _runtime_type(hint), param.default, help_text))
    return options


def _runtime_type(hint: Any) -> type | tuple[type, ...]:
    """``Annotated[float, ...]`` -> float, ``list[int]`` -> list, ``str | None`` -> (str, None)."""
    if typing.get_origin(hint) is Annotated:
        return _runtime_type(typing.get_args(hint)[0])
    if typing.get_origin(hint) in (types.UnionType, typing.Union):
        return tuple(typing.get_origin(a) or a for a in typing.get_args(hint))
    return typing.get_origin(hint) or hint
