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
from kvision.portable.target import ModelArg, resolve

BATCH = 32


@dataclass
class Source:
    """The model to predict with: its file, sidecar (or None) and a note for the user."""

    path: Path
    sidecar: dict | None
    run_dir: Path | None = None
    trial: str | None = None
    notes: list[str] = field(default_factory=list)


def resolve_source(arg: ModelArg) -> Source:
    """The one model a MODEL argument (and ``--trial``) names, with its sidecar if a file."""
    from kvision.portable.sidecar import read_sidecar

    pointed = resolve(arg)
    trial, path = pointed.only()
    if pointed.run_dir is None:
        return Source(path, read_sidecar(path))
    return Source(path, None, pointed.run_dir, trial)


class Runner:
    """A model to predict with, whatever its file: input (height, width, channels), class
    count, and logits (or probabilities) for a float32 NHWC batch of 0..255 pixels."""

    def __init__(self, path: Path, shape: list, classes: int, run) -> None:
        self.path = path
        image = len(shape) == 3
        self.size = (int(shape[0]), int(shape[1])) if image and shape[0] and shape[1] else None
        self.channels = int(shape[2]) if image else 0
        self.classes = classes
        self.rank = len(shape) + 1
        self._run = run

    def __call__(self, batch: np.ndarray) -> np.ndarray:
        return np.asarray(self._run(batch), dtype=np.float64)


def _keras_runner(path: Path) -> Runner:
    from kvision.portable.loading import load_checked

    model = load_checked(path)
    _one_image_in_one_vector_out(model, path)
    return Runner(
        path,
        list(model.inputs[0].shape[1:]),
        int(model.outputs[0].shape[-1]),
        lambda x: model.predict(x, verbose=0),
    )


def _one_image_in_one_vector_out(model: Any, path: Path) -> None:
    """A classifier kvision can drive: one input and one output of class scores (a shared
    model with two inputs or a spatial output is refused here, not deep inside Keras)."""
    _one_in_one_out(model.inputs, model.outputs, path)
    shape = tuple(model.outputs[0].shape)
    if len(shape) != 2:
        raise KvisionError(f"{_NOT_A_CLASSIFIER.format(path=path)} output(s) of shape {shape[1:]}.")


#: The start of every refusal of a model predict cannot drive.
_NOT_A_CLASSIFIER = (
    "'{path}' is not a classifier kvision predict can use: it needs one image input and one "
    "output of class scores, and this model has"
)


def _one_in_one_out(inputs: list, outputs: list, path: Path) -> tuple[Any, Any]:
    """The single input and output of an exported classifier (.onnx, .pt2); any other count
    is one paragraph, as for a .keras file, not an unpacking error."""
    if len(inputs) != 1 or len(outputs) != 1:
        raise KvisionError(
            f"{_NOT_A_CLASSIFIER.format(path=path)} {len(inputs)} input(s) and "
            f"{len(outputs)} output(s)."
        )
    return inputs[0], outputs[0]


def _class_count(dim: Any, path: Path) -> int:
    """The class count from the output's last dimension, which must be a fixed number."""
    if not isinstance(dim, int):
        raise KvisionError(
            f"'{path}' is not a classifier kvision predict can use: its output's last "
            f"dimension is {dim!r}, not a fixed number of classes."
        )
    return dim


def _onnx_runner(path: Path) -> Runner:
    from kvision.portable.onnx_export import require_onnx

    require_onnx()
    import onnxruntime

    try:
        session = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    except Exception as err:  # noqa: BLE001 - onnxruntime raises its own untyped errors
        raise KvisionError(f"Cannot load '{path}' as an ONNX model: {err}") from None
    inp, out = _one_in_one_out(session.get_inputs(), session.get_outputs(), path)
    shape = [d if isinstance(d, int) else None for d in inp.shape[1:]]

    def run(x: np.ndarray) -> np.ndarray:
        if inp.shape[0] == 1:  # a graph fixed to one image takes them one by one
            return np.concatenate(
                [session.run(None, {inp.name: x[i : i + 1]})[0] for i in range(len(x))]
            )
        return session.run(None, {inp.name: x})[0]

    return Runner(path, shape, _class_count(out.shape[-1], path), run)


def _torch_runner(path: Path) -> Runner:
    import torch

    from kvision.portable.torch_export import run_program

    try:
        program = torch.export.load(str(path))
    except Exception as err:  # noqa: BLE001 - torch's loader raises many kinds
        raise KvisionError(f"Cannot load '{path}' as a torch.export program: {err}") from None
    specs = [s for s in program.graph_signature.input_specs if s.kind.name == "USER_INPUT"]
    outputs = list(next(n for n in program.graph.nodes if n.op == "output").args[0])
    spec, out = _one_in_one_out(specs, outputs, path)
    node = next(n for n in program.graph.nodes if n.name == spec.arg.name)
    shape = [int(d) if isinstance(d, int) else None for d in node.meta["val"].shape[1:]]
    classes = _class_count(out.meta["val"].shape[-1], path)
    return Runner(path, shape, classes, lambda x: run_program(path, x))


RUNNERS = {".keras": _keras_runner, ".onnx": _onnx_runner, ".pt2": _torch_runner}


def load(source: Source) -> Runner:
    """Load the model (a .keras file in safe mode); fill in the sidecar from the run."""
    runner = RUNNERS[source.path.suffix](source.path)
    if source.sidecar is None and source.run_dir is not None:
        from kvision.portable.loading import load_checked
        from kvision.portable.sidecar import build_sidecar

        source.sidecar = build_sidecar(source.run_dir, source.trial, load_checked(source.path))
    if source.sidecar is None:
        source.notes.append(
            f"note: '{source.path}' has no kvision sidecar "
            f"({source.path.name}.json), so classes are shown by index."
        )
    if runner.rank != 4 or (source.sidecar or {}).get("task") == "regression":
        raise KvisionError(
            f"'{source.path}' does not classify images; kvision predict needs an image classifier."
        )
    return runner


def predict(model: Runner, files: list[Path], top: int) -> list[dict]:
    """Top-``top`` (class index, probability) pairs per file."""
    from kvision.data.image_files import read_image
    from kvision.models.inference import probabilities

    results = []
    step = BATCH if model.size else 1  # without a fixed input size each image goes alone
    for start in range(0, len(files), step):
        chunk = files[start : start + step]
        batch = np.stack([read_image(f, model.size, model.channels) for f in chunk])
        probs = probabilities(model(batch.astype("float32")))
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
