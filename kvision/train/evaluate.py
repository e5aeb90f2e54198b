"""The accuracy matrix of report 000: every evaluated condition x split, at a checkpoint."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import keras

    from kvision.train.context import RunContext


def evaluate_matrix(ctx: RunContext, model: keras.Model) -> tuple[dict, dict]:
    """({condition: {split: accuracy}}, {condition: {split: loss}}) for the recipe's matrix."""
    accuracy: dict[str, dict[str, float]] = {}
    loss: dict[str, dict[str, float]] = {}
    for condition in ctx.eval_conditions():
        for split in ctx.recipe.evaluate.splits:
            batches = ctx.eval_batches(condition, split)
            if batches is None:
                continue
            result = model.evaluate(batches, verbose=0, return_dict=True)
            accuracy.setdefault(condition, {})[split] = round(float(result["accuracy"]), 6)
            loss.setdefault(condition, {})[split] = round(float(result["loss"]), 6)
            ctx.stop.raise_if_set()
    return accuracy, loss
