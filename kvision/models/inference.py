"""Saving a model for inference: its graph and weights, no optimizer state, not compiled.

Keras 3's ``.keras`` format has no ``include_optimizer`` switch (``save_model`` ignores it
for ``.keras``; it saves whatever the model holds). A trained model holds its optimizer, and
Adam's two moments per weight make the file three times the weights. So what is saved is an
uncompiled model over the trained one's layers: the file is what someone needs to predict,
and training state stays in the trial's checkpoints, which resume reads.

For a functional model that model is a new ``keras.Model`` on the trained model's own input
and output tensors, in their structure (:func:`inference_view`): it shares the layers and
their variables, so it costs a walk of the graph, not a rebuild, and no second set of
weights in memory. Rebuilding from the config and copying the weights in
(:func:`inference_copy`, what any other model gets) was most of a trial's export
(``benchmarks/export_cost.py`` times both); both write the same weights file and load into
models that predict the same numbers (tests/test_portable.py).
"""

from __future__ import annotations

from pathlib import Path

import keras
import numpy as np


def inference_copy(model: keras.Model) -> keras.Model:
    """An uncompiled copy of ``model`` (same config and weights, no optimizer)."""
    copy = keras.Model.from_config(model.get_config())
    copy.set_weights(model.get_weights())
    return copy


def inference_view(model: keras.Model) -> keras.Model:
    """An uncompiled model over ``model``'s own layers (a functional model's inputs and
    outputs, same name), or :func:`inference_copy` for any other kind of model."""
    if type(model).__name__ != "Functional":  # Sequential and subclasses keep their class
        return inference_copy(model)
    return keras.Model(model.input, model.output, name=model.name)


def save_for_inference(model: keras.Model, path: str | Path) -> Path:
    """Write ``model`` to the ``.keras`` file ``path`` atomically, without optimizer state."""
    from kvision.runs.atomic import atomic_path, commit

    tmp, final = atomic_path(path)
    try:
        inference_view(model).save(str(tmp))
        commit(tmp, final)  # fsync, rename, fsync the folder
    except BaseException:
        tmp.unlink(missing_ok=True)  # a full disk or a kill leaves no half model behind
        raise
    return final


def probabilities(outputs: np.ndarray) -> np.ndarray:
    """Class probabilities from model outputs: kvision models end in logits, so softmax them;
    outputs that already are probabilities (rows in [0, 1] summing to 1) pass through."""
    rows_sum_to_one = np.allclose(outputs.sum(axis=-1), 1.0, atol=1e-3)
    if rows_sum_to_one and outputs.min() >= 0.0:
        return outputs
    shifted = np.exp(outputs - outputs.max(axis=-1, keepdims=True))
    return shifted / shifted.sum(axis=-1, keepdims=True)
