"""kvision-tui against the real world: its imports, and real `kvision run` processes."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from test_tui_fakes import write_run
from test_tui_screens import sync, text_of, until
from textual.widgets import DataTable, Static

from kvision.runs import RunReader, find_runs
from kvision_tui.app import KvisionApp
from kvision_tui.dialogs import ConfirmScreen
from kvision_tui.history_screen import HistoryScreen
from kvision_tui.live_screen import LiveScreen

# The one recipe the real-run tests use: tiny data, LeNet, no insight images, so a run
# takes seconds. Epochs are many so that a cancel arrives while it still trains.
REAL_RECIPE = """\
[experiment]
name = "tuitiny"
seed = 1

[data]
source = "builtin:fashion7k"
limit_per_class = 2

[models.lenet]
arch = "lenet"

[[arms]]
name = "plain"
stages = [{{ name = "train", condition = "clear", epochs = {epochs} }}]

[insight]
enabled = false
"""

PROBE = textwrap.dedent("""
    import sys
    from pathlib import Path
    from kvision_tui.app import build_app
    from kvision_tui.images import prepare_native

    app = build_app([sys.argv[1], "--runs-dir", sys.argv[2], "--attach", sys.argv[3],
                     "--images", "auto"])

    async def tour(pilot):
        for _ in range(100):  # until the recipe was validated in its worker thread
            await pilot.pause(0.05)
            if "valid" in str(app.screen_stack[1].query_one("#validation").render()):
                break
        for key in ("2", "3", "4", "i", "escape", "escape", "h", "question_mark"):
            await pilot.press(key)
            # until what the key started has run: its workers (a screen's file reads and
            # image loads, where a heavy import would happen) and the messages they posted
            await app.workers.wait_for_complete()
            await pilot.pause()
        heavy = sorted(m for m in ("keras", "torch", "cv2", "tensorflow") if m in sys.modules)
        print("HEAVY", heavy)
        app.exit()

    app.run(headless=True, size=(80, 24), auto_pilot=tour)
""")


@pytest.mark.slow  # the TUI in its own process on a real terminal (~4 s)
def test_the_tui_process_never_imports_keras_torch_or_cv2(tmp_path: Path) -> None:
    """Recipes validated, a run attached, its tabs, images and the history all shown."""
    recipes = tmp_path / "recipes"
    recipes.mkdir()
    (recipes / "tiny.toml").write_text(REAL_RECIPE.format(epochs=1))
    run = write_run(tmp_path / "runs")
    out = subprocess.run(
        [sys.executable, "-c", PROBE, str(recipes), str(tmp_path / "runs"), str(run)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert "HEAVY []" in out.stdout, out.stdout + out.stderr


def _kill_group(process: subprocess.Popen) -> None:
    if process.poll() is None:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait(timeout=30)


@pytest.mark.slow
@pytest.mark.timeout(300)
@sync
async def test_launch_a_real_run_survive_quitting_then_cancel_it(tmp_path: Path) -> None:
    """Launch from the TUI, see metrics arrive, quit (the run goes on), cancel from a new
    TUI session with confirmation: the run records run_interrupted and keeps a checkpoint."""
    recipes, runs = tmp_path / "recipes", tmp_path / "runs"
    recipes.mkdir()
    (recipes / "tuitiny.toml").write_text(REAL_RECIPE.format(epochs=200))
    app = KvisionApp([recipes], runs, None, "halfblock")
    async with app.run_test(size=(100, 30)) as pilot:
        await until(pilot, lambda: app.screen.valid_recipe is not None, timeout=30)
        await pilot.press("l")
        ((run_dir, launched),) = app.launched.items()
        try:
            assert isinstance(app.screen, LiveScreen)
            table = app.screen.query_one("#epoch-table", DataTable)
            await until(pilot, lambda: table.row_count >= 1, timeout=180)
        except BaseException:
            _kill_group(launched.process)
            raise
    try:
        assert launched.finished() is None, launched.log_tail()  # quitting left it running
        second = KvisionApp([recipes], runs, run_dir, "halfblock")
        async with second.run_test(size=(100, 30)) as pilot:
            header = second.screen.query_one("#run-header", Static)
            assert "status running" in text_of(header)
            await pilot.press("c")
            assert isinstance(second.screen, ConfirmScreen)
            await pilot.press("y")
            await until(pilot, lambda: "status interrupted" in text_of(header), timeout=120)
        assert launched.process.wait(timeout=60) is not None
        checkpoints = run_dir / "trials" / "lenet-plain" / "checkpoints"
        assert any(checkpoints.iterdir()), "cancel must keep the last checkpoint"
    finally:
        _kill_group(launched.process)


@pytest.mark.slow
@pytest.mark.timeout(300)
@sync
async def test_attach_to_a_run_started_outside_the_tui(tmp_path: Path) -> None:
    """A plain `kvision run` in another 'shell'; the TUI finds it in History and follows it."""
    recipe, runs = tmp_path / "tuitiny.toml", tmp_path / "runs"
    recipe.write_text(REAL_RECIPE.format(epochs=2))
    log = open(tmp_path / "outside.log", "wb")  # noqa: SIM115 - closed in finally
    process = subprocess.Popen(
        [sys.executable, "-m", "kvision", "run", str(recipe), "--runs-dir", str(runs)],
        stdin=subprocess.DEVNULL,
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    try:
        app = KvisionApp([tmp_path], runs, None, "halfblock")
        async with app.run_test(size=(100, 30)) as pilot:
            await pilot.press("h")
            assert isinstance(app.screen, HistoryScreen)
            history = app.screen.query_one(DataTable)
            for _ in range(60):  # the run directory appears once kvision has started
                await pilot.press("g")
                await pilot.pause(0.5)
                if history.row_count:
                    break
            assert history.row_count == 1, (tmp_path / "outside.log").read_text()
            await pilot.press("enter")
            assert isinstance(app.screen, LiveScreen)
            header = app.screen.query_one("#run-header", Static)
            await until(pilot, lambda: "status finished" in text_of(header), timeout=240)
            table = app.screen.query_one("#epoch-table", DataTable)
            assert table.row_count == 2
            assert app.screen.query_one("#eval-table", DataTable).row_count >= 2
        assert process.wait(timeout=60) == 0
        assert [p.name for p in find_runs(runs)][0].endswith("-tuitiny")
    finally:
        _kill_group(process)
        log.close()


TWO_TRIALS = """\
[experiment]
name = "tuifollow"
seed = 1

[data]
source = "builtin:fashion7k"
limit_per_class = 20

[models.lenet]
arch = "lenet"

[[arms]]
name = "first"
stages = [{ name = "train", condition = "clear", epochs = 3 }]

[[arms]]
name = "second"
stages = [{ name = "train", condition = "clear", epochs = 3 }]

[insight]
enabled = false
"""


@pytest.mark.slow
@pytest.mark.timeout(400)
@sync
async def test_live_view_follows_a_real_run_into_its_second_trial(tmp_path: Path) -> None:
    """Launched from the TUI, so the live view is open before the run directory exists and
    the second trial starts while it watches: header, charts and table move to it; t pins
    the first trial again, f follows the run again. The console output ends up inside the
    run directory, nothing is left beside the runs."""
    recipes, runs = tmp_path / "recipes", tmp_path / "runs"
    recipes.mkdir()
    (recipes / "follow.toml").write_text(TWO_TRIALS)
    app = KvisionApp([recipes], runs, None, "halfblock")
    async with app.run_test(size=(100, 30)) as pilot:
        await until(pilot, lambda: app.screen.valid_recipe is not None, timeout=60)
        await pilot.press("l")
        ((run_dir, launched),) = app.launched.items()
        try:
            live = app.screen
            assert isinstance(live, LiveScreen)
            header = live.query_one("#run-header", Static)
            await until(
                pilot, lambda: "trial lenet-first (1/2) · following" in text_of(header), timeout=240
            )
            await until(
                pilot,
                lambda: "trial lenet-second (2/2) · following" in text_of(header),
                timeout=240,
            )
            table = live.query_one("#epoch-table", DataTable)
            await until(pilot, lambda: table.row_count >= 1, timeout=120)
            second = live.state.trials["lenet-second"]
            await until(
                pilot,
                lambda: (
                    live.query_one("#loss-chart").data.series[0].values == second.points("loss")[1]
                ),
                timeout=30,
            )
            await pilot.press("t")
            assert "trial lenet-first (1/2) · pinned" in text_of(header)
            assert table.row_count == 3  # the first trial's three epochs
            await pilot.press("f")
            assert "trial lenet-second (2/2) · following" in text_of(header)
            await until(pilot, lambda: "status finished" in text_of(header), timeout=240)
            assert launched.process.wait(timeout=60) == 0
            await until(pilot, lambda: launched.log == run_dir / "launch.log", timeout=10)
        finally:
            _kill_group(launched.process)
    events = RunReader(run_dir).of("evaluation_started")
    assert {e["trial"] for e in events} == {"lenet-first", "lenet-second"}
    assert "run directory:" in (run_dir / "launch.log").read_text()
    assert sorted(p.name for p in runs.iterdir()) == [run_dir.name]  # no logs beside runs
