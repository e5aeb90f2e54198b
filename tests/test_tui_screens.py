"""Every screen and binding of kvision-tui, driven with Textual's pilot on fake runs."""

from __future__ import annotations

import asyncio
import functools
import json
import os
import sys
import textwrap
from collections.abc import Callable
from pathlib import Path

import pytest
from test_tui_fakes import write_run
from textual.command import CommandList
from textual.widgets import DataTable, Input, OptionList, Static, TabbedContent

from kvision_tui import launch as launch_module
from kvision_tui.app import KvisionApp, main
from kvision_tui.compare_screen import CompareScreen
from kvision_tui.dialogs import ConfirmScreen, HelpScreen
from kvision_tui.history_screen import HistoryScreen
from kvision_tui.images_screen import ImagesScreen
from kvision_tui.live_screen import MAX_TABLE_ROWS, LiveScreen
from kvision_tui.recipes_screen import RecipesScreen

pytestmark = pytest.mark.timeout(120)

TINY = """\
[experiment]
name = "tiny"

[data]
source = "builtin:fashion7k"
limit_per_class = 4

[models.lenet]
arch = "lenet"

[[arms]]
name = "plain"
stages = [{ name = "train", condition = "clear", epochs = 1 }]
"""
BROKEN = TINY.replace('arch = "lenet"', 'arch = "lenett"')


def sync(test: Callable) -> Callable:
    """Run an async pilot test in its own event loop (no pytest-asyncio needed)."""

    @functools.wraps(test)
    def wrapper(*args, **kwargs):
        return asyncio.run(test(*args, **kwargs))

    return wrapper


async def until(pilot, condition: Callable[[], bool], timeout: float = 20.0) -> None:
    """Let the app run until ``condition()`` holds (workers, timers), or fail."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not condition():
        if loop.time() > deadline:
            raise AssertionError(f"condition not met within {timeout} s")
        await pilot.pause(0.05)


def text_of(widget: Static) -> str:
    """The plain text a Static shows."""
    return str(widget.render())


@pytest.fixture
def world(tmp_path: Path) -> dict[str, Path]:
    """A recipes folder (one good, one broken recipe) and a runs folder with two runs."""
    recipes = tmp_path / "recipes"
    recipes.mkdir()
    (recipes / "tiny.toml").write_text(TINY)
    (recipes / "broken.toml").write_text(BROKEN)
    runs = tmp_path / "runs"
    first = write_run(runs, "20260101-120000-demo", partial_line=True)
    second = write_run(runs, "20260102-120000-demo", trials=1, finish="failed", images=False)
    return {"recipes": recipes, "runs": runs, "first": first, "second": second}


def world_state(run: Path, trial: str, metric: str) -> tuple[float, ...]:
    """A metric of one trial as the run's events have it."""
    from kvision_tui.runstate import RunState

    return RunState(run).trials[trial].points(metric)[1]


def make_app(world: dict[str, Path], attach: Path | None = None) -> KvisionApp:
    return KvisionApp([world["recipes"]], world["runs"], attach, "halfblock")


def fake_runner(monkeypatch, script: Path, *, pass_run_dir: bool) -> None:
    """Launches start ``script`` instead of kvision run (with the run directory it is to
    create as its argument when ``pass_run_dir``)."""

    def command(recipe: object, run_dir: Path, overrides: object) -> list[str]:
        return [sys.executable, str(script), *([str(run_dir)] if pass_run_dir else [])]

    monkeypatch.setattr(launch_module, "run_command", command)


async def launch_first_recipe(pilot, app: KvisionApp) -> None:
    """Select the first recipe, wait until it is validated, launch it (l)."""
    await pilot.press("down")
    await until(pilot, lambda: app.screen.valid_recipe is not None)
    await pilot.press("l")


@sync
async def test_recipes_show_validation_and_overrides(world) -> None:
    app = make_app(world)
    async with app.run_test(size=(100, 30)) as pilot:
        screen = app.screen
        assert isinstance(screen, RecipesScreen)
        validation = screen.query_one("#validation", Static)
        # broken.toml sorts first: its error names the key path and suggests the fix
        await until(pilot, lambda: "problem" in text_of(validation))
        assert "models.lenet.arch" in text_of(validation)
        assert "lenet" in text_of(validation)
        await pilot.press("l")  # launching an invalid recipe is refused with a message
        assert not app.launched
        await pilot.press("down")
        await until(pilot, lambda: "tiny.toml is valid" in text_of(validation))
        body = text_of(screen.query_one("#recipe-body", Static))
        assert "limit_per_class = 4" in body and "[training]" in body  # resolved recipe
        await pilot.press("o", *"foo.bar=1", "enter")
        await until(pilot, lambda: "unknown key 'foo'" in text_of(validation))
        listing = screen.query_one("#override-list", OptionList)
        assert [str(o.prompt) for o in listing.options] == ["--set foo.bar=1"]
        await pilot.press("escape")  # back on the recipe list: x clears
        assert app.focused is screen.query_one("#recipe-list")
        await pilot.press("x")
        await until(pilot, lambda: "tiny.toml is valid" in text_of(validation))
        assert "none" in text_of(screen.query_one("#overrides", Static))


@sync
async def test_override_entry_keeps_the_focus_and_swallows_global_keys(world) -> None:
    """After Enter the next override is typed into the box: h, o, c, q, l, x, ? never act."""
    app = make_app(world)
    async with app.run_test(size=(80, 24)) as pilot:
        screen = app.screen
        box = screen.query_one("#override", Input)
        await pilot.press("o", *"data.limit_per_class=2", "enter")
        assert app.focused is box and box.value == ""
        await pilot.press(*"hocqlx?")
        assert app.screen is screen and app.focused is box and box.value == "hocqlx?"
        assert screen.overrides == ["data.limit_per_class=2"] and not app.launched


@sync
async def test_overrides_are_removed_one_at_a_time(world) -> None:
    app = make_app(world)
    async with app.run_test(size=(80, 24)) as pilot:
        screen = app.screen
        validation = screen.query_one("#validation", Static)
        await pilot.press("down")  # tiny.toml
        await until(pilot, lambda: "tiny.toml is valid" in text_of(validation))
        await pilot.press("o", *"foo.bar=1", "enter", *"training.batch_size=4", "enter")
        await until(pilot, lambda: "unknown key 'foo'" in text_of(validation))
        listing = screen.query_one("#override-list", OptionList)
        assert screen.check_action("remove_override", ()) is False  # typing: del edits text
        await pilot.press("tab")
        assert app.focused is listing
        assert screen.check_action("remove_override", ()) is True
        await pilot.press("delete")  # the highlighted (first) override goes, the other stays
        assert screen.overrides == ["training.batch_size=4"]
        assert [str(o.prompt) for o in listing.options] == ["--set training.batch_size=4"]
        await until(pilot, lambda: "tiny.toml is valid" in text_of(validation))
        await pilot.press("delete")
        assert screen.overrides == [] and not listing.display
        assert app.focused is screen.query_one("#override", Input)


@sync
async def test_an_override_without_equals_is_refused(world) -> None:
    app = make_app(world)
    async with app.run_test(size=(100, 30)) as pilot:
        await pilot.press("o", *"epochs", "enter")
        assert app.screen.overrides == []
        assert any("is not key=value" in n.message for n in app._notifications)


@sync
async def test_live_screen_tabs_trials_and_messages(world) -> None:
    app = make_app(world, attach=world["first"])
    async with app.run_test(size=(100, 30)) as pilot:
        screen = app.screen
        assert isinstance(screen, LiveScreen)
        header = screen.query_one("#run-header", Static)
        assert "status finished" in text_of(header)
        # following: the trial the run was busy with last
        assert "trial lenet-arm1 (2/2) · following the run" in text_of(header)
        table = screen.query_one("#epoch-table", DataTable)
        assert table.row_count == 6  # this trial's epochs; the torn last line is not a row
        assert table.get_row_at(5)[:3] == ["stage1", "3", "6"]
        await pilot.press("t")
        assert "trial lenet-arm0 (1/2) · pinned" in text_of(header)
        assert table.row_count == 6 and table.get_row_at(0)[:3] == ["stage0", "1", "1"]
        await pilot.press("f")
        assert "trial lenet-arm1 (2/2) · following" in text_of(header)
        for key, tab in (("2", "epochs"), ("3", "evaluation"), ("4", "messages"), ("1", "charts")):
            await pilot.press(key)
            assert screen.query_one(TabbedContent).active == tab
        assert screen.query_one("#eval-table", DataTable).row_count == 12
        await pilot.press("4")  # the log renders once its tab is shown
        log = screen.query_one("#log")
        await until(pilot, lambda: any("skipped bad.png" in str(line.text) for line in log.lines))
        assert not screen.query_one("#no-messages").display
        # a finished run cannot be cancelled: the key is hidden and does nothing
        assert "cancel_run" not in {
            b.action for b in (a.binding for a in app.active_bindings.values())
        }
        await pilot.press("c")
        assert not isinstance(app.screen, ConfirmScreen)
        await pilot.press("i")
        assert isinstance(app.screen, ImagesScreen)
        await pilot.press("escape", "escape")
        assert isinstance(app.screen, RecipesScreen)


@sync
async def test_live_screen_follows_appended_events(world) -> None:
    run = write_run(
        world["runs"], "20260103-120000-live", trials=1, epochs=(2,), finish="running", images=False
    )
    app = make_app(world, attach=run)
    async with app.run_test(size=(80, 24)) as pilot:
        table = app.screen.query_one("#epoch-table", DataTable)
        assert table.row_count == 2
        with open(run / "events.jsonl", "a") as fh:
            for epoch in (3, 4, 5):
                fh.write(
                    json.dumps(
                        {
                            "event": "epoch_end",
                            "trial": "lenet-arm0",
                            "stage": "stage0",
                            "epoch": epoch,
                            "global_epoch": epoch,
                            "metrics": {"loss": 0.5, "val_accuracy": 0.7},
                        }
                    )
                    + "\n"
                )
            fh.write(
                json.dumps(
                    {
                        "event": "progress",
                        "trial": "lenet-arm0",
                        "stage": "stage0",
                        "epoch": 6,
                        "step": 3,
                        "steps": 12,
                    }
                )
                + "\n"
            )
            fh.write(json.dumps({"event": "run_failed", "error": "disk full"}) + "\n")
        await until(pilot, lambda: table.row_count == 5)
        header = app.screen.query_one("#run-header", Static)
        await until(pilot, lambda: "status failed" in text_of(header))
        await pilot.press("4")  # the log renders once its tab is shown
        log = app.screen.query_one("#log")
        await until(pilot, lambda: any("disk full" in str(line.text) for line in log.lines))


@sync
async def test_live_table_keeps_the_latest_epochs_of_a_long_run(world) -> None:
    run = write_run(
        world["runs"], "20260104-120000-long", trials=2, epochs=(200, 250), images=False
    )
    app = make_app(world, attach=run)
    async with app.run_test(size=(80, 24)) as pilot:
        table = app.screen.query_one("#epoch-table", DataTable)
        assert table.row_count == MAX_TABLE_ROWS
        assert table.get_row_at(MAX_TABLE_ROWS - 1)[:3] == ["stage1", "250", "450"]
        info = text_of(app.screen.query_one("#epochs-info", Static))
        assert "450 epochs, the last 300 shown" in info
        chart = app.screen.query_one("#loss-chart")
        assert chart.data.series[0].xs[-1] == 450 and chart.data.boundaries == (200.5,)
        await pilot.press("t")
        assert table.row_count == MAX_TABLE_ROWS


@sync
async def test_live_screen_on_a_directory_that_is_not_a_run(world, tmp_path) -> None:
    app = make_app(world)
    async with app.run_test(size=(80, 24)) as pilot:
        app.open_live(tmp_path)
        await pilot.pause()
        assert "is not a kvision run directory" in text_of(app.screen.query_one("#run-header"))


@sync
async def test_history_open_mark_compare_images(world) -> None:
    app = make_app(world)
    async with app.run_test(size=(100, 30)) as pilot:
        await pilot.press("h")
        screen = app.screen
        assert isinstance(screen, HistoryScreen)
        table = screen.query_one(DataTable)
        await until(pilot, lambda: table.row_count == 2)
        assert list(table.get_row_at(0))[1:4] == ["2026-01-02 12:00:00", "demo", "failed"]
        assert list(table.get_row_at(1))[-2] == "80.00%"  # the same figure as kvision ls
        await pilot.press("c")
        assert not isinstance(app.screen, CompareScreen)  # nothing marked yet
        await pilot.press("down", "space", "up", "space")  # the older run first: it is A
        assert table.get_row_at(1)[0] == "A" and table.get_row_at(0)[0] == "B"
        await pilot.press("c")
        compare = app.screen
        assert isinstance(compare, CompareScreen)
        loss = compare.query_one("#compare-loss").data
        # one chart, every run and trial on it: A's two trials and B's one
        assert [s.label for s in loss.series] == [
            "A lenet / arm0",
            "A lenet / arm1",
            "B lenet / arm0",
        ]
        assert loss.series[1].values == world_state(world["first"], "lenet-arm1", "val_loss")
        assert len({s.color for s in loss.series}) == 3
        rows = compare.query_one("#compare-table", DataTable)
        assert list(rows.get_row_at(0)) == ["lenet / arm0", "clear test", "80.00", "80.00", "+0.00"]
        await pilot.press("t")  # one model at a time (the fake runs have one: lenet)
        assert [s.label for s in compare.query_one("#compare-loss").data.series] == [
            "A lenet / arm0",
            "A lenet / arm1",
            "B lenet / arm0",
        ]
        assert "shown: model lenet (t)" in text_of(compare.query_one("#compare-info", Static))
        await pilot.press("d")
        assert list(rows.get_row_at(0))[:3] == ["B-A", "lenet / arm0", "clear test"]
        await pilot.press("escape", "enter")  # the cursor is on the newer run
        assert isinstance(app.screen, LiveScreen) and app.screen.run_dir == world["second"]
        await pilot.press("escape", "o")
        assert isinstance(app.screen, LiveScreen)
        await pilot.press("escape", "i")
        assert isinstance(app.screen, ImagesScreen)
        await pilot.press("escape", "g")
        await until(pilot, lambda: table.row_count == 2)
        await pilot.press("escape")
        assert isinstance(app.screen, RecipesScreen)


@sync
async def test_images_navigation_and_corrupt_files(world) -> None:
    app = make_app(world)
    async with app.run_test(size=(80, 24)) as pilot:
        app.open_images(world["first"])
        await pilot.pause()
        screen = app.screen
        caption = screen.query_one("#caption", Static)
        await until(pilot, lambda: "filters/conv1.png" in text_of(caption))
        await pilot.press("n")
        assert "filters/conv2.png  (2/2)" in text_of(caption)
        await pilot.press("p")
        assert "(1/2)" in text_of(caption)
        await pilot.press("]")
        assert "curves/loss.png" in text_of(caption)
        await pilot.press("]")
        assert "confusion/matrix.png" in text_of(caption)
        errors = screen.query(".error")
        assert errors and "cannot be decoded" in text_of(errors.first())
        await pilot.press("[", "g")
        assert screen.query_one("#files", OptionList).option_count >= 1


@sync
async def test_images_of_a_run_without_images(world) -> None:
    app = make_app(world)
    async with app.run_test(size=(80, 24)) as pilot:
        app.open_images(world["second"])
        await pilot.pause()
        assert "No images" in text_of(app.screen.query_one("#caption", Static))
        await pilot.press("]", "n")  # nothing to move to: no crash


@sync
async def test_help_and_command_palette(world) -> None:
    app = make_app(world)
    async with app.run_test(size=(100, 30)) as pilot:
        await pilot.press("question_mark")
        assert isinstance(app.screen, HelpScreen)
        text = app.screen.text  # built from the screens' bindings, hidden ones too
        assert "**c**: Compare" in text and "**1**: Charts" in text and "**4**: Messages" in text
        assert "**f**: Follow" in text and "**esc**: List" in text
        await pilot.press("escape", "f1")
        assert isinstance(app.screen, HelpScreen)
        await pilot.press("escape", "ctrl+p", *"History")
        await until(
            pilot,
            lambda: (
                app.screen.query(CommandList) and app.screen.query_one(CommandList).option_count > 0
            ),
        )
        await pilot.press("down", "enter")
        await until(pilot, lambda: isinstance(app.screen, HistoryScreen))
        await pilot.press("r")
        assert isinstance(app.screen, RecipesScreen)
        await pilot.press("q")
    assert app.return_code == 0


FAKE_RUNNER = """
import json, os, signal, sys, time
run = sys.argv[1]
os.makedirs(run)
json.dump({"pid": os.getpid(), "host": None}, open(os.path.join(run, "meta.json"), "w"))
events = open(os.path.join(run, "events.jsonl"), "a")
def emit(**e):
    events.write(json.dumps({"trial": None, "stage": None, **e}) + "\\n"); events.flush()
def stop(signum, frame):
    emit(event="run_interrupted", signal="SIGTERM", message="checkpoint saved")
    sys.exit(0)
signal.signal(signal.SIGTERM, stop)
emit(event="run_started", recipe_name="tiny", trials=[])
emit(event="epoch_end", trial="lenet-plain", stage="train", epoch=1, global_epoch=1,
     metrics={"loss": 0.7, "accuracy": 0.6})
while True:
    time.sleep(0.05)
"""


@sync
async def test_launch_watch_and_cancel_a_detached_run(world, monkeypatch, tmp_path) -> None:
    """Launch (a stand-in runner), see its metrics, cancel with confirmation."""
    script = tmp_path / "fake_runner.py"
    script.write_text(textwrap.dedent(FAKE_RUNNER))
    fake_runner(monkeypatch, script, pass_run_dir=True)
    app = make_app(world)
    async with app.run_test(size=(100, 30)) as pilot:
        await launch_first_recipe(pilot, app)
        assert isinstance(app.screen, LiveScreen)
        ((run_dir, launched),) = app.launched.items()
        assert run_dir.name.endswith("-tiny") and run_dir.parent == world["runs"]
        assert launched.log.exists()
        assert launched.process.pid != 0 and launched.finished() is None
        table = app.screen.query_one("#epoch-table", DataTable)
        await until(pilot, lambda: table.row_count == 1)
        # the console output moved into the run directory once kvision created it
        await until(pilot, lambda: launched.log == run_dir / "launch.log")
        assert not list(world["runs"].glob("*.log")) and not (world["runs"] / ".logs").exists()
        await pilot.press("c")
        assert isinstance(app.screen, ConfirmScreen)
        await pilot.press("n")  # no: the run goes on
        assert launched.finished() is None
        await pilot.press("c", "y")
        await until(pilot, lambda: launched.finished() is not None)
        header = app.screen.query_one("#run-header", Static)
        await until(pilot, lambda: "status interrupted" in text_of(header))


def test_main_rejects_a_bad_attach_directory(tmp_path, capsys) -> None:
    assert main(["--attach", str(tmp_path), "--images", "halfblock"]) == 2
    assert "is not a kvision run directory" in capsys.readouterr().err


@sync
async def test_native_image_widget_is_used_when_the_terminal_has_graphics(
    world, monkeypatch
) -> None:
    from textual_image.widget import HalfcellImage

    from kvision_tui import images

    # stand in for a Sixel/Kitty terminal: textual-image's own widget class is mounted
    monkeypatch.setattr(images, "_native_widget", HalfcellImage)
    app = KvisionApp([world["recipes"]], world["runs"], None, "native")
    async with app.run_test(size=(80, 24)) as pilot:
        app.open_images(world["first"])
        await until(pilot, lambda: bool(app.screen.query(HalfcellImage)))
        await pilot.press("]", "]")  # the corrupt PNG is still a message, not a crash
        await until(pilot, lambda: bool(app.screen.query(".error")))


@sync
async def test_a_failed_launch_stops_its_progress_and_shows_the_error(
    world, monkeypatch, tmp_path
) -> None:
    """kvision exits before creating the run directory (e.g. a missing data folder)."""
    script = tmp_path / "failing_runner.py"
    script.write_text(
        "import sys\nprint(\"kvision: error: data folder 'x' does not exist.\")\nsys.exit(2)\n"
    )
    fake_runner(monkeypatch, script, pass_run_dir=False)
    app = make_app(world)
    async with app.run_test(size=(100, 30)) as pilot:
        await launch_first_recipe(pilot, app)
        ((run_dir, launched),) = app.launched.items()
        header = app.screen.query_one("#run-header", Static)
        await until(pilot, lambda: "exited with code 2" in text_of(header))
        assert "data folder 'x' does not exist" in text_of(header)
        assert not app.screen.query_one("#progress").display  # no animation left running
        assert "launch failed" in text_of(app.screen.query_one("#progress-label", Static))
        # its log is kept in the documented logs folder, not beside the runs
        assert launched.log == world["runs"] / ".logs" / f"{run_dir.name}.log"
        assert not list(world["runs"].glob("*.log"))


@sync
async def test_a_launch_whose_data_is_refused_while_loading_shows_the_error(
    world, monkeypatch, tmp_path
) -> None:
    """kvision claims the run directory, starts loading, then finds the data unusable and
    removes the directory again: the live view goes back to saying why, from the log."""
    script = tmp_path / "refused_runner.py"
    script.write_text(
        textwrap.dedent("""\
        import json, sys, time
        from pathlib import Path
        run = Path(sys.argv[1])
        run.mkdir()
        (run / "meta.json").write_text(json.dumps({"pid": None, "host": None}))
        (run / "events.jsonl").write_text(json.dumps({"event": "data_progress",
            "time": "2026-01-05T12:00:00+00:00", "done": 3, "total": 9}) + "\\n")
        time.sleep(3)
        (run / "meta.json").unlink()
        (run / "events.jsonl").unlink()
        print("kvision: error: no readable images in 'pets\\x1b[2J'.", flush=True)
        sys.exit(2)
        """)
    )
    fake_runner(monkeypatch, script, pass_run_dir=True)
    app = make_app(world)
    async with app.run_test(size=(100, 30)) as pilot:
        await launch_first_recipe(pilot, app)
        label = app.screen.query_one("#progress-label", Static)
        await until(pilot, lambda: "loading 3/9 images" in text_of(label))
        header = app.screen.query_one("#run-header", Static)
        await until(pilot, lambda: "exited with code 2" in text_of(header))
        # the log is text from a file: its escape sequence is shown, not obeyed
        assert "no readable images in 'pets\\x1b[2J'" in text_of(header)
        assert "launch failed" in text_of(label)


def _loading_run(runs: Path, pid: int) -> Path:
    """A run killed (or still busy) while building its cache entry: data_progress only."""
    run = runs / "20260105-120000-loading"
    run.mkdir(parents=True)
    (run / "meta.json").write_text(json.dumps({"pid": pid, "host": None, "seed": 1}))
    (run / "recipe.toml").write_text('[experiment]\nname = "loading"\n')
    figures = [(0, 2000, 0.0, None), (400, 2000, 31.2, 51.3)]
    (run / "events.jsonl").write_text(
        "".join(
            json.dumps(
                {"event": "data_progress", "time": f"2026-01-05T12:00:0{i}+00:00", "trial": None}
                | {"stage": None, "done": d, "total": t, "rate": r, "eta_s": e}
            )
            + "\n"
            for i, (d, t, r, e) in enumerate(figures)
        )
    )
    return run


@sync
async def test_live_view_shows_how_far_the_data_loading_got(world) -> None:
    run = _loading_run(world["runs"], os.getpid())  # this process: "running"
    app = make_app(world, attach=run)
    async with app.run_test(size=(100, 30)) as pilot:
        label = app.screen.query_one("#progress-label", Static)
        await until(pilot, lambda: "loading 400/2,000 images (20%)" in text_of(label))
        assert "31 img/s" in text_of(label) and "51s left" in text_of(label)
        bar = app.screen.query_one("#progress")
        assert bar.display and bar.total == 2000 and bar.progress == 400
        with open(run / "events.jsonl", "a") as fh:  # the load ended: training begins
            fh.write(json.dumps({"event": "data_loaded", "time": "2026-01-05T12:01:00+00:00"}))
            fh.write("\n")
        await until(pilot, lambda: "loading" not in text_of(label))


@sync
async def test_live_view_of_a_run_killed_while_loading_says_where_it_stopped(world) -> None:
    run = _loading_run(world["runs"], 2**22 + 17)  # no such process: the writer is gone
    app = make_app(world, attach=run)
    async with app.run_test(size=(100, 30)) as pilot:
        label = app.screen.query_one("#progress-label", Static)
        await until(pilot, lambda: "loading 400/2,000 images" in text_of(label))
        assert "stopped" in text_of(label)
        assert "status stale" in text_of(app.screen.query_one("#run-header", Static))


@sync
async def test_live_view_follows_a_second_trial_and_shows_an_evaluation_in_progress(world) -> None:
    run = write_run(
        world["runs"],
        "20260105-120000-live",
        trials=1,
        epochs=(2,),
        finish="running",
        images=False,
        pid=os.getpid(),
    )
    app = make_app(world, attach=run)
    async with app.run_test(size=(100, 30)) as pilot:
        screen = app.screen
        header = screen.query_one("#run-header", Static)
        assert "trial lenet-arm0 (1/1) · following" in text_of(header)
        assert screen.check_action("cancel_run", ()) is True  # running: cancel is offered
        with open(run / "events.jsonl", "a") as fh:
            for e in (
                {"event": "trial_started", "trial": "lenet-arm1", "model": "lenet", "arm": "arm1"},
                {"event": "evaluation_started", "trial": "lenet-arm1", "checkpoint": "before"},
            ):
                fh.write(json.dumps({"time": "2026-01-01T12:10:00+00:00", **e}) + "\n")
        label = screen.query_one("#progress-label", Static)
        await until(pilot, lambda: "lenet-arm1 evaluating before" in text_of(label))
        assert "trial lenet-arm1 (2/2) · following" in text_of(header)
        assert "no epochs yet" in str(screen.query_one("#loss-chart").render())
        with open(run / "events.jsonl", "a") as fh:  # issue 15's non-finite loss stop
            fh.write(
                json.dumps(
                    {
                        "event": "trial_failed",
                        "time": "2026-01-01T12:11:00+00:00",
                        "trial": "lenet-arm1",
                        "stage": "stage0",
                        "error": "non-finite loss",
                    }
                )
                + "\n"
            )
        await until(pilot, lambda: "trial lenet-arm1 (2/2) · failed" in text_of(header))
        assert "evaluating" not in text_of(label)


@sync
async def test_messages_tab_has_a_placeholder_until_a_warning_arrives(world) -> None:
    run = write_run(
        world["runs"],
        "20260106-120000-quiet",
        trials=1,
        epochs=(2,),
        finish="running",
        images=False,
        pid=os.getpid(),
    )
    lines = [
        line
        for line in (run / "events.jsonl").read_text().splitlines()
        if '"data_loaded"' not in line
    ]  # no skipped files: nothing to report
    (run / "events.jsonl").write_text("\n".join(lines) + "\n")
    app = make_app(world, attach=run)
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.press("4")
        placeholder = app.screen.query_one("#no-messages", Static)
        assert placeholder.display and "No warnings or errors so far" in text_of(placeholder)
        with open(run / "events.jsonl", "a") as fh:
            fh.write(
                json.dumps(
                    {
                        "event": "warning",
                        "time": "2026-01-01T12:10:00+00:00",
                        "trial": None,
                        "stage": None,
                        "kind": "speed_paths_off",
                        "message": "the fused optimizer is off on this backend.",
                    }
                )
                + "\n"
            )
        log = app.screen.query_one("#log")
        await until(pilot, lambda: any("speed_paths_off" in str(line.text) for line in log.lines))
        assert not placeholder.display


@sync
async def test_a_recipe_description_reads_as_prose(world) -> None:
    (world["recipes"] / "described.toml").write_text(
        TINY.replace(
            'name = "tiny"', 'name = "tiny"\ndescription = """First line.\nSecond line."""'
        )
    )
    app = make_app(world)
    async with app.run_test(size=(100, 30)) as pilot:
        await pilot.press("down")  # broken, described, tiny: the second one
        body = app.screen.query_one("#recipe-body", Static)
        await until(pilot, lambda: "First line." in text_of(body))
        assert "First line.\nSecond line." in text_of(body)  # a line break, not a literal \\n


SLOW_START = """\
import time
time.sleep(120)  # kvision importing Keras and torch on a busy machine: no run directory yet
"""


@sync
async def test_cancel_answers_at_once_with_a_dialog_that_fits(world, monkeypatch, tmp_path) -> None:
    """c opens the dialog before the run directory exists; its sentence is shown whole."""
    from test_tui_fakes import screen_lines

    script = tmp_path / "slow_start.py"
    script.write_text(SLOW_START)
    fake_runner(monkeypatch, script, pass_run_dir=False)
    app = make_app(world)
    async with app.run_test(size=(80, 24)) as pilot:
        await launch_first_recipe(pilot, app)
        ((run_dir, launched),) = app.launched.items()
        assert isinstance(app.screen, LiveScreen) and not run_dir.exists()
        await pilot.press("c")
        assert isinstance(app.screen, ConfirmScreen)  # at once: no poll waited for
        await until(pilot, lambda: "Stop run" in "".join(screen_lines(app)))
        text = " ".join(line.strip(" █") for line in screen_lines(app))
        assert "can be resumed later with kvision run --resume." in " ".join(text.split())
        await pilot.press("y")
        await until(pilot, lambda: launched.finished() is not None)


def _resumed_after_interrupt(runs: Path) -> Path:
    run = write_run(
        runs, "20260107-120000-resumed", trials=1, epochs=(2,), finish="running", images=False
    )
    meta = json.loads((run / "meta.json").read_text())
    (run / "meta.json").write_text(json.dumps({**meta, "pid": os.getpid()}))
    with open(run / "events.jsonl", "a") as fh:
        for e in (
            {"event": "run_interrupted", "signal": "SIGTERM", "message": "checkpoint saved"},
            {"event": "run_resumed"},
        ):
            fh.write(json.dumps({"time": "2026-01-01T12:20:00+00:00", **e}) + "\n")
    return run


@sync
async def test_old_interrupts_show_as_history_not_errors(world) -> None:
    run = _resumed_after_interrupt(world["runs"])
    app = make_app(world, attach=run)
    async with app.run_test(size=(80, 24)) as pilot:
        screen = app.screen
        await until(pilot, lambda: screen._status == "running")
        await pilot.press("4")
        log = screen.query_one("#log")
        await until(pilot, lambda: bool(log.lines))
        lines = [str(line.text) for line in log.lines]
        assert any(line.startswith("HISTORY: Interrupted (SIGTERM)") for line in lines), lines
        assert not any(line.startswith("ERROR") for line in lines)
        assert not app._notifications  # no toast replays what happened before attaching


FOOTER_SCREENS = {
    "recipes": None,
    "live": lambda app, world: app.open_live(world["first"]),
    "history": lambda app, world: app.action_history(),
    "images": lambda app, world: app.open_images(world["first"]),
    "compare": lambda app, world: app.push_screen(CompareScreen(world["first"], world["second"])),
}


def _last_line(app) -> str:
    """The footer row, or '' while the screen is still mounting."""
    from test_tui_fakes import screen_lines
    from textual.css.query import NoMatches

    try:
        return (screen_lines(app) or [""])[-1]
    except NoMatches:
        return ""


@pytest.mark.parametrize("name", list(FOOTER_SCREENS))
@sync
async def test_footers_fit_an_80_column_terminal(world, name) -> None:
    """Every key the footer shows reads whole ("q Quit", never "q Qui" or "Tabst")."""
    from textual.keys import format_key

    app = make_app(world)
    async with app.run_test(size=(80, 24)) as pilot:
        if FOOTER_SCREENS[name] is not None:
            FOOTER_SCREENS[name](app, world)
        await until(pilot, lambda: "q Quit" in _last_line(app))
        footer = _last_line(app)
        shown: dict[tuple, list[str]] = {}  # one entry per action; its first key is shown
        for _, b, enabled, _ in app.active_bindings.values():
            if b.show and enabled:
                key = b.key_display or format_key(b.key)
                shown.setdefault((b.action, b.description), []).append(f"{key} {b.description}")
        assert shown and len(footer.rstrip()) <= 80
        for labels in shown.values():
            assert any(label in footer for label in labels), (name, labels, footer)


@sync
async def test_compare_screen_states_recipe_changes_and_refuses_to_pair_them(world) -> None:
    (world["second"] / "recipe.toml").write_text(
        '[experiment]\nname = "demo"\n\n[data]\nlimit_per_class = 30\n'
    )
    app = make_app(world)
    async with app.run_test(size=(100, 30)) as pilot:
        app.push_screen(CompareScreen(world["first"], world["second"]))
        await until(pilot, lambda: isinstance(app.screen, CompareScreen) and app.screen.is_mounted)
        screen = app.screen
        await until(pilot, lambda: bool(screen.query("#compare-info")))
        info = screen.query_one("#compare-info", Static)
        await until(pilot, lambda: "B vs A: data.limit_per_class (absent) -> 30" in text_of(info))
        await pilot.press("d")
        rows = screen.query_one("#compare-table", DataTable)
        assert "not computed: the recipes differ in data.limit_per_class" in str(
            rows.get_row_at(0)[0]
        )
