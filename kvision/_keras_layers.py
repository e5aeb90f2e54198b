"""Register kvision's own Keras layer (LRN) with Keras as soon as Keras is imported.

Keras loads a ``.keras`` file's non-Keras layers only from its registry of serializable
classes, so ``kvision>LocalResponseNormalization`` must be registered before
``keras.saving.load_model`` reads a file that holds it. ``import kvision`` must not import
Keras itself (``kvision --help`` and the TUI stay free of Keras and torch), so
:func:`install` registers at once if Keras is already imported, and otherwise hooks Keras'
first import (``kvision._import_hooks``): Keras' own import runs, then the layer registers.

The same hook keeps JAX out of a torch-backend Keras' import: Keras' Orbax checkpoint
callback module imports ``jax`` whenever it is installed (to patch an old JAX's monitoring
API), whatever the backend, which cost 115 MiB of resident memory and 0.7 s of start-up in a
venv with kvision's ``[jax]`` extra. During Keras' import only, and only when the backend is
not JAX and nothing has imported JAX yet, ``import jax`` fails as if JAX were absent (the
callback module expects that); afterwards JAX imports normally.

It also defers what Keras imports for features a trainer never touches: the public
``keras.visualization`` (Matplotlib, OpenCV) and ``keras.wrappers`` (scikit-learn, which
brings SciPy) modules and the legacy ``.h5`` format module (h5py) are loaded by
:class:`importlib.util.LazyLoader` during Keras' import, so they execute on their first
attribute access instead (``keras.wrappers.SKLearnClassifier`` works as before). That took
``import kvision, keras`` from 443 to 324 MiB of peak RSS (``benchmarks/memory.py --case
import``). A Keras release that renames them only loses the saving: a name not found is
imported as usual.

The one module outside Keras deferred the same way is ``ml_dtypes`` (NumPy dtypes for
bfloat16, float8 and int4). Keras' torch backend imports it at module level, and reads it
only to convert such tensors, save bfloat16 weights or quantize. Version 0.7.0 registers its
NumPy ufunc loops in quadratic time, which made it most of ``import keras`` on torch in every
run, worker and test process (``benchmarks/import_time.py`` times both ways). Lazy, it loads
at the first ``ml_dtypes.<name>`` any of them reads.
"""

from __future__ import annotations

import importlib.abc
import importlib.util
import os
import sys
from collections.abc import Callable

from kvision._import_hooks import around_import

#: Modules loaded lazily: nothing in Keras' own import reads an attribute of them.
DEFERRED = frozenset(
    {
        "ml_dtypes",
        "keras.visualization",
        "keras.wrappers",
        "keras._tf_keras.keras.visualization",
        "keras._tf_keras.keras.wrappers",
        "keras.src.visualization",
        "keras.src.legacy.saving.legacy_h5_format",
    }
)


def _register(_keras: object = None) -> None:
    import kvision.models.layers  # noqa: F401  (its @register_keras_serializable runs)


#: What a deferred module answers without loading: its class (``isinstance``) and its import
#: attributes, already set.
#: ``inspect.getmodule`` probes ``__file__`` of every module in ``sys.modules`` (torch calls it
#: when it registers operators, e.g. at ``torch._dynamo``'s import), which would otherwise load
#: Matplotlib, scikit-learn and h5py for a module nobody used.
_QUIET = frozenset(
    {
        "__class__",
        "__name__",
        "__file__",
        "__cached__",
        "__spec__",
        "__loader__",
        "__package__",
        "__path__",
    }
)


class _QuietLazyLoader(importlib.util.LazyLoader):
    """``LazyLoader`` whose modules answer :data:`_QUIET` without loading."""

    def exec_module(self, module):
        super().exec_module(module)
        if _QuietLazyModule is not None:
            module.__class__ = _QuietLazyModule


def _quiet_lazy_module() -> type | None:
    """``LazyLoader``'s module class, answering :data:`_QUIET` without loading; None where a
    Python names its private class otherwise (the modules then load at any attribute)."""
    lazy = getattr(importlib.util, "_LazyModule", None)
    if lazy is None:
        return None

    class QuietLazyModule(lazy):
        def __getattribute__(self, attr):
            if attr in _QUIET:
                return object.__getattribute__(self, attr)
            return super().__getattribute__(attr)

    return QuietLazyModule


_QuietLazyModule = _quiet_lazy_module()


class _Deferred(importlib.abc.MetaPathFinder):
    """Hands out the spec other finders give for a :data:`DEFERRED` name, its loader lazy."""

    def find_spec(self, name, path=None, target=None):
        if name not in DEFERRED:
            return None
        for finder in sys.meta_path:
            if finder is self or not hasattr(finder, "find_spec"):
                continue
            spec = finder.find_spec(name, path, target)
            if spec is not None:
                if hasattr(spec.loader, "exec_module"):
                    spec.loader = _QuietLazyLoader(spec.loader)
                return spec
        return None


def _importing_keras(run: Callable, module) -> None:
    """Keras' own import, with JAX kept out and modules deferred (below)."""
    _deferring(_without_jax, run, module)


def _deferring(run: Callable, *args) -> None:
    """Run ``run(*args)`` (Keras' import) with the :data:`DEFERRED` modules loaded lazily and
    ``torch._dynamo`` deferred until first used (:mod:`kvision._lazy_dynamo`)."""
    from kvision._lazy_dynamo import deferring

    finder = _Deferred()
    sys.meta_path.insert(0, finder)
    try:
        with deferring():
            run(*args)
    finally:
        sys.meta_path.remove(finder)


def _without_jax(run: Callable, module) -> None:
    """Run Keras' import with ``import jax`` failing, unless JAX is the backend or loaded."""
    block = os.environ.get("KERAS_BACKEND") != "jax" and "jax" not in sys.modules
    if block:
        sys.modules["jax"] = None  # the import system's "not importable" marker
    try:
        run(module)
    finally:
        if block and sys.modules.get("jax", 0) is None:
            del sys.modules["jax"]


def install() -> None:
    """Register LRN now if Keras is imported, else right after Keras' import finishes."""
    if "keras" in sys.modules:
        _register()
    else:
        around_import("keras", around=_importing_keras, then=_register)
