"""The input pipeline into Keras ``fit``: uint8 images until the batch, order set per epoch."""

from __future__ import annotations

import math
from collections.abc import Sequence

import keras
import numpy as np

from kvision.data.augment import Augmenter
from kvision.recipe.schema_data import AugmentOp


class BatchSequence(keras.utils.PyDataset):
    """Batches of uint8 NHWC raw pixels (0..255) and int64 labels.

    Batches stay uint8 until the model: Keras casts them to the input's float dtype on the
    device, so the host skips one pass per batch and queues (and transfers) a quarter of the
    bytes; at 384 x 384 a queue of float32 batches alone took hundreds of MiB.

    The order and the dynamic augmentation of epoch ``e`` depend only on (seed, e): call
    :meth:`set_epoch` before each epoch and pass ``shuffle=False`` to ``fit`` (Keras would
    otherwise reshuffle batches with Python's unseeded ``random``). Every batch is a pure
    function of (seed, epoch, index), so worker threads cannot change the result.
    """

    def __init__(
        self,
        images: np.ndarray,
        labels: np.ndarray,
        *,
        batch_size: int,
        seed: int,
        shuffle: bool,
        augment: Augmenter | None = None,
        workers: int = 0,
    ) -> None:
        # Threads, not processes: OpenCV releases the GIL and the images are not copied.
        super().__init__(
            workers=max(workers, 1), use_multiprocessing=False, max_queue_size=max(2 * workers, 4)
        )
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
        return self.get(index)

    def get(
        self, index: int, shard: tuple[int, int] | None = None
    ) -> tuple[np.ndarray, np.ndarray]:
        """Batch ``index``; with ``shard`` = (rank, world) only rows rank, rank + world, ...
        are read from the images (the others stay zero), so a data-parallel rank reads only
        its share of a streamed folder's files. Augmentation still sees the whole batch, so
        those rows come out as they would without a shard."""
        picks = self.order[index * self.batch_size : (index + 1) * self.batch_size]
        wanted = np.ones(len(picks), bool)
        if shard is not None:
            wanted = np.arange(len(picks)) % shard[1] == shard[0]
        images = self._images(picks, index, wanted)
        if self.augment is not None:
            rng = np.random.default_rng([self.seed, self.epoch, index, 1])
            images = self.augment.batch(images, rng)
        return images, self.labels[picks]

    def _images(self, picks: np.ndarray, index: int, wanted: np.ndarray) -> np.ndarray:
        if wanted.all():
            return self.images[picks]
        out = np.zeros((len(picks), *self.images.shape[1:]), self.images.dtype)
        out[wanted] = self.images[picks[wanted]]
        return out


def mix_counts(weights: Sequence[float], n: int) -> list[int]:
    """How many of ``n`` images each source gives: the weights' shares of n, rounded by
    largest remainder so the counts sum to n (ties go to the earlier source)."""
    total = float(sum(weights))
    exact = [w / total * n for w in weights]
    counts = [math.floor(e) for e in exact]
    by_remainder = sorted(range(len(weights)), key=lambda i: (-(exact[i] - counts[i]), i))
    for i in by_remainder[: n - sum(counts)]:
        counts[i] += 1
    return counts


class MixedBatchSequence(BatchSequence):
    """Batches whose images come from several conditions in set proportions (a mix stage).

    ``sources`` are the same images under each condition (aligned with ``labels``). Every
    image appears once per epoch, as in :class:`BatchSequence`; within each batch,
    :func:`mix_counts` of them are taken from each source and which ones is drawn from
    (seed, epoch, batch index), so a batch is still a pure function of those and a resumed
    run sees the same batches. Validation batches (``shuffle=False``) keep one assignment for
    every epoch.
    """

    def __init__(
        self, sources: Sequence[np.ndarray], weights: Sequence[float], labels: np.ndarray, **kwargs
    ) -> None:
        assert len(sources) == len(weights) >= 2
        assert all(s.shape == sources[0].shape for s in sources)
        self.sources, self.weights = list(sources), list(weights)
        super().__init__(sources[0], labels, **kwargs)

    def _images(self, picks: np.ndarray, index: int, wanted: np.ndarray) -> np.ndarray:
        epoch = self.epoch if self.shuffle else 0
        rng = np.random.default_rng([self.seed, epoch, index, 2])
        which = np.repeat(np.arange(len(self.sources)), mix_counts(self.weights, len(picks)))
        which = rng.permutation(which)
        out = np.zeros((len(picks), *self.sources[0].shape[1:]), self.sources[0].dtype)
        for k, source in enumerate(self.sources):
            mine = (which == k) & wanted
            out[mine] = source[picks[mine]]
        return out


def make_batches(
    images: np.ndarray | Sequence[np.ndarray],
    labels: np.ndarray,
    *,
    batch_size: int,
    seed: int,
    shuffle: bool,
    augment: Augmenter | Sequence[AugmentOp] | None = None,
    workers: int = 0,
    mix: Sequence[float] | None = None,
) -> BatchSequence:
    """A Keras PyDataset over uint8 ``images``; see :class:`BatchSequence`.

    ``augment`` is dynamic augmentation: an :class:`Augmenter` or the recipe's op list
    (``data.augment.dynamic``); its output keeps the images' size. ``workers`` > 1 prepares
    batches in that many threads ahead of the model. With ``mix`` (one weight per source),
    ``images`` is a sequence of sources drawn in those proportions
    (:class:`MixedBatchSequence`).
    """
    first = images[0] if mix is not None else images
    if augment is not None and not isinstance(augment, Augmenter):
        augment = Augmenter(augment, first.shape[1:3]) if len(augment) else None
    options = dict(
        batch_size=batch_size, seed=seed, shuffle=shuffle, augment=augment, workers=workers
    )
    if mix is not None:
        return MixedBatchSequence(images, mix, labels, **options)
    return BatchSequence(images, labels, **options)
