"""Resumable checkpoints: weights, optimizer variables and loop state, written atomically.

A checkpoint is a folder ``checkpoints/epoch-NNNN`` written under a temporary name and
renamed into place; ``latest.json`` (itself replaced atomically) names the newest complete
one. A kill at any instant therefore leaves either the previous or the new checkpoint.
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path
from typing import Any

import numpy as np

from kvision.runs.atomic import atomic_write_json

LATEST = "latest.json"
KEEP = 2  # the newest two, so a checkpoint being read while the next is written survives


def save_checkpoint(folder: Path, name: str, model: Any, state: dict) -> Path:
    """Write weights, optimizer variables and ``state`` as checkpoint ``name``."""
    folder.mkdir(parents=True, exist_ok=True)
    tmp, final = folder / f".{name}.tmp", folder / name
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir()
    model.save_weights(str(tmp / "model.weights.h5"))
    optimizer = getattr(model, "optimizer", None)
    if optimizer is not None and optimizer.built:
        _write_npz(tmp / "optimizer.npz",
                   {f"v{i:04d}": np.asarray(v) for i, v in enumerate(optimizer.variables)})
    _write_npz(tmp / "rng.npz", {f"v{i:04d}": np.asarray(v) for i, v in enumerate(_rng_states(model))})
    atomic_write_json(tmp / "state.json", state)
    shutil.rmtree(final, ignore_errors=True)
    os.replace(tmp, final)
    atomic_write_json(folder / LATEST, {"checkpoint": name})
    _prune(folder, keep=name)
    return final


def latest_checkpoint(folder: Path) -> tuple[Path, dict] | None:
    """(checkpoint folder, state) of the newest complete checkpoint, or None."""
    try:
        name = json.loads((folder / LATEST).read_text("utf-8"))["checkpoint"]
        path = folder / name
        return path, json.loads((path / "state.json").read_text("utf-8"))
    except (OSError, KeyError, json.JSONDecodeError):
        return None


def restore_checkpoint(path: Path, model: Any) -> None:
    """Load weights, random-generator states and optimizer variables into a compiled model."""
    restore_weights(path, model)
    opt_file = path / "optimizer.npz"
    if opt_file.exists() and getattr(model, "optimizer", None) is not None:
        optimizer = model.optimizer
        if not optimizer.built:
            optimizer.build(model.trainable_variables)
        with np.load(opt_file) as data:
            values = [data[k] for k in sorted(data.files)]
        if len(values) == len(optimizer.variables):
            for var, value in zip(optimizer.variables, values, strict=True):
                var.assign(value)


def restore_weights(path: Path, model: Any) -> None:
    """Weights and Keras seed-generator states (seeded random layers continue exactly).

    Unseeded random layers draw from the global generators, which the trainer re-seeds from
    (seed, epoch) at the start of every epoch, so they need no saved state.
    """
    import warnings

    with warnings.catch_warnings():
        # the optimizer is restored separately (below), once it is built for this stage
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
    names = sorted(p.name for p in folder.iterdir() if p.is_dir() and p.name.startswith("epoch-"))
    for name in names[:-KEEP]:
        if name != keep:
            shutil.rmtree(folder / name, ignore_errors=True)
