"""Saved models are stock Keras, for every zoo architecture.

- the ``config.json`` inside each saved ``.keras`` file names only stock Keras classes (and
  ``kvision>LocalResponseNormalization`` where the architecture has LRN);
- a Python without kvision (``python -I -S`` outside the checkout, its path holding every
  installed package except kvision) loads every model without LRN with
  ``keras.saving.load_model(path, safe_mode=True)`` and predicts what kvision predicted;
- models with LRN load the same way after ``import kvision`` (which imports no Keras);
- files written by kvision 0.1 (``kvision>Conv2D`` ...) load through
  ``kvision.models.load_model`` and predict what they predicted under 0.1.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import sysconfig
import zipfile
from pathlib import Path

import numpy as np
import pytest
from conftest import pythons_at_once
from test_models_architectures import SMALL

import kvision  # noqa: F401  (selects the torch backend before keras is imported)
from kvision.models import create_model, load_model
from kvision.models.catalog import model_names

LRN = "kvision>LocalResponseNormalization"
WITH_LRN = {"alexnet_small"}  # its default norm is "lrn"
FIXTURES = Path(__file__).parent / "fixtures" / "v0_1"


def saved_classes(path: Path) -> set[str]:
    """Every serialized object's class in the file's config.json: ``module.Class`` for Keras'
    own, the registered name (``package>Class``) for registered custom classes."""
    config = json.loads(zipfile.ZipFile(path).read("config.json"))
    found: set[str] = set()

    def walk(node) -> None:
        if isinstance(node, dict):
            if "class_name" in node and "config" in node:
                registered = node.get("registered_name") or ""
                # Keras writes no module for its graph's tensor marker (__keras_tensor__).
                found.add(
                    registered
                    if ">" in registered
                    else f"{node.get('module') or 'keras'}.{node['class_name']}"
                )
            for value in node.values():
                walk(value)
        elif isinstance(node, list):
            for value in node:
                walk(value)

    walk(config)
    return found


def _stock(name: str) -> bool:
    """A class of Keras itself: in the ``keras`` package and reachable from its public API."""
    import keras

    module, _, cls = name.rpartition(".")
    if not module.startswith("keras"):
        return False
    public = (
        keras.layers,
        keras.models,
        keras.optimizers,
        keras.losses,
        keras.metrics,
        keras.initializers,
        keras.regularizers,
        keras.dtype_policies,
        keras,
    )
    return cls in {"Functional", "__keras_tensor__"} or any(hasattr(m, cls) for m in public)


def _train_and_save(arch: str, path: Path) -> tuple[np.ndarray, np.ndarray]:
    """A small ``arch`` trained one step as the runner compiles it, saved; (x, predictions).

    Small means narrow (``width``, SMALL): every architecture's layers and their order as at
    full size, so the saved file names the same classes, with an optimizer state in it.
    """
    from kvision.recipe.schema_training import TrainingSection
    from kvision.train.compile import compile_model

    rng = np.random.default_rng(7)
    if arch == "mlp":
        model = create_model(arch, input_shape=(1,), num_classes=1)
        x, y = rng.normal(size=(4, 1)).astype("float32"), rng.normal(size=(4, 1))
    else:
        (h, w), options = SMALL[arch]
        model = create_model(
            arch, input_shape=(h, w, 3), num_classes=3, preprocess=([0.5] * 3, [0.5] * 3), **options
        )
        x = rng.integers(0, 256, size=(4, h, w, 3)).astype("float32")
        y = rng.integers(0, 3, size=4)
    compile_model(model, TrainingSection(), regression=arch == "mlp")  # fused Adam, state saved
    model.train_on_batch(x, y)
    model.save(path)
    return x, np.asarray(model.predict(x, verbose=0))


def _without_kvision(tmp: Path) -> Path:
    """A folder of links to every installed package but kvision (no .pth, no editable finder)."""
    farm = tmp / "site"
    farm.mkdir()
    for entry in Path(sysconfig.get_paths()["purelib"]).iterdir():
        name = entry.name.lower()
        if name.startswith(("kvision", "__editable__", "_kvision")) or name.endswith(".pth"):
            continue
        (farm / entry.name).symlink_to(entry)
    return farm


PLAIN_KERAS = """
import json, sys
sys.path.insert(0, sys.argv[1])
try:
    import kvision
    print("KVISION_IMPORTABLE", kvision.__file__)
except ModuleNotFoundError as exc:
    print("NO_KVISION", exc)
import keras, numpy as np
results = {}
for arch, (path, inputs) in json.loads(open(sys.argv[2]).read()).items():
    try:
        model = keras.saving.load_model(path, safe_mode=True)
    except Exception as exc:
        results[arch] = "error: " + " ".join(str(exc).split())
        continue
    out = model.predict(np.load(inputs), verbose=0)
    np.save(inputs + ".out.npy", out)
    results[arch] = [type(layer).__module__.split(".")[0] for layer in model.layers]
print("RESULTS", json.dumps(results))
"""


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    """Every architecture saved once; what a Python without kvision made of the files."""
    tmp = tmp_path_factory.mktemp("portable")
    saved, manifest = {}, {}
    for arch in model_names():
        path = tmp / f"{arch}.keras"
        x, predictions = _train_and_save(arch, path)
        np.save(tmp / f"{arch}.x.npy", x)
        saved[arch] = (path, predictions, path.stat().st_size)
        manifest[arch] = (str(path), str(tmp / f"{arch}.x.npy"))
    (tmp / "manifest.json").write_text(json.dumps(manifest))
    done = subprocess.run(
        [
            sys.executable,
            "-I",
            "-S",
            "-c",
            PLAIN_KERAS,
            str(_without_kvision(tmp)),
            str(tmp / "manifest.json"),
        ],
        cwd=tmp,
        capture_output=True,
        text=True,
        timeout=2400,
        env={"KERAS_BACKEND": "torch", "PATH": "/usr/bin:/bin", "HOME": str(tmp)},
    )
    assert done.returncode == 0, done.stderr[-3000:]
    lines = dict(
        line.split(" ", 1)
        for line in done.stdout.splitlines()
        if line.startswith(("RESULTS", "NO_KVISION", "KVISION_IMPORTABLE"))
    )
    yield saved, lines, tmp
    shutil.rmtree(tmp, ignore_errors=True)


# The module fixture trains, saves and loads every architecture (narrow), then starts a plain
# Python that imports Keras and torch: the first test using it pays for it.
@pytest.mark.slow
@pytest.mark.timeout(3000)
def test_the_plain_environment_has_no_kvision(exported):
    _, lines, _ = exported
    assert "KVISION_IMPORTABLE" not in lines
    assert "No module named 'kvision'" in lines["NO_KVISION"]


@pytest.mark.slow
@pytest.mark.parametrize("arch", model_names())
def test_saved_file_names_only_stock_keras_classes(arch, exported):
    saved, _, _ = exported
    classes = saved_classes(saved[arch][0])
    custom = {c for c in classes if not _stock(c)}
    assert custom == ({LRN} if arch in WITH_LRN else set()), sorted(classes)
    assert not any("kvision" in c for c in classes - {LRN})


@pytest.mark.slow
@pytest.mark.parametrize("arch", sorted(set(model_names()) - WITH_LRN))
def test_plain_keras_without_kvision_loads_and_predicts_the_same(arch, exported):
    saved, lines, tmp = exported
    results = json.loads(lines["RESULTS"])
    assert set(results[arch]) == {"keras"}, results[arch]  # every layer Keras' own class
    got = np.load(tmp / f"{arch}.x.npy.out.npy")
    want = saved[arch][1]
    # kvision's fast torch calls against Keras' own layers: float32 rounding only.
    np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-5 * max(1.0, np.abs(want).max()))


LRN_AFTER_IMPORT = """
import sys
import kvision
assert "keras" not in sys.modules, "import kvision imported keras"
import keras, numpy as np
model = keras.saving.load_model(sys.argv[1], safe_mode=True)
np.save(sys.argv[2] + ".out.npy", model.predict(np.load(sys.argv[2]), verbose=0))
print(type(model.get_layer("conv1_lrn")).__module__)
"""


@pytest.mark.slow
@pytest.mark.parametrize("arch", sorted(WITH_LRN))
def test_lrn_model_loads_in_plain_keras_after_import_kvision(arch, exported):
    saved, lines, tmp = exported
    # Without kvision, safe mode cannot load it: LRN is the one class that is kvision's own.
    assert json.loads(lines["RESULTS"])[arch].startswith("error: ")
    done = subprocess.run(
        [sys.executable, "-c", LRN_AFTER_IMPORT, str(saved[arch][0]), str(tmp / f"{arch}.x.npy")],
        cwd=tmp,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    assert done.stdout.split()[-1] == "kvision.models.layers"
    want = saved[arch][1]
    np.testing.assert_allclose(
        np.load(tmp / f"{arch}.x.npy.out.npy"),
        want,
        rtol=1e-4,
        atol=1e-5 * max(1.0, np.abs(want).max()),
    )


V0_1 = ["lenet", "alexnet_seed", "small_lrn", "padded_resnet"]


@pytest.mark.parametrize("name", V0_1)
def test_kvision_0_1_files_load_through_kvision(name):
    """0.1's own classes (folded int padding, -inf padded pool, adaptive pool, channel-pad
    shortcut, fused-Adam state) load and predict what they predicted under 0.1."""
    path = FIXTURES / f"{name}.keras"
    assert any(c.startswith("kvision>") and c != LRN for c in saved_classes(path))
    expected = np.load(FIXTURES / "predictions.npz")
    model = load_model(path)
    got = model.predict(expected[f"{name}_x"].astype("float32"), verbose=0)
    np.testing.assert_allclose(got, expected[f"{name}_y"], rtol=1e-5, atol=1e-5)


def test_kvision_0_1_padding_is_pytorchs_on_the_keras_path_too(monkeypatch):
    """The 0.1 layers' own Keras call (fast paths off) pads as 0.1 did: zeros, and -inf."""
    from kvision.models import _fast

    monkeypatch.setattr(_fast, "ENABLED", False)
    expected = np.load(FIXTURES / "predictions.npz")
    model = load_model(FIXTURES / "padded_resnet.keras")
    assert model.get_layer("stem_pool").explicit_padding == (1, 1)
    got = model.predict(expected["padded_resnet_x"].astype("float32"), verbose=0)
    np.testing.assert_allclose(got, expected["padded_resnet_y"], rtol=1e-4, atol=1e-5)


REGISTRATION = """
import sys
keras_first = sys.argv[1] == "keras-first"
if keras_first:
    import keras
import kvision
imported = "keras" in sys.modules
import keras
name = "kvision>LocalResponseNormalization"
print(imported, keras.saving.get_registered_object(name).__module__)
"""


ORDERS = ("kvision-first", "keras-first")


@pytest.fixture(scope="module")
def registrations() -> dict:
    """Both import orders' fresh interpreters, started at once."""
    return pythons_at_once({order: (["-c", REGISTRATION, order], None) for order in ORDERS})


@pytest.mark.slow  # two fresh interpreters importing Keras and torch (~6 s at once)
@pytest.mark.parametrize("order", ORDERS)
def test_import_kvision_registers_lrn_with_keras_without_importing_it(order, registrations):
    done = registrations[order]
    assert done.stdout.split() == [str(order == "keras-first"), "kvision.models.layers"]


def _rebuilt(name: str):
    """The fixture's architecture built by this kvision (stock layers), fresh weights."""
    sys.path.insert(0, str(FIXTURES))
    try:
        import keras
        import make_fixtures
    finally:
        sys.path.remove(str(FIXTURES))
    if name == "lenet":
        return create_model(
            "lenet", input_shape=(16, 16, 1), num_classes=3, preprocess=([0.5], [0.5])
        )
    if name == "alexnet_seed":
        return create_model("alexnet_seed", input_shape=(64, 64, 3), num_classes=2, downscale=64)
    from kvision.models import _fast

    builder = {
        "small_lrn": make_fixtures._small_lrn,
        "padded_resnet": make_fixtures._padded_resnet,
    }[name]
    return _fast.direct_graph(builder(keras))


@pytest.mark.parametrize("name", V0_1)
def test_kvision_0_1_weights_load_into_the_stock_graph(name, tmp_path):
    """A 0.1 run's checkpoint (model.weights.h5) resumes in today's stock-layer graph:
    Keras keys weights by class name and order, which the padding layers do not change."""
    with zipfile.ZipFile(FIXTURES / f"{name}.keras") as archive:
        (tmp_path / "model.weights.h5").write_bytes(archive.read("model.weights.h5"))
    model = _rebuilt(name)
    model.load_weights(tmp_path / "model.weights.h5")
    expected = np.load(FIXTURES / "predictions.npz")
    got = model.predict(expected[f"{name}_x"].astype("float32"), verbose=0)
    np.testing.assert_allclose(got, expected[f"{name}_y"], rtol=1e-5, atol=1e-5)
