"""Resumable checkpoints: weights, optimizer variables and loop state, written atomically.

A checkpoint is a folder ``checkpoints/epoch-NNNN`` written under a temporary name and
renamed into place; ``latest.json`` (itself replaced atomically) names the newest complete
one. A kill at any instant therefore leaves either the previous or the new checkpoint.
"""

from __future__ import annotations

import json
import os
import shutil
import uuid
from pathlib import Path
from typing import Any

import numpy as np

from kvision.runs.atomic import atomic_write_json

LATEST = "latest.json"


def save_checkpoint(folder: Path, name: str, model: Any, state: dict) -> Path:
    """Write weights (with the optimizer's variables), generator states and ``state``.

    Every checkpoint gets a folder of its own (never overwritten); ``latest.json`` is switched
    to it once it is complete, and only then are older ones removed.
    """
    folder.mkdir(parents=True, exist_ok=True)
    final = folder / f"{name}-{uuid.uuid4().hex[:6]}"
    tmp = folder / f".{final.name}.tmp"
    tmp.mkdir()
    # Keras writes the optimizer's variables into the same file when the model is compiled.
    model.save_weights(str(tmp / "model.weights.h5"))
    _write_npz(tmp / "rng.npz", {f"v{i:04d}": np.asarray(v) for i, v in enumerate(_rng_states(model))})
    atomic_write_json(tmp / "state.json", state)
    os.replace(tmp, final)
    atomic_write_json(folder / LATEST, {"checkpoint": final.name})
    _prune(folder, keep=final.name)
    return final


def remove_checkpoints(folder: Path) -> None:
    """Drop a finished trial's checkpoints: its model.keras now holds the final state."""
    shutil.rmtree(folder, ignore_errors=True)


def latest_checkpoint(folder: Path) -> tuple[Path, dict] | None:
    """(checkpoint folder, state) of the newest complete checkpoint, or None."""
    try:
        name = json.loads((folder / LATEST).read_text("utf-8"))["checkpoint"]
        path = folder / name
        return path, json.loads((path / "state.json").read_text("utf-8"))
    except (OSError, KeyError, json.JSONDecodeError):
        return None


def restore_checkpoint(path: Path, model: Any) -> None:
    """Load weights, optimizer variables and generator states into a compiled model."""
    optimizer = getattr(model, "optimizer", None)
    if optimizer is not None and not optimizer.built:
        optimizer.build(model.trainable_variables)  # so load_weights fills its variables too
    restore_weights(path, model)


def restore_weights(path: Path, model: Any) -> None:
    """Weights and Keras seed-generator states (seeded random layers continue exactly).

    Unseeded random layers draw from the global generators, which the trainer re-seeds from
    (seed, epoch) at the start of every epoch, so they need no saved state.
    """
    import warnings

    with warnings.catch_warnings():
        # between stages the new stage's fresh optimizer is not built: skip the saved one
        warnings.filterwarnings("ignore", message="Skipping variable loading for optimizer")
        model.load_weights(str(path / "model.weights.h5"))
    rng = path / "rng.npz"
    if rng.exists():
        with np.load(rng) as data:
            values = [data[k] for k in sorted(data.files)]
        states = _rng_states(model)
        if len(values) == len(states):
            for var, value in zip(states, values, strict=True):
                var.assign(value)


def _rng_states(model: Any) -> list:
    """Keras seed-generator states (dropout and other random layers); not in save_weights."""
    return [v for v in model.variables if v.path.endswith("seed_generator_state")]


def _write_npz(path: Path, arrays: dict) -> None:
    with open(path, "wb") as fh:
        np.savez(fh, **arrays)
        fh.flush()
        os.fsync(fh.fileno())


def _prune(folder: Path, keep: str) -> None:
    for path in folder.iterdir():
        if path.is_dir() and path.name != keep:
            shutil.rmtree(path, ignore_errors=True)
