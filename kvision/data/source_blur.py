"""Blur at the source's stored resolution, then resize: report 000's order.

A condition with ``blur.at = "source"`` is applied to every image as the source stores it
(28x28 for Fashion-MNIST, each photo's own size in a folder), and the blurred image is then
resized to ``data.image_size`` like the clear one. The result is kept beside the clear images
as a :class:`~kvision.data.dataset.Split` view, so the splits, limits and balancing that pick
clear images pick the same blurred ones.

At the model's input a blur of size s applied at the stored resolution has the size
s x (model side / stored side): :func:`placement` records that effective size per condition
(a range when the stored sizes differ) for the report.
"""

from __future__ import annotations

import threading
import zlib
from dataclasses import dataclass, field

import numpy as np

from kvision.data.images import resize_images
from kvision.recipe.schema_data import ConditionSection

#: The blur parameter whose size in pixels scales with the image, per kind (zoom factors
#: are relative, so a zoom blur has none).
SIZE_PARAMETER = {"gaussian": "sigma", "glass": "sigma", "defocus": "radius", "motion": "radius"}


def source_conditions(
    conditions: dict[str, ConditionSection] | None,
) -> dict[str, ConditionSection]:
    """The conditions whose blur is applied at the stored resolution."""
    return {
        name: c
        for name, c in (conditions or {}).items()
        if c.blur is not None and c.blur.at == "source"
    }


@dataclass
class SourceBlur:
    """Applies the source-resolution conditions and remembers the stored sizes it saw."""

    conditions: dict[str, ConditionSection]
    #: smallest and largest stored (height, width) seen, for the effective-size range
    low: tuple[int, int] | None = None
    high: tuple[int, int] | None = None
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def __bool__(self) -> bool:
        return bool(self.conditions)

    def cache_key(self) -> str:
        """What the conditions are, for caches of decoded images."""
        return repr(sorted((n, c.blur) for n, c in self.conditions.items()))

    def views(
        self,
        images: np.ndarray,
        size: tuple[int, int] | None,
        tag: str,
        channels: int | None = None,
    ) -> dict[str, np.ndarray]:
        """Same-sized images (N, H, W, C) at their stored size -> {condition: blurred, then
        resized to ``size``}. ``tag`` (split or file name) seeds the random blurs."""
        from kvision.data.conditions import apply_condition
        from kvision.data.images import convert_channels

        self.note_stored(images.shape[1:3])
        out = {}
        for name, cond in self.conditions.items():
            blurred = apply_condition(images, cond, seed=zlib.crc32(f"{tag}/{name}".encode()))
            out[name] = resize_images(convert_channels(blurred, channels), size)
        return out

    def note_stored(self, hw: tuple[int, int]) -> None:
        """Widen the stored-size range the report states with one image's (height, width)
        (stream mode notes each file's header size here without decoding it)."""
        hw = (int(hw[0]), int(hw[1]))
        with self._lock:  # folder images are decoded in threads
            self._widen(hw)

    def _widen(self, hw: tuple[int, int]) -> None:
        self.low = hw if self.low is None else (min(self.low[0], hw[0]), min(self.low[1], hw[1]))
        self.high = (
            hw if self.high is None else (max(self.high[0], hw[0]), max(self.high[1], hw[1]))
        )


def placement(
    conditions: dict[str, ConditionSection], model_hw: tuple[int, int], source: SourceBlur | None
) -> dict[str, dict]:
    """Per blurred condition: where it is applied and its size at the model's input.

    ``effective`` is [low, high] of the size parameter at model size: equal bounds for a
    blur at the input, s x model side / stored side (over both axes and every stored size)
    for one at the source.
    """
    from kvision.data.conditions import blur_params

    out = {}
    for name, cond in conditions.items():
        if cond.blur is None:
            continue
        at_source = cond.blur.at == "source" and source is not None and source.low is not None
        stored = (source.low, source.high) if at_source else (model_hw, model_hw)
        entry: dict = {
            "kind": cond.blur.kind,
            "at": cond.blur.at,
            "stored_size": [list(stored[0]), list(stored[1])],
            "model_size": list(model_hw),
        }
        param = SIZE_PARAMETER.get(cond.blur.kind)
        if param is not None:
            value = blur_params(cond.blur, stored[0], 0).get(param)
            scales = [model_hw[i] / stored[j][i] for i in (0, 1) for j in (0, 1)]
            entry.update(
                parameter=param, value=value, effective=[value * min(scales), value * max(scales)]
            )
        out[name] = entry
    return out
