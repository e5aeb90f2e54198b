"""What identifies a run, written before any work: recipe.toml and meta.json.

The directory itself is named and claimed by :mod:`kvision.runs.rundir`.
"""

from __future__ import annotations

import os
import platform
import socket
import sys
from datetime import datetime

from kvision import __version__, backend_note
from kvision.recipe import Recipe, dump_toml
from kvision.runs import RunWriter
from kvision.runs.phases import phase


def write_identity(
    writer: RunWriter,
    recipe: Recipe,
    *,
    recipe_path: str | None,
    overrides: list[str],
    argv: list[str],
) -> None:
    """recipe.toml and meta.json, written before any training starts."""
    writer.write_text("recipe.toml", dump_toml(recipe))
    writer.write_json(
        "meta.json", environment(recipe, recipe_path=recipe_path, overrides=overrides, argv=argv)
    )


def environment(
    recipe: Recipe, *, recipe_path: str | None, overrides: list[str], argv: list[str]
) -> dict:
    """Versions, backend, device, seed, argv, pid and host of this process."""
    # The run's first import of torch and Keras (1-2 s): timed as imports, not "other".
    with phase("imports"):
        import keras
        import torch

    device = "cuda" if torch.cuda.is_available() else "cpu"
    return {
        "kvision": __version__,
        "keras": keras.__version__,
        "torch": torch.__version__,
        "backend": keras.backend.backend(),
        "backend_note": backend_note(),
        "device": device,
        "device_name": torch.cuda.get_device_name(0)
        if device == "cuda"
        else platform.processor() or platform.machine(),
        "threads": torch.get_num_threads(),
        "python": sys.version.split()[0],
        "seed": recipe.experiment.seed,
        "recipe_name": recipe.experiment.name,
        "recipe_path": recipe_path,
        "recipe_raw": recipe.raw,  # what the user wrote (+ overrides), to detect edits on resume
        "overrides": overrides,
        "argv": argv,
        "pid": os.getpid(),
        "host": socket.gethostname(),
        "started": datetime.now().astimezone().isoformat(timespec="seconds"),
    }
