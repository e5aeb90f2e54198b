"""A checkpoint's ``model.weights.h5`` written off the trainer's thread, as ``save_weights``
writes it.

``model.save_weights`` of the main job's AlexNet/2 with Adam's slots (133 MB) takes the
trainer 0.44 s a checkpoint; a snapshot of the same variables takes it 0.10 s (2-core Xeon,
torch 2.13 CPU: ``benchmarks/checkpoint_write.py``). So :func:`snapshot` runs Keras' own saving walk
(``saving_lib._save_state``, the one ``save_weights`` runs) into a store that only records:
each layer's and the optimizer's entry (path and metadata) and a copy of each variable, in
the walk's order. :meth:`Snapshot.write` later hands them, in that order, to Keras' own H5
store on the checkpoint's commit thread, so the file has the groups, attributes and datasets
``save_weights`` gives it, and ``load_weights`` reads it back.

``_save_state`` and ``H5IOStore`` are private Keras names. Where a Keras lacks them, or the
walk fails, :func:`snapshot` returns None and the trainer calls ``save_weights`` as before.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import keras
import numpy as np

try:  # private: checked here, once; the fallback is model.save_weights
    from keras.src.saving.saving_lib import H5IOStore, _save_state
except ImportError:  # pragma: no cover - a Keras without them takes the fallback
    H5IOStore = _save_state = None


@dataclass
class Snapshot:
    """What Keras' saving walk stored: (entry path, metadata, [(key, copied value)])."""

    entries: list[tuple[str, dict | None, list[tuple[str, Any]]]] = field(default_factory=list)

    def write(self, path: Path) -> None:
        """The weights file, through Keras' own store (any thread; the copies are private)."""
        store = H5IOStore(str(path), mode="w")
        try:
            for inner_path, metadata, items in self.entries:
                store.make(inner_path, metadata=metadata)
                for key, value in items:
                    store[key] = value
        finally:
            store.close()


if H5IOStore is not None:

    class _Recorder(H5IOStore):
        """The store ``_save_state`` writes into, keeping copies instead of writing a file."""

        def __init__(self) -> None:  # no file: nothing of H5IOStore's own state is used
            self.snapshot = Snapshot()

        def __bool__(self) -> bool:
            return True

        def make(self, path: str, metadata: dict | None = None) -> _Recorder:
            self.snapshot.entries.append((path, metadata, []))
            return self

        def __setitem__(self, key: str, value: Any) -> None:
            self.snapshot.entries[-1][2].append((key, _copy(value)))


def _copy(value: Any) -> Any:
    """A copy the trainer's next steps cannot change (a device tensor stays on its device)."""
    if isinstance(value, keras.Variable) or keras.ops.is_tensor(value):
        return keras.ops.copy(value)
    return np.array(value, copy=True)


def snapshot(model: keras.Model, *, optimizer: bool = True) -> Snapshot | None:
    """The model's weights (and, with ``optimizer``, its optimizer's variables) as
    ``save_weights`` would store them, copied; None where this Keras lacks the internals or
    the walk fails. Without ``optimizer`` the walk treats the optimizer as already visited,
    so the file is the one ``save_weights`` writes for the uncompiled model."""
    if H5IOStore is None:
        return None
    recorder = _Recorder()
    skip = getattr(model, "optimizer", None)
    visited = {id(skip)} if skip is not None and not optimizer else set()
    try:
        _save_state(
            model,
            weights_store=recorder,
            assets_store=None,
            inner_path="",
            visited_saveables=visited,
        )
    except (TypeError, ValueError, AttributeError):
        return None  # an internal changed shape: the trainer writes with save_weights
    return recorder.snapshot
