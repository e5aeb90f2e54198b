"""``describe``: which layers matter in a model, read from its layer names and types alone."""

from __future__ import annotations

from dataclasses import dataclass

import keras

# Layers that join stages rather than belong to one.
_GLUE = {"input", "preprocess", "avgpool", "flatten"}


@dataclass(frozen=True)
class ModelRoles:
    """Layer names: the first and last convolution, Grad-CAM's default layer and the output
    layer of each stage.

    ``cam_layer`` is the rectified output of the last convolutional block (ResNet: the last
    block's ReLU after the skip add; VGG, LeNet, AlexNet: the ReLU after the last conv), the
    layer Selvaraju et al. explain: it includes every path into the head and is non-negative,
    as Grad-CAM++'s weights assume. The three are None for models without convolutions.
    """

    first_conv: str | None
    last_conv: str | None
    stages: dict[str, str]
    cam_layer: str | None = None


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
    last = convs[-1] if convs else None
    return ModelRoles(convs[0] if convs else None, last, stages, _cam_layer(model, last))


def _cam_layer(model: keras.Model, last_conv: str | None) -> str | None:
    """The last rectifying layer from the last conv on while the maps are still spatial.

    Found by graph position and stock Keras layer types, not by family: the families name
    their layers differently (``layer4_block2_out``, ``block5_relu3``, ``v4_relu``), and a
    BatchNorm or pooling after the ReLU (the AlexNet variant's ``v4_bn``) is skipped, since
    BatchNorm's output can be negative again. Falls back to the last conv when nothing
    after it rectifies.
    """
    if last_conv is None:
        return None
    layers = model.layers
    start = [layer.name for layer in layers].index(last_conv)
    picked = last_conv if _rectifies(layers[start]) else None
    for layer in layers[start + 1 :]:
        if len(layer.output.shape) != 4:  # flattened or globally pooled: the head begins
            break
        if _rectifies(layer):
            picked = layer.name
    return picked or last_conv


def _rectifies(layer: keras.layers.Layer) -> bool:
    """A plain ReLU: a ReLU layer without a negative slope, or a layer whose activation is relu."""
    if isinstance(layer, keras.layers.ReLU):
        return not getattr(layer, "negative_slope", 0.0)
    activation = getattr(layer, "activation", None)
    return activation is keras.activations.relu
