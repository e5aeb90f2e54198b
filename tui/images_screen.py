"""Images: a run's images/ folder by kind, one picture at a time, keyboard driven."""

from __future__ import annotations

from pathlib import Path

from textual import on
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical
from textual.screen import Screen
from textual.widgets import Header, OptionList, Static, Tab, Tabs
from textual.widgets.option_list import Option

from kvision.errors import printable

from .dialogs import footer
from .images import ImageView

#: The kinds kvision writes, in the order a reader wants them; other folders follow.
KINDS = ("filters", "activations", "cam", "curves", "confusion", "robustness", "retrieval")
SUFFIXES = {".png", ".jpg", ".jpeg", ".gif", ".bmp", ".webp"}


def images_by_kind(run_dir: Path) -> dict[str, list[Path]]:
    """Image files under ``run_dir/images`` grouped by their sub-folder (kind), sorted."""
    root = run_dir / "images"
    if not root.is_dir():
        return {}
    found: dict[str, list[Path]] = {}
    for folder in sorted(p for p in root.iterdir() if p.is_dir()):
        files = sorted(
            f
            for f in folder.rglob("*")
            if f.suffix.lower() in SUFFIXES and not f.name.startswith(".")
        )
        if files:
            found[folder.name] = files
    order = {k: i for i, k in enumerate(KINDS)}
    return dict(sorted(found.items(), key=lambda kv: (order.get(kv[0], len(KINDS)), kv[0])))


class ImagesScreen(Screen):
    """Kind tabs on top, files on the left, the picture on the right."""

    DEFAULT_CSS = """
    ImagesScreen #files { width: 28%; min-width: 18; height: 1fr; }
    ImagesScreen #picture { width: 1fr; height: 1fr; }
    ImagesScreen #caption { height: 1; padding: 0 1; }
    ImagesScreen .error { color: $error; padding: 1; }
    """
    BINDINGS = [
        # the footer shows the forward keys; the help screen lists all four ("[" and "p" back):
        # Textual's compact binding groups glue a group's label to the next key ("Kindn")
        Binding("right_square_bracket,tab", "kind(1)", "Next kind", key_display="]"),
        Binding(
            "left_square_bracket,shift+tab", "kind(-1)", "Prev kind", key_display="[", show=False
        ),
        Binding("n", "step(1)", "Next image"),
        Binding("p", "step(-1)", "Prev image", show=False),
        Binding("g", "reload", "Reload"),
        Binding("escape", "app.pop_screen", "Back"),
    ]

    def __init__(self, run_dir: Path, mode: str = "halfblock") -> None:
        super().__init__()
        self.run_dir = Path(run_dir)
        self.mode = mode
        self.kinds: dict[str, list[Path]] = {}
        self.kind: str | None = None

    def compose(self) -> ComposeResult:
        """Tabs, file list, image view, caption."""
        yield Header()
        yield Tabs(id="kinds")
        with Horizontal():
            yield OptionList(id="files")
            with Vertical(id="picture"):
                yield ImageView(self.mode, id="view")
                yield Static(id="caption")
        yield footer()

    async def on_mount(self) -> None:
        """Scan the images folder."""
        self.title, self.sub_title = "kvision", f"images · {self.run_dir.name}"
        await self.action_reload()

    async def action_reload(self) -> None:
        """Scan images/ again (a live run keeps adding pictures)."""
        self.kinds = images_by_kind(self.run_dir)
        tabs = self.query_one("#kinds", Tabs)
        await tabs.clear()
        if not self.kinds:
            self.query_one("#caption", Static).update(
                f"No images in {self.run_dir.name}/images yet. kvision writes them after "
                "training (filters, activations, CAM, curves, confusion, robustness)."
            )
            self.query_one(ImageView).show(None)
            return
        for kind, files in self.kinds.items():
            tabs.add_tab(Tab(f"{kind} ({len(files)})", id=f"kind-{kind}"))
        self.query_one("#files", OptionList).focus()

    @on(Tabs.TabActivated, "#kinds")
    def _kind_activated(self, event: Tabs.TabActivated) -> None:
        if event.tab is None or event.tab.id is None:
            return
        self.kind = event.tab.id.removeprefix("kind-")
        files = self.query_one("#files", OptionList)
        files.clear_options()
        files.add_options(
            [Option(f.name, id=str(i)) for i, f in enumerate(self.kinds.get(self.kind, []))]
        )
        files.highlighted = 0 if files.option_count else None

    @on(OptionList.OptionHighlighted, "#files")
    def _file_highlighted(self, event: OptionList.OptionHighlighted) -> None:
        files = self.kinds.get(self.kind or "", [])
        index = int(event.option.id)
        path = files[index]
        self.query_one(ImageView).show(path)
        rel = path.relative_to(self.run_dir)
        caption = f"{printable(rel)}  ({index + 1}/{len(files)})"
        self.query_one("#caption", Static).update(caption)

    def action_kind(self, delta: int) -> None:
        """Switch to the next or previous kind."""
        tabs = self.query_one("#kinds", Tabs)
        if not self.kinds:
            return
        if delta > 0:
            tabs.action_next_tab()
        else:
            tabs.action_previous_tab()

    def action_step(self, delta: int) -> None:
        """Show the next or previous image of the current kind."""
        files = self.query_one("#files", OptionList)
        if files.option_count:
            current = files.highlighted or 0
            files.highlighted = (current + delta) % files.option_count
