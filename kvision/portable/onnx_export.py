"""ONNX export through Keras' ``model.export(format="onnx")``, checked with onnxruntime.

The packages are the optional extra ``onnx`` (``pip install 'kvision[onnx]'``): onnx and
onnxscript for the exporter, onnxruntime for the check.
"""

from __future__ import annotations

import importlib.util
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
        raise KvisionError(f"ONNX export needs the packages {', '.join(missing)}, which are not "
                           "installed: pip install 'kvision[onnx]' (or pip install onnx "
                           "onnxscript onnxruntime).")


def export_onnx(model: keras.Model, path: str | Path) -> tuple[Path, dict[str, Any]]:
    """Write ``model`` as ONNX to ``path`` atomically; returns (path, facts for the sidecar).

    The file is run with onnxruntime on seeded random images and compared with Keras'
    predictions before it replaces an earlier export; the largest difference is recorded.
    """
    from kvision.runs.atomic import atomic_path

    tmp, final = atomic_path(path)
    shape = tuple(int(d) for d in model.inputs[0].shape[1:])
    sample = np.random.default_rng(0).uniform(0, 255, (CHECK_IMAGES, *shape)).astype("float32")
    expected = np.asarray(model.predict(sample, verbose=0))
    try:
        with warnings.catch_warnings():  # the exporters' tracer chatter is not for users
            warnings.simplefilter("ignore")
            model(sample[:1])  # Keras exports only a model that has been called once
            model.export(str(tmp), format="onnx", verbose=False)
        facts = check_onnx(tmp, sample, expected)
        tmp.replace(final)
    finally:
        tmp.unlink(missing_ok=True)
    return final, facts


def check_onnx(path: Path, sample: np.ndarray, expected: np.ndarray) -> dict[str, Any]:
    """Run ``path`` with onnxruntime on ``sample``; names and largest difference to Keras."""
    import onnxruntime

    session = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    (inp,), outputs = session.get_inputs(), session.get_outputs()
    got = session.run(None, {inp.name: sample})[0]
    diff = float(np.max(np.abs(got - expected)))
    return {"input_name": inp.name, "output_name": outputs[0].name,
            "input_shape": [d if isinstance(d, int) else None for d in inp.shape],
            "checked_max_abs_diff": diff, "checked_images": len(sample),
            "onnxruntime": onnxruntime.__version__}
