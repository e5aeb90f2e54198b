"""What ``import kvision`` does to Keras' import: LRN registered, JAX kept out on torch.

Run in fresh interpreters, since Keras and JAX are imported once per process.
"""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys

import pytest

PROBE = """
import json, sys
import kvision, keras
before = 'jax' in sys.modules
import jax  # still importable afterwards
print(json.dumps({"jax_at_import": before, "jax_later": 'jax' in sys.modules,
                  "backend": keras.backend.backend()}))
"""


def _probe(backend: str) -> dict:
    env = {**os.environ, "KERAS_BACKEND": backend}
    out = subprocess.run(
        [sys.executable, "-c", PROBE], env=env, capture_output=True, text=True, check=True
    )
    return json.loads(out.stdout.strip().splitlines()[-1])


@pytest.mark.skipif(importlib.util.find_spec("jax") is None, reason="JAX is not installed")
def test_torch_keras_does_not_import_jax():
    """Keras' Orbax callback module would import JAX (115 MiB resident) on any backend."""
    seen = _probe("torch")
    assert seen == {"jax_at_import": False, "jax_later": True, "backend": "torch"}


@pytest.mark.skipif(importlib.util.find_spec("jax") is None, reason="JAX is not installed")
def test_jax_backend_imports_jax_as_usual():
    seen = _probe("jax")
    assert seen == {"jax_at_import": True, "jax_later": True, "backend": "jax"}
