"""Data: sources (builtin, idx, folder, tfds), splits, balance, blur, augmentation,
normalisation and the input pipeline into Keras ``fit``.

Images are held once, as uint8 NHWC, and converted to float32 only batch by batch; models
normalise internally, so the pipeline feeds raw 0..255 pixels.
"""

from __future__ import annotations

from kvision.data.balance import inverse_frequency_weights
from kvision.data.conditions import apply_condition, condition_view
from kvision.data.dataset import Dataset, Split
from kvision.data.load import load_dataset
from kvision.data.normalize import NORMALIZE_PRESETS, normalization
from kvision.data.splits import split_manifest
from kvision.recipe.schema_data import DataSection

__all__ = [
    "NORMALIZE_PRESETS", "Dataset", "Split", "apply_condition", "class_weights",
    "condition_view", "load_dataset", "make_batches", "normalization", "split_manifest",
]


def class_weights(data: DataSection, dataset: Dataset) -> dict[int, float] | None:
    """Keras ``class_weight`` for ``balance.method = "class_weights"``, else None."""
    if data.balance.method != "class_weights":
        return None
    return inverse_frequency_weights(dataset.splits["train"].labels, dataset.num_classes)


def make_batches(*args, **kwargs):
    """A Keras PyDataset of float32 batches; see :func:`kvision.data.pipeline.make_batches`.

    Imported lazily so that ``import kvision.data`` does not import Keras.
    """
    from kvision.data.pipeline import make_batches as _make_batches

    return _make_batches(*args, **kwargs)
