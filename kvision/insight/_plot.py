"""Shared plotting helpers: headless figures, atomic PNG writes, names and colours.

Figures are built with ``matplotlib.figure.Figure`` rather than pyplot: no global figure
registry to leak memory over a long run, and no GUI backend is ever touched (SSH, CI).

Matplotlib (25 MiB resident: docs/measured/import_cost.md) is imported
by the functions that draw, not by this module: the insight modules that compute what a
figure shows import their names from here, and in a run they compute in the trainer while
the render worker draws (kvision.insight.render_worker), so the trainer never loads it.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING

import cv2
import numpy as np

from kvision.insight._names import slug  # noqa: F401  (re-exported: modules import it from here)
from kvision.runs.atomic import atomic_path, commit

if TYPE_CHECKING:
    from matplotlib.figure import Figure

#: Small figures keep PNG encoding cheap and still read well in a terminal image viewer.
DPI = 100
#: Colours assigned to arms in the order they appear in a run, the same in every figure.
PALETTE = (
    "tab:blue",
    "tab:orange",
    "tab:green",
    "tab:red",
    "tab:purple",
    "tab:brown",
    "tab:pink",
    "tab:gray",
    "tab:olive",
    "tab:cyan",
)
#: Line styles assigned to models, so colour says arm and style says model.
LINESTYLES = ("-", "--", ":", "-.")


def new_figure(width: float, height: float) -> Figure:
    """A figure of ``width`` x ``height`` inches with constrained layout."""
    from matplotlib.figure import Figure

    return Figure(figsize=(width, height), dpi=DPI, layout="constrained")


def save_figure(fig: Figure, path: str | os.PathLike) -> Path:
    """Write ``fig`` as PNG to ``path`` atomically (temp file with a .png suffix, then rename)."""
    tmp, final = atomic_path(path)
    try:
        fig.savefig(tmp, format="png")
        return commit(tmp, final)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)  # a full disk leaves no half picture behind
        raise


def styles_for(names: list[str], palette: tuple[str, ...]) -> dict[str, str]:
    """Map each distinct name to a style from ``palette`` in order of first appearance."""
    out: dict[str, str] = {}
    for name in names:
        if name not in out:
            out[name] = palette[len(out) % len(palette)]
    return out


def integer_ticks(axis) -> None:
    """Whole-number ticks on ``axis`` (an Axes' xaxis or yaxis): epochs, severities."""
    from matplotlib.ticker import MaxNLocator

    axis.set_major_locator(MaxNLocator(integer=True))


def hide_axes(ax) -> None:
    """Image panels: no ticks, no frame."""
    ax.set_xticks([])
    ax.set_yticks([])
    for spine in ax.spines.values():
        spine.set_visible(False)


def colourise(values: np.ndarray, cmap: str = "viridis") -> np.ndarray:
    """A 2-D map as RGB in [0, 1], stretched to its own min..max (a flat map is dark)."""
    import matplotlib

    lo, hi = float(values.min()), float(values.max())
    scaled = (values - lo) / (hi - lo) if hi > lo else np.zeros_like(values, dtype=np.float32)
    return matplotlib.colormaps[cmap](scaled)[..., :3].astype(np.float32)


def as_rgb(image: np.ndarray) -> np.ndarray:
    """A uint8 or [0, 1] float image, gray or RGB, as float RGB in [0, 1]."""
    out = image.astype(np.float32) / (255.0 if image.dtype == np.uint8 else 1.0)
    if out.ndim == 2:
        out = out[..., None]
    return np.repeat(out, 3, axis=-1) if out.shape[-1] == 1 else out


def _fit(image: np.ndarray, cell: int, smooth: bool) -> np.ndarray:
    h, w = image.shape[:2]
    scale = cell / max(h, w)
    size = (max(1, round(w * scale)), max(1, round(h * scale)))
    mode = (
        cv2.INTER_LINEAR
        if smooth and scale > 1
        else (cv2.INTER_AREA if scale < 1 else cv2.INTER_NEAREST)
    )
    return cv2.resize(as_rgb(image), size, interpolation=mode).reshape(size[1], size[0], 3)


def image_grid(
    cells: list[list[np.ndarray | None]],
    path: str | os.PathLike,
    *,
    title: str,
    col_titles: list[str] | None = None,
    row_titles: list[str] | None = None,
    captions: list[list[str]] | None = None,
    cell: int = 96,
    smooth: bool = False,
    colourbar: tuple[str, str] | None = None,
) -> Path:
    """Images in rows and columns drawn as ONE picture with text around it, saved as PNG.

    Composing the grid in numpy and showing it with a single ``imshow`` keeps a figure of
    dozens of panels as cheap as one plot (per-panel axes cost ~20 ms each to lay out).
    ``smooth`` interpolates enlarged panels (heatmaps); otherwise pixels stay crisp (filters).
    ``colourbar`` = (colour map, label) adds a 0..1 scale at the right (heatmap overlays).
    """
    from matplotlib.figure import Figure

    rows, cols = len(cells), max(len(r) for r in cells)
    gap_x, gap_y = 6, (16 if captions else 6)
    lines = max((t.count("\n") + 1 for t in col_titles or []), default=0)
    head, left = 22 + 11 * lines, (80 if row_titles else 4)
    height, width = rows * (cell + gap_y), cols * (cell + gap_x)
    canvas = np.ones((height, width, 3), np.float32)
    for r, row in enumerate(cells):
        for c, image in enumerate(row):
            if image is not None:
                tile = _fit(image, cell, smooth)
                y, x = r * (cell + gap_y) + gap_y, c * (cell + gap_x)
                canvas[y : y + tile.shape[0], x : x + tile.shape[1]] = tile
    # Widen narrow grids (a retrieval strip) so the title fits: ~7.5 px per 9-pt character.
    pad = max(0, int(7.5 * len(title)) - (width + left)) // 2
    right = 70 if colourbar else 0  # the bar, its ticks and its label
    total = width + left + 2 * pad + right
    fig = Figure(figsize=(total / DPI, (height + head) / DPI), dpi=DPI)
    ax = fig.add_axes(((left + pad) / total, 0, width / total, height / (height + head)))
    ax.imshow(canvas, interpolation="nearest")
    ax.set_axis_off()
    text = {"fontsize": 7, "ha": "center", "clip_on": False}
    for c, name in enumerate(col_titles or []):
        ax.text(c * (cell + gap_x) + cell / 2, -4, name, va="bottom", **text)
    for r, name in enumerate(row_titles or []):
        ax.text(
            -6,
            r * (cell + gap_y) + gap_y + cell / 2,
            name,
            fontsize=7,
            ha="right",
            va="center",
            clip_on=False,
        )
    for r, row in enumerate(captions or []):
        for c, caption in enumerate(row):
            ax.text(
                c * (cell + gap_x) + cell / 2,
                r * (cell + gap_y) + gap_y - 2,
                caption,
                va="bottom",
                **text,
            )
    fig.text(0.5, 1 - 10 / (height + head), title, fontsize=9, ha="center", va="center")
    if colourbar:
        _colourbar(
            fig, (left + pad + width + 12) / total, 12 / total, height / (height + head), colourbar
        )
    return save_figure(fig, path)


def _colourbar(fig: Figure, x: float, w: float, h: float, spec: tuple[str, str]) -> None:
    """A vertical 0..1 colour scale at figure coordinates x (left), w (width), h (height)."""
    from matplotlib.cm import ScalarMappable
    from matplotlib.colors import Normalize

    cmap, label = spec
    ax = fig.add_axes((x, 0.1 * h, w, 0.8 * h))
    bar = fig.colorbar(ScalarMappable(Normalize(0.0, 1.0), cmap), cax=ax)
    bar.set_label(label, fontsize=7)
    bar.ax.tick_params(labelsize=6)
