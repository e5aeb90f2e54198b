"""Class balance (report 001): undersampling, oversampling and class weights."""

from __future__ import annotations

import numpy as np
from sklearn.utils.class_weight import compute_class_weight

from kvision.data.dataset import Dataset, Split, class_counts
from kvision.recipe.schema_data import DataSection


def limit_per_class(split: Split, limit: int, rng: np.random.Generator) -> Split:
    """At most ``limit`` images of each class (a seeded random choice, original order kept)."""
    keep = []
    for c in np.unique(split.labels):
        members = np.flatnonzero(split.labels == c)
        keep.append(members if len(members) <= limit else rng.choice(members, limit, replace=False))
    return split.take(np.sort(np.concatenate(keep)))


def undersample(split: Split, per_class: int | None, rng: np.random.Generator) -> Split:
    """Cap every class at ``per_class`` (default: the smallest class's count)."""
    counts = np.bincount(split.labels)
    target = per_class or int(counts[counts > 0].min())
    return limit_per_class(split, target, rng)


def oversample(split: Split, per_class: int | None, rng: np.random.Generator) -> Split:
    """Repeat images of small classes up to ``per_class`` (default: the largest class)."""
    counts = np.bincount(split.labels)
    target = per_class or int(counts.max())
    picks = []
    for c in np.flatnonzero(counts):
        members = np.flatnonzero(split.labels == c)
        extra = max(target - len(members), 0)
        # Whole copies first, then a random remainder, so no image is repeated twice before
        # every image of the class was repeated once.
        repeats = np.tile(members, extra // len(members))
        rest = rng.choice(members, extra % len(members), replace=False)
        picks.append(np.concatenate([members, repeats, rest]))
    return split.take(np.sort(np.concatenate(picks), kind="stable"))


def inverse_frequency_weights(labels: np.ndarray, num_classes: int) -> dict[int, float]:
    """Keras class_weight: n_samples / (n_classes * count), classes without images get 0."""
    present = np.unique(labels)
    weights = compute_class_weight("balanced", classes=present, y=labels)
    table = dict.fromkeys(range(num_classes), 0.0)
    table.update({int(c): float(w) for c, w in zip(present, weights, strict=True)})
    return table


def counts_by_name(split: Split, class_names: list[str]) -> dict[str, int]:
    """{class name: images} of a split, for the events and the report."""
    return dict(zip(class_names, class_counts(split.labels, len(class_names)), strict=True))


def class_weights(data: DataSection, dataset: Dataset) -> dict[int, float] | None:
    """Keras ``class_weight`` for ``balance.method = "class_weights"``, else None."""
    if data.balance.method != "class_weights":
        return None
    return inverse_frequency_weights(dataset.splits["train"].labels, dataset.num_classes)
