"""Images in the terminal: Unicode half-blocks everywhere, native graphics where supported.

Half-blocks (``▀`` with the upper pixel as foreground and the lower one as background) work
in any colour terminal, over SSH and in tests. Native graphics (Sixel, Kitty's graphics
protocol) come from the ``textual-image`` package, which must ask the terminal what it
supports *before* Textual takes over the screen: :func:`prepare_native` does that from
``main()``. Decoding uses Pillow; a missing or corrupt file becomes a message, not a crash.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING

from rich.console import Console, ConsoleOptions, RenderResult
from rich.segment import Segment
from rich.style import Style
from rich.text import Text
from textual.containers import Container
from textual.widgets import Static

if TYPE_CHECKING:  # Pillow is imported only when an image is shown
    from PIL.Image import Image as PILImage

MODES = ("auto", "halfblock", "native")
_RAMP = " .:-=+*#%@"  # luminance ramp for terminals without colour

#: The native image widget class, set by prepare_native() when the terminal supports one.
_native_widget: type | None = None


class ImageLoadError(Exception):
    """The file could not be read as an image (message says why)."""


def load_image(path: str | os.PathLike) -> PILImage:
    """Decode ``path`` with Pillow into RGB; ImageLoadError for missing or corrupt files."""
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(path) as img:
            img.load()
            return img.convert("RGB")
    except FileNotFoundError:
        raise ImageLoadError(f"Image '{path}' is missing (it is listed but not on disk).") from None
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as exc:
        raise ImageLoadError(
            f"Image '{path}' cannot be decoded ({exc}); it may be corrupt or still being written."
        ) from None


class HalfBlock:
    """A rich renderable drawing a PIL image with half-block cells, fitted to the space."""

    def __init__(self, image: PILImage, max_height: int | None = None) -> None:
        self.image = image
        self.max_height = max_height

    def __rich_console__(self, console: Console, options: ConsoleOptions) -> RenderResult:
        """Scale to the available width/height (one cell = 1x2 pixels), then emit cells."""
        rows = self.max_height or options.height or options.size.height
        img = _fit(self.image, options.max_width, rows * 2)
        w, h = img.size
        px = img.load()
        plain = console.color_system is None
        for y in range(0, h, 2):
            for x in range(w):
                top = px[x, y]
                bottom = px[x, y + 1] if y + 1 < h else top
                if plain:
                    yield Segment(_RAMP[_luma(top, bottom) * (len(_RAMP) - 1) // 255])
                else:
                    yield Segment("▀", Style(color=_hex(top), bgcolor=_hex(bottom)))
            yield Segment.line()


def _fit(img, max_w: int, max_h: int):
    """Resize keeping the aspect ratio so that it fits ``max_w`` x ``max_h`` pixels."""
    from PIL import Image

    w, h = img.size
    scale = min(max_w / w, max_h / h)
    size = (max(1, int(w * scale)), max(1, int(h * scale)))
    # nearest keeps small images (filters, 5x5 kernels) crisp when enlarged
    resample = Image.Resampling.NEAREST if scale >= 1 else Image.Resampling.LANCZOS
    return img.resize(size, resample)


def _hex(rgb: tuple[int, int, int]) -> str:
    return "#{:02x}{:02x}{:02x}".format(*rgb)


def _luma(a: tuple[int, int, int], b: tuple[int, int, int]) -> int:
    return int(sum(0.299 * p[0] + 0.587 * p[1] + 0.114 * p[2] for p in (a, b)) / 2)


def prepare_native(mode: str) -> str:
    """Pick the image mode before the app starts; returns the mode in force.

    ``native`` and ``auto`` import textual-image, which queries the terminal for Sixel or
    Kitty graphics support. ``auto`` falls back to half-blocks when neither is there;
    ``native`` falls back too, but says so in the returned mode.
    """
    global _native_widget
    if mode == "halfblock":
        return mode
    try:
        from textual_image import renderable
        from textual_image.widget import Image as NativeImage
    except Exception:  # noqa: BLE001 - not installed, or a terminal that answers nonsense
        # (e.g. a pty reporting 0 columns): images still work, as half-blocks
        return "halfblock"
    if renderable.Image in (renderable.SixelImage, renderable.TGPImage):
        _native_widget = NativeImage
        return "native"
    return "halfblock"


class ImageView(Container):
    """Shows one image file, or a message saying why it cannot."""

    DEFAULT_CSS = """
    ImageView { height: 1fr; }
    ImageView > Static { width: 1fr; height: 1fr; }
    ImageView > .native { width: auto; height: 1fr; }
    """

    def __init__(self, mode: str = "halfblock", **kwargs) -> None:
        super().__init__(**kwargs)
        self.mode = mode

    def compose(self):
        """Start with an empty message line."""
        yield Static("", id="image-body")

    def show(self, path: Path | None) -> None:
        """Replace the content with ``path`` (None clears it)."""
        self.remove_children()
        if path is None:
            self.mount(Static(Text("No image of this kind in this run.", style="italic")))
            return
        try:
            image = load_image(path)
        except ImageLoadError as exc:
            self.mount(Static(Text(str(exc), style="bold"), classes="error"))
            return
        if self.mode == "native" and _native_widget is not None:
            self.mount(_native_widget(image, classes="native"))
        else:
            self.mount(_HalfBlockStatic(image))


class _HalfBlockStatic(Static):
    """A Static whose renderable is re-fitted to its size on every render."""

    def __init__(self, image) -> None:
        super().__init__()
        self.image = image

    def render(self) -> HalfBlock:
        """Fit the picture into the widget's current content area."""
        return HalfBlock(self.image, max_height=max(1, self.content_size.height))
