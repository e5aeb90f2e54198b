"""Rows: a selection of an image array's rows, gathered only when a batch asks for them.

Splits, limits, balancing and manifests pick images by index. Copying the picked images
(numpy's fancy indexing) costs a full uint8 copy per split and per view; a :class:`Rows` keeps
the base array (usually a read-only memory map of the cache entry, see
:mod:`kvision.data.store`) and an int64 index instead, so memory stays flat in the number of
images and only the batch being assembled is ever in RAM.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
from numpy.lib.mixins import NDArrayOperatorsMixin


class Rows(NDArrayOperatorsMixin):
    """``base[index]`` without the copy: shape, dtype and indexing of the selected array.

    Indexing (an int, a slice or an index array) returns a plain ndarray gathered from the
    base; :meth:`take` narrows the selection and stays lazy.
    """

    def __init__(self, base: np.ndarray, index: np.ndarray | None = None) -> None:
        if isinstance(base, Rows):  # a selection of a selection: compose the indexes
            index = base.index if index is None else base.index[index]
            base = base.base
        self.base = base
        self.index = np.arange(len(base)) if index is None else np.asarray(index, np.int64)

    @property
    def shape(self) -> tuple[int, ...]:
        """(N, *row shape) of the selection."""
        return (len(self.index), *self.base.shape[1:])

    @property
    def dtype(self) -> np.dtype:
        """The base array's dtype."""
        return self.base.dtype

    @property
    def ndim(self) -> int:
        """Dimensions, as the selected array would have."""
        return self.base.ndim

    def __len__(self) -> int:
        return len(self.index)

    def __getitem__(self, key):
        if isinstance(key, tuple):  # images[rows, more...]: gather rows, then index the rest
            return self[key[0]][(slice(None), *key[1:])]
        rows = self.index[key]
        if np.ndim(rows) == 0:
            return np.asarray(self.base[int(rows)])
        return gather(self.base, rows)

    def take(self, index: np.ndarray) -> Rows:
        """The rows at ``index`` of this selection, still not copied."""
        return Rows(self.base, self.index[np.asarray(index, np.int64)])

    def astype(self, dtype) -> np.ndarray:
        """The whole selection as an ndarray of ``dtype`` (a copy: for small selections)."""
        return gather(self.base, self.index).astype(dtype)

    def __array__(self, dtype=None, copy=None) -> np.ndarray:
        out = gather(self.base, self.index)
        return out if dtype is None else out.astype(dtype)

    def __array_ufunc__(self, ufunc, method, *inputs, **kwargs):
        # Arithmetic on a selection (``rows / 255.0``) works on the gathered copy.
        inputs = tuple(np.asarray(x) if isinstance(x, Rows) else x for x in inputs)
        return getattr(ufunc, method)(*inputs, **kwargs)

    def __repr__(self) -> str:
        return f"Rows({self.shape}, {self.dtype}, of {type(self.base).__name__} {self.base.shape})"


def gather(base: np.ndarray, rows: np.ndarray) -> np.ndarray:
    """``base[rows]`` read in ascending row order (a memory map reads the file forwards)."""
    rows = np.asarray(rows, np.int64)
    if len(rows) < 2 or np.all(rows[1:] >= rows[:-1]):
        return np.asarray(base[rows])
    order = np.argsort(rows, kind="stable")
    out = np.empty((len(rows), *base.shape[1:]), base.dtype)
    out[order] = base[rows[order]]
    return out


def take(images: np.ndarray | Rows, index: np.ndarray) -> Rows:
    """A lazy selection of ``images`` (an array or a selection of one)."""
    return Rows(images, np.asarray(index, np.int64))


def concat(parts: list[np.ndarray | Rows]) -> np.ndarray | Rows:
    """Parts one after another: a selection when they share one base, else a copy."""
    bases = {id(p.base) for p in parts if isinstance(p, Rows)}
    if len(bases) == 1 and all(isinstance(p, Rows) for p in parts):
        return Rows(parts[0].base, np.concatenate([p.index for p in parts]))
    return np.concatenate([np.asarray(p) for p in parts])


class PerBatch:
    """``base`` with ``fn`` applied to every gathered batch (a per-image blur at the input
    over rows that are decoded per batch, kvision.data.stream)."""

    decodes_per_batch = True

    def __init__(self, base, fn: Callable[[np.ndarray], np.ndarray]) -> None:
        self.base, self.fn = base, fn
        self.shape, self.dtype, self.ndim = base.shape, base.dtype, base.ndim

    def __len__(self) -> int:
        return len(self.base)

    def __getitem__(self, key) -> np.ndarray:
        if np.ndim(key) == 0 and not isinstance(key, slice):
            return self.fn(self.base[key][None])[0]
        return self.fn(self.base[key])


def per_batch(images) -> bool:
    """Whether ``images`` (or the base of a selection) decode when gathered (stream mode)."""
    base = images.base if isinstance(images, Rows) else images
    return bool(getattr(base, "decodes_per_batch", False))
