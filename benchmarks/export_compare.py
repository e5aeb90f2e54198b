"""Keras' ONNX exporter called plainly vs kvision's ONNX export vs the torch.export program,
on every zoo architecture (the suite's small configurations), for docs/portable.md.

For each: whether the export succeeds, whether the file takes any batch size, the largest
|difference| to Keras' predictions on 3 seeded random images (onnxruntime, or torch for
.pt2), the file size and the wall time of the export (loaded shared machine: rough).

    python benchmarks/export_compare.py [--arch lenet ...] [--markdown docs/measured/export_compare.md]
"""

from __future__ import annotations

import argparse
import contextlib
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

import kvision  # noqa: F401  (selects the torch backend)

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))  # the small configurations the suite pins


def _model(arch: str, size: tuple[int, int], options: dict):
    import keras

    from kvision.models import create_model

    keras.utils.set_random_seed(0)
    return create_model(
        arch, input_shape=(*size, 3), num_classes=5, preprocess=([0.5] * 3, [0.25] * 3), **options
    )


def _onnx_run(path: Path, x: np.ndarray) -> tuple[bool, np.ndarray]:
    import onnxruntime

    session = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    inp = session.get_inputs()[0]
    dynamic = not isinstance(inp.shape[0], int)
    chunks = [x] if dynamic else [x[i : i + 1] for i in range(len(x))]
    return dynamic, np.concatenate([session.run(None, {inp.name: c})[0] for c in chunks])


def keras_plain(model, path: Path, x: np.ndarray) -> tuple[bool, float]:
    model(x[:1])  # Keras exports only a model that has been called once
    model.export(str(path), format="onnx", verbose=False)
    dynamic, got = _onnx_run(path, x)
    return dynamic, float(np.abs(got - model.predict(x, verbose=0)).max())


def kvision_onnx(model, path: Path, x: np.ndarray) -> tuple[bool, float]:
    from kvision.portable.onnx_export import export_onnx

    export_onnx(model, path)
    dynamic, got = _onnx_run(path, x)
    return dynamic, float(np.abs(got - model.predict(x, verbose=0)).max())


def torch_program(model, path: Path, x: np.ndarray) -> tuple[bool, float]:
    from kvision.portable.torch_export import export_torch, run_program

    export_torch(model, path)
    return True, float(np.abs(run_program(path, x) - model.predict(x, verbose=0)).max())


WAYS = {"keras onnx": (keras_plain, ".onnx"), "kvision onnx": (kvision_onnx, ".onnx")}
WAYS["torch .pt2"] = (torch_program, ".pt2")


def measure(arch: str, folder: Path) -> dict[str, str]:
    from test_models_architectures import SMALL

    size, options = SMALL[arch]
    row = {"arch": arch}
    for name, (way, suffix) in WAYS.items():
        model = _model(arch, size, options)
        x = np.random.default_rng(1).uniform(0, 255, (3, *size, 3)).astype("float32")
        path = folder / f"{arch}-{name.split()[0]}{suffix}"
        started = time.perf_counter()
        try:
            with contextlib.redirect_stdout(sys.stderr):
                dynamic, diff = way(model, path, x)
        except Exception as err:  # noqa: BLE001 - a failed export is a result here
            row[name] = f"fails ({type(err).__name__})"
            continue
        seconds = time.perf_counter() - started
        batch = "any" if dynamic else "1"
        size_kb = path.stat().st_size / 1024
        row[name] = f"ok, batch {batch}, {diff:.1e}, {size_kb:.0f} KiB, {seconds:.1f} s"
    return row


def main() -> None:
    from test_models_architectures import SMALL

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--arch", nargs="*", default=sorted(SMALL))
    parser.add_argument("--markdown", type=Path)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        rows = []
        for arch in args.arch:
            rows.append(measure(arch, Path(tmp)))
            print(rows[-1], flush=True)
    head = ["arch", *WAYS]
    from kvision.bench.stamp import stamp_lines

    lines = [
        "# Export comparison: Keras' ONNX exporter, kvision's ONNX export, torch.export",
        "",
        *stamp_lines(),
        "- note: a shared, loaded 2-core machine: times are rough",
        "",
        "Each cell: success, batch the file takes, max |diff| to Keras on 3 random images, "
        "file size, export wall time.",
        "",
        "| " + " | ".join(head) + " |",
        "| " + " | ".join("---" for _ in head) + " |",
    ]
    lines += ["| " + " | ".join(r.get(h, "") for h in head) + " |" for r in rows]
    text = "\n".join(lines) + "\n"
    if args.markdown:
        args.markdown.parent.mkdir(parents=True, exist_ok=True)
        args.markdown.write_text(text, "utf-8")
    print(text)


if __name__ == "__main__":
    main()
