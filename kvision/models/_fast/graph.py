"""A Keras functional model whose stock layers run as one torch call each, no ``Layer.__call__``.

Before it reaches a layer's ``call``, Keras' ``Layer.__call__`` converts argument dtypes,
checks the input spec, resolves ``training`` from the call context, looks for masks, opens
name and autocast scopes and passes through torch's ``Module.__call__``. On the torch backend
that is about 0.1 ms of Python per layer and per call: a ResNet-18 training forward pass on
two CPU cores took 26 ms through Keras and 18 ms calling each layer's ``call`` directly at
batch 2 (PyTorch's own module: 11 ms), 75 / 68 / 66 ms at batch 32.

:func:`direct_graph` keeps Keras' graph walk (``Functional._run_through_graph``) and changes
only how each node is executed. A layer is called directly when none of that bookkeeping can
matter for it: a built-in Keras or kvision layer, built, float32 policy (no autocast, no
quantization), no activity regulariser, no custom ``__call__``, and, per call, float32 torch
tensors without Keras masks as its only arguments (keyword arguments all None). Stock
Conv2D, Dense, BatchNormalization, MaxPooling2D and AdaptiveAveragePooling2D layers then run
their one-call torch form (:data:`kvision.models._fast.layers.FAST_CALLS`), and a
ZeroPadding2D that only feeds one of those convolutions (or a max-pool of a ReLU's output)
is folded into it: the padding becomes the torch call's ``padding``, with no padded copy of
the activations. Everything else (the uint8 input's preprocessing layer, nested models,
custom layers, masks, mixed precision, symbolic tensors, other backends) takes Keras' own
``Layer.__call__``, so results are identical either way.
"""

from __future__ import annotations

import types

import keras

from kvision.models import _fast

_OWN_PACKAGES = ("keras", "kvision")


def _plain(layer) -> bool:
    """Whether ``layer``'s ``call`` needs nothing from ``Layer.__call__`` once it is built."""
    return (
        isinstance(layer, keras.layers.Layer)
        and not isinstance(layer, keras.Model)
        and type(layer).__call__ is keras.layers.Layer.__call__
        and type(layer).__module__.partition(".")[0] in _OWN_PACKAGES
        and layer.built
        and layer.activity_regularizer is None
        and layer.dtype_policy.name == "float32"
    )


def _float32_unmasked(args) -> bool:
    """Every positional argument (or list element, e.g. Add's) a float32 tensor, no mask."""
    import torch

    for arg in args:
        for tensor in arg if isinstance(arg, (list, tuple)) else (arg,):
            if not (
                isinstance(tensor, torch.Tensor)
                and tensor.dtype == torch.float32
                and getattr(tensor, "_keras_mask", None) is None
            ):
                return False
    return True


def _symmetric_pads(layer) -> tuple[int, int] | None:
    """A channels_last ZeroPadding2D's (rows, cols) if it pads both sides alike, else None."""
    (top, bottom), (left, right) = layer.padding
    if layer.data_format != "channels_last" or top != bottom or left != right:
        return None
    return top, left


def _input_of(layer):
    """The layer's one input tensor in its one graph, or None (several nodes or inputs)."""
    try:
        tensor = layer.input
    except (AttributeError, ValueError):
        return None
    return tensor if isinstance(tensor, keras.KerasTensor) else None


def _output_of(layer):
    try:
        return layer.output
    except (AttributeError, ValueError):  # several nodes
        return None


def _non_negative(model: keras.Model, tensor) -> bool:
    """Whether ``tensor`` is the output of a plain ReLU layer (so never below zero)."""
    producers = [lay for lay in model.layers if _output_of(lay) is tensor]
    return any(
        isinstance(lay, keras.layers.ReLU) and lay.negative_slope == 0 and lay.threshold >= 0
        for lay in producers
    )


def _fold_target(model: keras.Model, pad_layer, pads: tuple[int, int]):
    """The one Conv2D or MaxPooling2D that ``pad_layer``'s output feeds, if it can be folded.

    A "valid" conv takes any symmetric zero padding; a "valid" max-pool only up to half its
    pool size (torch's limit) and only of non-negative inputs, as torch pads with -inf.
    """
    output = _output_of(pad_layer)
    consumers = [lay for lay in model.layers if output is not None and _input_of(lay) is output]
    if len(consumers) != 1 or any(t is output for t in model.outputs):
        return None
    (target,) = consumers
    if not _plain(target) or getattr(target, "padding", None) != "valid":
        return None
    if type(target) is keras.layers.Conv2D:
        return target
    if (
        type(target) is keras.layers.MaxPooling2D
        and all(2 * p <= k for p, k in zip(pads, target.pool_size, strict=True))
        and _non_negative(model, _input_of(pad_layer))
    ):
        return target
    return None


class _Plan:
    """How :func:`direct_graph` executes one model: folded paddings and NCHW convolutions.

    ``folded`` maps a ZeroPadding2D to the layer that pads instead; ``pads`` maps that
    layer to (rows, cols) and the ZeroPadding2D (which its Keras fallback calls first).
    """

    def __init__(self, model: keras.Model):
        from kvision.models._fast.layers import store_in_torch_layout, wants_nchw

        self.folded, self.pads, self.nchw = {}, {}, set()
        for layer in model.layers:
            if isinstance(layer, keras.layers.ZeroPadding2D) and _plain(layer):
                pads = _symmetric_pads(layer)
                target = _fold_target(model, layer, pads) if pads else None
                if target is not None:
                    self.folded[layer] = target
                    self.pads[target] = (pads, layer)
            if isinstance(layer, (keras.layers.Conv2D, keras.layers.Dense)):
                nchw = isinstance(layer, keras.layers.Conv2D) and wants_nchw(layer)
                if nchw:
                    self.nchw.add(layer)
                store_in_torch_layout(layer, nchw)


def _fast_form(layer):
    """The torch form of a plain stock layer's call (kvision 0.1's subclasses included)."""
    from kvision.models._fast.layers import FAST_CALLS

    # Looked up at each call (not cached per class): tests swap forms to watch them run.
    return next((FAST_CALLS[cls] for cls in type(layer).__mro__ if cls in FAST_CALLS), None)


def _no_extras(kwargs) -> bool:
    """Nodes record the mask=None that Keras filled in when the graph was built."""
    return all(v is None for v in kwargs.values())


def _node_caller(operation, training, plan: _Plan):
    """How the graph walk calls ``operation``: fast form, its ``call`` directly, or Keras.

    Asked at every forward pass, so a layer quantized or given a regulariser later is seen.
    """
    from keras.src.models import functional

    if operation in plan.folded:  # its consumer pads, in its torch call or its fallback
        return lambda inputs, *args, **kwargs: inputs
    keras_call = functional.operation_fn(operation, training=training)
    pads, pad_layer = plan.pads.get(operation, (None, None))

    def padded(args):
        """The arguments with the folded ZeroPadding2D applied as Keras runs it."""
        return (
            args if pad_layer is None else (functional.operation_fn(pad_layer)(args[0]), *args[1:])
        )

    if not _plain(operation):
        return lambda *args, **kwargs: keras_call(*padded(args), **kwargs)
    # training=None: leave the layer's own default, as Keras does without a call context.
    extra = (
        {"training": training}
        if (operation._call_has_training_arg and training is not None)
        else {}
    )
    fast = _fast_form(operation)
    # kvision 0.1's Conv2D/MaxPooling2D keep PyTorch's padding in the layer itself.
    options = {
        "training": training,
        "nchw": operation in plan.nchw,
        "pads": pads or getattr(operation, "explicit_padding", None),
    }

    def call(*args, **kwargs):
        plain_args = _no_extras(kwargs) and _float32_unmasked(args)
        if fast is not None and plain_args and len(args) == 1:
            outputs = fast(operation, args[0], **options)
            if outputs is not None:
                return outputs
        if not plain_args:
            return keras_call(*padded(args), **kwargs)
        return operation.call(*padded(args), **(kwargs | extra))

    return call


def _as_torch(inputs):
    """``inputs`` with NumPy arrays as torch tensors (their dtype kept), or None if symbolic.

    ``train_on_batch`` and ``predict_on_batch`` hand NumPy arrays straight to the model;
    each layer's ``Layer.__call__`` would convert them, so this does it once up front.
    """
    import numpy as np
    import torch

    flat = keras.tree.flatten(inputs)
    if not all(isinstance(x, (torch.Tensor, np.ndarray)) for x in flat):
        return None
    return keras.tree.map_structure(keras.ops.convert_to_tensor, inputs)


def direct_graph(model: keras.Model) -> keras.Model:
    """``model`` running its plain layers' ``call`` directly, if it is a torch functional model.

    Only this instance changes (its ``call``): class, config, weights, saving and every other
    model keep Keras' behaviour. Calls with masks or extra call arguments, symbolic tensors,
    or with the fast paths switched off take the class's own ``call`` (Keras'), so applying
    this again (each training stage compiles the model) replaces the method, never nests it.
    """
    from keras.src.models.functional import Functional

    if not _fast.torch_active() or not isinstance(model, Functional):
        return model
    plan = _Plan(model)

    def call(self, inputs, training=None, mask=None, **kwargs):
        tensors = _as_torch(inputs) if _fast.torch_active() else None
        if mask is not None or kwargs or tensors is None:
            return type(self).call(self, inputs, training=training, mask=mask, **kwargs)
        outputs = self._run_through_graph(
            self._standardize_inputs(tensors),
            operation_fn=lambda operation: _node_caller(operation, training, plan),
        )
        return outputs[0] if isinstance(outputs, list) and len(outputs) == 1 else outputs

    model.call = types.MethodType(call, model)
    return model
