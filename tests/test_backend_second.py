"""kvision under a second Keras backend (JAX in CI; TensorFlow too when it is installed).

Each test runs a subprocess with ``KERAS_BACKEND`` set, as a user would: every architecture
builds with its pinned parameter count, a ``.keras`` file of each model family exported under
torch loads there and predicts the same, and a small recipe runs end to end with ``kvision
run`` (train, evaluate, Grad-CAM, report, export), saying in one line what the torch-only parts
do, and learns to torch's accuracy on the same seed and data. One interpreter start per test
and backend: the torch reference run is made once, in this process.
"""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
from conftest import clear_and_blurred, quiet, write_recipe
from numerics import assert_close_to_scale

import kvision  # noqa: F401  (selects the torch backend before any test imports keras)


def backend_pythons() -> dict[str, str]:
    """The interpreter that runs each second backend: this one where the backend is installed
    here; TensorFlow also from the environment ``.ci/run`` makes for it and names in
    ``KVISION_TENSORFLOW_VENV`` (tensorflow-cpu beside this environment's packages, so that
    installing TensorFlow changes nothing the torch suite imports, tensorflow-datasets'
    choice of reader included)."""
    found = {
        name: sys.executable for name in ("jax", "tensorflow") if importlib.util.find_spec(name)
    }
    venv = os.environ.get("KVISION_TENSORFLOW_VENV")
    if venv and "tensorflow" not in found:
        found["tensorflow"] = str(Path(venv) / "bin" / "python")
    return found


PYTHON = backend_pythons()
SECOND_BACKENDS = list(PYTHON)
pytestmark = pytest.mark.skipif(
    not SECOND_BACKENDS,
    reason="no second Keras backend installed (pip install 'kvision[jax]' or "
    "'kvision[tensorflow]'; .ci/run installs both)",
)
backends = pytest.mark.parametrize("backend", SECOND_BACKENDS)

COUNT_SCRIPT = """
import json, math, sys
import keras
import kvision
from kvision.errors import KvisionError
from kvision.models import check_backend_limits, create_model
counts = {}
for arch, shape, classes, options in json.loads(sys.argv[1]):
    # Variables without values: shapes (hence counts) are all a build decides; the random
    # initialisation, which costs a compilation per shape under JAX, is not needed here.
    with keras.StatelessScope(initialize_variables=False):
        model = create_model(arch, input_shape=shape, num_classes=classes, **options)
    counts[arch] = sum(math.prod(w.shape) for w in model.trainable_weights)
try:  # the main job's AlexNet: a 1x1 map into its 6x6 adaptive pool
    with keras.StatelessScope(initialize_variables=False):
        check_backend_limits(
            create_model("alexnet_seed", input_shape=(64, 64, 1), num_classes=10, downscale=16)
        )
    refused = ""
except KvisionError as exc:
    refused = str(exc)
print(json.dumps({"backend": keras.backend.backend(), "counts": counts, "refused": refused}))
"""

PREDICT_SCRIPT = """
import json, sys
import numpy as np
import keras
import kvision
from kvision.errors import KvisionError
from kvision.models import describe, load_model
from kvision.portable.loading import load_checked
folder = sys.argv[1]
diffs = {}
for arch in json.loads(sys.argv[2]):
    model = load_model(f"{folder}/{arch}.keras")
    got = np.asarray(model.predict(np.load(f"{folder}/{arch}.x.npy"), verbose=0))
    describe(model)  # the summary's layer walk under this backend
    np.save(f"{folder}/{arch}.got.npy", got)
    diffs[arch] = float(np.abs(got - np.load(f"{folder}/{arch}.y.npy")).max())
try:  # the main job's AlexNet, a file kvision predict/export/viz would load
    load_checked(f"{folder}/small.keras")
    refused = ""
except KvisionError as exc:
    refused = str(exc)
print(json.dumps({"backend": keras.backend.backend(), "max_abs_diff": diffs, "refused": refused}))
"""

# Torch-exported models loaded elsewhere and run forward there: one model of each family, so
# every custom layer (LRN, adaptive pooling, the channel-pad shortcut) and plain convolutions,
# BatchNorm + residual adds, dense-only graphs. Small widths: the layers, not the sizes, are
# what differs between backends.
EXPORTED = {
    "lenet": ((28, 28, 1), {}),
    "resnet20": ((32, 32, 3), {}),
    "alexnet_small": ((28, 28, 1), {"head": 32}),
    # 256 px: a 7x7 map into the 6x6 adaptive pool, overlapping bins (at 64 px it is 1x1, which
    # TensorFlow cannot pool: kvision/models/backend_limits.py)
    "alexnet_seed": ((256, 256, 3), {"downscale": 16}),
    "mynet": ((20, 20, 3), {}),
    "vgg11_seed": ((32, 32, 3), {"width": 16, "head": 16}),
    "mlp": ((1,), {}),
}

RECIPE = (
    textwrap.dedent("""\
    [experiment]
    name = "second_backend"
    seed = 5

    [data]
    source = "builtin:fashion7k"
    limit_per_class = 40
    val_fraction = 0.25
""")
    + clear_and_blurred(1.0)
    + textwrap.dedent("""\

    [models.lenet]
    arch = "lenet"

    [[arms]]
    name = "naive"
    stages = [{ name = "train", condition = "clear", epochs = 4 }]

    [training]
    batch_size = 8

    [evaluate]
    conditions = ["clear", "blurred"]
    splits = ["test"]

    [insight]
    filters = false
    activations = false
    classification = false
    max_samples = 2

    [insight.robustness]
    enabled = false
    """)
)


def under(backend: str, args: list[str], cwd: Path | None = None, timeout: int = 600):
    env = {**os.environ, "KERAS_BACKEND": backend}
    args = [PYTHON[backend] if a == sys.executable else a for a in args]
    proc = subprocess.run(args, env=env, cwd=cwd, capture_output=True, text=True, timeout=timeout)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-3000:]
    return proc


def expected_counts() -> list[tuple[str, list[int], int, dict, int]]:
    """(arch, shape, classes, options, count): the pinned reference counts, and every other
    architecture at its small configuration with the count torch's build gives."""
    sys.path.insert(0, str(Path(__file__).parent))
    from test_models_architectures import REFERENCE_COUNTS, SMALL

    from kvision.models.counting import count_parameters

    cases = [(a, list(s), c, o, n) for a, s, c, o, n in REFERENCE_COUNTS]
    pinned = {c[0] for c in cases}
    for arch, ((h, w), options) in sorted(SMALL.items()):
        if arch not in pinned:
            n = count_parameters(arch, input_shape=(h, w, 3), num_classes=3, **options)
            cases.append((arch, [h, w, 3], 3, options, n))
    return cases


@pytest.mark.slow  # a second backend's own interpreter builds every architecture (~5 s)
@backends
def test_every_architecture_builds_with_its_parameter_count(backend):
    from kvision.models.catalog import model_names

    cases = expected_counts()
    assert {c[0] for c in cases} == set(model_names())
    proc = under(backend, [sys.executable, "-c", COUNT_SCRIPT, json.dumps([c[:4] for c in cases])])
    out = json.loads(proc.stdout.splitlines()[-1])
    assert out["backend"] == backend
    assert out["counts"] == {c[0]: c[4] for c in cases}
    if backend == "tensorflow":  # said in one paragraph before training, not at the first batch
        assert "'avgpool' pools a 1x1 feature map to 6x6" in out["refused"], out["refused"]
    else:
        assert out["refused"] == ""


# a second backend's own interpreter: imports it and loads seven models (JAX compiles each
# initializer of each, seconds per model)
@pytest.mark.slow(seconds=25)
@backends
def test_torch_export_loads_and_predicts_the_same(backend, tmp_path):
    import keras

    from kvision.models import create_model
    from kvision.models.inference import save_for_inference

    assert keras.backend.backend() == "torch"
    rng = np.random.default_rng(0)
    for arch, (shape, options) in EXPORTED.items():
        keras.utils.set_random_seed(1)
        channels = shape[-1] if len(shape) == 3 else 0  # the MLP takes vectors: no image scaling
        model = create_model(
            arch,
            input_shape=shape,
            num_classes=4,
            preprocess=([0.5] * channels, [0.25] * channels) if channels else None,
            **options,
        )
        x = rng.uniform(0, 255, (3, *shape)).astype("float32")
        np.save(tmp_path / f"{arch}.x.npy", x)
        np.save(tmp_path / f"{arch}.y.npy", np.asarray(model.predict(x, verbose=0)))
        save_for_inference(model, tmp_path / f"{arch}.keras")
    small = create_model("alexnet_seed", input_shape=(64, 64, 1), num_classes=10, downscale=16)
    save_for_inference(small, tmp_path / "small.keras")  # a 1x1 map into its 6x6 pool
    proc = under(
        backend, [sys.executable, "-c", PREDICT_SCRIPT, str(tmp_path), json.dumps(list(EXPORTED))]
    )
    out = json.loads(proc.stdout.splitlines()[-1])
    assert out["backend"] == backend
    print(f"torch-exported .keras under {backend}: max |diff| {out['max_abs_diff']}")
    for arch in EXPORTED:
        # The same float32 network, its sums in another backend's order (oneDNN, XLA): a
        # reordering, so bounded relative to the output's scale (tests/numerics.py). 84 eps
        # x scale is 1e-5 of the largest logit: 2.4x the worst reordering the suite measured
        # (35 eps), and a thousand times below what a wrong weight layout moves (>1e-2).
        got = np.load(tmp_path / f"{arch}.got.npy")
        assert_close_to_scale(got, np.load(tmp_path / f"{arch}.y.npy"), eps_units=84)
    if backend == "tensorflow":  # one paragraph on loading, not a shape error at predict
        assert "'avgpool' pools a 1x1 feature map to 6x6" in out["refused"], out["refused"]
    else:
        assert out["refused"] == ""


def _final_test_accuracy(run_dir: Path) -> float:
    from kvision.runs import RunReader

    last = RunReader(run_dir).evaluations()[-1]
    return float(last["matrix"]["clear"]["test"])


@pytest.fixture(scope="module")
def torch_accuracy(tmp_path_factory) -> float:
    """The recipe's final clear test accuracy under torch (this process's backend): the
    reference every second backend's run is compared with, trained once."""
    from kvision.train.runner import run_recipe

    folder = tmp_path_factory.mktemp("torch_band")
    path = write_recipe(folder, RECIPE)
    result = run_recipe(str(path), runs_dir=str(folder / "runs"), console=quiet())
    assert result.status == "finished", result.message
    return _final_test_accuracy(result.run_dir)


# a second backend's own interpreter: a whole `kvision run` and export
@pytest.mark.slow(seconds=15)
@backends
def test_recipe_runs_end_to_end_and_trains_to_torchs_accuracy_band(
    backend, tmp_path, torch_accuracy
):
    """``kvision run`` (train, evaluate, Grad-CAM, report) and ``kvision export`` under the
    backend; LeNet, 4 epochs on the same 40 images a class and seed as the torch reference:
    the backends draw different initial weights from one seed (each has its own generator),
    so the accuracies are not equal, but both learn the task and land in one band."""
    recipe = write_recipe(tmp_path, RECIPE).name
    kv = [sys.executable, "-m", "kvision"]
    ran = under(backend, [*kv, "run", recipe, "--runs-dir", "runs", "--gpus", "2"], cwd=tmp_path)
    notes = [line for line in ran.stdout.splitlines() if "torch backend" in line]
    assert len(notes) == 2, ran.stdout
    assert notes[0].startswith("warning: --gpus/--nnodes ignored") and "speed paths off" in notes[1]
    (run_dir,) = (tmp_path / "runs").iterdir()
    report = (run_dir / "report.md").read_text()
    assert f"({backend})" in report and "**speed_paths_off**: speed paths off" in report
    assert "**data_parallel_off**: --gpus/--nnodes ignored" in report
    assert json.loads((run_dir / "meta.json").read_text())["backend"] == backend
    assert list((run_dir / "images" / "cam").glob("*.png"))  # Grad-CAM's own backend path
    accuracy = {"torch": torch_accuracy, backend: _final_test_accuracy(run_dir)}
    print(f"final clear test accuracy, same seed and data: {accuracy}")
    chance = 1 / 10  # fashion7k: ten classes; accuracies are fractions
    assert all(a >= 4 * chance for a in accuracy.values()), accuracy
    assert abs(accuracy["torch"] - accuracy[backend]) <= 0.15, accuracy
    under(backend, [*kv, "export", str(run_dir), "--to", "out"], cwd=tmp_path)
    card = json.loads((tmp_path / "out" / "lenet-naive.keras.json").read_text())
    assert card["trained_with"]["backend"] == backend == card["exported_with"]["backend"]
    assert (tmp_path / "out" / "lenet-naive.keras").is_file()
