"""Compare: several runs' validation curves overlaid on shared axes, and their final scores
with the paired differences (the same tables as `kvision compare`)."""

from __future__ import annotations

from pathlib import Path

from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal
from textual.screen import Screen
from textual.widgets import DataTable, Header, Static

from kvision.errors import printable
from kvision.runs.compare import (
    Comparison,
    compare,
    final_rows,
    label,
    paired_rows,
    recipe_lines,
)

from .charts import COLORS, RICH_COLORS, Chart, ChartData, Series
from .dialogs import footer
from .live_screen import metric_label
from .runstate import RunState


def overlay(
    states: list[RunState], comparison: Comparison, only: str | None = None
) -> tuple[ChartData, ChartData, str]:
    """(validation loss chart, validation accuracy/MAE chart, its metric) with one line per
    run and trial (only the trials of model ``only`` when given: a dozen lines of several
    models on one chart cannot be read)."""
    identities = {
        run.name: {name: ident for ident, name in run.trials.items()} for run in comparison.runs
    }
    keys = {k for s in states for t in s.trials.values() for k in t.metric_keys}
    second = "mae" if "val_mae" in keys and "val_accuracy" not in keys else "accuracy"
    loss, acc = [], []
    for n, state in enumerate(states):
        for trial in state.trials.values():
            ident = identities[state.name].get(trial.name)
            if only is not None and (ident is None or ident[0] != only):
                continue
            who = f"{chr(ord('A') + n)} {label(ident, comparison) if ident else trial.name}"
            color = COLORS[len(loss) % len(COLORS)]
            xs, ys = trial.points("val_loss")
            loss.append(Series(who, ys, color, xs))
            xs, ys = trial.points(f"val_{second}")
            acc.append(Series(who, ys, color, xs))
    return (ChartData(tuple(loss), legend=False), ChartData(tuple(acc), legend=False), second)


def legend(data: ChartData) -> Text:
    """One coloured line per series, for the legend above both charts."""
    text = Text()
    for series in data.series:
        text.append("━━ ", style=RICH_COLORS.get(series.color, series.color))
        text.append(series.label + "   ")
    return text


class CompareScreen(Screen):
    """Runs overlaid: validation curves on shared axes, final scores and differences."""

    DEFAULT_CSS = """
    CompareScreen #compare-info { height: auto; padding: 0 1; }
    CompareScreen #compare-charts { height: 2fr; min-height: 10; }
    CompareScreen #compare-charts Chart { width: 1fr; height: 1fr; }
    CompareScreen DataTable { height: 1fr; min-height: 4; }
    """
    BINDINGS = [
        Binding("t", "next_model", "One model / all"),
        Binding("d", "toggle_table", "Finals / paired"),
        Binding("escape", "app.pop_screen", "Back"),
    ]

    def __init__(self, *runs: Path) -> None:
        super().__init__()
        self.paths = list(runs)
        self.comparison = compare(self.paths)
        self.states = [RunState(p) for p in self.paths]
        self.models = list(dict.fromkeys(i[0] for i in self.comparison.identities))
        self.only: int | None = None  # index into self.models, None: every model
        self.paired = False

    def compose(self) -> ComposeResult:
        """Runs legend, two overlaid charts, the final scores table."""
        yield Header()
        yield Static(id="compare-info")
        with Horizontal(id="compare-charts"):
            yield Chart("validation loss", id="compare-loss")
            yield Chart("validation acc", id="compare-acc")
        yield DataTable(id="compare-table", zebra_stripes=True, cursor_type="row")
        yield footer()

    def on_mount(self) -> None:
        """Title, charts and table."""
        self.title, self.sub_title = "kvision", "compare"
        self._show()

    def _show(self) -> None:
        only = self.models[self.only] if self.only is not None else None
        loss, acc, second = overlay(self.states, self.comparison, only)
        self.query_one("#compare-loss", Chart).data = loss
        chart = self.query_one("#compare-acc", Chart)
        chart.chart_title = f"validation {metric_label(second)}"
        chart.data = acc
        runs = "  ".join(
            f"{chr(ord('A') + i)} {r.name} ({r.status})" for i, r in enumerate(self.comparison.runs)
        )
        shown = f"model {only}" if only else f"all {len(self.models)} models"
        table = "paired differences to A" if self.paired else "final scores; X-A: difference"
        recipes = " ".join(line.strip() for line in recipe_lines(self.comparison))
        info = Text(f"{runs}\nrecipes: {recipes}\nshown: {shown} (t) · table: {table} (d)\n")
        self.query_one("#compare-info", Static).update(info.append_text(legend(loss)))
        self._fill_table()

    def _fill_table(self) -> None:
        table = self.query_one("#compare-table", DataTable)
        blockers = self.comparison.blockers()
        if self.paired and blockers:  # as `kvision compare`: no interval across recipes
            keys = sorted({k for ks in blockers.values() for k in ks})
            table.clear(columns=True)
            table.add_column("paired differences")
            table.add_row(f"not computed: the recipes differ in {', '.join(keys)}")
            table.add_row("(kvision compare --force computes them anyway)")
            return
        head, rows = (paired_rows if self.paired else final_rows)(self.comparison)
        table.clear(columns=True)
        table.add_columns(*head)
        only = self.models[self.only] if self.only is not None else None
        column = 1 if self.paired else 0  # where the trial ("model / arm") is
        for row in rows:
            if only is None or row[column].startswith(f"{only} / "):
                table.add_row(*(printable(c) if isinstance(c, str) else c for c in row))

    def action_next_model(self) -> None:
        """Show one model's trials at a time, then all of them again."""
        count = len(self.models)
        if not count:
            return
        self.only = 0 if self.only is None else (None if self.only + 1 >= count else self.only + 1)
        self._show()

    def action_toggle_table(self) -> None:
        """Switch the table between final scores and paired differences."""
        self.paired = not self.paired
        self._show()
