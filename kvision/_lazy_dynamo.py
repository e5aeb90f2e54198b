"""Keep ``torch._dynamo`` (and the SymPy it brings) out of Keras' import until something uses it.

Keras' torch backend imports ``torch._dynamo`` at module level only to decorate two seed
helpers with ``@dynamo.disable()`` (``keras/src/backend/torch/random.py`` and ``image.py``):
the marker tells torch.compile not to trace them. That import is 1.1 s of every process's
start and 72 MiB of resident memory (``benchmarks/import_cost.py``), paid by every run and
every CLI command that loads Keras, although a run compiles nothing.

During Keras' import (:func:`deferring`, called by ``kvision._keras_layers``) a stand-in
module sits at ``sys.modules["torch._dynamo"]``. Its ``disable`` decorator records the
function and returns it unchanged; any other attribute loads the real module and answers
from it. When the real ``torch._dynamo`` is imported later (``torch.compile``,
``torch.export``, ``keras.backend.clear_session``, a user's import), a one-shot import hook
(``kvision._import_hooks``) applies the real ``disable`` to every recorded function and
rebinds it in its module, before any code can trace: no tracer runs without
``torch._dynamo`` loaded, so until then a function without the marker behaves exactly like
one with it. If ``torch._dynamo`` is already loaded when Keras is imported, nothing is
deferred.
"""

from __future__ import annotations

import importlib
import importlib.abc
import importlib.util
import sys
import threading
import types
from collections.abc import Callable, Iterator
from contextlib import contextmanager

from kvision._import_hooks import around_import

NAME = "torch._dynamo"

#: Functions decorated while the stand-in was in place: (function, disable's arguments).
_RECORDED: list[tuple[Callable, tuple, dict]] = []
_LOCK = threading.Lock()


class _StandIn(types.ModuleType):
    """``torch._dynamo`` while Keras imports: ``disable`` records, anything else is real."""

    def disable(self, fn: Callable | None = None, *args, **kwargs):
        if fn is not None:
            return _record(fn, args, kwargs)
        return lambda f: _record(f, args, kwargs)

    def __getattr__(self, name: str):
        if name.startswith("__"):  # the import system probing (__file__, __path__, ...)
            raise AttributeError(name)
        return getattr(_real(), name)


def _record(fn: Callable, args: tuple, kwargs: dict) -> Callable:
    real = sys.modules.get(NAME)
    if real is not None and not isinstance(real, _StandIn):
        return real.disable(fn, *args, **kwargs)
    with _LOCK:
        _RECORDED.append((fn, args, kwargs))
    return fn


def _real() -> types.ModuleType:
    """The real ``torch._dynamo``, imported now if only the stand-in is there."""
    _drop_stand_in()
    return importlib.import_module(NAME)


def _drop_stand_in() -> None:
    """Forget the stand-in: the next ``import torch._dynamo`` loads the real module."""
    for finder in [f for f in sys.meta_path if isinstance(f, _StandInFinder)]:
        sys.meta_path.remove(finder)
    if isinstance(sys.modules.get(NAME), _StandIn):
        del sys.modules[NAME]
    torch = sys.modules.get("torch")
    if isinstance(getattr(torch, "__dict__", {}).get("_dynamo"), _StandIn):
        del torch._dynamo  # the import system set it; torch's __getattr__ imports the real one


class _StandInFinder(importlib.abc.MetaPathFinder, importlib.abc.Loader):
    """While on ``sys.meta_path``, ``import torch._dynamo`` creates the stand-in.

    A finder rather than a ``sys.modules`` entry: importing ``torch`` itself drops an entry
    for a submodule placed before it.
    """

    def find_spec(self, name, path=None, target=None):
        if name != NAME:
            return None
        return importlib.util.spec_from_loader(name, self)

    def create_module(self, spec):
        return _StandIn(spec.name)

    def exec_module(self, module):
        """The stand-in has no code to run."""


def redecorate(dynamo: types.ModuleType) -> None:
    """Give every recorded function the real ``disable`` marker, rebound in its module."""
    with _LOCK:
        recorded, _RECORDED[:] = list(_RECORDED), []
    for fn, args, kwargs in recorded:
        module = sys.modules.get(fn.__module__)
        if module is not None and getattr(module, fn.__name__, None) is fn:
            setattr(module, fn.__name__, dynamo.disable(fn, *args, **kwargs))


@contextmanager
def deferring() -> Iterator[None]:
    """Within: ``import torch._dynamo`` gives the stand-in (unless the real one is loaded)."""
    if NAME in sys.modules:
        yield
        return
    sys.meta_path.insert(0, _StandInFinder())
    try:
        yield
    finally:
        _drop_stand_in()
        real = sys.modules.get(NAME)
        if real is not None:
            redecorate(real)  # loaded meanwhile, through an attribute of the stand-in
        elif _RECORDED:
            around_import(NAME, then=redecorate)
