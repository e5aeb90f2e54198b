"""Transfer learning: a new head for another number of classes, and freezing by name or stage.

Keras runs a frozen BatchNormalization layer in inference mode (its moving mean and variance
are used and not updated), unlike PyTorch, where ``requires_grad=False`` still updates the
running statistics in ``train()`` mode. Freezing a stage therefore freezes its BN statistics.
"""

from __future__ import annotations

import fnmatch
from collections.abc import Iterable

import keras

from kvision.errors import KvisionError
from kvision.models.roles import stage_of


def replace_head(model: keras.Model, num_classes: int) -> keras.Model:
    """A new model sharing every layer but the last Dense, which gets ``num_classes`` outputs.

    The shared layers keep their (e.g. pretrained) weights; the new head, named like the old
    one (``classifier``), starts from Keras' default init.
    """
    head = model.layers[-1]
    if not isinstance(head, keras.layers.Dense):
        raise KvisionError(
            f"Model '{model.name}' does not end in a Dense layer (its last layer is "
            f"'{head.name}'), so it has no head to replace."
        )
    outputs = keras.layers.Dense(num_classes, name=head.name)(head.input)
    from kvision.models._fast import direct_graph

    # As create_model's: run by kvision's speed paths on the torch backend.
    return direct_graph(keras.Model(model.inputs, outputs, name=model.name))


def apply_trainable(
    model: keras.Model, freeze: Iterable[str] = (), unfreeze: Iterable[str] = ()
) -> list[str]:
    """Freeze layers matching ``freeze``, then unfreeze those matching ``unfreeze``.

    Entries are stage names (``layer4``, ``v1``, ``classifier``) or fnmatch patterns on layer
    names (``block5_*``, ``*``). Report 001's frozen backbone is
    ``freeze=["*"], unfreeze=["layer4", "classifier"]``. Returns the names of the frozen
    layers that hold weights. Compile the model again after calling this.
    """
    for entries, trainable, key in ((freeze, False, "freeze"), (unfreeze, True, "unfreeze")):
        for entry in entries:
            for layer in _matching(model, entry, key):
                layer.trainable = trainable
    return [layer.name for layer in model.layers if layer.weights and not layer.trainable]


def _matching(model: keras.Model, entry: str, key: str) -> list[keras.layers.Layer]:
    layers = [
        layer
        for layer in model.layers
        if stage_of(layer.name) == entry or fnmatch.fnmatchcase(layer.name, entry)
    ]
    if not layers:
        stages = sorted({s for s in map(stage_of, (la.name for la in model.layers)) if s})
        raise KvisionError(
            f"The {key} entry '{entry}' matches no layer of model '{model.name}'. Entries are "
            f"stage names ({', '.join(stages)}) or fnmatch patterns on layer names such as "
            f"'{model.layers[-1].name}' or '{stages[0]}_*'."
        )
    return layers
