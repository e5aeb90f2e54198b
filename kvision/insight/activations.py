"""Intermediate activations (report 000): channel-mean maps per stage and strongest channels."""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from kvision.insight._plot import colourise, image_grid

if TYPE_CHECKING:
    import keras


def activation_maps(
    model: keras.Model, layers: dict[str, str], images: np.ndarray, batch_size: int = 32
) -> dict[str, np.ndarray]:
    """Outputs of the named layers for ``images`` (uint8 NHWC), from one batched forward pass.

    ``layers`` maps a display name to a layer name; returns display name -> (N, h, w, c).
    """
    from kvision.insight._layers import probe_model

    names = list(layers)
    probe = probe_model(model, [model.get_layer(layers[n]).output for n in names])
    outs = probe.predict(images.astype(np.float32), batch_size=batch_size, verbose=0)
    if not isinstance(outs, (list, tuple)):
        outs = [outs]
    return {n: np.asarray(o, dtype=np.float32) for n, o in zip(names, outs, strict=True)}


def strongest_channels(fmap: np.ndarray, k: int) -> np.ndarray:
    """Indices of the ``k`` channels with the highest mean activation in one (h, w, c) map."""
    return np.argsort(fmap.mean(axis=(0, 1)))[::-1][:k]


def plot_stage_means(
    images: np.ndarray,
    maps: dict[str, np.ndarray],
    row_titles: list[str],
    path: str | os.PathLike,
    *,
    title: str,
) -> Path:
    """Rows of samples: the input image, then the channel-mean map of each stage."""
    cells = [
        [image] + [colourise(fmap[r].mean(axis=-1)) for fmap in maps.values()]
        for r, image in enumerate(images)
    ]
    # two short lines per title: one line ("v1 (mean of 128)") overlaps its neighbours
    heads = ["input"] + [f"{stage}\nmean of {fmap.shape[-1]}" for stage, fmap in maps.items()]
    return image_grid(
        cells,
        path,
        title=title,
        col_titles=heads,
        row_titles=row_titles,
        cell=112,
        colourbar=("viridis", "mean activation / its range"),
    )


def plot_top_channels(
    images: np.ndarray,
    fmap: np.ndarray,
    row_titles: list[str],
    path: str | os.PathLike,
    *,
    title: str,
    k: int = 6,
) -> Path:
    """Rows of samples: the input image, then the ``k`` strongest channels of one stage."""
    cells, captions = [], []
    for r, image in enumerate(images):
        top = strongest_channels(fmap[r], k)
        cells.append([image] + [colourise(fmap[r, ..., ch]) for ch in top])
        captions.append([""] + [f"channel {ch}" for ch in top])
    return image_grid(cells, path, title=title, row_titles=row_titles, captions=captions, cell=72)
