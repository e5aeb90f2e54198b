"""``kvision export --format torch``: a torch ``ExportedProgram`` (``.pt2``) through Keras'
own exporter (``model.export(format="torch")``, Keras 3.15), with a dynamic batch.

The file is loaded back with ``torch.export.load`` and run on seeded random images before it
replaces an earlier export; the largest difference to Keras' predictions goes into the
sidecar. Whoever receives it needs torch only: ``torch.export.load(path).module()(x)`` with
``x`` a float32 NHWC batch of raw 0..255 pixels (the model normalises them itself).
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from kvision.errors import KvisionError

if TYPE_CHECKING:
    import keras

CHECK_IMAGES = 4
#: The largest batch the program accepts (torch.export needs a bound for a dynamic size).
MAX_BATCH = 4096
#: The first Keras whose model.export knows format="torch" (kvision supports Keras 3.14 on).
KERAS_WITH_TORCH_EXPORT = (3, 15)


def keras_exports_torch() -> bool:
    """Whether the installed Keras can write a torch ExportedProgram."""
    import keras

    major, minor = (int(part) for part in keras.version().split(".")[:2])
    return (major, minor) >= KERAS_WITH_TORCH_EXPORT


def export_torch(model: keras.Model, path: str | Path) -> tuple[Path, dict[str, Any]]:
    """Write ``model`` as a ``.pt2`` ExportedProgram atomically; returns (path, sidecar facts)."""
    import keras
    import torch

    from kvision.runs.atomic import atomic_path, commit

    if keras.backend.backend() != "torch":
        raise KvisionError(
            "kvision export --format torch writes a torch ExportedProgram, which needs the "
            f"torch backend; this process runs Keras on {keras.backend.backend()} "
            "(unset KERAS_BACKEND or set it to torch)."
        )
    if not keras_exports_torch():
        raise KvisionError(
            "kvision export --format torch uses Keras' own exporter of torch ExportedPrograms, "
            f"which Keras has from version 3.15; this environment has Keras {keras.version()}. "
            "Upgrade Keras (pip install -U keras), or export --format keras or onnx."
        )
    tmp, final = atomic_path(path)
    shape = tuple(int(d) for d in model.inputs[0].shape[1:])
    sample = np.random.default_rng(0).uniform(0, 255, (CHECK_IMAGES, *shape)).astype("float32")
    expected = np.asarray(model.predict(sample, verbose=0))
    batch = torch.export.Dim("batch", min=1, max=MAX_BATCH)
    try:
        model.export(str(tmp), format="torch", verbose=False, dynamic_shapes={0: batch})
        got = run_program(tmp, sample)
        commit(tmp, final)
    finally:
        tmp.unlink(missing_ok=True)
    return final, {
        "loader": "torch.export.load(path).module()(x): x float32 NHWC, pixels 0..255",
        "batch": f"dynamic, 1..{MAX_BATCH}",
        "checked_max_abs_diff": float(np.max(np.abs(got - expected))),
        "checked_images": CHECK_IMAGES,
        "torch": torch.__version__,
    }


def run_program(path: str | Path, batch: np.ndarray) -> np.ndarray:
    """The outputs of the ``.pt2`` program at ``path`` for a float32 NHWC ``batch``."""
    import torch

    program = torch.export.load(str(path)).module()
    with torch.no_grad():
        out = program(torch.from_numpy(np.ascontiguousarray(batch, dtype=np.float32)))
    return out.detach().cpu().numpy()
