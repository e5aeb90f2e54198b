"""Code run around a module's import, once: the one post-import hook kvision's base uses.

``import kvision`` must not import Keras or torch, yet must act when they are imported:
register the LRN layer after Keras' import and run Keras' import with some of its modules
deferred (``kvision._keras_layers``), and mark Keras' seed helpers once ``torch._dynamo`` is
really imported (``kvision._lazy_dynamo``). :func:`around_import` puts a one-shot finder on
``sys.meta_path`` that finds nothing itself: it wraps the real loader's ``exec_module`` for
that one import. Hand-written rather than ``wrapt.register_post_import_hook``: wrapt 2
imports asyncio, which would add tens of milliseconds to every ``kvision`` command.
"""

from __future__ import annotations

import importlib.abc
import importlib.util
import sys
from collections.abc import Callable
from types import ModuleType

Around = Callable[[Callable[[ModuleType], None], ModuleType], None]


def _plain(run: Callable[[ModuleType], None], module: ModuleType) -> None:
    run(module)


class _AroundImport(importlib.abc.MetaPathFinder):
    """Wraps ``name``'s loader: ``around(exec_module, module)``, then ``then(module)``."""

    def __init__(self, name: str, around: Around, then: Callable[[ModuleType], None]) -> None:
        self.name, self.around, self.then = name, around, then

    def find_spec(self, name, path=None, target=None):
        if name != self.name:
            return None
        if self in sys.meta_path:
            sys.meta_path.remove(self)  # one shot; find_spec below must not come back here
        spec = importlib.util.find_spec(name)
        loader = getattr(spec, "loader", None)
        if loader is not None and hasattr(loader, "exec_module"):
            run = loader.exec_module

            def exec_module(module):
                self.around(run, module)
                del loader.exec_module  # the loader's own method again
                self.then(module)

            loader.exec_module = exec_module
        return spec


def around_import(
    name: str, *, around: Around = _plain, then: Callable[[ModuleType], None] = lambda _: None
) -> None:
    """At ``name``'s first import, run its code through ``around`` and ``then`` call ``then``
    with the module; nothing more if a hook for ``name`` is already waiting."""
    if not any(isinstance(f, _AroundImport) and f.name == name for f in sys.meta_path):
        sys.meta_path.insert(0, _AroundImport(name, around, then))


__all__ = ["around_import"]
