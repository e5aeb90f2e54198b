"""Live: follow one run directory, running or finished, from this TUI or from another shell."""

from __future__ import annotations

import time
from pathlib import Path

from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal
from textual.screen import Screen
from textual.widgets import (
    DataTable,
    Header,
    ProgressBar,
    RichLog,
    Static,
    TabbedContent,
    TabPane,
)

from kvision.errors import KvisionError, printable
from kvision.runs import is_run_dir, second_metric

from .charts import COLORS, Chart, ChartData, Series
from .dialogs import ConfirmScreen, footer
from .runstate import METRICS, EpochRow, RunState, TrialState, format_seconds, open_run

POLL_SECONDS = 0.5
#: Charts of the same trial are redrawn at most this often: a tiny model can finish many
#: epochs a second, and a plotext redraw costs tens of milliseconds.
CHART_SECONDS = 1.0
#: Epoch rows kept in the table: a terminal table of thousands of rows is slow to build and
#: no one reads it; the charts show every epoch.
MAX_TABLE_ROWS = 300


def metric_label(key: str) -> str:
    """'loss' / 'accuracy' / 'mae' as the charts and tables name them."""
    return {"accuracy": "acc"}.get(key, key)


def curves(trial: TrialState) -> tuple[ChartData, ChartData]:
    """(loss chart, accuracy chart) of a trial: train and validation, stage boundaries.

    A function-fitting (regression) trial has no accuracy: its mean absolute error is shown.
    """
    bounds = tuple(b + 0.5 for b in trial.boundaries())  # between the two epochs
    key = second_metric(trial.metric_keys)
    charts = []
    for metric in ("loss", key):
        short = metric_label(metric)
        lines = []
        for prefix, name, color in (("", "train", COLORS[0]), ("val_", "val", COLORS[1])):
            xs, ys = trial.points(prefix + metric)
            lines.append(Series(f"{name} {short}", ys, color, xs))
        charts.append(ChartData(tuple(lines), bounds))
    return charts[0], charts[1]


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
    return (
        row.stage,
        str(row.epoch),
        str(row.global_epoch),
        *[_num(row.metrics.get(m)) for m in METRICS],
        seconds,
    )


def _pct(value: object) -> str:
    return f"{100 * value:.1f}%" if isinstance(value, (int, float)) else "-"


def _num(value: float | None) -> str:
    if value is None:
        return "-"
    return f"{value:.4f}" if abs(value) >= 1e-3 or value == 0 else f"{value:.2e}"


#: Shown in the Messages tab until the run reports a warning or an error.
NO_MESSAGES = (
    "No warnings or errors so far. Skipped files, missing splits, non-finite "
    "losses and failures appear here as the run reports them."
)
#: How the Messages tab shows each level; "history" is an earlier session's interruption
#: that a resume has since continued.
MESSAGE_STYLES = {"error": "bold red", "warning": "yellow", "history": "dim"}


class LiveScreen(Screen):
    """Epoch table, loss/accuracy charts, evaluation matrix, progress and messages of a run.

    It follows the trial that is training (header, charts, table); ``t`` pins the next
    trial instead, ``f`` goes back to following.
    """

    DEFAULT_CSS = """
    LiveScreen #run-header { height: auto; padding: 0 1; }
    LiveScreen #progress-row { height: 1; padding: 0 1; }
    LiveScreen #progress-label { width: auto; margin-right: 1; }
    LiveScreen #charts Chart { width: 1fr; height: 1fr; }
    LiveScreen #charts { height: 1fr; }
    LiveScreen TabbedContent { height: 1fr; }
    LiveScreen #epochs-info { height: auto; padding: 0 1; color: $text-muted; }
    LiveScreen #no-messages { padding: 1; color: $text-muted; }
    """
    BINDINGS = [
        Binding("1", "tab('charts')", "Charts", show=False),
        Binding("2", "tab('epochs')", "Epochs", show=False),
        Binding("3", "tab('evaluation')", "Evaluation", show=False),
        Binding("4", "tab('messages')", "Messages", show=False),
        Binding("t", "pin_next", "Pin next"),
        Binding("f", "follow", "Follow"),
        Binding("i", "images", "Images"),
        Binding("c", "cancel_run", "Cancel"),
        Binding("escape", "app.pop_screen", "Back"),
    ]

    def __init__(self, run_dir: Path) -> None:
        super().__init__()
        self.run_dir = Path(run_dir)
        self.state: RunState | None = None
        #: the trial shown instead of the training one (None: follow the run)
        self.pinned: str | None = None
        self._rows: dict[tuple, EpochRow] = {}
        self._table_trial: str | None = None
        self._charted: tuple[str, int] | None = None
        self._charted_at = 0.0
        self._shown_messages = 0
        self._messages_read = False  # the messages already there at attach time are read
        self._eval_count = -1
        self._columns: list = []
        self._status: str | None = None

    def compose(self) -> ComposeResult:
        """Header line, progress, then tabs: charts, epochs, evaluation, messages."""
        yield Header()
        yield Static(id="run-header")
        with Horizontal(id="progress-row"):
            yield Static("", id="progress-label")
            yield ProgressBar(id="progress", show_eta=False)
        with TabbedContent(initial="charts"):
            with TabPane("1 Charts", id="charts"), Horizontal():
                yield Chart("loss", id="loss-chart")
                yield Chart("accuracy", id="acc-chart")
            with TabPane("2 Epochs", id="epochs"):
                yield Static(id="epochs-info")
                yield DataTable(id="epoch-table", zebra_stripes=True)
            with TabPane("3 Evaluation", id="evaluation"):
                yield DataTable(id="eval-table")
            with TabPane("4 Messages", id="messages"):
                yield Static(NO_MESSAGES, id="no-messages")
                yield RichLog(id="log", wrap=True, markup=False)
        yield footer()

    def on_mount(self) -> None:
        """Set up the tables and start polling the run directory."""
        self.title, self.sub_title = "kvision", f"live · {self.run_dir.name}"
        table = self.query_one("#epoch-table", DataTable)
        self._columns = table.add_columns("stage", "ep", "global", *METRICS, "s")
        self.refresh_run()
        self.set_interval(POLL_SECONDS, self.refresh_run)

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        """Hide what does not apply: cancel on a run that is not running, follow while
        following."""
        if action == "cancel_run":
            return self._cancellable()
        if action == "follow":
            return self.pinned is not None
        return True

    def refresh_run(self) -> None:
        """Read new events and update whatever they change; never raises for bad runs."""
        if self.state is not None and not is_run_dir(self.run_dir):
            self.state = None  # removed again by kvision: the data was refused while loading
        if self.state is None and not self._open():
            return
        assert self.state is not None
        new = self.state.poll()
        if new or self._table_trial is None:
            self._update_epochs()
            self._update_evaluation()
            self._update_messages()
        self._update_charts()  # also a redraw that waited for CHART_SECONDS
        status = self.state.status()  # reads meta.json and probes the pid: once per poll
        if status != self._status:
            self._status = status
            self.refresh_bindings()
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
        label = self.query_one("#progress-label", Static)
        bar = self.query_one("#progress", ProgressBar)
        if launched is not None:
            code = launched.finished()
            if code is None:
                message = f"Starting {self.run_dir.name} … (waiting for kvision to create it)"
                label.update("starting")
            else:
                message = (
                    f"kvision run exited with code {code} without leaving a run directory "
                    f"(the recipe or its data was refused). Its output ({launched.log}):\n"
                    f"{printable(launched.log_tail(), one_line=False)}"
                )
                label.update(Text("launch failed", style="bold red"))
                bar.display = False  # nothing is going on any more: no animation
        else:
            bar.display = False
        self.query_one("#run-header", Static).update(Text(message))
        return False

    def shown_trial(self) -> TrialState | None:
        """The pinned trial, else the one the run is busy with, else the first."""
        trials = self.state.trials if self.state else {}
        for name in (self.pinned, self.state.active if self.state else None):
            if name in trials:
                return trials[name]
        return next(iter(trials.values()), None)

    def _update_trial_views(self) -> None:
        self._update_epochs()
        self._update_charts()

    def _update_header(self, status: str) -> None:
        state = self.state
        launched = self.app.launched.get(self.run_dir)
        if launched is not None:
            launched.finished()  # reap our child so its pid stops looking alive
            launched.adopt_log()
        parts = [
            f"run {state.name}",
            f"recipe {state.recipe_name or '-'}",
            f"status {status}",
            f"time {format_seconds(state.duration(status == 'running'))}",
        ]
        text = Text(" · ".join(parts))
        trial = self.shown_trial()
        if trial is not None:
            names = list(state.trials)
            mode = (
                "pinned (t: next, f: follow the run)"
                if self.pinned
                else "following the run (t: pin another trial)"
            )
            text.append(f"\ntrial {trial.name} ({names.index(trial.name) + 1}/{len(names)}) · ")
            if trial.failed:
                text.append("failed · ", style="bold red")
            text.append(mode, style="dim")
        self.query_one("#run-header", Static).update(text)

    def _update_progress(self, status: str) -> None:
        bar = self.query_one("#progress", ProgressBar)
        label = self.query_one("#progress-label", Static)
        p, evaluating, loading = self.state.progress, self.state.evaluating, self.state.loading
        bar.display = status in ("running", "finished")
        if loading is not None and status in ("running", "stale"):  # stale: killed loading
            label.update(loading.line() + ("" if status == "running" else " · stopped"))
            bar.display = True
            bar.update(total=max(loading.total, 1), progress=loading.done)
        elif evaluating is not None and status == "running":
            label.update(f"{evaluating.trial} evaluating {evaluating.checkpoint} …")
            bar.update(total=None)
        elif p is not None and status == "running":
            label.update(f"{p.trial} {p.stage} epoch {p.epoch} step {p.step}/{p.steps}")
            bar.update(total=max(p.steps, 1), progress=p.step)
        else:  # between epochs (pulsing bar), over (full bar), or stopped (no bar)
            label.update(status)
            running = status == "running"
            bar.update(total=None if running else 1, progress=0 if running else 1)

    def _update_epochs(self) -> None:
        """The shown trial's latest epochs; rows are added and dropped, never rebuilt."""
        trial = self.shown_trial()
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
            added = self._put_row(table, row) or added
        if added:  # follow the newest epoch, as `tail -f` would
            table.move_cursor(row=table.row_count - 1, animate=False)
        shown = f"the last {len(window)}" if len(rows) > len(window) else "all"
        self.query_one("#epochs-info", Static).update(
            f"trial {trial.name}: {len(rows)} epochs, {shown} shown here (the charts show "
            "every epoch)"
        )

    def _put_row(self, table: DataTable, row: EpochRow) -> bool:
        """Add or update one epoch row; True when a row was added."""
        key = (row.stage, row.epoch)
        if self._rows.get(key) is row:
            return False
        cells = _epoch_cells(row)
        added = key not in self._rows
        if added:
            table.add_row(*cells, key=str(key))
        else:  # a resumed run repeats an epoch: latest wins
            for column, value in zip(self._columns, cells, strict=True):
                table.update_cell(str(key), column, value)
        self._rows[key] = row
        return added

    def _update_charts(self, now: float | None = None) -> None:
        trial = self.shown_trial()
        if trial is None or self._charted == (trial.name, trial.version):
            return
        now = time.monotonic() if now is None else now
        same_trial = self._charted is not None and self._charted[0] == trial.name
        if same_trial and now - self._charted_at < CHART_SECONDS:
            return  # drawn moments ago: the next poll after CHART_SECONDS draws the rest
        self._charted, self._charted_at = (trial.name, trial.version), now
        loss, acc = curves(trial)
        self.query_one("#loss-chart", Chart).data = loss
        acc_chart = self.query_one("#acc-chart", Chart)
        acc_chart.chart_title = acc.series[0].label.removeprefix("train ")
        acc_chart.data = acc

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
        messages = self.state.messages
        self.query_one("#no-messages", Static).display = not messages
        for level, raw in messages[self._shown_messages :]:
            text = printable(raw, one_line=False)  # from events.jsonl: no escape sequences
            log.write(Text(f"{level.upper()}: {text}", style=MESSAGE_STYLES.get(level, "yellow")))
            # a toast for news only: attaching does not replay what happened before
            if level == "error" and self._messages_read:
                self.notify(text, severity="error", timeout=8, markup=False)
        self._shown_messages = len(messages)
        self._messages_read = True

    def _show_trial_change(self) -> None:
        self.refresh_bindings()
        if self.state is not None:
            self._update_trial_views()
            self._update_header(self.state.status())

    def action_pin_next(self) -> None:
        """Pin the trial after the one shown (stops following the run)."""
        trial = self.shown_trial()
        if trial is None:
            return
        names = list(self.state.trials)
        self.pinned = names[(names.index(trial.name) + 1) % len(names)]
        self._show_trial_change()

    def action_follow(self) -> None:
        """Follow the trial the run is busy with again."""
        self.pinned = None
        self._show_trial_change()

    def on_tabbed_content_tab_activated(self, event: TabbedContent.TabActivated) -> None:
        """Show the newest epochs when the table comes into view (rows added while it was
        hidden did not scroll it)."""
        if event.pane.id == "epochs":
            table = self.query_one("#epoch-table", DataTable)
            self.call_after_refresh(table.move_cursor, row=table.row_count - 1, animate=False)

    def action_tab(self, tab: str) -> None:
        """Switch to a tab by id."""
        self.query_one(TabbedContent).active = tab

    def action_images(self) -> None:
        """Browse this run's images."""
        self.app.open_images(self.run_dir)

    def action_cancel_run(self) -> None:
        """Ask for confirmation, then stop the run cleanly (SIGTERM, checkpoint kept)."""
        if not self._cancellable():
            self.notify("This run is not running; nothing to cancel.", severity="warning")
            return
        self.app.push_screen(
            ConfirmScreen(
                f"Stop run {self.run_dir.name}? It finishes its checkpoint write and can be "
                "resumed later with kvision run --resume."
            ),
            self._cancel_confirmed,
        )

    def _cancellable(self) -> bool:
        """Running by the last poll (no new probe: the key answers at once on a busy
        machine), or launched from here and still starting (no run directory yet: kvision
        imports Keras and torch first, which can take many seconds)."""
        launched = self.app.launched.get(self.run_dir)
        starting = self.state is None and launched is not None and launched.finished() is None
        return starting or self._status == "running"

    def _cancel_confirmed(self, yes: bool | None) -> None:
        if not yes:
            return
        from .launch import cancel

        meta = self.state.reader.meta() if self.state is not None else {}
        try:
            message = cancel(self.run_dir, meta, self.app.launched.get(self.run_dir))
        except (KvisionError, OSError) as exc:
            self.notify(str(exc), severity="error")
            return
        self.query_one("#progress-label", Static).update("stopping …")
        self.notify(message)
