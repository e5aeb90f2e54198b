"""ONNX export through Keras' ``model.export(format="onnx")``, checked with onnxruntime.

The packages are the optional extra ``onnx`` (``pip install 'kvision[onnx]'``): onnx and
onnxscript for the exporter, onnxruntime for the check.
"""

from __future__ import annotations

import contextlib
import importlib.util
import os
import sys
import warnings
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from kvision.errors import KvisionError

if TYPE_CHECKING:
    import keras

#: Packages the ONNX export needs (module names), as the ``onnx`` extra installs them.
PACKAGES = ("onnx", "onnxscript", "onnxruntime")
CHECK_IMAGES = 4


def missing_packages() -> list[str]:
    """The ONNX packages not installed here."""
    return [name for name in PACKAGES if importlib.util.find_spec(name) is None]


def require_onnx() -> None:
    """Raise a KvisionError naming the install command when a package is missing."""
    missing = missing_packages()
    if missing:
        raise KvisionError(
            f"ONNX export needs the packages {', '.join(missing)}, which are not "
            "installed: pip install 'kvision[onnx]' (or pip install onnx "
            "onnxscript onnxruntime)."
        )


def export_onnx(model: keras.Model, path: str | Path) -> tuple[Path, dict[str, Any]]:
    """Write ``model`` as ONNX to ``path`` atomically; returns (path, facts for the sidecar).

    The file is run with onnxruntime on seeded random images and compared with Keras'
    predictions before it replaces an earlier export; the largest difference is recorded.
    """
    from kvision.runs.atomic import atomic_path, commit

    tmp, final = atomic_path(path)
    shape = tuple(int(d) for d in model.inputs[0].shape[1:])
    sample = np.random.default_rng(0).uniform(0, 255, (CHECK_IMAGES, *shape)).astype("float32")
    expected = np.asarray(model.predict(sample, verbose=0))
    try:
        batch = _export(model, tmp, sample)
        facts = check_onnx(tmp, sample, expected)
        commit(tmp, final)
    finally:
        tmp.unlink(missing_ok=True)
    if batch:
        facts["note"] = (
            f"fixed batch of {batch}: the batch-dynamic exporter cannot convert "
            "this model (e.g. adaptive pooling to a size that does not divide "
            "its input), so the graph takes one image per call"
        )
    return final, facts


def _export(model: keras.Model, path: Path, sample: np.ndarray) -> int | None:
    """Export with a dynamic batch; where torch's exporter cannot, with a batch of 1.

    Returns None for a dynamic batch, else the fixed batch size.
    """
    import logging

    import keras

    quiet = logging.getLogger("torch.onnx")
    level = quiet.level
    with warnings.catch_warnings():  # the exporters' tracer chatter is not for users
        warnings.simplefilter("ignore")
        quiet.setLevel(logging.ERROR)
        try:
            model(sample[:1])  # Keras exports only a model that has been called once
            try:
                with _silenced():  # a failing TorchScript export dumps its whole graph
                    model.export(str(path), format="onnx", verbose=False)
                return None
            except Exception:  # noqa: BLE001 - torch's TorchScript exporter: any op it lacks
                path.unlink(missing_ok=True)
            spec = keras.InputSpec(shape=(1, *sample.shape[1:]), dtype="float32")
            model.export(str(path), format="onnx", verbose=False, input_signature=[spec])
            return 1
        finally:
            quiet.setLevel(level)


@contextlib.contextmanager
def _silenced():
    """stdout and stderr to /dev/null at the file-descriptor level (torch's C++ logs too)."""
    sys.stdout.flush()
    sys.stderr.flush()
    saved = [os.dup(1), os.dup(2)]
    null = os.open(os.devnull, os.O_WRONLY)
    try:
        os.dup2(null, 1)
        os.dup2(null, 2)
        yield
    finally:
        sys.stdout.flush()
        sys.stderr.flush()
        os.dup2(saved[0], 1)
        os.dup2(saved[1], 2)
        for fd in (*saved, null):
            os.close(fd)


def check_onnx(path: Path, sample: np.ndarray, expected: np.ndarray) -> dict[str, Any]:
    """Run ``path`` with onnxruntime on ``sample``; names and largest difference to Keras."""
    import onnxruntime

    session = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    (inp,), outputs = session.get_inputs(), session.get_outputs()
    # A graph with a fixed batch of 1 takes the images one by one.
    chunks = [sample[i : i + 1] for i in range(len(sample))] if inp.shape[0] == 1 else [sample]
    got = np.concatenate([session.run(None, {inp.name: c})[0] for c in chunks])
    diff = float(np.max(np.abs(got - expected)))
    return {
        "input_name": inp.name,
        "output_name": outputs[0].name,
        "input_shape": [d if isinstance(d, int) else None for d in inp.shape],
        "checked_max_abs_diff": diff,
        "checked_images": len(sample),
        "onnxruntime": onnxruntime.__version__,
    }
