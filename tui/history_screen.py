"""History: every run in the runs folder; open one, or compare marked runs overlaid."""

from __future__ import annotations

import re
from pathlib import Path

from textual import work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.screen import Screen
from textual.widgets import DataTable, Header, Static

from kvision.errors import KvisionError, printable
from kvision.runs import find_runs
from kvision.runs.summary import HEADLINE, format_score

from .dialogs import footer
from .runstate import RunState, format_seconds

COLUMNS = ("", "run", "recipe", "status", "duration", HEADLINE, "overrides")
#: Narrowest each column may become before the table scrolls sideways.
MIN_WIDTHS = (1, 14, 6, 8, 6, 7, 12)
#: Columns in the order they give up width when the terminal is narrow: the run's start
#: time drops its year, then the overrides are cut at their end, then the recipe's middle.
SHRINK_ORDER = (1, 6, 2, 3)
#: The run column: the start time in the run directory's name (YYYYmmdd-HHMMSS[-recipe][-n]);
#: the recipe has its own column, and the name's middle cut away told runs apart badly.
_RUN_NAME = re.compile(r"(\d{4})(\d{2})(\d{2})-(\d{2})(\d{2})(\d{2})(?:-(.*))?")


def run_label(name: str, recipe: str) -> str:
    """'2026-01-01 12:00:05' (plus '-2' for a second run in the same second) for a run
    directory named by kvision; any other name as it is."""
    m = _RUN_NAME.fullmatch(name)
    if not m:
        return name
    y, mo, d, h, mi, sec, rest = m.groups()
    suffix = (rest or "").removeprefix(recipe) if recipe else (rest or "")
    if rest and suffix == rest:  # not our recipe's name: keep the whole tail visible
        suffix = "-" + rest
    return f"{y}-{mo}-{d} {h}:{mi}:{sec}{suffix}"


def overrides_text(meta: dict) -> str:
    """The run's --set overrides as given (``key=value``, comma-separated), or '-'."""
    items = meta.get("overrides") if isinstance(meta, dict) else None
    return ", ".join(str(o) for o in items) if items else "-"


def summary_row(state: RunState) -> tuple[str, ...]:
    """The history table's cells for one run (without the mark column)."""
    best, metric = state.best_test()
    return (
        run_label(state.name, state.recipe_name),
        state.recipe_name or "-",
        state.status(),
        format_seconds(state.duration()),
        format_score(best, metric),
        overrides_text(state.reader.meta()),
    )


def fit_widths(natural: list[int], available: int) -> list[int]:
    """Column widths that fit ``available`` cells: the columns of SHRINK_ORDER give up width,
    one at a time down to MIN_WIDTHS, before any column is dropped from view."""
    widths = list(natural)
    for i in SHRINK_ORDER:
        excess = sum(widths) - available
        if excess <= 0:
            break
        widths[i] = max(MIN_WIDTHS[i], widths[i] - excess)
    return widths


def shorten(text: str, width: int) -> str:
    """``text`` cut to ``width`` with an ellipsis in the middle (run names differ at both
    ends: the timestamp at the start, the recipe at the end)."""
    if len(text) <= width:
        return text
    keep = width - 1
    return text[: (keep + 1) // 2] + "…" + text[len(text) - keep // 2 :] if keep > 0 else "…"


def compact_time(text: str, width: int) -> str:
    """'2026-01-01 12:00:05' without its year, then without its date, when narrow."""
    if len(text) > width and text[4:5] == "-":
        text = text[5:]
    if len(text) > width and text[2:3] == "-" and text[5:6] == " ":
        text = text[6:]
    return text


def end_cut(text: str, width: int) -> str:
    """``text`` cut at its end with an ellipsis (a list of overrides reads from the left)."""
    return text if len(text) <= width else text[: max(width - 1, 0)] + "…"


def _fit(column: int, text: str, width: int) -> str:
    if column == 1:
        return shorten(compact_time(text, width), width)
    if column == len(COLUMNS) - 1:
        return end_cut(text, width)
    return shorten(text, width)


class HistoryScreen(Screen):
    """A table of runs, newest first."""

    DEFAULT_CSS = """
    HistoryScreen #history-info { height: auto; padding: 0 1; }
    HistoryScreen DataTable { height: 1fr; }
    """
    BINDINGS = [
        Binding("o", "open_run", "Open"),
        Binding("space", "mark", "Mark"),
        Binding("c", "compare", "Compare"),
        Binding("i", "images", "Images"),
        Binding("g", "reload", "Reload"),
        Binding("escape", "app.pop_screen", "Back"),
    ]

    def __init__(self, runs_dir: Path) -> None:
        super().__init__()
        self.runs_dir = runs_dir
        self.runs: list[Path] = []
        self.marked: list[Path] = []
        self._rows: list[tuple[Path, tuple[str, ...]]] = []
        self._width = 0

    def compose(self) -> ComposeResult:
        """Info line and the table."""
        yield Header()
        yield Static(id="history-info")
        yield DataTable(id="history", cursor_type="row", zebra_stripes=True)
        yield footer()

    def on_mount(self) -> None:
        """Load the runs in a thread (each run's events are read)."""
        self.title, self.sub_title = "kvision", "history"
        self.action_reload()

    def on_resize(self) -> None:
        """Fit the columns to the new width."""
        if self._rows and self.size.width != self._width:
            self._show(self._rows)

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
        cursor = table.cursor_row
        self._rows, self._width = rows, self.size.width
        self.runs = [path for path, _ in rows]
        # names, recipes and overrides come from the runs' files: control characters escaped
        cells = [(self._mark(path), *map(printable, values)) for path, values in rows]
        natural = [max([len(h), *(len(c[i]) for c in cells)]) for i, h in enumerate(COLUMNS)]
        # each column has one cell of padding on both sides; 2 more for the scrollbar
        widths = fit_widths(natural, self.size.width - 2 * len(COLUMNS) - 2)
        table.clear(columns=True)
        for head, width in zip(COLUMNS, widths, strict=True):
            table.add_column(shorten(head, width), width=width)
        for path, row in zip(self.runs, cells, strict=True):
            fitted = [_fit(i, c, w) for i, (c, w) in enumerate(zip(row, widths, strict=True))]
            table.add_row(*fitted, key=str(path))
        if cursor is not None and rows:
            table.move_cursor(row=min(cursor, len(rows) - 1), animate=False)
        self._info(len(rows))

    def _info(self, count: int) -> None:
        info = (
            f"{count} run(s) in {self.runs_dir} · {HEADLINE}: best final test "
            "score · overrides: the run's --set · space marks A, B, …"
        )
        if not count:
            info = (
                f"No runs in {self.runs_dir}. Launch one from Recipes (r), or point "
                "--runs-dir at the folder that holds your runs."
            )
        self.query_one("#history-info", Static).update(info)

    def _mark(self, path: Path) -> str:
        if path not in self.marked:
            return " "
        return chr(ord("A") + self.marked.index(path))

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
        """Mark or unmark the highlighted run for comparison (marks are lettered A, B, …)."""
        path = self._selected()
        if path is None:
            return
        if path in self.marked:
            self.marked.remove(path)
        else:
            self.marked.append(path)
        table = self.query_one(DataTable)
        for p in self.runs:
            table.update_cell(str(p), table.ordered_columns[0].key, self._mark(p))

    def action_compare(self) -> None:
        """Compare the marked runs: curves overlaid, final scores and differences."""
        if len(self.marked) < 2:
            self.notify("Mark two or more runs with space first.", severity="warning")
            return
        from .compare_screen import CompareScreen

        try:
            self.app.push_screen(CompareScreen(*self.marked))
        except KvisionError as exc:
            self.notify(str(exc), severity="error")
