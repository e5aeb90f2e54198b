"""First-conv filter grids (report 000): how the network's first look at pixels changes."""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from kvision.insight._plot import image_grid

if TYPE_CHECKING:
    import keras


def conv_kernel(model: keras.Model, layer_name: str) -> np.ndarray:
    """The kernel of ``layer_name`` as a (kh, kw, in_channels, filters) float32 array."""
    import keras

    layer = model.get_layer(layer_name)
    kernel = getattr(layer, "kernel", None)
    if kernel is None:  # SeparableConv2D keeps its spatial part as the depthwise kernel
        kernel = layer.depthwise_kernel
    return np.asarray(keras.ops.convert_to_numpy(kernel), dtype=np.float32)


def filter_tiles(kernel: np.ndarray, max_filters: int = 16) -> np.ndarray:
    """The first ``max_filters`` filters as (n, kh, kw, 3) images in [0, 1].

    Each filter is scaled by its own max |w| so that -max -> 0, 0 -> 0.5 and +max -> 1, as in
    report 000. Three input channels show as colour; any other count as the channel mean
    in gray (repeated to RGB so one grid code path serves both).
    """
    w = np.moveaxis(kernel[..., :max_filters], -1, 0)  # (n, kh, kw, cin)
    if w.shape[-1] != 3:
        w = np.repeat(w.mean(axis=-1, keepdims=True), 3, axis=-1)
    scale = np.abs(w).max(axis=(1, 2, 3), keepdims=True)
    scale[scale == 0] = 1.0  # an all-zero filter stays mid-gray instead of dividing by zero
    return np.clip(w / scale * 0.5 + 0.5, 0.0, 1.0)


def filter_mosaic(tiles: np.ndarray, gap: int = 1) -> np.ndarray:
    """Tiles arranged in a near-square grid separated by white ``gap``-pixel lines."""
    n, kh, kw, _ = tiles.shape
    cols = int(np.ceil(np.sqrt(n)))
    rows = int(np.ceil(n / cols))
    out = np.ones((rows * (kh + gap) - gap, cols * (kw + gap) - gap, 3), dtype=np.float32)
    for i, tile in enumerate(tiles):
        r, c = divmod(i, cols)
        out[r * (kh + gap) : r * (kh + gap) + kh, c * (kw + gap) : c * (kw + gap) + kw] = tile
    return out


def plot_filters(
    kernels: dict[str, np.ndarray], path: str | os.PathLike, *, title: str, max_filters: int = 16
) -> Path:
    """One filter grid per checkpoint label, side by side, written to ``path``."""
    cells = [[filter_mosaic(filter_tiles(k, max_filters)) for k in kernels.values()]]
    # 256 px per checkpoint: a 4x4 mosaic of 11x11 kernels shows each weight as a 5-px block
    return image_grid(cells, path, title=title, col_titles=list(kernels), cell=256)
