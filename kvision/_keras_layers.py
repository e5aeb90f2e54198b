"""Register kvision's own Keras layer (LRN) with Keras as soon as Keras is imported.

Keras loads a ``.keras`` file's non-Keras layers only from its registry of serializable
classes, so ``kvision>LocalResponseNormalization`` must be registered before
``keras.saving.load_model`` reads a file that holds it. ``import kvision`` must not import
Keras itself (``kvision --help`` and the TUI stay free of Keras and torch), so
:func:`install` registers at once if Keras is already imported, and otherwise puts a
one-shot finder on ``sys.meta_path`` that lets Keras' own import run and then registers.
Hand-written rather than ``wrapt.register_post_import_hook``: wrapt 2 imports asyncio, which
would add tens of milliseconds to every ``kvision`` command.
"""

from __future__ import annotations

import importlib.abc
import importlib.util
import sys


def _register() -> None:
    import kvision.models.layers  # noqa: F401  (its @register_keras_serializable runs)


class _AfterKeras(importlib.abc.MetaPathFinder):
    """Finds nothing itself; wraps the loader of ``keras`` to register kvision's layer after it."""

    def find_spec(self, name, path=None, target=None):
        if name != "keras":
            return None
        sys.meta_path.remove(self)  # one shot; and find_spec below must not come back here
        spec = importlib.util.find_spec(name)
        loader = getattr(spec, "loader", None)
        if loader is not None and hasattr(loader, "exec_module"):
            run = loader.exec_module

            def exec_module(module):
                run(module)
                del loader.exec_module  # the loader's own method again
                _register()

            loader.exec_module = exec_module
        return spec


def install() -> None:
    """Register LRN now if Keras is imported, else right after Keras' import finishes."""
    if "keras" in sys.modules:
        _register()
    elif not any(isinstance(f, _AfterKeras) for f in sys.meta_path):
        sys.meta_path.insert(0, _AfterKeras())
