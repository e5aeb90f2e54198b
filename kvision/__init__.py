"""kvision: classic CNN image-classification experiments from TOML recipes.

Importing kvision is cheap (no Keras, no torch). It selects the PyTorch backend for Keras
unless the user already chose one with ``KERAS_BACKEND``: Keras reads that variable once, at
its own import, so it must be set before anything imports keras. It also registers kvision's
one custom layer (LRN) with Keras once Keras is imported (``kvision._keras_layers``), so
``import kvision`` then ``keras.saving.load_model(path, safe_mode=True)`` loads every model
kvision saves.
"""

from __future__ import annotations

import os

__version__ = "0.1.0"

#: Whether the backend came from the user's environment rather than from kvision.
BACKEND_FROM_USER = "KERAS_BACKEND" in os.environ
os.environ.setdefault("KERAS_BACKEND", "torch")
# OpenMP threads that wait for work spin only briefly (10,000 turns) before they sleep. torch's
# GNU OpenMP spins 300,000 turns by default: on a machine busy with other processes a spinning
# thread burns the time slices its partner needs, and a model whose work is split over threads
# (AlexNet's large layers) crawls many times slower than its fair share. Measured
# (benchmarks/load_share.py, docs/speed.md): a short spin keeps the quiet machine's speed,
# which OMP_WAIT_POLICY=PASSIVE did not (every quiet step slower), and roughly halves the
# slowdown beside a busy load. Read by OpenMP when torch loads it, so it is set here, before
# anything imports torch; a wait policy or spin count in the environment wins.
if "OMP_WAIT_POLICY" not in os.environ:
    os.environ.setdefault("GOMP_SPINCOUNT", "10000")

from kvision import _keras_layers  # noqa: E402

_keras_layers.install()


def backend_note() -> str:
    """One line saying which Keras backend is in force and who chose it."""
    chosen = os.environ["KERAS_BACKEND"]
    who = "set by KERAS_BACKEND in your environment" if BACKEND_FROM_USER else "kvision default"
    return f"Keras backend: {chosen} ({who})"
