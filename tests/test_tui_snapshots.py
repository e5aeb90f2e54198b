"""Snapshots of the main screens at fixed sizes, on fixed fake data (no clocks, no tmp paths).

Update them after an intended change with
``pytest tests/test_tui_snapshots.py --snapshot-update`` and review the SVGs.
"""

from __future__ import annotations

import json
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
    Path("recipes/broken.toml").write_text(
        TINY.replace("limit_per_class = 4", "val_fraction = 3.0")
    )
    write_run(Path("runs"), "20260101-120000-demo", epochs=(40, 60))
    second = write_run(Path("runs"), "20260102-120000-demo", trials=1, images=False)
    meta = json.loads((second / "meta.json").read_text())  # a run told apart by its --set
    meta["overrides"] = ["data.limit_per_class=4", "training.batch_size=16"]
    (second / "meta.json").write_text(json.dumps(meta))
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
#: Every screen at 80x24, where layouts break (cut footers, squeezed columns), in the quick
#: suite; at 130x40, the docs' pictures, in the whole suite.
SIZES = pytest.mark.parametrize(
    "size",
    [
        pytest.param((80, 24), id="80x24"),
        pytest.param((130, 40), id="130x40", marks=pytest.mark.slow),
    ],
)


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
        await _settle(pilot, lambda a: "problem" in str(a.screen.query_one("#validation").render()))

    assert snap_compare(app, terminal_size=size, run_before=validated)


@SIZES
def test_recipes_screen_overrides(app, snap_compare, size) -> None:
    async def overrides(pilot) -> None:
        await pilot.press("down")  # tiny.toml
        await pilot.press("o", *"training.batch_size=4", "enter", *"foo=1", "enter")
        await _settle(
            pilot, lambda a: "unknown key" in str(a.screen.query_one("#validation").render())
        )

    assert snap_compare(app, terminal_size=size, run_before=overrides)


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


ROOT = Path(__file__).resolve().parents[1]
#: docs/images/tui/<name>.svg -> the snapshot it copies
DOC_SHOTS = {
    f"{name}.svg": f"test_{name}[130x40].svg"
    for name in (
        "recipes_screen",
        "live_screen_charts",
        "live_screen_epochs_table",
        "live_screen_evaluation",
        "live_screen_messages",
        "history_screen",
        "compare_screen",
        "images_screen",
        "help_screen",
    )
}
DOC_SHOTS |= {
    f"{name}_80x24.svg": f"test_{name}[80x24].svg"
    for name in ("live_screen_charts", "history_screen")
}


def test_the_docs_screenshots_are_the_current_snapshots() -> None:
    """docs/tui.md shows the snapshot SVGs; after --snapshot-update, copy them again:
    for each docs/images/tui/NAME.svg, cp tests/__snapshots__/test_tui_snapshots/test_NAME[130x40].svg."""
    shots = ROOT / "tests" / "__snapshots__" / "test_tui_snapshots"
    for doc, snap in DOC_SHOTS.items():
        assert (ROOT / "docs" / "images" / "tui" / doc).read_bytes() == (
            shots / snap
        ).read_bytes(), doc
        assert f"images/tui/{doc}" in (ROOT / "docs" / "tui.md").read_text()


def test_the_docs_list_every_key_binding() -> None:
    from textual.keys import format_key

    from kvision_tui.app import KvisionApp
    from kvision_tui.compare_screen import CompareScreen
    from kvision_tui.dialogs import HelpScreen
    from kvision_tui.history_screen import HistoryScreen
    from kvision_tui.images_screen import ImagesScreen
    from kvision_tui.live_screen import LiveScreen
    from kvision_tui.recipes_screen import RecipesScreen

    rows = [
        line.split(" | ")
        for line in (ROOT / "docs" / "tui.md").read_text().splitlines()
        if line.startswith("| ") and line.count(" | ") >= 2
    ]
    owners = {
        "everywhere": KvisionApp,
        "Recipes": RecipesScreen,
        "Live": LiveScreen,
        "History": HistoryScreen,
        "Compare": CompareScreen,
        "Images": ImagesScreen,
        "Help": HelpScreen,
    }
    for where, owner in owners.items():
        for binding in owner.BINDINGS:
            keys = [f"`{format_key(k)}`" for k in binding.key.split(",")]
            assert any(
                row[0] == f"| {where}"
                and all(k in row[1] for k in keys)
                and binding.description.lower() in row[2].lower()
                for row in rows
            ), f"docs/tui.md has no row for {where} {keys} {binding.description!r}"
