"""The run's data as the trainer asks for it: the images of a split under a condition, and
batches to fit or evaluate on.

The trainer asks only "the batches for condition X, split Y"; where the images live (in
memory, blurred once per condition and split) stays behind this interface.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np

from kvision.runs.phases import timed

if TYPE_CHECKING:
    from kvision.data.dataset import Dataset
    from kvision.recipe import Recipe
    from kvision.recipe.schema_training import TrainingSection

#: Pixels per prediction batch (see Feed.eval_batch_size).
EVAL_PIXELS = 256 * 64 * 64
#: Images per prediction batch at most, however small the images (see Feed.eval_batch_size).
EVAL_MAX_IMAGES = 256


@dataclass
class Feed:
    """A dataset seen through a recipe's conditions, augmentation and evaluation settings."""

    dataset: Dataset
    recipe: Recipe
    _eval_index: dict[str, np.ndarray] = field(default_factory=dict)

    @timed("blur")
    def view(self, condition: str, split: str) -> tuple[np.ndarray, np.ndarray]:
        """(uint8 images, labels) of a split under a condition (computed once, cached)."""
        from kvision.data.conditions import condition_view

        images = condition_view(self.dataset, split, condition, self.recipe.conditions[condition])
        return images, self.dataset.splits[split].labels

    def has_split(self, split: str) -> bool:
        """Whether the dataset has a non-empty split of that name."""
        s = self.dataset.splits.get(split)
        return s is not None and len(s.labels) > 0

    def fit_batches(self, condition: str, training: TrainingSection, seed: int) -> tuple[Any, Any]:
        """(training batches, validation batches or None) of a stage: raw pixel values, the
        model normalises. Validation keeps its order and only predicts, so it takes the
        larger evaluation batches (the same numbers)."""
        train = self._batches(condition, "train", training, seed)
        val = self._batches(condition, "val", training, seed)
        return train, val

    def _batches(self, condition: str, split: str, training: TrainingSection, seed: int) -> Any:
        from kvision.data.pipeline import make_batches

        if not self.has_split(split):
            return None
        mix = self.recipe.conditions[condition].mix
        if mix:  # a mix stage: each batch draws from these conditions in these proportions
            images = [self.view(name, split)[0] for name in mix]
            labels = self.dataset.splits[split].labels
        else:
            images, labels = self.view(condition, split)
        augment = self.recipe.data.augment
        training_split = split == "train"
        return make_batches(
            images,
            labels,
            batch_size=(
                training.batch_size
                if training_split
                else max(training.batch_size, self.eval_batch_size())
            ),
            seed=seed,
            shuffle=training.shuffle if training_split else False,
            augment=augment.dynamic if split in augment.splits else None,
            workers=training.workers,
            mix=list(mix.values()) if mix else None,
        )

    def eval_conditions(self) -> list[str]:
        """Conditions in the accuracy matrix (default: all but mixes, which are not views)."""
        return list(
            self.recipe.evaluate.conditions
            or [n for n, c in self.recipe.conditions.items() if not c.mix]
        )

    def eval_batches(self, condition: str, split: str) -> tuple[Any, np.ndarray] | None:
        """(batches, labels) for evaluation: fixed order, optionally a seeded subset."""
        from kvision.data.pipeline import make_batches
        from kvision.data.rows import take

        if not self.has_split(split):
            return None
        images, labels = self.view(condition, split)
        limit = self.recipe.evaluate.max_images
        # The test split is always evaluated whole: its accuracy is the number reported.
        if limit and split != "test" and len(labels) > limit:
            if split not in self._eval_index:
                rng = np.random.default_rng(self.recipe.experiment.seed)
                self._eval_index[split] = np.sort(rng.choice(len(labels), limit, replace=False))
            idx = self._eval_index[split]
            # A lazy selection: batches gather from the store as they go, so a subset of
            # a memory-mapped split costs no copy (2,000 images of 256 px would be 393 MB).
            images, labels = take(images, idx), labels[idx]
        batches = make_batches(
            images, labels, batch_size=self.eval_batch_size(), seed=0, shuffle=False
        )
        return batches, labels

    def eval_batch_size(self) -> int:
        """Images per prediction batch: as many pixels as EVAL_PIXELS (256 images of 64x64),
        at most EVAL_MAX_IMAGES, never fewer than the training batch.

        Prediction costs less per image in larger batches (each batch pays Keras' and the
        thread pool's overheads once), and its activations cost memory: AlexNet/2 and VGG11/8
        predicting 1,536 64x64 images on the loaded 2-core machine took 59 s at 128 a batch,
        41 s at 256 and 28 s at 512, for peaks of 701, 809 and 978 MiB. 256 keeps most of
        the time saved for a third of the memory; the pixel budget keeps large images small.
        It used to be at least 128 images whatever their size: at report 000's 256 x 256 a
        batch of 128 through AlexNet's 11 x 11 stride-4 convolution needs a 737 MB im2col
        buffer, most of a run's anonymous memory (benchmarks/run_scale.py), for no speed
        worth having at that size (the convolutions, not the per-batch overhead, dominate).
        Small images stop at 256 a batch: LeNet predicting 28x28 images at 512 a batch was
        slower than at 256 and raised the peak memory further (benchmarks/eval_batch.py,
        docs/measured/eval_batch.md), and it set the peak of a Fashion-MNIST run.
        """
        return prediction_batch_size(self.dataset.image_shape, self.recipe.training.batch_size)


def prediction_batch_size(image_shape: tuple[int, ...], floor: int = 1) -> int:
    """Images per prediction batch of images shaped ``image_shape`` (height, width, ...): a
    power of two holding about EVAL_PIXELS pixels, at most EVAL_MAX_IMAGES, at least
    ``floor`` (see Feed.eval_batch_size)."""
    pixels = int(np.prod(image_shape[:2])) if len(image_shape) > 1 else 1
    budget = 2 ** int(np.log2(max(EVAL_PIXELS // max(pixels, 1), 1)))
    return max(floor, min(budget, EVAL_MAX_IMAGES))


__all__ = ["EVAL_MAX_IMAGES", "EVAL_PIXELS", "Feed", "prediction_batch_size"]
