"""Turning a stage's training settings into a compiled Keras model."""

from __future__ import annotations

from typing import Any

import keras

from kvision.recipe.schema_training import REGRESSION_LOSSES as LOSS_NAMES
from kvision.recipe.schema_training import OptimizerSpec, TrainingSection


def make_optimizer(spec: OptimizerSpec) -> keras.optimizers.Optimizer:
    """A Keras optimizer from the recipe's optimizer table."""
    common: dict[str, Any] = {
        "learning_rate": spec.learning_rate,
        "clipnorm": spec.clipnorm,
        "clipvalue": spec.clipvalue,
    }
    if spec.weight_decay:
        common["weight_decay"] = spec.weight_decay
    if spec.name == "adam":
        return keras.optimizers.Adam(
            beta_1=spec.beta_1, beta_2=spec.beta_2, epsilon=spec.epsilon, **common
        )
    if spec.name == "adamw":
        common.setdefault("weight_decay", 0.0)
        return keras.optimizers.AdamW(
            beta_1=spec.beta_1, beta_2=spec.beta_2, epsilon=spec.epsilon, **common
        )
    if spec.name == "sgd":
        return keras.optimizers.SGD(momentum=spec.momentum, nesterov=spec.nesterov, **common)
    return keras.optimizers.RMSprop(momentum=spec.momentum, epsilon=spec.epsilon, **common)


#: Regression losses by recipe name (``training.loss``, the schema's names); mse is report 002's.
REGRESSION_LOSSES = dict(
    zip(
        LOSS_NAMES,
        (keras.losses.MeanSquaredError, keras.losses.MeanAbsoluteError, keras.losses.Huber),
        strict=True,
    )
)


def compile_model(
    model: keras.Model, training: TrainingSection, *, regression: bool = False
) -> None:
    """Compile with the stage's optimizer (kvision's fast graph, fused Adam and lean train
    step on torch).

    Classification: logits out, integer labels in, accuracy. Regression: one value out,
    ``training.loss`` (default mse) and the mean absolute error as the epoch metric.
    """
    if regression:
        loss = REGRESSION_LOSSES[training.loss or "mse"]()
        metrics = [keras.metrics.MeanAbsoluteError(name="mae")]
    else:
        loss = keras.losses.SparseCategoricalCrossentropy(from_logits=True)
        metrics = [keras.metrics.SparseCategoricalAccuracy(name="accuracy")]
    from kvision.models import direct_graph, fuse_adam, lean_train_step

    direct_graph(model)
    model.compile(
        optimizer=fuse_adam(make_optimizer(training.optimizer)), loss=loss, metrics=metrics
    )
    build_loss_and_metrics(model)
    lean_train_step(model)  # a classifier's step without Keras' generic containers


def build_loss_and_metrics(model: keras.Model) -> None:
    """Build the compiled loss and metrics from the model's symbolic output, as ``fit`` would.

    ``fit`` builds them by running the model, the loss and the metrics once on torch's
    ``meta`` device. torch's meta kernels are Python functions that import ``torch._dynamo``
    (and SymPy) at their first call: 1.1 s and 72 MiB in every training process, for
    containers whose build reads only the outputs' structure. Built here, ``fit`` skips that
    pass. The containers and their private names are Keras'; where a Keras lacks them or the
    build fails, ``fit`` builds them itself, as before.
    """
    outputs = getattr(model, "outputs", None)
    parts = [getattr(model, name, None) for name in ("_compile_loss", "_compile_metrics")]
    if not outputs or len(outputs) != 1 or any(p is None or p.built for p in parts):
        return
    (y_pred,) = outputs
    y_true = keras.KerasTensor(y_pred.shape[:-1] if y_pred.shape[-1] != 1 else y_pred.shape)
    try:
        for part in parts:
            part.build(y_true, y_pred)
    except Exception:  # noqa: BLE001  fit's own build runs instead; it reports real errors
        for part in parts:
            part.built = False


def with_overrides(model: keras.Model, training: TrainingSection) -> keras.Model:
    """The model with L1/L2 kernel penalties and a dropout rate applied, weights kept.

    Regularisers and dropout rates are constructor arguments in Keras, so the graph is
    cloned with changed layer configs (``keras.models.clone_model``) and the weights copied.
    """
    l1, l2, rate = training.l1, training.l2, training.dropout
    if not (l1 or l2 or rate is not None):
        return model

    def clone_layer(layer: keras.layers.Layer) -> keras.layers.Layer:
        config = layer.get_config()
        if (l1 or l2) and "kernel_regularizer" in config:
            config["kernel_regularizer"] = keras.regularizers.L1L2(l1=l1, l2=l2)
        if rate is not None and isinstance(layer, keras.layers.Dropout):
            config["rate"] = rate
        return layer.__class__.from_config(config)

    clone = keras.models.clone_model(model, clone_function=clone_layer)
    clone.set_weights(model.get_weights())
    for src, dst in zip(model.layers, clone.layers, strict=True):
        dst.trainable = src.trainable
    return clone
