"""Small modal screens: a yes/no confirmation and the help screen."""

from __future__ import annotations

from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical, VerticalScroll
from textual.keys import format_key
from textual.screen import ModalScreen
from textual.widgets import Button, Footer, Markdown, Static


def footer() -> Footer:
    """The footer every screen shows: compact, so an 80-column terminal fits all keys of a
    screen (the command palette, ctrl+p, is named in the help screen instead)."""
    return Footer(compact=True, show_command_palette=False)


class ConfirmScreen(ModalScreen[bool]):
    """Ask a yes/no question; dismisses with True only on an explicit yes."""

    DEFAULT_CSS = """
    ConfirmScreen { align: center middle; }
    ConfirmScreen > Vertical { width: 60; max-width: 90%; height: auto; border: thick $warning;
                               padding: 1 2; background: $surface; }
    ConfirmScreen #question { width: 100%; height: auto; }
    ConfirmScreen Horizontal { height: auto; margin-top: 1; }
    ConfirmScreen Button { margin-right: 2; }
    """
    BINDINGS = [
        Binding("y", "answer(True)", "Yes"),
        Binding("n,escape", "answer(False)", "No"),
    ]

    def __init__(self, question: str) -> None:
        super().__init__()
        self.question = question

    def compose(self) -> ComposeResult:
        """Question and two buttons; 'No' has the focus so Enter is the safe answer."""
        with Vertical():
            # a Static wraps to the dialog's width; a Label is one line, cut at the border
            yield Static(self.question, id="question")
            with Horizontal():
                yield Button("Yes (y)", variant="error", id="yes")
                yield Button("No (n)", variant="primary", id="no")

    def on_mount(self) -> None:
        """Focus the safe answer."""
        self.query_one("#no", Button).focus()

    def on_button_pressed(self, event: Button.Pressed) -> None:
        """Answer with the pressed button."""
        self.dismiss(event.button.id == "yes")

    def action_answer(self, yes: bool) -> None:
        """Answer from the keyboard."""
        self.dismiss(yes)


HELP = """\
# kvision-tui

Launch kvision runs, watch them live and browse their images. Runs are started as
detached processes: quitting the TUI or losing the SSH connection does not stop them.
Open them again later from **History**.

## Everywhere
{app}

## Screens
{screens}

The command palette (**ctrl+p**) finds every screen, run and action by name.
Mouse clicks work too but are never needed.
"""


def bindings_markdown(bindings: list) -> str:
    """A markdown list of every key binding (also those the footer leaves out)."""
    lines = []
    for b in bindings:
        if isinstance(b, Binding) and b.description:
            keys = " / ".join(format_key(k) for k in b.key.split(","))
            lines.append(f"- **{keys}**: {b.description}")
    return "\n".join(lines)


class HelpScreen(ModalScreen[None]):
    """Key bindings of every screen, built from their BINDINGS so it cannot drift."""

    DEFAULT_CSS = """
    HelpScreen { align: center middle; }
    HelpScreen > VerticalScroll { width: 90%; height: 90%; border: thick $primary;
                                  background: $surface; padding: 0 1; }
    """
    BINDINGS = [Binding("escape,q,question_mark", "app.pop_screen", "Close help")]

    def __init__(self, app_bindings: list, screens: dict[str, list]) -> None:
        super().__init__()
        self.text = HELP.format(
            app=bindings_markdown(app_bindings),
            screens="\n\n".join(
                f"### {name}\n{bindings_markdown(b)}" for name, b in screens.items()
            ),
        )

    def compose(self) -> ComposeResult:
        """The help text, scrollable."""
        with VerticalScroll():
            yield Markdown(self.text)
