"""kvision: classic CNN image-classification experiments from TOML recipes.

Importing kvision is cheap (no Keras, no torch). It selects the PyTorch backend for Keras
unless the user already chose one with ``KERAS_BACKEND``: Keras reads that variable once, at
its own import, so it must be set before anything imports keras.
"""

from __future__ import annotations

import os

__version__ = "0.1.0"

#: Whether the backend came from the user's environment rather than from kvision.
BACKEND_FROM_USER = "KERAS_BACKEND" in os.environ
os.environ.setdefault("KERAS_BACKEND", "torch")


def backend_note() -> str:
    """One line saying which Keras backend is in force and who chose it."""
    chosen = os.environ["KERAS_BACKEND"]
    who = "set by KERAS_BACKEND in your environment" if BACKEND_FROM_USER else "kvision default"
    return f"Keras backend: {chosen} ({who})"
