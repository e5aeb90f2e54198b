"""Kinds declared once: a registry of names, each with the dataclass of its parameters.

The recipe's schema reads a registry (which kinds there are, what each takes, what each
needs); :mod:`kvision.data` attaches each kind's implementation to the same name, with the
same parameters and defaults in its signature (tests/test_registries.py holds them equal).
Declarations live here, in the recipe layer, so a recipe is checked without OpenCV.
Never imports keras, torch or cv2.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any, TypeVar

from kvision.errors import KvisionError, did_you_mean

T = TypeVar("T")


class Registry:
    """Names of one sort (blur kinds, augmentation ops) -> parameter dataclass and
    implementation, in declaration order."""

    def __init__(self, what: str) -> None:
        self.what = what
        self._params: dict[str, type] = {}
        self._implementations: dict[str, Callable[..., Any]] = {}

    def declare(self, name: str) -> Callable[[type[T]], type[T]]:
        """Class decorator: ``name`` takes the parameters of this dataclass; fields without
        a default are the ones it needs."""

        def add(cls: type[T]) -> type[T]:
            if name in self._params:
                raise ValueError(f"{self.what} '{name}' is declared twice")
            self._params[name] = dataclasses.dataclass(frozen=True)(cls)
            return self._params[name]

        return add

    def implements(self, name: str) -> Callable[[T], T]:
        """Function decorator: the implementation of the declared ``name``."""

        def add(fn: T) -> T:
            if name not in self._params or name in self._implementations:
                raise ValueError(f"{self.what} '{name}' is not declared or already implemented")
            self._implementations[name] = fn  # type: ignore[assignment]
            return fn

        return add

    def names(self) -> tuple[str, ...]:
        """Every declared name, in declaration order."""
        return tuple(self._params)

    def params_of(self, name: str) -> type:
        """The parameter dataclass of ``name``."""
        return self._params[self.check(name)]

    def takes(self, name: str) -> tuple[str, ...]:
        """The parameters ``name`` takes, in declaration order."""
        return tuple(f.name for f in dataclasses.fields(self.params_of(name)))

    def needs(self, name: str) -> tuple[str, ...]:
        """The parameters ``name`` cannot do without (those declared without a default)."""
        return tuple(
            f.name
            for f in dataclasses.fields(self.params_of(name))
            if f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING
        )

    def implementation(self, name: str) -> Callable[..., Any]:
        """The function implementing ``name`` (attached by the module that implements it)."""
        return self._implementations[self.check(name)]

    def check(self, name: str) -> str:
        """``name`` if declared; otherwise a KvisionError with a suggestion and every name."""
        if name not in self._params:
            names = self.names()
            raise KvisionError(
                f"Unknown {self.what} '{name}'.{did_you_mean(name, names)} "
                f"Known: {', '.join(names)}."
            )
        return name


__all__ = ["Registry"]
