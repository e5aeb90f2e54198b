"""Size of a trial's model.keras with and without optimizer state (docs/portable.md).

Builds a model of a recipe the way a trial does (kvision's factory and compile), trains one
batch so Adam holds its moments, then saves it as kvision 0.1 did (``model.save``: weights
and optimizer) and as a trial now does (``save_for_inference``: weights only).

    python benchmarks/model_size.py [RECIPE] [MODEL]   # default: naive_vs_expert alexnet
"""

from __future__ import annotations

import os
import platform
import sys
import tempfile
from datetime import UTC, datetime
from pathlib import Path

import kvision  # noqa: F401  (selects the torch backend)


def main(recipe_name: str = "naive_vs_expert", model_name: str = "alexnet") -> None:
    import numpy as np

    from kvision.data import load_dataset, normalization
    from kvision.models import create_model
    from kvision.models.inference import save_for_inference
    from kvision.recipe import load_recipe
    from kvision.recipe.shipped import resolve
    from kvision.train.compile import compile_model

    recipe = load_recipe(resolve(recipe_name), ["data.limit_per_class=4"])
    data = load_dataset(recipe.data, recipe.experiment.seed)
    spec = recipe.models[model_name]
    model = create_model(spec.arch, input_shape=data.image_shape, num_classes=data.num_classes,
                         preprocess=normalization(recipe.data, data), **dict(spec.options))
    compile_model(model, recipe.arms[0].stages[0].training, regression=False)
    train = data.splits["train"]
    model.fit(train.images[:8].astype(np.float32), train.labels[:8], epochs=1, verbose=0)
    with tempfile.TemporaryDirectory() as tmp:
        before, after = Path(tmp, "with_optimizer.keras"), Path(tmp, "inference.keras")
        model.save(before)
        save_for_inference(model, after)
        sizes = [os.path.getsize(p) / 1e6 for p in (before, after)]
    print(f"# {datetime.now(UTC):%Y-%m-%d %H:%M} UTC, {platform.machine()}, "
          f"python benchmarks/model_size.py {recipe_name} {model_name}")
    print(f"{recipe_name} / {model_name} ({spec.arch}, input {data.image_shape}): "
          f"model.save {sizes[0]:.1f} MB, save_for_inference {sizes[1]:.1f} MB")


if __name__ == "__main__":
    main(*sys.argv[1:3])
