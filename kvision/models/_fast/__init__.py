"""Torch fast paths behind Keras layers, Keras' Adam and Keras' functional graph.

Keras on the torch backend runs many small kernels where torch has one fused call
(BatchNorm from ``ops.moments`` plus element-wise ops; Adam as ten element-wise passes with
temporaries), copies tensors between Keras' and torch's layouts (NHWC activations,
(kh, kw, in, out) conv and (in, out) Dense kernels), and spends about 0.1 ms of Python per
layer call in ``Layer.__call__``. This package is the one place kvision calls
torch for that:

- :mod:`.layers`: Conv2D, BatchNormalization, MaxPooling2D and Dense subclasses with one
  torch call each, plus LRN and adaptive pooling helpers;
- :mod:`.adam`: torch's fused Adam kernel as the update step of kvision's Adam(W);
- :mod:`.graph`: a functional model whose plain layers are called without
  ``Layer.__call__``'s bookkeeping.

Every path here runs only when :func:`torch_active`; the Keras implementation stays the
fallback for every other case (other backends, masks, mixed precision, renorm, synchronized
BN, LoRA, quantization, AMSGrad, custom layers). Numerics follow Keras, so a model trains and
saves the same on either path (tests/test_speed_equivalence.py).
"""

from __future__ import annotations

import keras

# Set to False to force the Keras fallback (tests compare both paths on one machine).
ENABLED = True


def torch_active() -> bool:
    """Whether the fast paths may run: torch backend and not switched off."""
    return ENABLED and keras.backend.backend() == "torch"


# Imported after torch_active: the submodules use it.
from kvision.models._fast.adam import fuse_adam  # noqa: E402
from kvision.models._fast.graph import direct_graph  # noqa: E402
from kvision.models._fast.layers import (  # noqa: E402
    BatchNormalization,
    Conv2D,
    Dense,
    MaxPooling2D,
    adaptive_avg_pool,
    local_response_norm,
)

__all__ = ["BatchNormalization", "Conv2D", "Dense", "MaxPooling2D", "adaptive_avg_pool",
           "direct_graph", "fuse_adam", "local_response_norm", "torch_active"]
