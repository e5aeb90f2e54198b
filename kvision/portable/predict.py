"""``kvision predict``: classify image files with an exported or trained model.

MODEL is an exported ``.keras`` file (its sidecar ``<file>.json`` gives the class names), a
trial directory, or a run directory (with ``--trial`` when it has several models). Images are
read with OpenCV, converted to the model's channels and resized to its input, as
``kvision viz`` does; the model normalises them itself.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from kvision.errors import KvisionError

BATCH = 32


@dataclass
class Source:
    """The model to predict with: its file, sidecar (or None) and a note for the user."""

    path: Path
    sidecar: dict | None
    run_dir: Path | None = None
    trial: str | None = None
    notes: list[str] = field(default_factory=list)


def resolve_source(target: str, trial: str | None) -> Source:
    """Find the ``.keras`` file and its sidecar for a MODEL argument."""
    from kvision.portable.sidecar import read_sidecar
    from kvision.runs import is_run_dir

    path = Path(target).expanduser()
    if not path.exists():
        raise KvisionError(
            f"Model '{target}' does not exist. MODEL is an exported .keras file, "
            "a trial directory (runs/<run>/trials/<trial>) or a run directory."
        )
    if path.is_file():
        if path.suffix != ".keras":
            raise KvisionError(
                f"'{target}' is not a .keras model. kvision predict reads .keras "
                "files (an .onnx export runs with onnxruntime directly)."
            )
        return Source(path, read_sidecar(path))
    if (path / "model.keras").is_file() and is_run_dir(path.parent.parent):
        return Source(path / "model.keras", None, path.parent.parent, path.name)
    if is_run_dir(path):
        return _from_run(path, trial)
    raise KvisionError(
        f"'{target}' is a folder but neither a kvision run directory nor a trial "
        "directory with a model.keras."
    )


def _from_run(run_dir: Path, trial: str | None) -> Source:
    from kvision.portable.export import trial_models

    models, _ = trial_models(run_dir, trial)
    if len(models) > 1:
        raise KvisionError(
            f"Run '{run_dir}' has {len(models)} trained models; choose one with "
            f"--trial: {', '.join(models)}."
        )
    ((name, path),) = models.items()
    return Source(path, None, run_dir, name)


def load(source: Source) -> Any:
    """Load the model (safe mode); fill in the sidecar from the run when there is one."""
    from kvision.portable.loading import load_checked

    model = load_checked(source.path)
    if source.sidecar is None and source.run_dir is not None:
        from kvision.portable.sidecar import build_sidecar

        source.sidecar = build_sidecar(source.run_dir, source.trial, model)
    if source.sidecar is None:
        source.notes.append(
            f"note: '{source.path}' has no kvision sidecar "
            f"({source.path.name}.json), so classes are shown by index."
        )
    if len(model.inputs[0].shape) != 4 or (source.sidecar or {}).get("task") == "regression":
        raise KvisionError(
            f"'{source.path}' does not classify images (its input is "
            f"{tuple(model.inputs[0].shape[1:])}); kvision predict needs an image "
            "classifier."
        )
    return model


def predict(model: Any, files: list[Path], top: int) -> list[dict]:
    """Top-``top`` (class index, probability) pairs per file."""
    from kvision.data.image_files import read_image
    from kvision.insight.cam import probabilities

    _, h, w, c = model.inputs[0].shape
    size = (int(h), int(w)) if h and w else None
    results = []
    step = BATCH if size else 1  # without a fixed input size each image goes alone
    for start in range(0, len(files), step):
        chunk = files[start : start + step]
        batch = np.stack([read_image(f, size, int(c)) for f in chunk]).astype("float32")
        probs = probabilities(np.asarray(model.predict(batch, verbose=0), dtype=np.float64))
        for f, row in zip(chunk, probs, strict=True):
            order = np.argsort(-row, kind="stable")[:top]
            results.append({"image": str(f), "top": [(int(i), float(row[i])) for i in order]})
    return results


def check_top(top: int, classes: int) -> int:
    """--top clamped to the number of classes; below 1 is a mistake."""
    if top < 1:
        raise KvisionError(f"--top must be at least 1, got {top}.")
    return min(top, classes)


def class_label(sidecar: dict | None, index: int) -> str:
    """The class name of ``index`` from the sidecar, or the index itself."""
    names = (sidecar or {}).get("class_names") or []
    return names[index] if index < len(names) else str(index)


def format_table(results: list[dict], sidecar: dict | None) -> str:
    """One row per image and rank, aligned columns."""
    rows = [("image", "rank", "class", "probability")]
    for r in results:
        for rank, (index, p) in enumerate(r["top"], 1):
            rows.append(
                (
                    r["image"] if rank == 1 else "",
                    str(rank),
                    class_label(sidecar, index),
                    f"{p:.4f}",
                )
            )
    widths = [max(len(row[i]) for row in rows) for i in range(4)]
    return "\n".join(
        f"{a:<{widths[0]}}  {b:>{widths[1]}}  {c:<{widths[2]}}  {d:>{widths[3]}}".rstrip()
        for a, b, c, d in rows
    )


def format_json(results: list[dict], source: Source) -> str:
    """The predictions for machines: model, whether class names are known, top-k per image."""
    sidecar = source.sidecar
    named = bool((sidecar or {}).get("class_names"))
    out = {
        "model": str(source.path),
        "class_names_known": named,
        "predictions": [
            {
                "image": r["image"],
                "top": [
                    {
                        "rank": k,
                        "index": i,
                        "class": class_label(sidecar, i) if named else None,
                        "probability": round(p, 6),
                    }
                    for k, (i, p) in enumerate(r["top"], 1)
                ],
            }
            for r in results
        ],
    }
    return json.dumps(out, indent=2)
