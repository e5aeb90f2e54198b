"""History: every run in the runs folder; open one, or compare two side by side."""

from __future__ import annotations

from pathlib import Path

from rich.text import Text
from textual import work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical
from textual.screen import Screen
from textual.widgets import DataTable, Footer, Header, Static

from kvision.runs import find_runs

from .charts import LineChart
from .live_screen import curves, matrix_rows
from .runstate import RunState, format_seconds, format_time

COLUMNS = ("", "name", "recipe", "status", "start", "duration", "best acc")


def summary_row(state: RunState) -> tuple[str, ...]:
    """The history table's cells for one run (without the mark column)."""
    best = state.best_accuracy()
    return (state.name, state.recipe_name or "-", state.status(), format_time(state.started),
            format_seconds(state.duration()), f"{100 * best:.1f}%" if best is not None else "-")


class HistoryScreen(Screen):
    """A table of runs, newest first."""

    DEFAULT_CSS = """
    HistoryScreen #history-info { height: auto; padding: 0 1; }
    HistoryScreen DataTable { height: 1fr; }
    """
    BINDINGS = [
        Binding("o", "open_run", "Open"),
        Binding("space", "mark", "Mark"),
        Binding("c", "compare", "Compare marked"),
        Binding("i", "images", "Images"),
        Binding("g", "reload", "Reload"),
        Binding("escape", "app.pop_screen", "Back"),
    ]

    def __init__(self, runs_dir: Path) -> None:
        super().__init__()
        self.runs_dir = runs_dir
        self.runs: list[Path] = []
        self.marked: list[Path] = []

    def compose(self) -> ComposeResult:
        """Info line and the table."""
        yield Header()
        yield Static(id="history-info")
        yield DataTable(id="history", cursor_type="row", zebra_stripes=True)
        yield Footer()

    def on_mount(self) -> None:
        """Columns, then load the runs in a thread (each run's events are read)."""
        self.title, self.sub_title = "kvision", "history"
        self.query_one(DataTable).add_columns(*COLUMNS)
        self.action_reload()

    def action_reload(self) -> None:
        """Read the runs folder again."""
        self.query_one("#history-info", Static).update(f"reading {self.runs_dir} …")
        self._load()

    @work(thread=True, exclusive=True, group="history")
    def _load(self) -> None:
        rows = []
        for path in reversed(find_runs(self.runs_dir)):
            try:
                rows.append((path, summary_row(RunState(path))))
            except OSError as exc:  # unreadable run: listed with the reason, not fatal
                rows.append((path, (path.name, "-", f"unreadable: {exc}", "-", "-", "-")))
        self.app.call_from_thread(self._show, rows)

    def _show(self, rows: list[tuple[Path, tuple[str, ...]]]) -> None:
        table = self.query_one(DataTable)
        table.clear()
        self.runs = [path for path, _ in rows]
        for path, cells in rows:
            table.add_row(self._mark(path), *cells, key=str(path))
        info = (f"{len(rows)} run(s) in {self.runs_dir}  ·  enter: open  space: mark  "
                "c: compare two marked")
        if not rows:
            info = (f"No runs in {self.runs_dir}. Launch one from Recipes (r), or point "
                    "--runs-dir at the folder that holds your runs.")
        self.query_one("#history-info", Static).update(info)

    def _mark(self, path: Path) -> str:
        return "●" if path in self.marked else " "

    def _selected(self) -> Path | None:
        table = self.query_one(DataTable)
        if not self.runs or table.cursor_row is None or table.cursor_row >= len(self.runs):
            return None
        return self.runs[table.cursor_row]

    def on_data_table_row_selected(self, event: DataTable.RowSelected) -> None:
        """Enter on a row opens it."""
        self.action_open_run()

    def action_open_run(self) -> None:
        """Open the highlighted run in the live view."""
        path = self._selected()
        if path is not None:
            self.app.open_live(path)

    def action_images(self) -> None:
        """Browse the highlighted run's images."""
        path = self._selected()
        if path is not None:
            self.app.open_images(path)

    def action_mark(self) -> None:
        """Mark or unmark the highlighted run for comparison (the last two marks count)."""
        path = self._selected()
        if path is None:
            return
        if path in self.marked:
            self.marked.remove(path)
        else:
            self.marked = [*self.marked, path][-2:]
        table = self.query_one(DataTable)
        for p in self.runs:
            table.update_cell(str(p), table.ordered_columns[0].key, self._mark(p))

    def action_compare(self) -> None:
        """Compare the two marked runs side by side."""
        if len(self.marked) != 2:
            self.notify("Mark two runs with space first.", severity="warning")
            return
        self.app.push_screen(CompareScreen(*self.marked))


class RunPanel(Vertical):
    """One side of the comparison: summary, final matrices, curves of one trial at a time."""

    DEFAULT_CSS = """
    RunPanel { width: 1fr; border: round $panel; }
    RunPanel DataTable { height: auto; max-height: 8; }
    RunPanel LineChart { height: 1fr; min-height: 6; }
    """

    def __init__(self, path: Path) -> None:
        super().__init__()
        self.state = RunState(path)
        self.trial_index = 0

    def compose(self) -> ComposeResult:
        """Summary line, matrix table, the charted trial's name, two charts."""
        name, recipe, status, _start, duration, best = summary_row(self.state)
        yield Static(Text(f"{name}\n{recipe} · {status} · {duration} · best {best}"))
        yield DataTable(id="matrix", show_cursor=False)
        yield Static(id="trial")
        yield LineChart("loss", id="loss")
        yield LineChart("accuracy", id="acc")

    def on_mount(self) -> None:
        """Fill the final matrices and the first trial's curves."""
        final = {(t, e.get("checkpoint")): e for t, e in self.state.final_matrices().items()}
        splits, rows = matrix_rows(final)
        table = self.query_one(DataTable)
        table.add_columns("trial", "after", "condition", *splits)
        table.add_rows(rows)
        self.show_trial(0)

    def show_trial(self, index: int) -> None:
        """Chart trial ``index`` (modulo the number of trials) and name it above the charts."""
        trials = list(self.state.trials.items())
        if not trials:
            self.query_one("#trial", Static).update("no epochs yet")
            return
        self.trial_index = index % len(trials)
        name, trial = trials[self.trial_index]
        self.query_one("#trial", Static).update(
            f"curves: {name} ({self.trial_index + 1}/{len(trials)}; t: next trial)")
        loss, acc = curves(trial)
        self.query_one("#loss", LineChart).data = loss
        self.query_one("#acc", LineChart).data = acc


class CompareScreen(Screen):
    """Two runs side by side: final evaluation matrices and curves."""

    BINDINGS = [Binding("escape", "app.pop_screen", "Back"),
                Binding("t", "next_trial", "Next trial")]

    def __init__(self, a: Path, b: Path) -> None:
        super().__init__()
        self.pair = (a, b)

    def compose(self) -> ComposeResult:
        """Two run panels."""
        yield Header()
        with Horizontal():
            for path in self.pair:
                yield RunPanel(path)
        yield Footer()

    def on_mount(self) -> None:
        """Title."""
        self.title, self.sub_title = "kvision", "compare"

    def action_next_trial(self) -> None:
        """Chart each run's next trial (runs with several models or arms)."""
        for panel in self.query(RunPanel):
            panel.show_trial(panel.trial_index + 1)
