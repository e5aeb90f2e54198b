"""``kvision export``: a run's trained models as files to share, each with its sidecar."""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

from kvision.errors import KvisionError, did_you_mean
from kvision.portable.target import ModelArg, resolve
from kvision.runs.atomic import atomic_write_json
from kvision.runs.lock import writing_into

FORMATS = ("keras", "onnx", "torch")
#: File suffix of each format.
SUFFIXES = {"keras": ".keras", "onnx": ".onnx", "torch": ".pt2"}


@dataclass
class Exported:
    """One exported trial: the model file, its sidecar, and (ONNX) the checked difference."""

    trial: str
    model: Path
    sidecar: Path
    max_abs_diff: float | None = None
    note: str | None = None
    seconds: float = 0.0  # loading, converting, checking and writing this trial


def export_run(
    run_dir: str | Path, *, trial: str | None = None, to: str | Path = ".", fmt: str = "keras"
) -> tuple[list[Exported], list[str]]:
    """Export the finished trials (or ``trial``) of a run (or of a trial directory) into
    ``to``; returns what was written and the trials still without a model."""
    if fmt not in FORMATS:
        raise KvisionError(
            f"Unknown export format '{fmt}'.{did_you_mean(fmt, FORMATS)} "
            f"Formats: {', '.join(FORMATS)}."
        )
    # A run, not a bare model file: the sidecar is written from the run's records.
    pointed = resolve(ModelArg(run_dir, trial), reads=())
    if fmt == "onnx":
        from kvision.portable.onnx_export import require_onnx

        require_onnx()
    dest = Path(to).expanduser()
    with writing_into(dest):  # into a run directory: as its one writer meanwhile
        done = [
            _export_one(pointed.run_dir, name, path, dest, fmt)
            for name, path in pointed.models.items()
        ]
    return done, pointed.waiting


def _export_one(run: Path, trial: str, path: Path, dest: Path, fmt: str) -> Exported:
    from kvision.models.inference import save_for_inference
    from kvision.portable.loading import load_checked
    from kvision.portable.sidecar import build_sidecar, sidecar_path
    from kvision.runs.disk_space import ensure_space

    # The shared file is at most the trained one (which may hold optimizer state): check the
    # room first, since h5py can crash outright on a full disk.
    ensure_space(dest, path.stat().st_size)
    started = time.perf_counter()
    model = load_checked(path)  # safe mode: proves it loads without running code
    card = build_sidecar(run, trial, model)
    diff = None
    if fmt == "keras":
        # Saved again rather than copied: a model.keras of kvision 0.1 held optimizer state.
        target = save_for_inference(model, dest / f"{trial}.keras")
    elif fmt == "torch":
        from kvision.portable.torch_export import export_torch

        target, card["torch_program"] = export_torch(model, dest / f"{trial}.pt2")
        diff = card["torch_program"]["checked_max_abs_diff"]
    else:
        from kvision.portable.onnx_export import export_onnx

        target, card["onnx"] = export_onnx(model, dest / f"{trial}.onnx")
        diff = card["onnx"]["checked_max_abs_diff"]
    card["file"] = target.name
    sidecar = atomic_write_json(sidecar_path(target), card)
    seconds = time.perf_counter() - started
    return Exported(trial, target, sidecar, diff, card.get("onnx", {}).get("note"), seconds)
