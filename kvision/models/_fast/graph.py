"""A Keras functional model whose stock layers run as one torch call each, no ``Layer.__call__``.

Before it reaches a layer's ``call``, Keras' ``Layer.__call__`` converts argument dtypes,
checks the input spec, resolves ``training`` from the call context, looks for masks, opens
name and autocast scopes and passes through torch's ``Module.__call__``. On the torch backend
that is about 0.1 ms of Python per layer and per call: a ResNet-18 training forward pass on
two CPU cores took 26 ms through Keras and 18 ms calling each layer's ``call`` directly at
batch 2 (PyTorch's own module: 11 ms), 75 / 68 / 66 ms at batch 32.

:func:`direct_graph` walks the graph's nodes in Keras' order (``Functional._nodes_by_depth``,
deepest first, as ``Functional._run_through_graph`` does) and changes how each node is
executed, and when its inputs are let go: Keras' walk keeps every intermediate tensor until
the forward pass ends, where autograd keeps only what backward needs. Letting each one go
after its last consumer (:class:`_Schedule`) lets the allocator hand the same, cache-warm
memory to the next layer: VGG11/8 predicting 32 64x64 images took 11.7 ms a batch through
Keras' walk and 9.0 ms through this one (PyTorch's own module: 6.4 ms), on two CPU cores.

A layer is called directly when none of that bookkeeping can
matter for it: a built-in Keras or kvision layer, built, float32 policy (no autocast, no
quantization), no activity regulariser, no ``__call__`` of its own (a preprocessing layer's, which only matters inside
tf.data, aside), and, per call, float32 torch
tensors without Keras masks as its only arguments (keyword arguments all None, a
``training`` recorded at build time aside). Stock Rescaling, Conv2D, Dense,
BatchNormalization, MaxPooling2D and AdaptiveAveragePooling2D layers then run
their one-call torch form (:data:`kvision.models._fast.layers.FAST_CALLS`), and a
ZeroPadding2D that only feeds one of those convolutions (or a max-pool of a ReLU's output)
is folded into it: the padding becomes the torch call's ``padding``, with no padded copy of
the activations. Everything else (nested models,
custom layers, masks, mixed precision, symbolic tensors, other backends) takes Keras' own
``Layer.__call__``, so results are identical either way.
"""

from __future__ import annotations

import functools
import types

import keras

from kvision.models import _fast
from kvision.models._fast.layers import FAST_CALLS, wrapper_adds_nothing

_OWN_PACKAGES = ("keras", "kvision")


@functools.cache
def _stock_calls() -> tuple:
    """``__call__`` methods that add nothing to ``Layer.__call__`` for torch tensors: Keras'
    own, and its preprocessing layers' (which switch backends only inside tf.data or Grain
    pipelines, never for the torch tensors a torch model's forward pass hands them). Asked
    only with the paths on, so DataLayer is where :data:`_fast.INTERNALS` found it."""
    from keras.src.layers.preprocessing.data_layer import DataLayer

    return keras.layers.Layer.__call__, DataLayer.__call__


def _plain(layer) -> bool:
    """Whether ``layer``'s ``call`` needs nothing from ``Layer.__call__`` once it is built."""
    return (
        isinstance(layer, keras.layers.Layer)
        and not isinstance(layer, keras.Model)
        and type(layer).__call__ in _stock_calls()
        and type(layer).__module__.partition(".")[0] in _OWN_PACKAGES
        and layer.built
        and wrapper_adds_nothing(layer)
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


def _graph_nodes(model: keras.Model) -> list:
    """The model's layer nodes in the order Keras' walk runs them (deepest first)."""
    by_depth = model._nodes_by_depth
    return [
        node
        for depth in sorted(by_depth, reverse=True)
        for node in by_depth[depth]
        if node.operation is not None and not node.is_input
    ]


def _producers(model: keras.Model, tensor) -> list:
    """The layers of ``model`` whose (one) output is ``tensor``."""
    return [lay for lay in model.layers if _output_of(lay) is tensor]


def _non_negative(model: keras.Model, tensor) -> bool:
    """Whether ``tensor`` is the output of a plain ReLU layer (so never below zero)."""
    return any(
        isinstance(lay, keras.layers.ReLU) and lay.negative_slope == 0 and lay.threshold >= 0
        for lay in _producers(model, tensor)
    )


class _Readers:
    """Which layers read each tensor of the model's graph, and what the model returns: what
    both the padding fold and the in-place ReLUs must know about a tensor before its one
    reader may change how it is made or overwrite it."""

    def __init__(self, model: keras.Model):
        self.by_tensor: dict[int, list] = {}  # tensor id -> reading layer, once per argument
        for node in _graph_nodes(model):
            for tensor in node.arguments.keras_tensors:
                self.by_tensor.setdefault(id(tensor), []).append(node.operation)
        self.returned = {id(tensor) for tensor in model.outputs}

    def sole(self, tensor):
        """The layer that reads ``tensor`` as its one input, if nothing else reads it and the
        model does not return it; else None."""
        readers = self.by_tensor.get(id(tensor), []) if tensor is not None else []
        if len(readers) != 1 or id(tensor) in self.returned or _input_of(readers[0]) is not tensor:
            return None
        return readers[0]


def _fold_target(model: keras.Model, pad_layer, pads: tuple[int, int], readers: _Readers):
    """The one Conv2D or MaxPooling2D that ``pad_layer``'s output feeds, if it can be folded.

    A "valid" conv takes any symmetric zero padding; a "valid" max-pool only up to half its
    pool size (torch's limit) and only of non-negative inputs, as torch pads with -inf.
    """
    target = readers.sole(_output_of(pad_layer))
    if target is None or not _plain(target) or getattr(target, "padding", None) != "valid":
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


#: Set to False to write every ReLU into a new tensor (benchmarks/relu_in_place.py compares).
RELU_IN_PLACE = True
#: Layers whose output is always a new tensor of their own, never a view of their input.
_FRESH_OUTPUTS = (keras.layers.Conv2D, keras.layers.Dense, keras.layers.BatchNormalization)


def _relus_in_place(model: keras.Model, readers: _Readers) -> set:
    """The plain ReLU layers that may overwrite their input when no gradient is recorded:
    the input is a Conv2D's, Dense's or BatchNormalization's own new output, read by nothing
    else in this model's graph and not one of the model's outputs. Inference then writes the
    ReLU into that memory, as ``torch.nn.ReLU(inplace=True)`` does, instead of a new tensor
    of the same size."""
    if not RELU_IN_PLACE:
        return set()
    chosen = set()
    for layer in model.layers:
        source = _input_of(layer) if type(layer) is keras.layers.ReLU else None
        if source is None or readers.sole(source) is not layer:
            continue
        producers = _producers(model, source)
        if producers and all(isinstance(lay, _FRESH_OUTPUTS) for lay in producers):
            chosen.add(layer)
    return chosen


class _Plan:
    """How :func:`direct_graph` executes one model: folded paddings, NCHW convolutions and
    the ReLUs that run in place when no gradient is recorded.

    ``folded`` maps a ZeroPadding2D to the layer that pads instead; ``pads`` maps that
    layer to (rows, cols) and the ZeroPadding2D (which its Keras fallback calls first);
    ``in_place`` holds the ReLU layers of :func:`_relus_in_place`.
    """

    def __init__(self, model: keras.Model):
        from kvision.models._fast.layers import store_in_torch_layout, wants_nchw

        self.folded, self.pads, self.nchw = {}, {}, set()
        readers = _Readers(model)
        self.in_place = _relus_in_place(model, readers)
        for layer in model.layers:
            if isinstance(layer, keras.layers.ZeroPadding2D) and _plain(layer):
                pads = _symmetric_pads(layer)
                target = _fold_target(model, layer, pads, readers) if pads else None
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

    # Looked up at each call (not cached per class): tests swap forms to watch them run.
    return next((FAST_CALLS[cls] for cls in type(layer).__mro__ if cls in FAST_CALLS), None)


def _no_extras(kwargs) -> bool:
    """Nodes record the mask=None that Keras filled in when the graph was built."""
    return all(v is None for v in kwargs.values())


def _node_caller(operation, training, plan: _Plan):
    """How the graph walk calls ``operation``: fast form, its ``call`` directly, or Keras.

    Made once per layer and ``training`` value (:class:`_Callers`) and made again when the
    layer stops or starts being plain, so a layer quantized or given a regulariser later is
    seen.
    """
    from keras.src.models import functional

    if operation in plan.folded:  # its consumer pads, in its torch call or its fallback
        return lambda inputs, *args, **kwargs: inputs
    keras_call = functional.operation_fn(operation, training=training)
    pads, pad_layer = plan.pads.get(operation, (None, None))
    pad = None if pad_layer is None else functional.operation_fn(pad_layer)
    if pad is not None:
        keras_call = _after(pad, keras_call)
    if not _plain(operation):
        return keras_call
    return _PlainCall(operation, training, plan, keras_call, pad, pads)


class _Callers:
    """Each node's caller (:func:`_node_caller`), made on first use and kept while the layer
    stays as plain as it was, instead of anew for every node of every forward pass (with the
    precomputed :class:`_Step`, a one-image ResNet-18 forward on the CPU, which is mostly
    Python, went from 4.6-5.0 to 3.9-4.0 ms). A layer that stops (or starts) being plain,
    say given a regulariser after the first call, gets a new caller."""

    def __init__(self, plan: _Plan):
        self.plan = plan
        self.made: dict[tuple[int, object], tuple[bool, object]] = {}

    def for_training(self, training):
        made, plan = self.made, self.plan

        def operation_fn(operation):
            plain = _plain(operation)
            key = (id(operation), training)
            found = made.get(key)
            if found is None or found[0] != plain:
                found = made[key] = (plain, _node_caller(operation, training, plan))
            return found[1]

        return operation_fn


def _after(pad, call):
    """``call`` with a folded ZeroPadding2D applied to its first argument first."""
    return lambda *args, **kwargs: call(pad(args[0]), *args[1:], **kwargs)


class _PlainCall:
    """One plain layer's call in the walk: its torch form, else its ``call`` directly, else
    (masks, extra arguments, non-float32 tensors) Keras' own call."""

    def __init__(self, operation, training, plan: _Plan, keras_call, pad, pads):
        self.operation, self.training = operation, training
        self.keras_call, self.pad = keras_call, pad
        self.fast = _fast_form(operation)
        self.nchw = operation in plan.nchw
        self.in_place = operation in plan.in_place
        # kvision 0.1's Conv2D/MaxPooling2D keep PyTorch's padding in the layer itself.
        self.pads = pads or getattr(operation, "explicit_padding", None)

    def __call__(self, *args, **kwargs):
        mode = self.training
        if "training" in kwargs:
            # A node built with an explicit ``training=`` (a Dropout called outside fit
            # records training=False): Keras' walk puts the call's own value in its place
            # when that is set, so the recorded one only stands in for a None.
            kwargs = dict(kwargs)
            recorded = kwargs.pop("training")
            mode = recorded if mode is None else mode
        plain_args = _no_extras(kwargs) and _float32_unmasked(args)
        if self.fast is not None and len(args) == 1 and plain_args:
            outputs = self.fast(
                self.operation,
                args[0],
                training=mode,
                nchw=self.nchw,
                pads=self.pads,
                in_place=self.in_place,
            )
            if outputs is not None:
                return outputs
        # training=None: leave the layer's own default, as Keras does without a context.
        context = {} if mode is None else {"training": mode}
        if not plain_args:
            return self.keras_call(*args, **kwargs, **context)
        if self.pad is not None:
            args = (self.pad(args[0]), *args[1:])
        if not self.operation._call_has_training_arg:
            context = {}
        return self.operation.call(*args, **kwargs, **context)


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


class _Step:
    """One node of the walk, with what its bookkeeping needs precomputed (ids, not tensors)."""

    __slots__ = ("frees", "inputs", "node", "outputs")

    def __init__(self, node, frees: list[int]):
        self.node, self.frees = node, frees
        self.inputs = tuple(id(x) for x in node.input_tensors)
        self.outputs = tuple(id(x) for x in node.outputs)


class _Schedule:
    """The graph's nodes in the order Keras' walk runs them, and the tensors each one frees.

    ``steps`` pairs each node with the ids of the graph tensors whose last consumer it is
    (outputs of the model excepted), so the walk drops them right after it. Built once per
    model: a functional model's graph never changes after construction.
    """

    def __init__(self, model: keras.Model):
        nodes = _graph_nodes(model)
        last_use = {}
        for index, node in enumerate(nodes):
            for tensor in node.arguments.keras_tensors:
                last_use[id(tensor)] = index
        kept = {id(tensor) for tensor in model.outputs}
        frees: list[list[int]] = [[] for _ in nodes]
        for tensor_id, index in last_use.items():
            if tensor_id not in kept:
                frees[index].append(tensor_id)
        self.steps = [_Step(node, free) for node, free in zip(nodes, frees, strict=True)]
        self.structure = model._outputs_struct  # how the flat outputs nest

    def run(self, model: keras.Model, inputs: list, operation_fn):
        """The model's outputs for flat ``inputs``, each node run by ``operation_fn``."""
        import torch

        values = {id(x): y for x, y in zip(model.inputs, inputs, strict=True)}
        for step in self.steps:
            if not all(i in values for i in step.inputs):
                continue  # not reachable from these inputs (Keras' walk skips it too)
            args, kwargs = step.node.arguments.fill_in(values)
            outputs = operation_fn(step.node.operation)(*args, **kwargs)
            del args, kwargs  # so the frees below release the last reference
            if len(step.outputs) == 1 and isinstance(outputs, torch.Tensor):
                values[step.outputs[0]] = outputs  # the common case, without a tree walk
            else:
                values.update(zip(step.outputs, keras.tree.flatten(outputs), strict=True))
            del outputs
            for tensor_id in step.frees:
                values.pop(tensor_id, None)
        return keras.tree.pack_sequence_as(self.structure, [values[id(x)] for x in model.outputs])


def direct_graph(model: keras.Model) -> keras.Model:
    """``model`` running its plain layers' ``call`` directly, if it is a torch functional model.

    Only this instance changes (its ``call``, and its ``predict``: see
    :mod:`kvision.models._fast.predict`): class, config, weights, saving and every other
    model keep Keras' behaviour. Calls with masks or extra call arguments, symbolic tensors,
    or with the fast paths switched off take the class's own ``call`` (Keras'), so applying
    this again (each training stage compiles the model) replaces the method, never nests it.
    """
    from keras.src.models.functional import Functional

    if not _fast.torch_active() or not isinstance(model, Functional):
        return model
    plan = _Plan(model)
    schedule = _Schedule(model)  # its internals are in _fast.INTERNALS (checked)
    callers = _Callers(plan)

    def call(self, inputs, training=None, mask=None, **kwargs):
        tensors = _as_torch(inputs) if _fast.torch_active() else None
        if mask is not None or kwargs or tensors is None:
            return type(self).call(self, inputs, training=training, mask=mask, **kwargs)
        flat = self._standardize_inputs(tensors)
        outputs = schedule.run(self, flat, callers.for_training(training))
        return outputs[0] if isinstance(outputs, list) and len(outputs) == 1 else outputs

    call.kvision_direct = True  # read by predict.direct_call
    model.call = types.MethodType(call, model)
    from kvision.models._fast.predict import lean_predict

    model.predict = types.MethodType(lean_predict, model)
    return model
