"""Torch fast paths that execute stock Keras layers, Keras' Adam and Keras' functional graph.

Keras on the torch backend runs many small kernels where torch has one fused call
(BatchNorm from ``ops.moments`` plus element-wise ops; Adam as ten element-wise passes with
temporaries), copies tensors between Keras' and torch's layouts (NHWC activations,
(kh, kw, in, out) conv and (in, out) Dense kernels), and spends about 0.1 ms of Python per
layer call in ``Layer.__call__``. This package is the one place kvision calls torch for that,
and only to *execute* models: the models themselves are stock Keras layers
(``keras.layers.Conv2D``, ``Dense``, ``BatchNormalization``, ``MaxPooling2D``,
``ZeroPadding2D``, ``AdaptiveAveragePooling2D``...), so saved ``.keras`` files load in any
Keras without kvision.

- :mod:`.graph`: a functional model whose plain layers are called without
  ``Layer.__call__``'s bookkeeping, and whose stock Conv2D, Dense, BatchNormalization,
  MaxPooling2D and adaptive pooling nodes run the one-call torch forms of :mod:`.layers`,
  with a ZeroPadding2D folded into the convolution or pooling it feeds;
- :mod:`.layers`: those torch forms, plus LRN and the kernels' torch memory layout;
- :mod:`.adam`: torch's fused Adam kernel as the update step of Keras' Adam(W);
- :mod:`.predict` and :mod:`.capture`: a quiet ``predict`` as a plain loop over the batches,
  replaying a ``torch.export`` capture of the direct graph once a model's forward is hot;
- :mod:`.train_step`: Keras' train step for kvision's compiled classifiers, its loss and
  metric updates as the same torch operations without Keras' generic containers.

Every path here runs only when :func:`torch_active`; the Keras implementation stays the
fallback for every other case (other backends, masks, mixed precision, renorm, synchronized
BN, LoRA, quantization, AMSGrad, custom layers). Numerics follow Keras, so a model trains and
saves the same on either path (tests/test_speed_equivalence.py).

The paths use private Keras and torch internals, every one listed in :data:`INTERNALS`.
:func:`speed_paths_status` checks them once; if one is missing (renamed in a
newer release), the paths switch off with one warning line on stderr and training takes
Keras' own implementation, only slower.
"""

from __future__ import annotations

import functools
import sys
import threading
from typing import Any

import keras

# Set to False to force the Keras fallback (tests compare both paths on one machine).
ENABLED = True

# The private Keras and torch internals the fast paths use, every one of them, checked once
# by :func:`speed_paths_status`. Three forms: "module:attribute.path" looked up on the module
# or class; "module:Class().attribute" on a fresh instance; "probe:what" an instance
# attribute checked on a small object built for the purpose (:data:`_PROBES`: a one-layer
# functional model, a built Adam, a masked tensor). Public APIs (F.conv2d, F.batch_norm,
# keras.layers.*, keras.tree, a torch variable's ``value``) are not listed.
INTERNALS: tuple[str, ...] = (
    "keras.src.ops.node:Node.input_tensors",  # what kvision's own walk reads of each node
    "keras.src.ops.symbolic_arguments:SymbolicArguments.fill_in",
    "keras.src.models.functional:Functional._standardize_inputs",
    "keras.src.models.functional:operation_fn",  # Keras' own per-node call
    "keras.src.backend.common.stateless_scope:in_stateless_scope",
    "keras.src.backend.torch.optimizers.torch_adam:Adam._parallel_update_step",
    "keras.src.optimizers.base_optimizer:BaseOptimizer._get_variable_index",
    "keras.layers:Identity()._call_has_training_arg",
    # Public, but younger than the paths' oldest Keras: Keras 3.13's BatchNormalization has
    # no renorm (tests/test_version_pairs.py runs 3.13 and sees the paths step aside).
    "keras.layers:BatchNormalization().renorm",
    "keras.src.layers.preprocessing.data_layer:DataLayer.__call__",  # a plain call too
    "torch:_fused_adam_",  # Adam's fused kernel
    "probe:Functional()._nodes_by_depth",  # the walk's node order
    "probe:Functional()._compile_loss._user_loss_weights",  # the lean train step's checks
    "probe:Functional()._compile_metrics.metrics",
    "probe:Functional()._loss_tracker.total",
    "probe:Functional()._outputs_struct",  # how the walk nests the outputs
    "probe:Node().arguments.keras_tensors",  # each node's inputs, for last-use frees
    "probe:Node().arguments.fill_in",
    "probe:torch.Tensor()._keras_mask",  # where Keras keeps a torch tensor's mask
    "probe:Adam().build()._momentums",  # the slots the fused kernel updates
    "probe:Adam().build()._velocities",
)


def _probe_objects() -> dict[str, Any]:
    """The objects the "probe:" internals are read from: nothing trained, no weights."""
    import torch
    from keras.src.backend.common.masking import set_keras_mask

    inputs = keras.Input((2,))
    model = keras.Model(inputs, keras.layers.Identity()(inputs))
    model.compile(  # as kvision compiles a classifier (what .train_step reads)
        loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
        metrics=[keras.metrics.SparseCategoricalAccuracy()],
    )
    (node,) = [n for nodes in model._nodes_by_depth.values() for n in nodes if not n.is_input]
    tensor = torch.zeros(1)
    set_keras_mask(tensor, torch.ones(1, dtype=torch.bool))
    adam = keras.optimizers.Adam()
    adam.build([keras.Variable(initializer="zeros", shape=(1,), dtype="float32")])
    return {"Functional()": model, "Node()": node, "torch.Tensor()": tensor, "Adam().build()": adam}


def _probe(objects: dict[str, Any], internal: str) -> None:
    """Raise AttributeError if the "probe:" ``internal`` is missing from its object."""
    what = internal.removeprefix("probe:")
    head = next(name for name in objects if what.startswith(name + "."))
    obj = objects[head]
    for part in what[len(head) + 1 :].split("."):
        obj = getattr(obj, part)
    if "_momentums" in what or "_velocities" in what:
        if not isinstance(obj, list):  # the fused step indexes them by variable
            raise AttributeError(f"{what} is a {type(obj).__name__}, not a list")
    elif "_keras_mask" in what and obj is None:
        raise AttributeError(f"{what} is not where set_keras_mask keeps the mask")


def _lookup(internal: str) -> None:
    """Raise ImportError or AttributeError if ``internal`` (see :data:`INTERNALS`) is missing."""
    import importlib

    module, _, path = internal.partition(":")
    obj = importlib.import_module(module)
    for part in path.split("."):
        obj = getattr(obj, part[:-2])() if part.endswith("()") else getattr(obj, part)


def _first_missing() -> str | None:
    """The first of :data:`INTERNALS` this Keras/torch lacks, or None."""
    for internal in INTERNALS:
        if internal.startswith("probe:"):
            continue
        try:
            _lookup(internal)
        except (ImportError, AttributeError):
            return internal
    try:
        objects = _probe_objects()
    except (ImportError, AttributeError, ValueError, TypeError) as err:
        return f"probe objects ({type(err).__name__}: {err})"
    for internal in INTERNALS:
        if internal.startswith("probe:"):
            try:
                _probe(objects, internal)
            except AttributeError:
                return internal
    return None


def _missing_internal() -> str | None:
    """:func:`_first_missing`, run in a thread of its own: Keras' scopes are thread-local, so
    a caller's (a symbolic build's StatelessScope, which refuses new variables, or a
    distribution) cannot change what the probes see or leave them holding variables."""
    found: list[str | None] = []
    worker = threading.Thread(target=lambda: found.append(_first_missing()), name="kvision-probe")
    worker.start()
    worker.join()
    return found[0] if found else "probe thread (it raised: see the traceback above)"


@functools.cache
def speed_paths_status() -> tuple[bool, str]:
    """(enabled, reason): whether the torch speed paths can run in this process, and why.

    Checked once. Off on other backends (nothing to warn about) and when an internal the
    paths use is missing, which also prints one warning line on stderr.
    """
    backend = keras.backend.backend()
    if backend != "torch":
        return False, f"speed paths are torch-only; Keras backend is {backend}"
    missing = _missing_internal()
    if missing is not None:
        import torch

        reason = (
            f"speed paths off: {missing} is missing in keras {keras.__version__} / "
            f"torch {torch.__version__}; training uses Keras' own (slower) layers"
        )
        print(f"kvision: warning: {reason}", file=sys.stderr, flush=True)
        return False, reason
    return True, "torch speed paths on"


def torch_active() -> bool:
    """Whether the fast paths may run: torch backend, internals present, not switched off."""
    return ENABLED and speed_paths_status()[0]


# Imported after torch_active: the submodules use it.
from kvision.models._fast.adam import fuse_adam  # noqa: E402
from kvision.models._fast.graph import direct_graph  # noqa: E402
from kvision.models._fast.layers import local_response_norm  # noqa: E402
from kvision.models._fast.predict import capture_forward  # noqa: E402
from kvision.models._fast.train_step import lean_train_step  # noqa: E402

__all__ = [
    "INTERNALS",
    "capture_forward",
    "direct_graph",
    "fuse_adam",
    "lean_train_step",
    "local_response_norm",
    "speed_paths_status",
    "torch_active",
]
