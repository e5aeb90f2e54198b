"""Snapshots of the main screens at fixed sizes, on fixed fake data (no clocks, no tmp paths).

Update them after an intended change with
``pytest tests/test_tui_snapshots.py --snapshot-update`` and review the SVGs.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from test_tui_fakes import write_run
from test_tui_screens import TINY
from textual.css.query import NoMatches

from kvision_tui.app import KvisionApp

pytestmark = pytest.mark.timeout(120)


@pytest.fixture
def app(tmp_path: Path, monkeypatch) -> KvisionApp:
    """An app on relative paths inside tmp_path, so no temporary path shows on screen."""
    monkeypatch.chdir(tmp_path)
    Path("recipes").mkdir()
    Path("recipes/tiny.toml").write_text(TINY)
    # a problem whose message does not list registries that grow (models, sources)
    Path("recipes/broken.toml").write_text(TINY.replace("limit_per_class = 4",
                                                        "val_fraction = 3.0"))
    write_run(Path("runs"), "20260101-120000-demo", epochs=(40, 60))
    write_run(Path("runs"), "20260102-120000-demo", trials=1, images=False)
    return KvisionApp([Path("recipes")], Path("runs"), None, "halfblock")


async def _settle(pilot, condition) -> None:
    """Let workers and timers run until ``condition(app)`` holds (the screen may still be
    mounting, so a missing widget counts as not yet)."""
    for _ in range(200):
        await pilot.pause(0.05)
        try:
            if condition(pilot.app):
                break
        except NoMatches:
            continue
    await pilot.pause()


#: Every screen is snapshotted at the smallest supported terminal and at a roomy one.
SIZES = pytest.mark.parametrize("size", [(80, 24), (130, 40)], ids=["80x24", "130x40"])


def _live(tab: str):
    async def attach(pilot) -> None:
        pilot.app.open_live(Path("runs/20260101-120000-demo"))
        await _settle(pilot, lambda a: a.screen.state is not None)
        await pilot.press(tab)
        await pilot.pause()

    return attach


@SIZES
def test_recipes_screen(app, snap_compare, size) -> None:
    async def validated(pilot) -> None:
        await _settle(pilot, lambda a: "problem" in str(a.screen.query_one("#validation")
                                                        .render()))

    assert snap_compare(app, terminal_size=size, run_before=validated)


@SIZES
def test_live_screen_charts(app, snap_compare, size) -> None:
    assert snap_compare(app, terminal_size=size, run_before=_live("1"))


@SIZES
def test_live_screen_epochs_table(app, snap_compare, size) -> None:
    assert snap_compare(app, terminal_size=size, run_before=_live("2"))


@SIZES
def test_live_screen_evaluation(app, snap_compare, size) -> None:
    assert snap_compare(app, terminal_size=size, run_before=_live("3"))


@SIZES
def test_live_screen_messages(app, snap_compare, size) -> None:
    async def messages(pilot) -> None:
        await _live("4")(pilot)
        await _settle(pilot, lambda a: a.screen.query_one("#log").lines)

    assert snap_compare(app, terminal_size=size, run_before=messages)


@SIZES
def test_history_screen(app, snap_compare, size) -> None:
    async def history(pilot) -> None:
        await pilot.press("h")
        await _settle(pilot, lambda a: a.screen.runs)

    assert snap_compare(app, terminal_size=size, run_before=history)


@SIZES
def test_compare_screen(app, snap_compare, size) -> None:
    async def compare(pilot) -> None:
        await pilot.press("h")
        await _settle(pilot, lambda a: a.screen.runs)
        await pilot.press("down", "space", "up", "space", "c")  # the older run is A
        await _settle(pilot, lambda a: a.screen.query_one("#compare-table").row_count)

    assert snap_compare(app, terminal_size=size, run_before=compare)


@SIZES
def test_images_screen(app, snap_compare, size) -> None:
    async def images(pilot) -> None:
        pilot.app.open_images(Path("runs/20260101-120000-demo"))
        await _settle(pilot, lambda a: "conv1" in str(a.screen.query_one("#caption").render()))

    assert snap_compare(app, terminal_size=size, run_before=images)


@SIZES
def test_help_screen(app, snap_compare, size) -> None:
    assert snap_compare(app, terminal_size=size, press=["question_mark"])
