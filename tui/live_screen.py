"""Live: follow one run directory, running or finished, from this TUI or from another shell."""

from __future__ import annotations

from pathlib import Path

from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal
from textual.screen import Screen
from textual.widgets import (
    DataTable,
    Footer,
    Header,
    ProgressBar,
    RichLog,
    Static,
    TabbedContent,
    TabPane,
)

from kvision.errors import KvisionError
from kvision.runs import second_metric

from .charts import LineChart, Series
from .dialogs import ConfirmScreen
from .runstate import METRICS, EpochRow, RunState, TrialState, format_seconds, open_run

POLL_SECONDS = 0.5
#: Epoch rows kept in the table: a terminal table of thousands of rows is slow to build and
#: no one reads it; the charts show every epoch.
MAX_TABLE_ROWS = 300


def curves(trial: TrialState) -> tuple[tuple, tuple]:
    """(loss series, accuracy series) of a trial, each with its stage boundaries.

    A function-fitting (regression) trial has no accuracy: its mean absolute error is shown.
    """
    bounds = tuple(trial.boundaries())
    loss = (Series("train loss", "•", tuple(trial.series("loss")), "cyan"),
            Series("val loss", "×", tuple(trial.series("val_loss")), "yellow"))
    key = second_metric({k for row in trial.rows() for k in row.metrics})
    short = {"accuracy": "acc"}.get(key, key)
    acc = (Series(f"train {short}", "•", tuple(trial.series(key)), "cyan"),
           Series(f"val {short}", "×", tuple(trial.series(f"val_{key}")), "yellow"))
    return (loss, bounds), (acc, bounds)


def matrix_rows(evaluations: dict[tuple, dict]) -> tuple[list[str], list[tuple]]:
    """(split columns, rows of trial/checkpoint/condition/accuracies) for evaluations keyed
    by (trial, checkpoint), as in RunState.evaluations."""
    splits: dict[str, None] = {}
    for e in evaluations.values():
        for per_split in (e.get("matrix") or {}).values():
            splits.update(dict.fromkeys(per_split or {}))
    rows = []
    for (trial, checkpoint), e in evaluations.items():
        for condition, per_split in (e.get("matrix") or {}).items():
            cell = _num if e.get("metric") == "r2" else _pct  # R^2 of a regression: no %
            cells = [cell((per_split or {}).get(s)) for s in splits]
            rows.append((trial or "-", checkpoint, condition, *cells))
    return list(splits), rows


def _epoch_cells(row: EpochRow) -> tuple[str, ...]:
    """One epoch table row: stage, epoch numbers, metrics, seconds."""
    seconds = f"{row.seconds:.1f}" if isinstance(row.seconds, (int, float)) else "-"
    return (row.stage, str(row.epoch), str(row.global_epoch),
            *[_num(row.metrics.get(m)) for m in METRICS], seconds)


def _pct(value: object) -> str:
    return f"{100 * value:.1f}%" if isinstance(value, (int, float)) else "-"


def _num(value: float | None) -> str:
    if value is None:
        return "-"
    return f"{value:.4f}" if abs(value) >= 1e-3 or value == 0 else f"{value:.2e}"


class LiveScreen(Screen):
    """Epoch table, loss/accuracy charts, evaluation matrix, progress and messages of a run."""

    DEFAULT_CSS = """
    LiveScreen #run-header { height: auto; padding: 0 1; }
    LiveScreen #progress-row { height: 1; padding: 0 1; }
    LiveScreen #progress-label { width: auto; margin-right: 1; }
    LiveScreen #charts LineChart { width: 1fr; height: 1fr; border: round $panel; }
    LiveScreen #charts { height: 1fr; }
    LiveScreen TabbedContent { height: 1fr; }
    LiveScreen #epochs-info { height: auto; padding: 0 1; color: $text-muted; }
    """
    BINDINGS = [
        Binding("t", "next_trial", "Next trial"),
        Binding("i", "images", "Images"),
        Binding("c", "cancel_run", "Cancel run"),
        Binding("1", "tab('charts')", "Charts", show=False),
        Binding("2", "tab('epochs')", "Epochs", show=False),
        Binding("3", "tab('evaluation')", "Evaluation", show=False),
        Binding("4", "tab('messages')", "Messages", show=False),
        Binding("escape", "app.pop_screen", "Back"),
    ]

    def __init__(self, run_dir: Path) -> None:
        super().__init__()
        self.run_dir = Path(run_dir)
        self.state: RunState | None = None
        self.trial_index = 0
        self._rows: dict[tuple, EpochRow] = {}
        self._table_trial: str | None = None
        self._shown_messages = 0
        self._eval_count = -1
        self._columns: list = []

    def compose(self) -> ComposeResult:
        """Header line, progress, then tabs: charts, epochs, evaluation, messages."""
        yield Header()
        yield Static(id="run-header")
        with Horizontal(id="progress-row"):
            yield Static("", id="progress-label")
            yield ProgressBar(id="progress", show_eta=False)
        with TabbedContent(initial="charts"):
            with TabPane("Charts", id="charts"), Horizontal():
                yield LineChart("loss", id="loss-chart")
                yield LineChart("accuracy", id="acc-chart")
            with TabPane("Epochs", id="epochs"):
                yield Static(id="epochs-info")
                yield DataTable(id="epoch-table", zebra_stripes=True)
            with TabPane("Evaluation", id="evaluation"):
                yield DataTable(id="eval-table")
            with TabPane("Messages", id="messages"):
                yield RichLog(id="log", wrap=True, markup=False)
        yield Footer()

    def on_mount(self) -> None:
        """Set up the tables and start polling the run directory."""
        self.title, self.sub_title = "kvision", f"live · {self.run_dir.name}"
        table = self.query_one("#epoch-table", DataTable)
        self._columns = table.add_columns("stage", "ep", "global", *METRICS, "s")
        self.refresh_run()
        self.set_interval(POLL_SECONDS, self.refresh_run)

    def refresh_run(self) -> None:
        """Read new events and update whatever they change; never raises for bad runs."""
        if self.state is None and not self._open():
            return
        assert self.state is not None
        new = self.state.poll()
        if new or self._table_trial is None:
            self._update_epochs()
            self._update_charts()
            self._update_evaluation()
            self._update_messages()
        status = self.state.status()  # reads meta.json and probes the pid: once per poll
        self._update_header(status)
        self._update_progress(status)

    def _open(self) -> bool:
        """Attach to the run directory once it exists; explain what is going on until then."""
        launched = self.app.launched.get(self.run_dir)
        try:
            self.state = open_run(self.run_dir)
            return True
        except KvisionError as exc:
            message = str(exc)
        if launched is not None:
            code = launched.finished()
            if code is None:
                message = f"Starting {self.run_dir.name} … (waiting for kvision to create it)"
            else:
                message = (f"kvision run exited with code {code} before creating the run "
                           f"directory. Its output ({launched.log.name}):\n{launched.log_tail()}")
        self.query_one("#run-header", Static).update(Text(message))
        return False

    def _trial(self) -> TrialState | None:
        trials = list(self.state.trials.values()) if self.state else []
        return trials[self.trial_index % len(trials)] if trials else None

    def _update_header(self, status: str) -> None:
        state = self.state
        launched = self.app.launched.get(self.run_dir)
        if launched is not None:
            launched.finished()  # reap our child so its pid stops looking alive
        trial = self._trial()
        n = len(state.trials)
        parts = [f"run {state.name}", f"recipe {state.recipe_name or '-'}",
                 f"status {status}", f"time {format_seconds(state.duration())}"]
        if trial is not None:
            parts.append(f"trial {trial.name} ({self.trial_index % n + 1}/{n}, t: next)")
        self.query_one("#run-header", Static).update(" · ".join(parts))

    def _update_progress(self, status: str) -> None:
        bar = self.query_one("#progress", ProgressBar)
        label = self.query_one("#progress-label", Static)
        p = self.state.progress
        if p is None:  # between epochs (pulsing bar) or over (full bar)
            label.update(status)
            running = status == "running"
            bar.update(total=None if running else 1, progress=0 if running else 1)
            return
        label.update(f"{p.trial} {p.stage} epoch {p.epoch} step {p.step}/{p.steps}")
        bar.update(total=max(p.steps, 1), progress=p.step)

    def _update_epochs(self) -> None:
        """The current trial's latest epochs; rows are added and dropped, never rebuilt."""
        trial = self._trial()
        if trial is None:
            return
        table = self.query_one("#epoch-table", DataTable)
        if trial.name != self._table_trial:
            table.clear()
            self._rows, self._table_trial = {}, trial.name
        rows = trial.rows()
        window = rows[-MAX_TABLE_ROWS:]
        keys = {(r.stage, r.epoch) for r in window}
        added = False
        for key in [k for k in self._rows if k not in keys]:
            table.remove_row(str(key))
            del self._rows[key]
        for row in window:
            key = (row.stage, row.epoch)
            if self._rows.get(key) is row:
                continue
            cells = _epoch_cells(row)
            if key in self._rows:  # a resumed run repeats an epoch: latest wins
                for column, value in zip(self._columns, cells, strict=True):
                    table.update_cell(str(key), column, value)
            else:
                table.add_row(*cells, key=str(key))
                added = True
            self._rows[key] = row
        if added:  # follow the newest epoch, as `tail -f` would
            table.move_cursor(row=table.row_count - 1, animate=False)
        shown = (f"the last {len(window)}" if len(rows) > len(window) else "all")
        self.query_one("#epochs-info", Static).update(
            f"trial {trial.name}: {len(rows)} epochs, {shown} shown here (t: next trial; "
            "the charts show every epoch)")

    def _update_charts(self) -> None:
        trial = self._trial()
        if trial is None:
            return
        loss, acc = curves(trial)
        self.query_one("#loss-chart", LineChart).data = loss
        self.query_one("#acc-chart", LineChart).data = acc

    def _update_evaluation(self) -> None:
        if len(self.state.evaluations) == self._eval_count:
            return
        self._eval_count = len(self.state.evaluations)
        table = self.query_one("#eval-table", DataTable)
        splits, rows = matrix_rows(self.state.evaluations)
        table.clear(columns=True)
        table.add_columns("trial", "checkpoint", "condition", *splits)
        table.add_rows(rows)

    def _update_messages(self) -> None:
        log = self.query_one("#log", RichLog)
        for level, text in self.state.messages[self._shown_messages:]:
            log.write(Text(f"{level.upper()}: {text}",
                           style="bold red" if level == "error" else ""))
            if level == "error":
                self.notify(text, severity="error", timeout=8)
        self._shown_messages = len(self.state.messages)

    def action_next_trial(self) -> None:
        """Show the next trial's epochs and curves."""
        self.trial_index += 1
        if self.state is not None:
            self._update_epochs()
            self._update_charts()
            self._update_header(self.state.status())

    def action_tab(self, tab: str) -> None:
        """Switch to a tab by id."""
        self.query_one(TabbedContent).active = tab

    def action_images(self) -> None:
        """Browse this run's images."""
        self.app.open_images(self.run_dir)

    def action_cancel_run(self) -> None:
        """Ask for confirmation, then stop the run cleanly (SIGTERM, checkpoint kept)."""
        if self.state is None or self.state.status() != "running":
            self.notify("This run is not running; nothing to cancel.", severity="warning")
            return
        self.app.push_screen(
            ConfirmScreen(
                f"Stop run {self.run_dir.name}? It finishes its checkpoint write and can be "
                "resumed later with kvision run --resume."),
            self._cancel_confirmed)

    def _cancel_confirmed(self, yes: bool | None) -> None:
        if not yes:
            return
        from .launch import cancel

        try:
            message = cancel(self.run_dir, self.state.reader.meta(),
                             self.app.launched.get(self.run_dir))
        except (KvisionError, OSError) as exc:
            self.notify(str(exc), severity="error")
            return
        self.notify(message)
