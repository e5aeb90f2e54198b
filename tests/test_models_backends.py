"""Every architecture builds and runs under a second Keras backend (JAX or TensorFlow)."""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys

import pytest

SECOND_BACKENDS = [name for name, module in (("jax", "jax"), ("tensorflow", "tensorflow"))
                   if importlib.util.find_spec(module) is not None]

SCRIPT = """
import numpy as np
import kvision
from keras import ops
from kvision.models import create_model, describe
from kvision.models.catalog import MODELS
small = {"alexnet_seed": {"downscale": 16}, "alexnet_small": {"head": 16}}
for name, entry in sorted(MODELS.items()):
    if len(entry.default_input) == 1:
        shape = entry.default_input
    else:
        side = max(entry.min_input, 32)
        shape = (side, side, 3)
    options = dict(small.get(name, {}))
    if name.startswith("vgg"):
        options.update(width=16, head=16)
    model = create_model(name, input_shape=shape, num_classes=3, **options)
    # A direct call, not predict(): no per-model XLA compilation, same layers exercised.
    out = ops.convert_to_numpy(model(np.ones((1, *shape), "float32"), training=False))
    assert out.shape == (1, 3) and np.isfinite(out).all(), name
    describe(model)
print("built", len(MODELS))
"""


@pytest.mark.slow
@pytest.mark.skipif(not SECOND_BACKENDS, reason="neither JAX nor TensorFlow is installed, so "
                                                 "no second Keras backend can be tried")
@pytest.mark.parametrize("backend", SECOND_BACKENDS)
def test_every_model_builds_and_runs_under_another_backend(backend):
    env = {**os.environ, "KERAS_BACKEND": backend}
    done = subprocess.run([sys.executable, "-c", SCRIPT], env=env, capture_output=True,
                          text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    assert "built" in done.stdout
