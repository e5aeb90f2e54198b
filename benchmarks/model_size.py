"""A shipped recipe's model as it travels: file sizes, ONNX and JAX agreement (docs/portable.md).

Builds a model of a recipe the way a trial does (kvision's factory and compile), trains one
batch so Adam holds its moments, then saves it as kvision 0.1 did (``model.save``: weights
and optimizer) and as a trial now does (``save_for_inference``: weights only). When the
``onnx`` extra is installed it exports ONNX and compares onnxruntime with Keras; when JAX is
installed it loads the ``.keras`` file under ``KERAS_BACKEND=jax`` in a subprocess and
compares its predictions with torch's. Inputs: 16 seeded random images.

    python benchmarks/model_size.py [--recipe naive_vs_expert] [--model alexnet] [--markdown OUT]
"""

from __future__ import annotations

import argparse
import importlib.util
import os
import subprocess
import sys
import tempfile
from pathlib import Path

import kvision  # noqa: F401  (selects the torch backend)

JAX_PREDICT = """
import sys
import numpy as np
import kvision
from kvision.models import load_model
x = np.load(sys.argv[2])
np.save(sys.argv[3], np.asarray(load_model(sys.argv[1]).predict(x, verbose=0)))
"""


def trained_model(recipe_name: str, model_name: str):
    """(model after one training batch, its input shape, arch) for a recipe's model."""
    import numpy as np

    from kvision.data import load_dataset, normalization
    from kvision.models import create_model
    from kvision.recipe import load_recipe
    from kvision.recipe.shipped import resolve
    from kvision.train.compile import compile_model

    recipe = load_recipe(resolve(recipe_name), ["data.limit_per_class=4"])
    data = load_dataset(recipe.data, recipe.experiment.seed)
    spec = recipe.models[model_name]
    model = create_model(
        spec.arch,
        input_shape=data.image_shape,
        num_classes=data.num_classes,
        preprocess=normalization(recipe.data, data),
        **dict(spec.options),
    )
    compile_model(model, recipe.arms[0].stages[0].training, regression=False)
    train = data.splits["train"]
    model.fit(train.images[:8].astype(np.float32), train.labels[:8], epochs=1, verbose=0)
    return model, data.image_shape, spec.arch


def jax_difference(path: Path, x, expected, tmp: str) -> float:
    """Largest |difference| of the file's predictions under JAX from ``expected``."""
    import numpy as np

    np.save(f"{tmp}/x.npy", x)
    subprocess.run(
        [sys.executable, "-c", JAX_PREDICT, str(path), f"{tmp}/x.npy", f"{tmp}/y.npy"],
        env={**os.environ, "KERAS_BACKEND": "jax"},
        check=True,
        capture_output=True,
    )
    return float(np.abs(np.load(f"{tmp}/y.npy") - expected).max())


def measure(recipe_name: str, model_name: str) -> list[tuple[str, str]]:
    import numpy as np

    from kvision.models.inference import save_for_inference

    model, shape, arch = trained_model(recipe_name, model_name)
    x = np.random.default_rng(0).uniform(0, 255, (16, *shape)).astype("float32")
    expected = np.asarray(model.predict(x, verbose=0))
    rows = [("model", f"{recipe_name} / {model_name} ({arch}, input {tuple(shape)})")]
    with tempfile.TemporaryDirectory() as tmp:
        before, after = Path(tmp, "with_optimizer.keras"), Path(tmp, "inference.keras")
        model.save(before)
        save_for_inference(model, after)
        rows += [
            (
                "model.save (kvision 0.1: weights + Adam state)",
                f"{before.stat().st_size / 1e6:.1f} MB",
            ),
            ("trial model.keras now (save_for_inference)", f"{after.stat().st_size / 1e6:.1f} MB"),
        ]
        from kvision.portable.onnx_export import export_onnx, missing_packages

        if not missing_packages():
            _, facts = export_onnx(model, Path(tmp, "model.onnx"))
            batch = "fixed batch 1" if facts.get("note") else "dynamic batch"
            rows.append(
                (
                    "ONNX (onnxruntime) vs Keras, max abs diff of logits",
                    f"{facts['checked_max_abs_diff']:.2e} ({facts['checked_images']} "
                    f"images; {batch})",
                )
            )
        if importlib.util.find_spec("jax") is not None:
            rows.append(
                (
                    "the .keras file under JAX vs torch, max abs diff of logits",
                    f"{jax_difference(after, x, expected, tmp):.2e} (16 images)",
                )
            )
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--recipe", default="naive_vs_expert")
    parser.add_argument("--model", default="alexnet")
    parser.add_argument("--markdown", metavar="OUT", help="also write the table, stamped, here")
    parser.add_argument("--note", help="a note for the stamp (e.g. the machine was shared)")
    args = parser.parse_args()
    rows = measure(args.recipe, args.model)
    body = "\n".join(["| what | measured |", "|---|---|", *(f"| {a} | {b} |" for a, b in rows)])
    print(body)
    if args.markdown:
        from kvision.bench.stamp import write_markdown

        write_markdown(
            args.markdown, "A shared model (benchmarks/model_size.py)", body, note=args.note
        )


if __name__ == "__main__":
    main()
