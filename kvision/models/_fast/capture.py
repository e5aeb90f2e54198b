"""Inference through a ``torch.export`` capture of the direct graph, one per input signature.

With the direct graph (:mod:`.graph`) the torch kernels of a forward pass cost what a tuned
PyTorch module's cost; what remains is Python: the walk over the nodes, each layer's checks
and its argument filling, 1 to 9 ms a batch on two CPU cores for the benchmark's models.
``torch.export`` records the forward once as a graph of ATen calls and replays it without
that Python. The graph holds the model's own variables, not copies (training, ``assign`` and
``load_weights`` write into the tensors it reads), and its batch dimension is symbolic, so one
capture serves every batch size of a signature (the input's trailing shape and dtype).

A model's forward is captured once it has predicted :data:`HOT_BATCHES` batches of a signature
through the quiet predict, and kept while the model lives. It is captured again when the
model's variables are no longer the tensors it holds, or a layer's policy or activity
regulariser changed (:func:`_state`); the call runs eagerly for a single-image batch (torch
would specialise the batch size to 1), a model with more than one input or a non-float32
input, or when ``torch.export`` refuses the graph or its replay raises. A benchmark captures
up front (:func:`capture_now`) and reports the seconds apart from the rate, as it does
``torch.compile``'s; docs/speed.md has the rates with and without the capture.

A replay runs the recorded graph's ``forward`` without the input checks ``torch.export`` puts
around it and in it (a pre-hook matching the input against the recorded shapes, a guard
function, ``_assert_tensor_metadata`` calls): :class:`_Captures` has already checked what
they check, the signature and a batch of two or more, before it picks the capture. They
were 0.29 ms of a 0.93 ms LeNet batch of two (2-core AMD EPYC, median of 15 alternating
rounds), a fixed cost a batch at any size.
"""

from __future__ import annotations

import contextlib
import logging
import time
import warnings
import weakref
from dataclasses import dataclass, field
from typing import Any

import keras

from kvision.models._fast.layers import wrapper_adds_nothing

# Set to False to predict eagerly (tests compare both).
ENABLED = True


#: Batches of one signature a model predicts eagerly before it is captured. A capture costs
#: about a second (``kvision bench`` prints each one's) and saves 1 to 9 ms a batch, so a
#: model is captured once its eager Python has cost about what the capture will: the
#: ski-rental rule, which never pays more than twice the best choice made in hindsight. A
#: trial's evaluations (tens of batches per model) stay eager; a long inference loop is
#: captured early in it.
HOT_BATCHES = 500


@dataclass
class _Captures:
    """A model's captured forwards by signature, valid while the model's state is ``state``."""

    state: tuple
    forwards: dict[tuple, Any] = field(default_factory=dict)  # signature -> module, or None
    eager: dict[tuple, int] = field(default_factory=dict)  # signature -> batches run eagerly

    def module_for(self, call, tensor):
        """The capture for ``tensor``'s signature once it is hot (made now if due), else None."""
        signature = _signature(tensor)
        if signature in self.forwards:
            return self.forwards[signature]
        self.eager[signature] = seen = self.eager.get(signature, 0) + 1
        return self.make(call, tensor) if seen > HOT_BATCHES else None

    def make(self, call, tensor):
        """Capture ``call`` for ``tensor``'s signature now: the module, or None if refused."""
        self.forwards[_signature(tensor)] = module = _export(call, tensor)
        return module


def _signature(tensor) -> tuple:
    return tuple(tensor.shape[1:]), tensor.dtype


_BY_MODEL: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


def _state(model: keras.Model) -> tuple:
    """What a capture bakes in and could change after it: the tensor behind each variable
    (a rebuilt layer gets new ones) and each layer's policy and activity regulariser (what
    the direct graph asks before it calls a layer directly)."""
    tensors = tuple(id(v.value) for v in model.variables)
    layers = tuple((id(layer), wrapper_adds_nothing(layer)) for layer in model.layers)
    return tensors, layers


def _captures(model: keras.Model) -> _Captures:
    state = _state(model)
    found = _BY_MODEL.get(model)
    if found is None or found.state != state:
        found = _BY_MODEL[model] = _Captures(state)
    return found


def capture_now(model: keras.Model, call, batch) -> float | None:
    """Capture ``call`` for ``batch``'s signature now, hot or not: the seconds it took, or
    None where no capture applies or torch.export refused it."""
    tensor = _tensor(batch) if capturable(model) else None
    if not _batched(tensor):
        return None
    captures = _captures(model)
    start = time.perf_counter()
    module = captures.make(call, tensor)
    return None if module is None else time.perf_counter() - start


def _batched(tensor) -> bool:
    """A real tensor of two or more examples (torch.export specialises a batch of one)."""
    return (
        tensor is not None and tensor.ndim > 0 and tensor.shape[0] >= 2 and not tensor.is_complex()
    )


def capturable(model: keras.Model) -> bool:
    """Whether captures may apply to ``model``: switched on, one float32 input."""
    inputs = model.inputs
    return ENABLED and len(inputs) == 1 and inputs[0].dtype == "float32"


def _module(call):
    """A torch module around ``call``, as ``torch.export`` traces modules: it casts the input
    to float32 first, as Keras' input standardisation would."""
    import torch

    class Forward(torch.nn.Module):
        def forward(self, x):
            return call(x.to(torch.float32), training=False)

    return Forward()


@contextlib.contextmanager
def _quiet():
    """torch.export's own log lines and warnings (symbolic shapes, deprecations) are about
    the capture's internals, nothing a user of ``predict`` could act on."""
    logger = logging.getLogger("torch")
    level = logger.level
    logger.setLevel(logging.ERROR)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            yield
    finally:
        logger.setLevel(level)


def _export(call, example):
    """``call`` captured for ``example``'s signature, any batch size of 2 or more; None if
    torch.export cannot capture it."""
    import torch

    batch = torch.export.Dim("batch", min=2)
    try:
        with _quiet(), torch.no_grad():
            program = torch.export.export(
                _module(call), (example,), dynamic_shapes={"x": {0: batch}}, strict=False
            )
            return _without_input_checks(program.module())
    except Exception:  # noqa: BLE001 - any refusal: the eager forward is exact anyway
        return None


def _without_input_checks(module):
    """``module`` with the graph's own input checks taken out (see the module's docstring;
    the replay calls its ``forward``, which skips the checking pre-hook)."""
    import torch

    assertion = getattr(torch.ops.aten, "_assert_tensor_metadata", None)
    checks = {assertion.default} if assertion is not None else set()
    graph = module.graph
    for node in list(graph.nodes):
        checking = (node.op == "call_function" and node.target in checks) or (
            node.op == "call_module" and node.target == "_guards_fn"
        )
        if checking and not node.users:
            graph.erase_node(node)
    module.recompile()
    return module


def _tensor(x):
    """``x`` as the tensor the direct graph would make of it (Keras' conversion: its dtype
    kept, on Keras' device), or None for anything but one array or tensor."""
    import numpy as np

    if isinstance(x, np.ndarray) or keras.ops.is_tensor(x):
        return keras.ops.convert_to_tensor(x)
    return None


def captured_forward(model: keras.Model, call):
    """A function ``x -> call(x, training=False)`` that replays a capture of ``call`` for
    ``x``'s signature once the model has predicted :data:`HOT_BATCHES` batches of it; ``call``
    itself where no capture applies (see the module's docstring)."""
    if not capturable(model):
        return lambda x: call(x, training=False)
    captures = _captures(model)

    def forward(x):
        tensor = _tensor(x)
        if not _batched(tensor):
            return call(x if tensor is None else tensor, training=False)
        module = captures.module_for(call, tensor)
        if module is not None:
            try:
                return module.forward(tensor)  # its checks are module_for's (docstring)
            except Exception:  # noqa: BLE001 - a guard the capture did not foresee
                captures.forwards[_signature(tensor)] = None  # eager from now on: exact
        return call(tensor, training=False)  # converted once: the walk's conversion is a no-op

    return forward
