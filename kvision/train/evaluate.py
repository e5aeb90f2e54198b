"""Evaluation at a checkpoint: every evaluated condition x split (report 000's matrix).

Classification fills the matrix with accuracy and the loss table with cross-entropy; a
function-fitting (regression) run with R^2 and MSE, plus MAE in its ``scores``.
"""

from __future__ import annotations

import copy
import hashlib
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import numpy as np
from scipy.special import logsumexp

from kvision.runs.phases import timed
from kvision.train.ranks import stop_together

if TYPE_CHECKING:
    import keras

    from kvision.data.feed import Feed
    from kvision.train.signals import StopFlag


@dataclass
class Evaluator:
    """Evaluations of a run's checkpoints on its feed; equal untrained weights predict once."""

    feed: Feed
    stop: StopFlag
    regression: bool = False
    #: Evaluations by weights digest (see evaluate_matrix), so equal weights predict once.
    cache: dict[str, tuple] = field(default_factory=dict)

    def evaluate(self, model: keras.Model, label: str) -> tuple[dict, dict, dict, dict | None]:
        """(matrix, losses, the evaluation event's extra fields, predicted test classes per
        condition or None) of the checkpoint ``label``."""
        if self.regression:
            return (*evaluate_fit(self, model), None)
        matrix, losses, predicted = evaluate_matrix(self, model, untrained=label == "before")
        return matrix, losses, {"metric": "accuracy"}, predicted


def _predictions(
    ev: Evaluator, model: keras.Model
) -> Iterator[tuple[str, str, np.ndarray, np.ndarray]]:
    """(condition, split, model outputs as float64, labels) for every evaluated cell.

    Predictions (not ``model.evaluate``) so the final checkpoint's test predictions can be
    reused (classification report) and losses exclude L1/L2 penalty terms.
    """
    for condition in ev.feed.eval_conditions():
        for split in ev.feed.recipe.evaluate.splits:
            found = ev.feed.eval_batches(condition, split)
            if found is None:
                continue
            batches, labels = found
            yield (
                condition,
                split,
                np.asarray(model.predict(batches, verbose=0), dtype=np.float64),
                labels,
            )
            stop_together(ev.stop)  # every rank evaluates each cell


@timed("evaluate")
def evaluate_matrix(
    ev: Evaluator, model: keras.Model, *, untrained: bool = False
) -> tuple[dict, dict, dict]:
    """Accuracy and cross-entropy per condition and split, and the predicted test classes.

    ``untrained``: the model has its initial weights, so the arms of one model (same
    architecture, same seed) are evaluated once and the others get that evaluation's results
    again, found by a digest of the weights. Trained weights never repeat, so they are not
    hashed (0.5 s of the main job's evaluations went to hashing AlexNet/2's 44 MB).
    """
    if not untrained:
        return _matrix(ev, model)
    key = weights_key(model)
    if key not in ev.cache:
        ev.cache[key] = _matrix(ev, model)
    accuracy, loss, predicted = copy.deepcopy(ev.cache[key])
    return accuracy, loss, predicted


def weights_key(model: keras.Model) -> str:
    """A digest of every weight's path, shape and values (BatchNorm statistics included)."""
    from keras import ops

    digest = hashlib.blake2b(digest_size=16)
    for variable in model.weights:
        values = np.ascontiguousarray(ops.convert_to_numpy(variable))
        digest.update(f"{variable.path}:{values.dtype}:{values.shape}".encode())
        digest.update(values.data)
    return digest.hexdigest()


def _matrix(ev: Evaluator, model: keras.Model) -> tuple[dict, dict, dict]:
    accuracy: dict[str, dict[str, float]] = {}
    loss: dict[str, dict[str, float]] = {}
    predicted: dict[str, np.ndarray] = {}
    for condition, split, logits, labels in _predictions(ev, model):
        classes = logits.argmax(axis=-1)
        nll = logsumexp(logits, axis=-1) - logits[np.arange(len(labels)), labels]
        accuracy.setdefault(condition, {})[split] = round(float(np.mean(classes == labels)), 6)
        loss.setdefault(condition, {})[split] = round(float(np.mean(nll)), 6)
        if split == "test":
            predicted[condition] = classes
    return accuracy, loss, predicted


@timed("evaluate")
def evaluate_fit(ev: Evaluator, model: keras.Model) -> tuple[dict, dict, dict]:
    """A regression's checkpoint: R^2 per condition and split (the matrix), MSE (the loss),
    and the event's extra fields: ``metric`` and ``scores`` (mse, mae, r2 per cell).

    R^2 stands in the matrix because, like accuracy, higher is better and 1 is perfect, so
    listings and the TUI rank a regression run's checkpoints the same way.
    """
    from sklearn.metrics import mean_absolute_error, mean_squared_error, r2_score

    r2: dict[str, dict[str, float]] = {}
    mse: dict[str, dict[str, float]] = {}
    scores: dict[str, dict[str, dict[str, float]]] = {}
    for condition, split, outputs, targets in _predictions(ev, model):
        predicted = outputs.reshape(-1)
        cell = {
            "mse": mean_squared_error(targets, predicted),
            "mae": mean_absolute_error(targets, predicted),
            "r2": r2_score(targets, predicted),
        }
        cell = {k: round(float(v), 6) for k, v in cell.items()}
        scores.setdefault(condition, {})[split] = cell
        r2.setdefault(condition, {})[split] = cell["r2"]
        mse.setdefault(condition, {})[split] = cell["mse"]
    return r2, mse, {"metric": "r2", "scores": scores}
