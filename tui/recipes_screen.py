"""Recipes: browse recipe files, see their validation, edit --set overrides, launch."""

from __future__ import annotations

from pathlib import Path

from rich.text import Text
from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical, VerticalScroll
from textual.screen import Screen
from textual.widgets import Header, Input, OptionList, Static
from textual.widgets.option_list import Option

from kvision.errors import KvisionError, printable

from .dialogs import footer


def find_recipes(paths: list[Path]) -> list[Path]:
    """The .toml files in the given folders (sorted) and the given files, without repeats."""
    return list(recipe_names(paths))


def recipe_names(paths: list[Path]) -> dict[Path, str]:
    """Each recipe file and the name the list shows: relative to the recipes folder it was
    found in (prefixed with that folder's name when several folders are given), or the file
    name of a recipe given directly — short enough for an 80-column terminal."""
    folders = [p for p in paths if p.is_dir()]
    found: dict[Path, str] = {}
    for p in paths:
        if p.is_dir():
            for f in sorted(p.glob("*.toml")):
                rel = f.relative_to(p).as_posix()
                found.setdefault(f, f"{p.name}/{rel}" if len(folders) > 1 else rel)
        elif p.suffix == ".toml" and p.is_file():
            found.setdefault(p, p.name)
    return found


def validate(path: Path, overrides: list[str]) -> tuple[object | None, list[str], str]:
    """(recipe or None, error lines, resolved TOML or raw text) for the recipe screen."""
    # imported here, in the validation worker, so the first screen does not wait for it
    from kvision.recipe import check_recipe, dump_toml

    recipe, errors = check_recipe(path, overrides=tuple(overrides))
    if recipe is not None and not errors:
        return recipe, [], dump_toml(recipe)
    try:
        raw = path.read_text("utf-8")
    except OSError as exc:
        raw = f"(cannot read {path}: {exc})"
    return None, [str(e) for e in errors] or ["The recipe did not validate."], raw


def recipe_name(recipe: object, path: Path) -> str:
    """The recipe's ``experiment.name`` (it names the run directory), else the file stem."""
    name = getattr(getattr(recipe, "experiment", None), "name", None)
    return name if isinstance(name, str) and name else path.stem


def _body(recipe: object, text: str) -> Text:
    """The recipe's description as prose (its line breaks kept), then the resolved TOML."""
    body = Text()
    description = getattr(getattr(recipe, "experiment", None), "description", None)
    if isinstance(description, str) and description.strip():
        body.append(printable(description.strip(), one_line=False) + "\n\n", style="italic")
    body.append(printable(text, one_line=False))
    return body


class RecipesScreen(Screen):
    """Pick a recipe on the left; its validation, overrides and resolved text on the right."""

    DEFAULT_CSS = """
    RecipesScreen #recipe-list { width: 30%; min-width: 20; height: 1fr; }
    RecipesScreen #recipe-side { width: 1fr; }
    RecipesScreen #validation { height: auto; max-height: 8; padding: 0 1; }
    RecipesScreen #overrides { height: auto; padding: 0 1; color: $text-muted; }
    RecipesScreen #override-list { height: auto; max-height: 4; border: none; padding: 0 1; }
    RecipesScreen #recipe-text { height: 1fr; border: round $panel; }
    """
    BINDINGS = [
        Binding("l", "launch", "Launch"),
        Binding("o", "focus_override", "Override"),
        Binding("x", "clear_overrides", "Clear"),
        Binding("delete,backspace", "remove_override", "Remove", key_display="del"),
        Binding("escape", "focus_list", "List"),
    ]

    def __init__(self, recipe_paths: list[Path]) -> None:
        super().__init__()
        self.names = recipe_names(recipe_paths)
        self.recipes = list(self.names)
        self.overrides: list[str] = []
        self.current: Path | None = None
        self.valid_recipe: object | None = None

    def compose(self) -> ComposeResult:
        """Recipe list | validation, override input, recipe text."""
        yield Header()
        with Horizontal():
            yield OptionList(
                *[Option(self.names[p], id=str(i)) for i, p in enumerate(self.recipes)],
                id="recipe-list",
            )
            with Vertical(id="recipe-side"):
                yield Static(id="validation")
                yield Input(placeholder="override key=value, Enter adds it", id="override")
                yield Static(id="overrides")
                yield OptionList(id="override-list")
                with VerticalScroll(id="recipe-text"):
                    yield Static(id="recipe-body")
        yield footer()

    def on_mount(self) -> None:
        """Title, empty-state message, and the first recipe selected."""
        self.title, self.sub_title = "kvision", "recipes"
        self._show_overrides()
        if not self.recipes:
            self.query_one("#validation", Static).update(
                "No recipes found. Give recipe folders or files on the command line "
                "(kvision-tui recipes/ my.toml)."
            )
            return
        self.query_one("#recipe-list", OptionList).highlighted = 0
        self.query_one("#recipe-list", OptionList).focus()

    @on(OptionList.OptionHighlighted, "#recipe-list")
    def _recipe_highlighted(self, event: OptionList.OptionHighlighted) -> None:
        self.current = self.recipes[int(event.option.id)]
        self.check()

    @on(Input.Submitted, "#override")
    def _override_added(self, event: Input.Submitted) -> None:
        value = event.value.strip()
        if not value:
            return
        if "=" not in value:
            self.notify(
                f"Override '{value}' is not key=value (e.g. training.epochs=2).", severity="error"
            )
            return
        self.overrides.append(value)
        event.input.value = ""
        self._show_overrides()
        self.check()
        # the focus stays in the box: the next override is typed, never taken for a key

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        """Offer Remove only while the list of overrides has the focus."""
        if action == "remove_override":
            return isinstance(self.focused, OptionList) and self.focused.id == "override-list"
        return True

    def on_descendant_focus(self) -> None:
        """The footer follows the focus (Remove is shown on the list of overrides)."""
        self.refresh_bindings()

    def _show_overrides(self) -> None:
        text = (
            f"overrides ({len(self.overrides)}; tab to the list, del removes one):"
            if self.overrides
            else "overrides: none (o to add one)"
        )
        self.query_one("#overrides", Static).update(text)
        listing = self.query_one("#override-list", OptionList)
        highlighted = listing.highlighted
        listing.clear_options()
        listing.add_options([f"--set {o}" for o in self.overrides])
        listing.display = bool(self.overrides)
        if self.overrides:
            listing.highlighted = min(highlighted or 0, len(self.overrides) - 1)

    def check(self) -> None:
        """Validate the current recipe with the current overrides (in a thread)."""
        if self.current is None:
            return
        self.valid_recipe = None
        self.query_one("#validation", Static).update(f"validating {self.current.name} …")
        self._validate(self.current, list(self.overrides))

    @work(thread=True, exclusive=True, group="validate")
    def _validate(self, path: Path, overrides: list[str]) -> None:
        try:
            result = validate(path, overrides)
        except Exception as exc:  # noqa: BLE001 - a validator bug must not crash the TUI
            result = (None, [f"Validation crashed: {exc!r}"], "")
        self.app.call_from_thread(self._show_validation, path, overrides, result)

    def _show_validation(self, path: Path, overrides: list[str], result: tuple) -> None:
        if path != self.current or overrides != self.overrides:
            return  # an older answer arriving late
        recipe, errors, text = result
        self.valid_recipe = recipe
        status = Text()
        if errors:
            status.append(f"✗ {len(errors)} problem(s) in {path.name}:\n", style="bold red")
            for line in errors:
                status.append(f"  • {line}\n")
        else:
            status.append(f"✓ {path.name} is valid", style="bold green")
            status.append("  (l to launch)")
        self.query_one("#validation", Static).update(status)
        self.query_one("#recipe-body", Static).update(_body(recipe, text))

    def action_launch(self) -> None:
        """Start `kvision run` for the current recipe, detached, then watch it live."""
        if self.current is None:
            self.notify("No recipe selected.", severity="warning")
            return
        if self.valid_recipe is None:
            self.notify(
                f"{self.current.name} has not validated; fix it before launching.", severity="error"
            )
            return
        from .launch import launch

        try:
            launched = launch(
                self.current,
                self.app.runs_dir,
                self.overrides,
                recipe_name(self.valid_recipe, self.current),
            )
        except (KvisionError, OSError) as exc:
            self.notify(str(exc), severity="error")
            return
        self.app.launched[launched.run_dir] = launched
        self.notify(f"Launched {launched.run_dir.name}")
        self.app.open_live(launched.run_dir)

    def action_focus_override(self) -> None:
        """Move the focus to the override input."""
        self.query_one("#override", Input).focus()

    def action_focus_list(self) -> None:
        """Back to the recipe list."""
        self.query_one("#recipe-list", OptionList).focus()

    def action_remove_override(self) -> None:
        """Drop the highlighted override and validate again."""
        listing = self.query_one("#override-list", OptionList)
        if listing.highlighted is None or not self.overrides:
            return
        self.overrides.pop(listing.highlighted)
        self._show_overrides()
        self.check()
        if not self.overrides:
            self.action_focus_override()

    def action_clear_overrides(self) -> None:
        """Drop all overrides and validate again."""
        self.overrides.clear()
        self._show_overrides()
        self.check()
