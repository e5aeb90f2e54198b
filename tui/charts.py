"""A line chart drawn with text cells, readable without colour.

Each series has its own marker glyph (colour is only a bonus), stage boundaries are vertical
bars, and long series are averaged down to one point per column, so a run with thousands of
epochs costs no more to draw than one with fifty.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from rich.text import Text
from textual.reactive import reactive
from textual.widget import Widget

BOUNDARY = "│"
BOTH = "*"  # two series in the same cell


@dataclass(frozen=True)
class Series:
    """One line: label for the legend, marker glyph, colour (optional) and values."""

    label: str
    marker: str
    values: tuple[float, ...]
    color: str = ""


def downsample(values: Sequence[float], n: int) -> list[float]:
    """Average ``values`` into at most ``n`` equal bins (kept as is when it already fits)."""
    if n <= 0:
        return []
    if len(values) <= n:
        return list(values)
    out = []
    for i in range(n):
        lo, hi = i * len(values) // n, (i + 1) * len(values) // n
        chunk = values[lo:max(hi, lo + 1)]
        out.append(sum(chunk) / len(chunk))
    return out


def render_chart(series: Sequence[Series], width: int, height: int,
                 boundaries: Sequence[int] = (), length: int | None = None) -> Text:
    """The chart as rich Text: y labels, plot area, and a legend line.

    ``boundaries`` are 0-based indices into the (un-downsampled) x axis of ``length`` points
    (default: the longest series) where a new stage begins.
    """
    label_w = 7
    plot_w, plot_h = max(width - label_w - 1, 4), max(height - 2, 2)
    data = [s for s in series if s.values]
    if not data:
        return Text("no data yet", style="dim")
    length = length or max(len(s.values) for s in data)
    cols = min(plot_w, length)
    lo = min(min(s.values) for s in data)
    hi = max(max(s.values) for s in data)
    span = (hi - lo) or 1.0
    grid: list[list[tuple[str, str]]] = [[(" ", "")] * cols for _ in range(plot_h)]
    for b in boundaries:
        col = b * cols // length
        if 0 < col < cols:
            for row in grid:
                row[col] = (BOUNDARY, "dim")
    for s in data:
        # scale each series to the shared x axis, then to one point per column
        points = downsample(s.values, max(1, len(s.values) * cols // length))
        for col, value in enumerate(points):
            row = plot_h - 1 - round((value - lo) / span * (plot_h - 1))
            glyph = grid[row][col][0]
            mark = BOTH if glyph not in (" ", BOUNDARY) and glyph != s.marker else s.marker
            grid[row][col] = (mark, s.color)
    text = Text(no_wrap=True, overflow="crop")
    for i, row in enumerate(grid):
        label = _fmt(hi) if i == 0 else _fmt(lo) if i == plot_h - 1 else ""
        text.append(f"{label:>{label_w}}┤")
        for glyph, style in row:
            text.append(glyph, style=style)
        text.append("\n")
    text.append(" " * label_w + f"└ 1 … {length} epochs\n", style="dim")
    legend = "  ".join(f"{s.marker} {s.label}" for s in data)
    if boundaries:
        legend += f"  {BOUNDARY} stage"
    text.append(" " * (label_w + 1) + legend)
    return text


class LineChart(Widget):
    """A Textual widget around :func:`render_chart`; set ``data`` to redraw."""

    DEFAULT_CSS = """
    LineChart { height: 10; }
    """

    data: reactive[tuple[tuple[Series, ...], tuple[int, ...]]] = reactive(((), ()))

    def __init__(self, title: str, **kwargs) -> None:
        super().__init__(**kwargs)
        self.border_title = title

    def render(self) -> Text:
        """Draw at the widget's current size (so resizing re-downsamples)."""
        series, boundaries = self.data
        return render_chart(series, self.content_size.width, self.content_size.height,
                            boundaries)


def _fmt(value: float) -> str:
    return f"{value:.3g}" if abs(value) < 1000 else f"{value:.0f}"
