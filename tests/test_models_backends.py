"""Every architecture builds and runs under a second Keras backend (JAX or TensorFlow).

Model code uses Keras layers and ``keras.ops`` only; these tests prove it in a subprocess
with ``KERAS_BACKEND`` set, and are skipped (with the reason) when no second backend exists.
Every other architecture is built there (shapes and parameter counts, no forward pass, whose
weight initialisation costs a compilation per shape under JAX) by
tests/test_backend_second.py, which CI runs with JAX installed.
"""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys

import pytest

SECOND_BACKENDS = [
    name
    for name, module in (("jax", "jax"), ("tensorflow", "tensorflow"))
    if importlib.util.find_spec(module) is not None
]
needs_backend = pytest.mark.skipif(
    not SECOND_BACKENDS,
    reason="neither JAX nor TensorFlow is installed, so no second Keras backend can be tried",
)

# One model per family, covering every custom layer (LRN, adaptive pool, channel-pad shortcut).
REPRESENTATIVE = [
    "lenet",
    "alexnet_small",
    "alexnet_seed",
    "mynet",
    "vgg11_seed",
    "resnet20",
    "mlp",
]

SCRIPT = """
import sys
import numpy as np
import kvision
from keras import ops
from kvision.models import create_model, describe
from kvision.models.catalog import MODELS
for name in sys.argv[1:]:
    entry = MODELS[name]
    if len(entry.default_input) == 1:
        shape = entry.default_input
    else:
        side = max(entry.min_input, 32)
        shape = (side, side, 3)
    options = {"alexnet_seed": {"downscale": 16}, "alexnet_small": {"head": 16}}.get(name, {})
    if name.startswith("vgg"):
        options = {"width": 16, "head": 16}
    model = create_model(name, input_shape=shape, num_classes=3, **options)
    # A direct call rather than predict(): no per-model compilation, the same layers run.
    out = ops.convert_to_numpy(model(np.ones((1, *shape), "float32"), training=False))
    assert out.shape == (1, 3) and np.isfinite(out).all(), name
    describe(model)
    print("ok", name, flush=True)
"""


def _run_under(backend: str, names: list[str]) -> None:
    env = {**os.environ, "KERAS_BACKEND": backend}
    done = subprocess.run(
        [sys.executable, "-c", SCRIPT, *names], env=env, capture_output=True, text=True, timeout=900
    )
    assert done.returncode == 0, done.stderr[-3000:]
    assert done.stdout.split().count("ok") == len(names)


@pytest.mark.slow  # JAX compiles each model's forward pass in a fresh interpreter: ~90 s loaded
@needs_backend
@pytest.mark.parametrize("backend", SECOND_BACKENDS)
def test_representative_models_under_another_backend(backend):
    _run_under(backend, REPRESENTATIVE)
