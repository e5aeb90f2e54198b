"""The input pipeline into Keras ``fit``: uint8 images until the batch, order set per epoch."""

from __future__ import annotations

import math
from collections.abc import Sequence

import keras
import numpy as np

from kvision.data.augment import Augmenter
from kvision.recipe.schema_data import AugmentOp


class BatchSequence(keras.utils.PyDataset):
    """Batches of float32 NHWC raw pixels (0..255) and int64 labels.

    The order and the dynamic augmentation of epoch ``e`` depend only on (seed, e): call
    :meth:`set_epoch` before each epoch and pass ``shuffle=False`` to ``fit`` (Keras would
    otherwise reshuffle batches with Python's unseeded ``random``). Every batch is a pure
    function of (seed, epoch, index), so worker threads cannot change the result.
    """

    def __init__(self, images: np.ndarray, labels: np.ndarray, *, batch_size: int, seed: int,
                 shuffle: bool, augment: Augmenter | None = None, workers: int = 0) -> None:
        # Threads, not processes: OpenCV releases the GIL and the images are not copied.
        super().__init__(workers=max(workers, 1), use_multiprocessing=False,
                         max_queue_size=max(2 * workers, 4))
        self.images, self.labels = images, labels
        self.batch_size, self.seed, self.shuffle, self.augment = batch_size, seed, shuffle, augment
        self.epoch = 0
        self.order = np.arange(len(labels))
        self.set_epoch(0)

    def set_epoch(self, epoch: int) -> None:
        """Fix the order (and augmentation) of the next epoch; 0-based."""
        self.epoch = epoch
        if self.shuffle:
            self.order = np.random.default_rng([self.seed, epoch]).permutation(len(self.labels))

    def __len__(self) -> int:
        return math.ceil(len(self.labels) / self.batch_size)

    def __getitem__(self, index: int) -> tuple[np.ndarray, np.ndarray]:
        picks = self.order[index * self.batch_size:(index + 1) * self.batch_size]
        images = self.images[picks]
        if self.augment is not None:
            rng = np.random.default_rng([self.seed, self.epoch, index, 1])
            images = self.augment.batch(images, rng)
        return images.astype(np.float32), self.labels[picks]


def make_batches(images: np.ndarray, labels: np.ndarray, *, batch_size: int, seed: int,
                 shuffle: bool, augment: Augmenter | Sequence[AugmentOp] | None = None,
                 workers: int = 0) -> BatchSequence:
    """A Keras PyDataset over uint8 ``images``; see :class:`BatchSequence`.

    ``augment`` is dynamic augmentation: an :class:`Augmenter` or the recipe's op list
    (``data.augment.dynamic``); its output keeps the images' size. ``workers`` > 1 prepares
    batches in that many threads ahead of the model.
    """
    if augment is not None and not isinstance(augment, Augmenter):
        augment = Augmenter(augment, images.shape[1:3]) if len(augment) else None
    return BatchSequence(images, labels, batch_size=batch_size, seed=seed, shuffle=shuffle,
                         augment=augment, workers=workers)
