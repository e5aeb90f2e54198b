"""``model.predict`` without Keras' per-batch machinery, for the quiet calls kvision makes.

Keras' torch ``predict`` wraps every batch in an epoch iterator (a torch ``DataLoader`` over
the dataset), a callback list, a ``predict_function`` and per-output tree maps. For the
evaluations kvision runs (``verbose=0``, no callbacks, a ``PyDataset`` or an array) none of
that is observable, and on two CPU cores it cost VGG11/8 predicting 192 64x64 images 76 ms
against 62 ms for the same batches fed to the model in a plain loop. :func:`lean_predict`
is that loop: the dataset's batches in order, ``model(x, training=False)`` under
``torch.no_grad()`` as Keras' own predict step runs it, the outputs moved to NumPy and
concatenated. Every other call (progress bars, callbacks, ``steps``, generators, tf.data,
worker threads or processes) takes Keras' own ``predict``.
"""

from __future__ import annotations

import keras
import numpy as np

from kvision.models import _fast
from kvision.models._fast import capture
from kvision.models._fast.layers import wrapper_adds_nothing


def _batches(x, batch_size: int | None):
    """The input batches of ``x`` in order, or None when Keras' predict should read it."""
    if isinstance(x, keras.utils.PyDataset):
        if x.workers > 1 or x.use_multiprocessing:
            return None  # Keras' enqueuer runs those workers
        return (keras.utils.unpack_x_y_sample_weight(_as_tuple(x[i]))[0] for i in range(len(x)))
    if isinstance(x, np.ndarray):
        size = batch_size or 32  # Keras' default
        return (x[i : i + size] for i in range(0, len(x), size))
    return None


def direct_call(model: keras.Model):
    """The direct graph's own ``call`` of ``model`` where the model's ``Layer.__call__`` would
    add nothing (the test the walk applies to each layer), else None."""
    call = model.call
    direct = getattr(call, "kvision_direct", False)  # set by graph.direct_graph
    return call if direct and wrapper_adds_nothing(model) else None


def _forward(model: keras.Model):
    """``model(x, training=False)``: where :func:`direct_call` finds the model's own
    ``Layer.__call__`` would add nothing, the direct graph's call, replayed from a capture
    (:mod:`.capture`) where one applies."""
    call = direct_call(model)
    if call is None:
        return lambda x: model(x, training=False)
    return capture.captured_forward(model, call)


def capture_forward(model: keras.Model, batch) -> float | None:
    """Capture ``model``'s forward for ``batch``'s signature now rather than once it is hot
    (:mod:`.capture`), as a benchmark does before timing: the seconds it took, or None where
    quiet predicts of ``model`` take no capture."""
    call = direct_call(model) if _fast.torch_active() else None
    return None if call is None else capture.capture_now(model, call, batch)


def _as_tuple(batch):
    return batch if isinstance(batch, tuple) else (batch,)


def lean_predict(
    model: keras.Model, x, batch_size=None, verbose="auto", steps=None, callbacks=None
):
    """``model.predict(x, ...)``: the lean loop when nothing else could tell, else Keras'."""
    batches = None
    if _fast.torch_active() and verbose == 0 and steps is None and callbacks is None:
        batches = _batches(x, batch_size)
    if batches is None:
        return type(model).predict(
            model, x, batch_size=batch_size, verbose=verbose, steps=steps, callbacks=callbacks
        )
    import torch

    model.eval()  # torch's module mode, as Keras' predict sets it
    forward = _forward(model)
    outputs = []
    with torch.no_grad():
        for inputs in batches:
            outputs.append(keras.tree.map_structure(keras.ops.convert_to_numpy, forward(inputs)))
    if not outputs:
        raise ValueError(f"predict: {type(x).__name__} gave no batches to predict.")
    return keras.tree.map_structure_up_to(
        outputs[0], lambda *parts: np.concatenate(parts), *outputs
    )
