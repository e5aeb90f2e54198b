"""kvision-tui: the Textual app, its command palette and the ``main()`` entry point.

Only light modules are imported here (Textual, kvision.runs, kvision.errors); Keras, torch
and OpenCV never load in this process, which keeps the first screen fast, also over SSH.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from functools import partial
from pathlib import Path

from textual.app import App
from textual.binding import Binding
from textual.command import DiscoveryHit, Hit, Hits, Provider

from kvision.errors import KvisionError
from kvision.runs import find_runs, is_run_dir

from .dialogs import HelpScreen
from .history_screen import HistoryScreen
from .images import MODES, prepare_native
from .images_screen import ImagesScreen
from .launch import Launched
from .recipes_screen import RecipesScreen

# The live and compare screens (plotext charts) are imported when first opened: the first
# screen, the recipes, does not wait for them.


class KvisionCommands(Provider):
    """Command palette entries: the screens, and every run in the runs folder."""

    def _commands(self) -> list[tuple[str, object, str]]:
        app: KvisionApp = self.app  # type: ignore[assignment]
        commands = [
            ("Recipes", app.action_recipes, "browse, validate and launch recipes"),
            ("History", app.action_history, "all runs; open or compare them"),
            ("Help", app.action_help, "key bindings of every screen"),
        ]
        for run in reversed(find_runs(app.runs_dir)):
            commands.append(
                (f"Open run {run.name}", partial(app.open_live, run), "live view of this run")
            )
            commands.append(
                (f"Images of {run.name}", partial(app.open_images, run), "browse this run's images")
            )
        return commands

    async def discover(self) -> Hits:
        """Everything, before anything is typed."""
        for name, callback, help_text in self._commands():
            yield DiscoveryHit(name, callback, help=help_text)

    async def search(self, query: str) -> Hits:
        """Fuzzy-match the commands against what was typed."""
        matcher = self.matcher(query)
        for name, callback, help_text in self._commands():
            score = matcher.match(name)
            if score > 0:
                yield Hit(score, matcher.highlight(name), callback, help=help_text)


class KvisionApp(App):
    """Recipes, live runs, history and images of kvision, in the terminal."""

    TITLE = "kvision"
    COMMANDS = App.COMMANDS | {KvisionCommands}
    # help first: on an 80-column footer the last entries are cut off
    BINDINGS = [
        Binding("question_mark,f1", "help", "Help"),
        Binding("r", "recipes", "Recipes"),
        Binding("h", "history", "History"),
        Binding("q", "quit", "Quit"),
    ]

    def __init__(
        self,
        recipe_paths: Sequence[Path] = (Path("recipes"),),
        runs_dir: Path = Path("runs"),
        attach: Path | None = None,
        image_mode: str = "halfblock",
    ) -> None:
        super().__init__()
        self.recipe_paths = list(recipe_paths)
        self.runs_dir = Path(runs_dir)
        self.attach = attach
        self.image_mode = image_mode
        #: runs started by this process, so they can be reaped and cancelled as a group
        self.launched: dict[Path, Launched] = {}

    def on_mount(self) -> None:
        """Recipes first; a run to attach to goes on top of it."""
        self.push_screen(RecipesScreen(self.recipe_paths))
        if self.attach is not None:
            self.open_live(self.attach)

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        """Leave out of the footer the screen that is already shown."""
        if action == "history":
            return not isinstance(self.screen, HistoryScreen)
        if action == "recipes":
            return not isinstance(self.screen, RecipesScreen)
        return True

    def open_live(self, run_dir: Path) -> None:
        """Watch a run directory (running or finished)."""
        from .live_screen import LiveScreen

        self.push_screen(LiveScreen(Path(run_dir)))

    def open_images(self, run_dir: Path) -> None:
        """Browse a run's images."""
        self.push_screen(ImagesScreen(Path(run_dir), self.image_mode))

    def action_recipes(self) -> None:
        """Back to the recipes screen (the bottom of the stack)."""
        while len(self.screen_stack) > 2:
            self.pop_screen()

    def action_history(self) -> None:
        """Show the history of runs."""
        if not isinstance(self.screen, HistoryScreen):
            self.push_screen(HistoryScreen(self.runs_dir))

    def action_help(self) -> None:
        """Show the help screen."""
        if not isinstance(self.screen, HelpScreen):
            from .compare_screen import CompareScreen
            from .live_screen import LiveScreen

            screens = {
                cls.__name__.removesuffix("Screen"): cls.BINDINGS
                for cls in (RecipesScreen, LiveScreen, HistoryScreen, CompareScreen, ImagesScreen)
            }
            self.push_screen(HelpScreen(self.BINDINGS, screens))


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    """Command-line arguments of kvision-tui."""
    parser = argparse.ArgumentParser(
        prog="kvision-tui",
        description="Launch kvision runs, watch them live and browse their images.",
    )
    parser.add_argument(
        "paths", nargs="*", type=Path, help="recipe folders or files to browse (default: recipes/)"
    )
    parser.add_argument(
        "--runs-dir",
        type=Path,
        default=Path("runs"),
        help="folder where runs are started and listed (default: runs)",
    )
    parser.add_argument(
        "--attach",
        type=Path,
        metavar="RUN_DIR",
        help="open this run directory in the live view at start",
    )
    parser.add_argument(
        "--images",
        choices=MODES,
        default="auto",
        help="how to draw images: native terminal graphics, Unicode "
        "half-blocks, or auto (native when supported; default)",
    )
    return parser.parse_args(argv)


def build_app(argv: Sequence[str] | None = None) -> KvisionApp:
    """The app for these arguments; KvisionError for a bad --attach path."""
    args = parse_args(argv)
    if args.attach is not None and not is_run_dir(args.attach):
        raise KvisionError(
            f"--attach '{args.attach}' is not a kvision run directory (it "
            "needs meta.json and events.jsonl). Give a folder made by "
            "'kvision run', e.g. runs/20260101-120000-mnist."
        )
    mode = prepare_native(args.images)
    if args.images == "native" and mode != "native":
        print(
            "kvision-tui: this terminal reports neither Sixel nor Kitty graphics; "
            "images are drawn with half-blocks.",
            file=sys.stderr,
        )
    return KvisionApp(args.paths or [Path("recipes")], args.runs_dir, args.attach, mode)


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``kvision-tui`` console script."""
    try:
        app = build_app(argv)
    except KvisionError as exc:
        print(f"kvision-tui: {exc}", file=sys.stderr)
        return exc.exit_code
    app.run()
    return app.return_code or 0


if __name__ == "__main__":
    sys.exit(main())
