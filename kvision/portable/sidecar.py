"""The JSON sidecar of an exported model: what its inputs and outputs mean.

A ``.keras`` (or ``.onnx``) file holds a graph and weights; whoever receives it also needs
the class names, the input it expects and how it was trained. The sidecar sits beside the
model as ``<model file>.json`` (``lenet-expert.keras.json``), so a ``.keras`` and an
``.onnx`` export of one trial can share a folder. It is built from the run directory's
events and recipe and from the model itself (input shape, the ``preprocess`` layer's
constants), never retyped. Format: docs/portable.md.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Any

from kvision.runs import RunReader

if TYPE_CHECKING:
    import keras

FORMAT = "kvision-model/1"


def sidecar_path(model_path: str | Path) -> Path:
    """Where the sidecar of ``model_path`` lives: the same name plus ``.json``."""
    p = Path(model_path)
    return p.with_name(p.name + ".json")


def read_sidecar(model_path: str | Path) -> dict | None:
    """The sidecar of ``model_path``, or None when there is none (or it is not kvision's)."""
    try:
        data = json.loads(sidecar_path(model_path).read_text("utf-8"))
    except (OSError, json.JSONDecodeError, UnicodeDecodeError):
        return None
    return data if isinstance(data, dict) and data.get("format") == FORMAT else None


def build_sidecar(run_dir: str | Path, trial: str, model: keras.Model) -> dict[str, Any]:
    """The sidecar of ``trial`` of the run at ``run_dir``, whose saved model is ``model``."""
    reader = RunReader(run_dir)
    loaded = _last(reader.of("data_loaded"))
    started = _last([e for e in reader.of("trial_started") if e.get("trial") == trial])
    meta = reader.meta()
    regression = bool(reader.recipe().get("data", {}).get("regression"))
    card = {
        "format": FORMAT,
        "run": Path(run_dir).resolve().name,
        "trial": trial,
        "model": started.get("model"),
        "arch": started.get("arch"),
        "arm": started.get("arm"),
        "seed": started.get("seed"),
        "task": "regression" if regression else "classification",
        "dataset": loaded.get("dataset"),
        "class_names": None if regression else loaded.get("class_names"),
        "input": input_description(model),
        "preprocessing": preprocessing(model),
        "output": _output(model, regression),
        "trained_on": trained_on(reader, trial),
        "final_metrics": final_metrics(reader, trial),
        "trained_with": {k: meta.get(k) for k in ("kvision", "keras", "backend", "torch")},
        "exported_with": versions(),
    }
    return card


def input_description(model: keras.Model) -> dict[str, Any]:
    """Shape, channels and value range of the model's input."""
    shape = [None if d is None else int(d) for d in model.inputs[0].shape[1:]]
    info: dict[str, Any] = {
        "shape": shape,
        "layout": "NHWC" if len(shape) == 3 else "features",
        "dtype": "float32",
    }
    if len(shape) == 3:
        info["channels"] = shape[2]
        info["color"] = {1: "gray", 3: "RGB"}.get(shape[2], f"{shape[2]} channels")
        info["pixel_range"] = [0, 255]
    return info


def preprocessing(model: keras.Model) -> dict[str, Any]:
    """What happens to pixels before the model and inside it (the ``preprocess`` layer)."""
    steps: dict[str, Any] = {
        "outside_model": "decode to RGB (or gray by ITU-R BT.601 luma), resize to the input "
        "height x width with OpenCV (INTER_AREA to shrink, INTER_LINEAR to "
        "enlarge; no crop), keep raw 0..255 values as float32",
    }
    try:
        layer = model.get_layer("preprocess")
    except ValueError:
        steps["inside_model"] = None
        return steps
    cfg = layer.get_config()
    scale, offset = _per_channel(cfg.get("scale")), _per_channel(cfg.get("offset"))
    # The layer computes x * scale + offset with scale = 1/(255 std), offset = -mean/std.
    std = [1.0 / (255.0 * s) for s in scale]
    mean = [-o * d for o, d in zip(offset, std, strict=False)] if len(offset) == len(std) else None
    steps["inside_model"] = {
        "layer": "preprocess",
        "formula": "(x / 255 - mean) / std",
        "mean": _rounded(mean),
        "std": _rounded(std),
    }
    return steps


def _output(model: keras.Model, regression: bool) -> dict[str, Any]:
    units = int(model.outputs[0].shape[-1])
    if regression:
        return {"units": units, "kind": "value"}
    return {"units": units, "kind": "logits", "note": "softmax gives class probabilities"}


def trained_on(reader: RunReader, trial: str) -> list[dict[str, Any]]:
    """The trial's stages in order: condition (with its recipe settings) and epochs run."""
    conditions = reader.recipe().get("conditions", {})
    ended = {e.get("stage"): e for e in reader.of("stage_ended") if e.get("trial") == trial}
    stages = []
    for e in reader.of("stage_started"):
        if e.get("trial") != trial:
            continue
        run = ended.get(e.get("stage"), {})
        stages.append(
            {
                "stage": e.get("stage"),
                "condition": e.get("condition"),
                "condition_settings": conditions.get(e.get("condition"), {}),
                "epochs": e.get("epochs"),
                "epochs_run": run.get("epochs_run"),
                "stopped_early": run.get("stopped_early"),
            }
        )
    return stages


def final_metrics(reader: RunReader, trial: str) -> dict[str, Any] | None:
    """The trial's last evaluation: checkpoint, metric and condition x split matrix."""
    last = _last([e for e in reader.evaluations() if e.get("trial") == trial])
    if not last:
        return None
    keys = ("checkpoint", "metric", "matrix", "loss", "scores")
    return {k: last[k] for k in keys if k in last}


def versions() -> dict[str, str]:
    """kvision, Keras and backend versions of this process."""
    import importlib

    import keras

    from kvision import __version__

    backend = keras.backend.backend()
    found = {"kvision": __version__, "keras": keras.__version__, "backend": backend}
    module = {"tensorflow": "tensorflow", "jax": "jax", "torch": "torch"}.get(backend)
    if module:
        found[backend] = importlib.import_module(module).__version__
    return found


def _per_channel(value: Any) -> list[float]:
    if isinstance(value, dict):  # a serialized array
        value = value.get("config", {}).get("value", value.get("value"))
    if isinstance(value, (int, float)):
        return [float(value)]
    return [float(v) for v in (value or [])]


def _rounded(values: list[float] | None) -> list[float] | None:
    return None if values is None else [round(v, 6) for v in values]


def _last(events: list[dict]) -> dict:
    return events[-1] if events else {}
