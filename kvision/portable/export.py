"""``kvision export``: a run's trained models as files to share, each with its sidecar."""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

from kvision.errors import KvisionError, did_you_mean
from kvision.runs import RunReader, is_run_dir
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


def trial_models(run_dir: Path, trial: str | None) -> tuple[dict[str, Path], list[str]]:
    """({trial: model.keras} to export, [trials without a model yet]); errors name why."""
    if not is_run_dir(run_dir):
        raise KvisionError(
            f"'{run_dir}' is not a kvision run directory (no meta.json / events.jsonl)."
        )
    reader = RunReader(run_dir)
    trials = reader.trials()
    models = {t: run_dir / "trials" / t / "model.keras" for t in trials}
    ready = {t: p for t, p in models.items() if p.is_file()}
    waiting = [t for t in trials if t not in ready]
    if trial is not None:
        if trial not in trials:
            raise KvisionError(
                f"Run '{run_dir}' has no trial '{trial}'.{did_you_mean(trial, trials)}"
                f" Its trials: {', '.join(trials) or 'none yet'}."
            )
        if trial not in ready:
            raise KvisionError(_no_model(run_dir, reader, [trial]))
        return {trial: ready[trial]}, []
    if not ready:
        raise KvisionError(_no_model(run_dir, reader, waiting))
    return ready, waiting


def _no_model(run_dir: Path, reader: RunReader, trials: list[str]) -> str:
    names = ", ".join(trials) or "no trial has started"
    if reader.recipe().get("output", {}).get("save_models") is False:
        return (
            f"Run '{run_dir}' saved no models: its recipe sets output.save_models = false. "
            "Run it again without that setting to export."
        )
    status = reader.status()
    why = {
        "running": "the run is still running, and a trial writes its model when it finishes",
        "interrupted": "the run was stopped; finish it with kvision run --resume",
        "stale": "the run stopped without finishing; finish it with kvision run --resume",
        "failed": "the run failed before these trials finished (see its run.log)",
        "finished": "the run finished, so the model files are missing (moved or deleted?)",
    }
    return (
        f"Run '{run_dir}' has no saved model for {names} yet (trials/<trial>/model.keras): "
        f"{why.get(status, 'a trial writes its model when it finishes')}."
    )


def export_run(
    run_dir: str | Path, *, trial: str | None = None, to: str | Path = ".", fmt: str = "keras"
) -> tuple[list[Exported], list[str]]:
    """Export the finished trials (or ``trial``) of a run into ``to``; returns what was written
    and the trials still without a model."""
    if fmt not in FORMATS:
        raise KvisionError(
            f"Unknown export format '{fmt}'.{did_you_mean(fmt, FORMATS)} "
            f"Formats: {', '.join(FORMATS)}."
        )
    run = Path(run_dir).expanduser()
    models, waiting = trial_models(run, trial)
    if fmt == "onnx":
        from kvision.portable.onnx_export import require_onnx

        require_onnx()
    dest = Path(to).expanduser()
    with writing_into(dest):  # into a run directory: as its one writer meanwhile
        return [_export_one(run, name, path, dest, fmt) for name, path in models.items()], waiting


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
