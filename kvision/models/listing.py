"""Text for ``kvision models`` (every architecture) and ``kvision models NAME`` (layer table).

The list reads the catalogue only (no Keras, no model built: it answers at once); the layer
table builds the one model it describes.
"""

from __future__ import annotations

import math
from typing import Any

from kvision.models.catalog import MODELS, get_entry


def _shape(shape: tuple[int, ...]) -> str:
    return "x".join(str(s) for s in shape)


def format_model_list() -> str:
    """One line per architecture from the catalogue: name, family, usual input, classes,
    description; then where to find a model's layers and parameter count."""
    rows = [("NAME", "FAMILY", "INPUT", "CLASSES", "DESCRIPTION")]
    for name in sorted(MODELS):
        entry = MODELS[name]
        rows.append(
            (
                name,
                entry.family,
                _shape(entry.default_input),
                str(entry.default_classes),
                entry.description,
            )
        )
    widths = [max(len(row[i]) for row in rows) for i in range(4)]
    lines = [
        "  ".join(cell.ljust(w) for cell, w in zip(row[:4], widths, strict=True)) + "  " + row[4]
        for row in rows
    ]
    lines += [
        "",
        "kvision models NAME prints a model's layer table and parameter count "
        "(it builds that one model).",
    ]
    return "\n".join(line.rstrip() for line in lines)


def format_layer_table(
    name: str,
    *,
    input_shape: tuple[int, ...] | None = None,
    num_classes: int | None = None,
    **options: Any,
) -> str:
    """Layer table of ``name``: layer, stage, type, output shape, parameters, trainable.

    ``input_shape``/``num_classes`` default to the architecture's usual input.
    """
    from kvision.models.counting import build_shapes_only, trainable_count
    from kvision.models.roles import describe, stage_of

    entry = get_entry(name)
    shape = tuple(input_shape or entry.default_input)
    classes = num_classes or entry.default_classes
    model = build_shapes_only(name, input_shape=shape, num_classes=classes, **options)
    rows = [("LAYER", "STAGE", "TYPE", "OUTPUT", "PARAMS")]
    for layer in model.layers:
        params = sum(math.prod(w.shape) for w in layer.weights if w.trainable)
        output = _shape(tuple(layer.output.shape[1:]))
        rows.append(
            (layer.name, stage_of(layer.name) or "-", type(layer).__name__, output, f"{params:,}")
        )
    widths = [max(len(row[i]) for row in rows) for i in range(5)]
    lines = [
        "  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)).rstrip()
        for row in rows
    ]
    roles = describe(model)
    lines += [
        "",
        f"{name}: {entry.description}",
        f"input {_shape(shape)}, {classes} outputs, "
        f"{trainable_count(model):,} trainable parameters",
        f"first conv: {roles.first_conv}, last conv: {roles.last_conv}, "
        f"Grad-CAM layer: {roles.cam_layer}",
        "stages: " + ", ".join(f"{s} -> {layer}" for s, layer in roles.stages.items()),
    ]
    return "\n".join(lines)
