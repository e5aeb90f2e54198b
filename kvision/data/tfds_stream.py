"""``tfds:`` sources with ``data.store = "stream"``: examples decoded per batch, nothing kept.

TFDS's random-access data source is the store: a split is a selection
(kvision.data.rows.Rows) of :class:`TfdsExamples`, whose rows are read, blurred at the source
(per example, as the cache build does), resized and channel-converted when a batch gathers
them, in the loader threads. The labels (and, for a source blur, the stored sizes) come from
one pass over the examples at load: TFDS decodes an example's image together with its label,
so that pass costs a decode of every image, but nothing of it is kept.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from kvision.data.dataset import Split
from kvision.data.entries import entry_splits
from kvision.data.images import convert_channels, resize_image
from kvision.data.progress import Progress
from kvision.data.source_blur import SourceBlur
from kvision.data.stream import OnDemand
from kvision.recipe.schema_data import DataSection

#: split name in kvision -> (TFDS's name of that split, its data source)
Parts = dict[str, tuple[str, Any]]


class TfdsExamples(OnDemand):
    """The examples of every split, one after another, decoded when indexed; ``view``
    names a source-blurred condition."""

    def __init__(
        self,
        parts: Parts,
        image_key: str,
        data: DataSection,
        source_blur: SourceBlur | None = None,
        view: str | None = None,
    ) -> None:
        assert data.image_size is not None  # checked with the recipe (data.store)
        self.parts = [(name, source) for name, source in parts.values()]
        self.starts = np.cumsum([0] + [len(source) for _, source in self.parts])
        self.image_key, self.data, self.view = image_key, data, view
        self.blur = SourceBlur({view: source_blur.conditions[view]}) if view else None
        first = self._stored(0)[0]
        self.row = (*data.image_size, data.channels or first.shape[2])
        self.shape = (int(self.starts[-1]), *self.row)

    def _stored(self, row: int) -> tuple[np.ndarray, str]:
        """Example ``row`` as TFDS decodes it (H, W, C) and its id ('train/17')."""
        part = int(np.searchsorted(self.starts, row, side="right")) - 1
        name, source = self.parts[part]
        local = row - int(self.starts[part])
        image = np.asarray(source[local][self.image_key], np.uint8)
        return image.reshape(*image.shape[:2], -1), f"{name}/{local}"

    def _one(self, row: int) -> np.ndarray:
        image, tag = self._stored(row)
        size = self.data.image_size
        if self.blur is not None:  # blurred at the stored size, then resized (as cached)
            image = self.blur.views(image[None], size, tag)[self.view][0]
        else:
            image = resize_image(image, size).reshape(*size, image.shape[2])
        return convert_channels(image[None], self.data.channels)[0]


def stream_tfds(
    parts: Parts,
    keys: tuple[str, str],
    data: DataSection,
    source_blur: SourceBlur | None,
    progress: Progress,
) -> dict[str, Split]:
    """Each split as a selection of examples decoded per batch (labels read now, each
    example counted on ``progress``)."""
    image_key, label_key = keys
    meta: dict = {"labels": [], "splits": [], "ids": []}
    for ours, (name, source) in parts.items():
        for index in range(len(source)):
            example = source[index]
            meta["labels"].append(int(example[label_key]))
            meta["splits"].append(ours)
            meta["ids"].append(f"{name}/{index}")
            if source_blur:  # the stored sizes the source blur starts from, for the report
                source_blur.note_stored(np.shape(example[image_key])[:2])
            progress.step()
    meta["rows"] = list(range(len(meta["labels"])))
    arrays = {"images": TfdsExamples(parts, image_key, data)}
    for view in source_blur.conditions if source_blur else ():
        arrays[f"view_{view}"] = TfdsExamples(parts, image_key, data, source_blur, view)
    return entry_splits(arrays, meta)
