"""``describe``: which layers matter in a model, read from its layer names and types alone."""

from __future__ import annotations

from dataclasses import dataclass

import keras

# Layers that join stages rather than belong to one.
_GLUE = {"input", "preprocess", "avgpool", "flatten"}


@dataclass(frozen=True)
class ModelRoles:
    """Layer names: the first and last convolution and the output layer of each stage.

    ``first_conv``/``last_conv`` are None for models without convolutions (the MLP).
    """

    first_conv: str | None
    last_conv: str | None
    stages: dict[str, str]


def stage_of(layer_name: str) -> str | None:
    """The stage a layer belongs to: its name up to the first '_' (``v4_pool`` -> ``v4``)."""
    stage = layer_name.split("_", 1)[0]
    return None if stage in _GLUE else stage


def describe(model: keras.Model) -> ModelRoles:
    """Roles of a kvision model, also one loaded from ``.keras`` (derived from layer names).

    Stages map e.g. ``retina``, ``v4``, ``it``, ``block5``, ``layer4``, ``classifier`` to the
    last layer of that stage in graph order, i.e. the layer whose output is the stage's output.
    """
    convs = [layer.name for layer in model.layers if isinstance(layer, keras.layers.Conv2D)]
    stages: dict[str, str] = {}
    for layer in model.layers:
        stage = stage_of(layer.name)
        if stage is not None:
            stages.pop(stage, None)  # re-insert so the order is that of each stage's end
            stages[stage] = layer.name
    return ModelRoles(convs[0] if convs else None, convs[-1] if convs else None, stages)
