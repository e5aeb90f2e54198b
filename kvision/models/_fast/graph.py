"""A Keras functional model whose plain layers are called without ``Layer.__call__``.

Before it reaches a layer's ``call``, Keras' ``Layer.__call__`` converts argument dtypes,
checks the input spec, resolves ``training`` from the call context, looks for masks, opens
name and autocast scopes and passes through torch's ``Module.__call__``. On the torch backend
that is about 0.1 ms of Python per layer and per call: a ResNet-18 training forward pass on
two CPU cores took 26 ms through Keras and 18 ms calling each layer's ``call`` directly at
batch 2 (PyTorch's own module: 11 ms), 75 / 68 / 66 ms at batch 32.

:func:`direct_graph` keeps Keras' graph walk (``Functional._run_through_graph``) and changes
only how each node is called. A layer is called directly when none of that bookkeeping can
matter for it: a built-in Keras or kvision layer, built, float32 policy (no autocast, no
quantization), no activity regulariser, no custom ``__call__``, and, per call, float32 torch
tensors without Keras masks as its only arguments (keyword arguments all None). Everything
else (the uint8 input's preprocessing layer, nested models, custom layers, masks, mixed
precision, symbolic tensors, other backends) takes Keras' own ``Layer.__call__``, so results
are identical either way.
"""

from __future__ import annotations

import types

import keras

from kvision.models import _fast

_OWN_PACKAGES = ("keras", "kvision")


def _plain(layer) -> bool:
    """Whether ``layer``'s ``call`` needs nothing from ``Layer.__call__`` once it is built."""
    return (isinstance(layer, keras.layers.Layer) and not isinstance(layer, keras.Model)
            and type(layer).__call__ is keras.layers.Layer.__call__
            and type(layer).__module__.partition(".")[0] in _OWN_PACKAGES
            and layer.built and layer.activity_regularizer is None
            and layer.dtype_policy.name == "float32")


def _float32_unmasked(args) -> bool:
    """Every positional argument (or list element, e.g. Add's) a float32 tensor, no mask."""
    import torch

    for arg in args:
        for tensor in arg if isinstance(arg, (list, tuple)) else (arg,):
            if not (isinstance(tensor, torch.Tensor) and tensor.dtype == torch.float32
                    and getattr(tensor, "_keras_mask", None) is None):
                return False
    return True


def _node_caller(operation, training):
    """How the graph walk calls ``operation``: its ``call`` directly when plain, else Keras.

    Asked at every forward pass, so a layer quantized or given a regulariser later is seen.
    """
    from keras.src.models import functional

    if not _plain(operation):
        return functional.operation_fn(operation, training=training)
    # training=None: leave the layer's own default, as Keras does without a call context.
    passes_training = operation._call_has_training_arg and training is not None
    extra = {"training": training} if passes_training else {}

    def call(*args, **kwargs):
        # Nodes record the mask=None that Keras filled in when the graph was built.
        if any(v is not None for v in kwargs.values()) or not _float32_unmasked(args):
            return functional.operation_fn(operation, training=training)(*args, **kwargs)
        return operation.call(*args, **(kwargs | extra))

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

    if keras.backend.backend() != "torch" or not isinstance(model, Functional):
        return model

    def call(self, inputs, training=None, mask=None, **kwargs):
        tensors = _as_torch(inputs) if _fast.torch_active() else None
        if mask is not None or kwargs or tensors is None:
            return type(self).call(self, inputs, training=training, mask=mask, **kwargs)
        outputs = self._run_through_graph(
            self._standardize_inputs(tensors),
            operation_fn=lambda operation: _node_caller(operation, training))
        return outputs[0] if isinstance(outputs, list) and len(outputs) == 1 else outputs

    model.call = types.MethodType(call, model)
    return model
