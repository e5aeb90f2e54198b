"""The accuracy matrix of report 000: every evaluated condition x split, at a checkpoint."""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
from scipy.special import logsumexp

if TYPE_CHECKING:
    import keras

    from kvision.train.context import RunContext


def evaluate_matrix(ctx: RunContext, model: keras.Model) -> tuple[dict, dict, dict]:
    """Accuracy and loss per condition and split, and the predicted test classes.

    Predictions (not ``model.evaluate``) so the final checkpoint's test predictions can be
    reused for the classification report instead of running the model a second time. The
    loss is the data loss (cross-entropy), without L1/L2 penalty terms.
    """
    accuracy: dict[str, dict[str, float]] = {}
    loss: dict[str, dict[str, float]] = {}
    predicted: dict[str, np.ndarray] = {}
    for condition in ctx.eval_conditions():
        for split in ctx.recipe.evaluate.splits:
            found = ctx.eval_batches(condition, split)
            if found is None:
                continue
            batches, labels = found
            logits = np.asarray(model.predict(batches, verbose=0), dtype=np.float64)
            classes = logits.argmax(axis=-1)
            nll = logsumexp(logits, axis=-1) - logits[np.arange(len(labels)), labels]
            accuracy.setdefault(condition, {})[split] = round(float(np.mean(classes == labels)), 6)
            loss.setdefault(condition, {})[split] = round(float(np.mean(nll)), 6)
            if split == "test":
                predicted[condition] = classes
            ctx.stop.raise_if_set()
    return accuracy, loss, predicted
