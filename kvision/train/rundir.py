"""Creating a run directory and writing what identifies the run (recipe, meta) before work."""

from __future__ import annotations

import os
import platform
import socket
import sys
from datetime import datetime
from pathlib import Path

from kvision import __version__, backend_note
from kvision.errors import KvisionError
from kvision.recipe import Recipe, dump_toml
from kvision.runs import RunWriter


def new_run_dir(runs_dir: str | os.PathLike, recipe_name: str) -> Path:
    """``runs_dir/<YYYYmmdd-HHMMSS>-<name>[-n]``, created exclusively (no two runs share one)."""
    root = Path(runs_dir).expanduser()
    try:
        root.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise KvisionError(f"Cannot create the runs folder '{root}': {exc.strerror}.") from None
    stamp = datetime.now().strftime("%Y%m%d-%H%M%S")
    for n in range(1, 1000):
        path = root / (f"{stamp}-{recipe_name}" + (f"-{n}" if n > 1 else ""))
        try:
            path.mkdir()
            return path
        except FileExistsError:
            continue
    raise KvisionError(f"Too many runs named '{recipe_name}' in '{root}' this second.")


def claim_run_dir(path: str | os.PathLike) -> Path:
    """Use an exact run directory (the TUI chooses it); it must not hold a run already."""
    p = Path(path).expanduser()
    if p.exists() and any(p.iterdir()):
        raise KvisionError(f"--run-dir '{p}' already exists and is not empty; "
                           "choose a new path or use --resume to continue a run.")
    try:
        p.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise KvisionError(f"Cannot create the run directory '{p}': {exc.strerror}.") from None
    return p


def write_identity(writer: RunWriter, recipe: Recipe, *, recipe_path: str | None,
                   overrides: list[str], argv: list[str]) -> None:
    """recipe.toml and meta.json, written before any training starts."""
    writer.write_text("recipe.toml", dump_toml(recipe))
    writer.write_json("meta.json", environment(recipe, recipe_path=recipe_path,
                                               overrides=overrides, argv=argv))


def environment(recipe: Recipe, *, recipe_path: str | None, overrides: list[str],
                argv: list[str]) -> dict:
    """Versions, backend, device, seed, argv, pid and host of this process."""
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
        "device_name": torch.cuda.get_device_name(0) if device == "cuda" else platform.processor() or platform.machine(),
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
