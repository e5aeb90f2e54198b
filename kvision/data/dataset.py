"""The dataset every other part of kvision reads: uint8 images and the splits that pick them.

The images live once, usually in a read-only memory map of the cache entry
(kvision.data.store); splits, limits and balancing are index selections of them
(kvision.data.rows.Rows), never copies, so memory stays flat in the number of images.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from kvision.data import rows
from kvision.data.rows import Rows

SPLIT_NAMES = ("train", "val", "test")


@dataclass
class Split:
    """One split: uint8 images (an array or a lazy selection of the store's rows)."""

    images: np.ndarray | Rows  # uint8 (N, H, W, C), C in {1, 3}; or float32 (N, F) for regression
    labels: np.ndarray  # int64 (N,) classes; or float32 (N,) regression targets
    ids: list[str] | None = None  # file path / index per image, for reproducible splits
    #: condition name -> the same images blurred at their stored resolution, then resized
    #: (conditions with ``blur.at = "source"``; see kvision.data.source_blur)
    views: dict[str, np.ndarray | Rows] = field(default_factory=dict)

    def __post_init__(self) -> None:
        image = self.images.dtype == np.uint8 and self.images.ndim == 4
        features = self.images.dtype == np.float32 and self.images.ndim == 2
        assert image or features, (self.images.dtype, self.images.shape)
        assert len(self.images) == len(self.labels)
        assert self.ids is None or len(self.ids) == len(self.labels)
        assert all(v.shape == self.images.shape for v in self.views.values())

    def __len__(self) -> int:
        return len(self.labels)

    def take(self, index: np.ndarray) -> Split:
        """The images at ``index`` (in that order), as a new split."""
        ids = [self.ids[i] for i in index] if self.ids is not None else None
        labels = self.labels[index]
        if labels.dtype.kind in "iu":  # class labels are int64 everywhere downstream
            labels = labels.astype(np.int64)
        return Split(
            rows.take(self.images, index),
            labels,
            ids,
            {name: rows.take(view, index) for name, view in self.views.items()},
        )

    @staticmethod
    def concat(parts: list[Split]) -> Split:
        """All parts, one after another."""
        ids = [i for p in parts for i in p.ids] if all(p.ids is not None for p in parts) else None
        names = list(parts[0].views) if parts else []
        assert all(set(p.views) == set(names) for p in parts), [list(p.views) for p in parts]
        views = {n: rows.concat([p.views[n] for p in parts]) for n in names}
        return Split(
            rows.concat([p.images for p in parts]),
            np.concatenate([p.labels for p in parts]).astype(np.int64),
            ids,
            views,
        )


@dataclass
class Dataset:
    """A loaded dataset: class names, its splits and where it came from."""

    name: str
    class_names: list[str]
    splits: dict[str, Split]  # "train", "val", "test"
    info: dict  # provenance: source, counts, skipped files, balance ...
    #: condition views computed so far, keyed by (split, condition name); see condition_view
    views: dict = field(default_factory=dict, repr=False, compare=False)

    @property
    def image_shape(self) -> tuple[int, ...]:
        """(H, W, C) of every image; (F,) for the feature vectors of a regression."""
        return tuple(next(iter(self.splits.values())).images.shape[1:])

    @property
    def num_classes(self) -> int:
        """How many classes there are."""
        return len(self.class_names)


def class_counts(labels: np.ndarray, num_classes: int) -> list[int]:
    """Images per class, in class order."""
    return np.bincount(labels, minlength=num_classes).tolist()


#: Split names sources use, mapped to kvision's.
SPLIT_ALIASES = {
    "train": "train",
    "training": "train",
    "val": "val",
    "valid": "val",
    "validation": "val",
    "dev": "val",
    "develop": "val",
    "test": "test",
    "testing": "test",
}


@dataclass
class SourceData:
    """What a source provides: class names and the splits it has, at the recipe's size."""

    name: str
    class_names: list[str]
    splits: dict[str, Split]
    info: dict = field(default_factory=dict)
