"""Finding the layers insight works on: roles from kvision.models.describe, names checked,
and the probe models that read their outputs."""

from __future__ import annotations

from typing import TYPE_CHECKING

from kvision.errors import KvisionError, did_you_mean

if TYPE_CHECKING:
    import keras

    from kvision.models.roles import ModelRoles


#: Stages that report 000 visualises; used by default when the model names them.
DEFAULT_STAGES = ("v1", "v2", "v4")


def probe_model(model: keras.Model, outputs: list) -> keras.Model:
    """A model from ``model``'s inputs to ``outputs`` (tensors of its graph), run the way the
    model itself runs: on torch, kvision's direct graph and quiet predict, the same numbers as
    Keras' walk without its per-layer and per-predict bookkeeping."""
    import keras

    from kvision.models import direct_graph

    return direct_graph(keras.Model(model.inputs, outputs))


def roles(model: keras.Model) -> ModelRoles:
    """The model's ModelRoles (first_conv, last_conv, stages, cam_layer) from kvision.models.describe."""
    from kvision.models import describe

    return describe(model)


def resolve_layer(model: keras.Model, name: str, *, what: str = "layer") -> str:
    """The layer name for ``name``, which may be a layer name or a named stage (v1, layer4...).

    Unknown names raise a KvisionError listing the stages and layers the model has.
    """
    stages = _stages(model)
    if name in stages:
        return stages[name]
    names = [layer.name for layer in model.layers]
    if name in names:
        return name
    candidates = list(stages) + names
    raise KvisionError(
        f"The model has no {what} '{name}'.{did_you_mean(name, candidates)} "
        f"Named stages: {', '.join(stages) or 'none'}. Layers: {', '.join(names)}."
    )


def cam_layer(model: keras.Model, layer: str | None = None) -> str:
    """The layer Grad-CAM reads: ``layer`` if given (checked), else the rectified output of
    the model's last convolutional block (``ModelRoles.cam_layer``)."""
    if layer:
        return spatial_layer(model, layer, purpose="Grad-CAM")
    name = roles(model).cam_layer
    if name is None:
        raise KvisionError(
            f"Model '{model.name}' has no convolution layer, so Grad-CAM has no feature map "
            "to explain. Pass a layer with a spatial (4-D) output explicitly, or use a CNN."
        )
    return name


def first_conv(model: keras.Model) -> str:
    """The first convolution layer's name (its kernel is what the filter grids show)."""
    name = roles(model).first_conv
    if name is None:
        raise KvisionError(
            f"Model '{model.name}' has no convolution layer, so it has no filters to show."
        )
    return name


def spatial_stages(model: keras.Model, wanted: list[str] | tuple[str, ...] = ()) -> dict[str, str]:
    """Display name -> layer name for the activation figures.

    ``wanted`` names stages or layers (checked); empty means report 000's v1, v2, v4 when the
    model has them, else every named stage with a spatial output, else the first and last conv.
    """
    if wanted:
        return {name: spatial_layer(model, name, purpose="activation maps") for name in wanted}
    stages = _stages(model)
    picked = {s: stages[s] for s in DEFAULT_STAGES if s in stages}
    if not picked:
        picked = {s: n for s, n in stages.items() if _is_spatial(model, n)}
    if not picked:
        r = roles(model)
        picked = {n: n for n in dict.fromkeys([r.first_conv, r.last_conv]) if n}
    return picked


def spatial_layer(model: keras.Model, name: str, *, purpose: str) -> str:
    """:func:`resolve_layer`, also requiring a spatial (N, h, w, c) output for ``purpose``."""
    layer_name = resolve_layer(model, name, what="stage or layer")
    if not _is_spatial(model, layer_name):
        spatial = [s for s, n in _stages(model).items() if _is_spatial(model, n)]
        raise KvisionError(
            f"Layer '{layer_name}' ('{name}') outputs shape "
            f"{tuple(model.get_layer(layer_name).output.shape)}, not a spatial map, so it "
            f"cannot be used for {purpose}. Spatial stages: {', '.join(spatial) or 'none'}."
        )
    return layer_name


def has_conv(model: keras.Model) -> bool:
    """Whether the model has a convolution (filters, activations and Grad-CAM need one)."""
    return roles(model).first_conv is not None


def _stages(model: keras.Model) -> dict[str, str]:
    return dict(roles(model).stages)


def _is_spatial(model: keras.Model, layer_name: str) -> bool:
    return len(model.get_layer(layer_name).output.shape) == 4
