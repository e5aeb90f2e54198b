"""What ``import kvision`` does to Keras' import: LRN registered, JAX kept out on torch,
``torch._dynamo`` loaded only when something uses it.

Run in fresh interpreters, since Keras and JAX are imported once per process.
"""

from __future__ import annotations

import importlib.util
import json
import os
from pathlib import Path

import pytest
from conftest import pythons_at_once

pytestmark = pytest.mark.slow  # fresh interpreters importing Keras, torch and JAX (~10 s at once)
HAS_JAX = importlib.util.find_spec("jax") is not None

PROBE = """
import json, sys
import kvision, keras
before = 'jax' in sys.modules
import jax  # still importable afterwards
print(json.dumps({"jax_at_import": before, "jax_later": 'jax' in sys.modules,
                  "backend": keras.backend.backend()}))
"""


@pytest.mark.skipif(not HAS_JAX, reason="JAX is not installed")
def test_torch_keras_does_not_import_jax(probes):
    """Keras' Orbax callback module would import JAX (115 MiB resident) on any backend."""
    seen = probes["jax_on_torch"]
    assert seen == {"jax_at_import": False, "jax_later": True, "backend": "torch"}


@pytest.mark.skipif(not HAS_JAX, reason="JAX is not installed")
def test_jax_backend_imports_jax_as_usual(probes):
    seen = probes["jax_on_jax"]
    assert seen == {"jax_at_import": True, "jax_later": True, "backend": "jax"}


DEFERRED_PROBE = """
import json, sys, tempfile
import numpy as np
import kvision, keras
from kvision.models import create_model

HEAVY = ("matplotlib", "sklearn", "scipy", "h5py", "cv2")
seen = {}
model = create_model("lenet", input_shape=(28, 28, 1), num_classes=10)
model.compile(optimizer="adam", loss="sparse_categorical_crossentropy")
x = np.random.default_rng(0).integers(0, 256, (8, 28, 28, 1)).astype("float32")
model.fit(x, np.arange(8) % 10, epochs=1, verbose=0)
seen["trained"] = sorted(m for m in HEAVY if m in sys.modules)
seen["dynamo_at_fit"] = "torch._dynamo" in sys.modules
with tempfile.TemporaryDirectory() as folder:
    model.save(folder + "/m.keras")
    keras.saving.load_model(folder + "/m.keras")
seen["saved"] = sorted(m for m in HEAVY if m in sys.modules)
seen["ml_dtypes_loaded"] = type(sys.modules.get("ml_dtypes")).__name__ == "module"
half = keras.ops.convert_to_numpy(keras.ops.ones((2,), dtype="bfloat16"))
seen["bfloat16"] = [half.dtype.name, half.tolist()]
seen["ml_dtypes_used"] = type(sys.modules.get("ml_dtypes")).__name__ == "module"
seen["wrapper"] = keras.wrappers.SKLearnClassifier.__name__
seen["gallery"] = keras.visualization.plot_image_gallery.__name__
seen["touched"] = sorted(m for m in HEAVY if m in sys.modules)
print(json.dumps(seen))
"""


def test_training_loads_no_plotting_sklearn_scipy_h5py(probes):
    """Keras' visualization, sklearn wrappers and legacy .h5 module load only when used.

    Their libraries were 119 MiB of ``import kvision, keras``'s 443 MiB peak RSS; a model
    built, trained, saved and loaded needs h5py only from its save on. The deferred Keras
    modules still work when touched. Plain ``model.compile`` + ``fit`` builds its loss on
    torch's meta device, which imports torch._dynamo; that import probes every module's
    ``__file__`` (inspect.getmodule), and the deferred modules answer without loading.
    """
    seen = probes["deferred"]
    assert seen["dynamo_at_fit"]  # the probe above ran, so "trained" below says something
    assert seen["trained"] == []
    assert seen["saved"] == ["h5py"]
    # ml_dtypes (0.7 s to import at 0.7.0) waits for a bfloat16 tensor, then works as ever
    assert not seen["ml_dtypes_loaded"] and seen["ml_dtypes_used"]
    assert seen["bfloat16"] == ["bfloat16", [1.0, 1.0]]
    assert (seen["wrapper"], seen["gallery"]) == ("SKLearnClassifier", "plot_image_gallery")
    assert {"matplotlib", "sklearn", "scipy"} <= set(seen["touched"])


NO_INSIGHT_RECIPE = """\
[experiment]
name = "no_insight"
seed = 1
[data]
source = "builtin:fashion7k"
image_size = [28, 28]
val_fraction = 0.1
limit_per_class = 6
[conditions.clear]
[models.lenet]
arch = "lenet"
[[arms]]
name = "plain"
stages = [{ name = "train", condition = "clear", epochs = 1 }]
[evaluate]
conditions = ["clear"]
splits = ["test"]
[insight]
enabled = false
"""

RUN_PROBE = """
import json, sys
from kvision.cli import main
code = main(["run", sys.argv[1], "--runs-dir", sys.argv[2]])
print(json.dumps({"code": code, "matplotlib": "matplotlib" in sys.modules,
                  "dynamo": "torch._dynamo" in sys.modules,
                  "ml_dtypes": type(sys.modules.get("ml_dtypes")).__name__ == "module"}))
"""

#: Run with and without kvision: Keras' two seed helpers that carry torch.compile's
#: "do not trace" marker, whether torch._dynamo came with Keras' import, and a compiled
#: function that draws Keras random numbers (the helpers' reason for the marker).
DYNAMO_PROBE = """
import json, sys
if sys.argv[1] == "kvision":
    import kvision
import keras, torch
from keras.src.backend.torch import image, random

def marks():
    return [
        sorted(k for k in vars(f) if k.startswith("_torchdynamo") and k != "_torchdynamo_wrapper_id")
        for f in (random.torch_seed_generator, image._torch_seed_generator)
    ]

seen = {"loaded_with_keras": "torch._dynamo" in sys.modules, "marks_before": marks()}
seed = keras.random.SeedGenerator(3)

@torch.compile(backend="eager")
def noisy(x):
    return x + keras.random.normal((4,), seed=seed)

seen["finite"] = bool(torch.isfinite(noisy(torch.zeros(4))).all())
seen["marks"] = marks()
print(json.dumps(seen))
"""


@pytest.fixture(scope="module")
def probes(tmp_path_factory) -> dict:
    """Every probe of this module, each in its own fresh interpreter, started at once:
    {name: the JSON its last line printed}; the no-insight run's folder under "runs"."""
    folder = tmp_path_factory.mktemp("imports")
    recipe = folder / "no_insight.toml"
    recipe.write_text(NO_INSIGHT_RECIPE, "utf-8")
    torch = {**os.environ, "KERAS_BACKEND": "torch"}
    children = {
        "deferred": (["-c", DEFERRED_PROBE], torch),
        # the default render mode: with insight off no drawing worker starts either
        "run": (
            ["-c", RUN_PROBE, str(recipe), str(folder / "runs")],
            {**torch, "KVISION_RENDER": "worker"},
        ),
        "dynamo_kvision": (["-c", DYNAMO_PROBE, "kvision"], torch),
        "dynamo_stock": (["-c", DYNAMO_PROBE, "stock"], torch),
    }
    if HAS_JAX:
        children["jax_on_torch"] = (["-c", PROBE], torch)
        children["jax_on_jax"] = (["-c", PROBE], {**os.environ, "KERAS_BACKEND": "jax"})
    seen = {
        name: json.loads(done.stdout.strip().splitlines()[-1])
        for name, done in pythons_at_once(children).items()
    }
    return {**seen, "runs": folder / "runs"}


def test_run_without_insight_loads_no_matplotlib(probes):
    """A run with [insight] off trains, evaluates and writes report.md without Matplotlib
    (nor ml_dtypes, which only bfloat16, float8 or int4 values need)."""
    assert probes["run"] == {"code": 0, "matplotlib": False, "dynamo": False, "ml_dtypes": False}
    (run,) = Path(probes["runs"]).iterdir()
    assert not (run / "figure_jobs").exists()
    assert "## " in (run / "report.md").read_text("utf-8")


def test_dynamo_deferred_until_used_then_helpers_marked_as_stock_keras(probes):
    """Keras' import with kvision leaves torch._dynamo out (1.1 s and 72 MiB); the first
    real import of it (here torch.compile) gives Keras' seed helpers the same "do not trace"
    marker stock Keras gives them at its import, so compiled code meets them as before."""
    ours, stock = probes["dynamo_kvision"], probes["dynamo_stock"]
    assert stock["loaded_with_keras"] and not ours["loaded_with_keras"]
    assert ours["marks_before"] == [[], []]  # deferred: nothing can trace yet
    assert ours["marks"] == stock["marks"] == stock["marks_before"]
    assert stock["marks"][0]  # the marker exists, so the comparison says something
    assert ours["finite"] and stock["finite"]
