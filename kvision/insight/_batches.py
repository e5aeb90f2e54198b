"""Several image arrays as one stream of batches, cut where each array ends.

One ``predict`` over all of them runs exactly the batches that one ``predict`` per array
would (same images in each batch, same order, same shapes), so every output is the same to
the last bit while the fixed cost of a call (model mode, no-grad context, conversion, the
concatenation) is paid once.
"""

from __future__ import annotations

from collections.abc import Sequence

import keras
import numpy as np


class ArrayBatches(keras.utils.PyDataset):
    """uint8 NHWC arrays as float32 batches of at most ``batch_size``, none straddling two."""

    def __init__(self, arrays: Sequence[np.ndarray], batch_size: int) -> None:
        super().__init__()
        self.arrays = list(arrays)
        self.index = [
            (a, start)
            for a, array in enumerate(self.arrays)
            for start in range(0, len(array), batch_size)
        ]
        self.batch_size = batch_size

    def __len__(self) -> int:
        return len(self.index)

    def __getitem__(self, index: int) -> np.ndarray:
        a, start = self.index[index]
        return self.arrays[a][start : start + self.batch_size].astype(np.float32)


def predict_classes_of(
    model: keras.Model, arrays: Sequence[np.ndarray], batch_size: int
) -> list[np.ndarray]:
    """Arg-max class per image of each array, from one ``predict`` call over all of them."""
    lengths = [len(a) for a in arrays]
    if not sum(lengths):
        return [np.zeros(0, dtype=np.int64) for _ in arrays]
    outputs = np.asarray(model.predict(ArrayBatches(arrays, batch_size), verbose=0))
    classes = outputs.argmax(axis=-1)
    return np.split(classes, np.cumsum(lengths)[:-1])
