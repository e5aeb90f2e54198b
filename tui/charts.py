"""Line charts drawn by plotext (through textual-plotext): full width, labelled axes, legend.

Each series is a braille line in its own colour with a legend entry; stage boundaries are
vertical lines between two epochs. Long series are averaged down to two points per column
(braille has two dots per cell) before plotext sees them, so a run with thousands of epochs
costs no more to draw than one with a hundred.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

from rich.text import Text
from textual.app import RenderResult
from textual.reactive import reactive
from textual_plotext import PlotextPlot

#: Colours of the lines in order: train and validation of one trial get the first two; an
#: overlay of several runs or trials walks down the list.
COLORS = ("cyan", "orange", "green", "magenta", "blue", "red", "yellow", "white")
#: The same colours by their names in Rich, for legends drawn outside a chart.
RICH_COLORS = dict(
    zip(
        COLORS,
        ("cyan", "orange1", "green", "magenta", "blue", "red", "yellow", "white"),
        strict=True,
    )
)
BOUNDARY_COLOR = "gray"


@dataclass(frozen=True)
class Series:
    """One line: its legend label, its values at x = 1, 2, ... (or at ``xs``) and colour."""

    label: str
    values: tuple[float, ...]
    color: str = "cyan"
    xs: tuple[float, ...] = ()

    def points(self) -> tuple[Sequence[float], Sequence[float]]:
        """(x, y) pairs of the line."""
        return (self.xs or tuple(range(1, len(self.values) + 1))), self.values


@dataclass(frozen=True)
class ChartData:
    """What one chart shows; set a new one on :attr:`Chart.data` to redraw."""

    series: tuple[Series, ...] = ()
    #: x positions (between two epochs) where a new stage begins
    boundaries: tuple[float, ...] = ()
    xlabel: str = "epoch"
    empty: str = "no epochs yet"
    #: False when the screen draws the legend itself (many lines on a small chart)
    legend: bool = True


def downsample(xs: Sequence[float], ys: Sequence[float], n: int) -> tuple[list, list]:
    """Average (x, y) into at most ``n`` equal bins (kept as is when it already fits)."""
    if n <= 0:
        return [], []
    if len(ys) <= n:
        return list(xs), list(ys)
    out_x, out_y = [], []
    for i in range(n):
        lo, hi = i * len(ys) // n, max((i + 1) * len(ys) // n, i * len(ys) // n + 1)
        out_x.append(sum(xs[lo:hi]) / (hi - lo))
        out_y.append(sum(ys[lo:hi]) / (hi - lo))
    return out_x, out_y


def nice_ticks(lo: float, hi: float, most: int) -> list[float]:
    """Round tick values (1, 2 or 5 times a power of ten) inside lo..hi: the densest such
    set with at most ``most`` ticks, and never fewer than two while lo < hi."""
    if hi <= lo:
        return [lo]
    most = max(most, 2)
    power = 10 ** math.floor(math.log10((hi - lo) / most))
    previous: list[float] = []
    for step in (m * power * 10**k for k in (-1, 0, 1, 2) for m in (1, 2, 5)):
        ticks = _ticks_every(lo, hi, step)
        if len(ticks) <= most:
            return ticks if len(ticks) >= 2 else previous or [lo, hi]
        previous = ticks
    return previous


def _ticks_every(lo: float, hi: float, step: float) -> list[float]:
    first = math.ceil(lo / step - 1e-9)
    last = math.floor(hi / step + 1e-9)
    return [round(i * step, 12) for i in range(first, last + 1)]


def tick_label(value: float, step: float) -> str:
    """A tick's text with as many decimals as the tick step needs, no more."""
    if step >= 1 and float(value).is_integer():
        return f"{int(value)}"
    decimals = max(0, -math.floor(math.log10(step))) if step > 0 else 2
    return f"{value:.{min(decimals, 6)}f}"


class Chart(PlotextPlot):
    """A titled plotext chart of :class:`ChartData`, redrawn when ``data`` changes."""

    DEFAULT_CSS = """
    Chart { height: 1fr; min-height: 8; }
    """

    data: reactive[ChartData] = reactive(ChartData)
    chart_title: reactive[str] = reactive("")

    def __init__(self, title: str, **kwargs) -> None:
        super().__init__(**kwargs)
        self.chart_title = title

    def render(self) -> RenderResult:
        """Draw at the widget's content size (so resizing re-downsamples)."""
        data = self.data
        width, height = self.content_size.width, self.content_size.height
        if not any(s.values for s in data.series) or width < 12 or height < 5:
            return Text(f"{self.chart_title}: {data.empty}", style="dim")
        self._draw(data, width, height)
        plt = self.plt
        # the content size, not the widget's outer size that PlotextPlot.render would use
        # (with a border or padding, that plot would be cut off at the right and bottom)
        plt.plotsize(width, height)
        plt._set_size(width, height)
        plt.theme(self._get_plotext_theme_name(self.app.theme))
        return Text.from_ansi(plt.build(), no_wrap=True)

    def _draw(self, data: ChartData, width: int, height: int) -> None:
        plt = self.plt
        plt.clear_data()
        columns = max(width - 8, 4)
        lows, highs, last_x = [], [], 1.0
        for series in data.series:
            if not series.values:
                continue
            xs, ys = downsample(*series.points(), 2 * columns)
            plt.plot(
                xs,
                ys,
                label=series.label if data.legend else None,
                color=series.color,
                marker="braille",
            )
            lows.append(min(ys))
            highs.append(max(ys))
            last_x = max(last_x, series.points()[0][-1])
        for x in data.boundaries:
            plt.vline(x, BOUNDARY_COLOR)
        plt.title(self.chart_title)
        legend = sum(1 for s in data.series if s.values) if data.legend else 0
        self._axes(min(lows), max(highs), last_x, columns, height, legend)
        plt.xlabel(data.xlabel)

    def _axes(
        self, lo: float, hi: float, last_x: float, columns: int, height: int, legend: int
    ) -> None:
        plt = self.plt
        rows = max(height - 4, 2)  # title, frame, x ticks and x label take the others
        span = (hi - lo) or abs(hi) * 0.1 or 1.0
        # headroom for the legend, which plotext draws inside the plot's top left corner
        top = hi + span * (legend + 0.5) / max(rows - legend, 1)
        bottom = lo - span * 0.05
        yticks = nice_ticks(bottom, top, max(2, rows // 2))
        ystep = round(yticks[1] - yticks[0], 12) if len(yticks) > 1 else 1.0
        plt.ylim(bottom, top)
        plt.yticks(yticks, [tick_label(v, ystep) for v in yticks])
        xticks = [v for v in nice_ticks(1, last_x, max(2, columns // 8)) if float(v).is_integer()]
        xticks = xticks or [1.0]
        plt.xlim(1 if last_x > 1 else 0.5, last_x if last_x > 1 else 1.5)
        plt.xticks(xticks, [f"{int(v)}" for v in xticks])
