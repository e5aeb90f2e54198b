"""Keras' torch ``train_step`` for kvision's compiled classifiers, without its generic containers.

A training step on Keras' torch backend computes the loss through ``CompileLoss`` and
``Loss.__call__`` (name scopes, dtype conversions of the labels and logits, mask lookups,
``reduce_weighted_values``), updates the loss tracker and each metric through ``Metric``
``update_state`` and ``Variable.assign_add`` (each a few Keras ops), and walks every layer
twice for ``trainable_weights``. Timed inside a real step, between the big kernels (the
caches cold), that bookkeeping took 1.9 ms of a LeNet step and 3.5 ms of a VGG11/8 step
(32 images) on two CPU cores, where the tuned PyTorch loop spends about 0.5 ms around its
passes (``benchmarks/train_gap.py`` measures the gap).

:func:`lean_train_step` replaces the step, on one model instance, for exactly what
``kvision.train.compile.compile_model`` compiles for classification: one
``SparseCategoricalCrossentropy(from_logits=True)`` averaged over the batch, one
``SparseCategoricalAccuracy``, no sample or class weights, no added losses (regularisers), no
distribution, integer labels of shape (batch,). It computes what Keras computes, with the
same torch operations in the same order, so losses, gradients, weights and logs are the same
bits (tests/test_fast_train_step.py trains both ways and compares them exactly):

- the loss: ``F.cross_entropy(..., reduction="none")``, as Keras' torch backend calls it,
  summed and divided by the batch size;
- the loss tracker and the accuracy: their ``total`` and ``count`` variables advanced in
  place by the values Keras would add (float32 sums of whole numbers and of loss x batch);
- the optimizer's ``scale_loss`` and ``apply`` and the logs (``get_metrics_result``) are
  Keras' own.

Anything else (another loss or metric, sample weights, regularisation losses, masks,
non-integer labels, other backends, the speed paths off) takes Keras' own ``train_step``.
"""

from __future__ import annotations

import types

import keras

from kvision.models import _fast

#: What ``compile`` leaves on the model that the step reads (in :data:`_fast.INTERNALS`).
_COMPILED = ("_compile_loss", "_compile_metrics", "_loss_tracker")


def _compiled_as_kvision_does(model: keras.Model) -> tuple | None:
    """(loss tracker, accuracy metric) if ``model`` is compiled as kvision compiles a
    classifier, else None."""
    loss = getattr(model, "loss", None)
    compiled_loss, compiled_metrics, tracker = (getattr(model, n, None) for n in _COMPILED)
    outputs = getattr(model, "outputs", None) or []
    if not (
        type(loss) is keras.losses.SparseCategoricalCrossentropy
        and getattr(model, "optimizer", None) is not None
        # one float32 (batch, classes) output that carries no mask (a mask would weight the
        # loss; Keras casts other dtypes, mixed precision's float16, before the loss)
        and len(outputs) == 1
        and len(outputs[0].shape) == 2
        and outputs[0].dtype == "float32"
        and getattr(outputs[0], "_keras_mask", None) is None
        and compiled_loss is not None
        and compiled_loss.built
        and compiled_metrics is not None
        and compiled_metrics.built
        and type(tracker) is keras.metrics.Mean
    ):
        return None
    config = loss.get_config()
    plain_loss = (
        config.get("from_logits") is True
        and config.get("ignore_class") is None
        and config.get("reduction") == "sum_over_batch_size"
        and config.get("axis", -1) == -1
        and not getattr(compiled_loss, "_user_loss_weights", None)
    )
    metrics = [m for m in compiled_metrics.metrics if m is not None]
    if not plain_loss or len(metrics) != 1:
        return None
    (accuracy,) = metrics
    if type(accuracy) is not keras.metrics.SparseCategoricalAccuracy:
        return None
    if any(m.dtype != "float32" for m in (tracker, accuracy)):
        return None
    return tracker, accuracy


def _batch_ok(model: keras.Model, x, y, sample_weight) -> bool:
    """The per-step conditions: one torch input batch, integer labels (batch,), no weights,
    no losses added by layers or regularisers, no distribution."""
    import torch

    return (
        sample_weight is None
        and isinstance(x, torch.Tensor)
        and isinstance(y, torch.Tensor)
        and y.ndim == 1
        and not y.is_floating_point()
        and not y.is_complex()
        and y.dtype != torch.bool
        and 0 < len(y) == len(x)
        and keras.distribution.distribution() is None
        and not model.losses
    )


def _step(model: keras.Model, x, y, metrics: tuple, variables: list) -> dict:
    """One training step, as Keras' torch ``train_step`` computes it (see the module), for
    the model's non-empty ``trainable_weights``."""
    import torch
    import torch.nn.functional as F

    tracker, accuracy = metrics
    logits = model(x, training=True)
    model.zero_grad()
    batch = torch.tensor(float(len(y)), dtype=torch.float32)
    # Keras' torch backend: cross_entropy per sample, then sum / batch (divide_no_nan).
    loss = F.cross_entropy(logits, y.long(), reduction="none").sum() / batch
    with torch.no_grad():
        tracker.total.value.add_(loss * batch)
        tracker.count.value.add_(batch)
    model.optimizer.scale_loss(loss).backward()
    with torch.no_grad():
        model.optimizer.apply([v.value.grad for v in variables], variables)
        matches = torch.eq(y.float(), logits.argmax(-1).float()).float()
        accuracy.total.value.add_(matches.sum())
        accuracy.count.value.add_(batch)
    return model.get_metrics_result()


def lean_train_step(model: keras.Model) -> keras.Model:
    """``model`` training through :func:`_step` where it applies (see the module), on torch.

    Only this instance changes (its ``train_step``); applying it again (each stage compiles
    the model) replaces the method, never nests it.
    """
    if not _fast.torch_active():
        return model
    from keras.utils import unpack_x_y_sample_weight

    keras_step = type(model).train_step
    checked: list = [None, None]  # (what the check saw, its answer), so it runs once a compile

    def compiled_as_kvision_does(self) -> tuple | None:
        seen = tuple(getattr(self, n, None) for n in ("loss", *_COMPILED, "optimizer"))
        if checked[0] is None or any(a is not b for a, b in zip(seen, checked[0], strict=True)):
            checked[:] = [seen, _compiled_as_kvision_does(self)]
        return checked[1]

    def train_step(self, data):
        metrics = compiled_as_kvision_does(self) if _fast.torch_active() else None
        x, y, sample_weight = unpack_x_y_sample_weight(data)
        variables = self.trainable_weights if metrics is not None else []
        if not variables or not _batch_ok(self, x, y, sample_weight):
            return keras_step(self, data)  # Keras' own, its warnings and errors included
        return _step(self, x, y, metrics, variables)

    model.train_step = types.MethodType(train_step, model)
    return model


__all__ = ["lean_train_step"]
