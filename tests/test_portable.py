"""Models that travel: model.keras without optimizer state, kvision export (keras, onnx) with
its sidecar, kvision predict, and their bad-input paragraphs."""

from __future__ import annotations

import importlib.util
import json
import os
import re
import shutil
import socket
import subprocess
import sys
import textwrap
import zipfile
from pathlib import Path

import cv2
import numpy as np
import pytest
from conftest import clear_and_blurred, kvision_cli

from kvision.errors import KvisionError
from kvision.runs import RunReader
from kvision.runs.lock import hold, release
from kvision.train.console import Console
from kvision.train.runner import run_recipe

ONE_TRIAL = (
    textwrap.dedent("""\
    [experiment]
    name = "portable"
    seed = 3

    [data]
    source = "builtin:fashion7k"
    limit_per_class = 4
    val_fraction = 0.25
""")
    + clear_and_blurred(1.0)
    + textwrap.dedent("""\

    [models.lenet]
    arch = "lenet"

    [[arms]]
    name = "expert"
    stages = [
      { name = "pretrain", condition = "clear", epochs = 1 },
      { name = "train", condition = "blurred", epochs = 1 },
    ]

    [training]
    batch_size = 8

    [evaluate]
    conditions = ["clear", "blurred"]
    splits = ["test"]

    [insight]
    enabled = false
    """)
)


def assert_user_error(proc: subprocess.CompletedProcess, *words: str) -> None:
    assert proc.returncode == 2, proc.stderr[-2000:]
    for word in words:
        assert word in proc.stderr, proc.stderr


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory) -> Path:
    tmp = tmp_path_factory.mktemp("portable")
    (tmp / "r.toml").write_text(ONE_TRIAL)
    console = Console(open(os.devnull, "w"), tty=False)  # noqa: SIM115
    result = run_recipe(str(tmp / "r.toml"), [], runs_dir=str(tmp / "runs"), console=console)
    assert result.exit_code == 0, result.message
    return result.run_dir


@pytest.fixture(scope="module")
def exported(run_dir, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("exported")
    proc = kvision_cli("export", str(run_dir), "--to", str(out))
    assert proc.returncode == 0, proc.stderr[-3000:]
    return out


@pytest.fixture(scope="module")
def images(tmp_path_factory) -> tuple[Path, np.ndarray, list[str]]:
    """Test images of the built-in data as PNG files (28x28 gray) and one larger RGB JPEG."""
    folder = tmp_path_factory.mktemp("images")
    data = np.load(Path(__file__).resolve().parents[1] / "kvision/data/builtin/fashion7k.npz")
    pixels = data["test_images"][:3]
    files = []
    for i, image in enumerate(pixels):
        cv2.imwrite(str(folder / f"{i}.png"), image.reshape(28, 28))
        files.append(str(folder / f"{i}.png"))
    (folder / "more").mkdir()
    big = cv2.resize(cv2.cvtColor(pixels[0].reshape(28, 28), cv2.COLOR_GRAY2BGR), (90, 70))
    cv2.imwrite(str(folder / "more" / "big.jpg"), big)
    return folder, pixels, files


def test_model_keras_is_inference_ready_without_optimizer_state(run_dir):
    import h5py

    from kvision.models import load_model

    path = run_dir / "trials/lenet-expert/model.keras"
    with (
        zipfile.ZipFile(path) as archive,
        archive.open("model.weights.h5") as fh,
        h5py.File(fh, "r") as h5,
    ):
        groups = []
        h5.visit(groups.append)
        config = json.loads(archive.read("config.json"))
    assert groups and not [g for g in groups if "optimizer" in g]
    assert not config.get("compile_config")
    model = load_model(path)
    assert not model.compiled


def _no_shared_ids(config):
    """A config without its shared-object ids (ids of Python objects, different per save)."""
    if isinstance(config, dict):
        return {k: _no_shared_ids(v) for k, v in config.items() if k != "shared_object_id"}
    if isinstance(config, list):
        return [_no_shared_ids(v) for v in config]
    return config


@pytest.mark.parametrize("arch", ["alexnet_seed", "resnet18"])
def test_the_export_over_the_trained_layers_writes_what_a_rebuilt_copy_writes(tmp_path, arch):
    """save_for_inference saves a model over the trained model's own layers instead of a copy
    rebuilt from its config: the same config, the same weights file byte for byte, a model
    that predicts the same; the trained model keeps its optimizer and trains on."""
    import keras

    from kvision.models import create_model, load_model
    from kvision.models.inference import inference_copy, save_for_inference

    options = {"downscale": 16} if arch == "alexnet_seed" else {}
    model = create_model(arch, input_shape=(64, 64, 3), num_classes=3, **options)
    model.compile(optimizer="adam", loss="sparse_categorical_crossentropy")
    rng = np.random.default_rng(0)
    x, y = rng.integers(0, 256, (8, 64, 64, 3)).astype("float32"), rng.integers(0, 3, 8)
    model.fit(x, y, epochs=1, verbose=0)
    inference_copy(model).save(str(tmp_path / "copy.keras"))
    save_for_inference(model, tmp_path / "view.keras")
    files = {}
    for name in ("copy", "view"):
        with zipfile.ZipFile(tmp_path / f"{name}.keras") as archive:
            config = json.loads(archive.read("config.json"))
            files[name] = (_no_shared_ids(config), archive.read("model.weights.h5"))
    assert files["view"] == files["copy"]
    loaded = load_model(tmp_path / "view.keras")
    assert not loaded.compiled and type(loaded) is type(model)
    # Equal weights in equal graphs: the loaded models' outputs match to the last bit.
    copy = load_model(tmp_path / "copy.keras")
    np.testing.assert_array_equal(loaded.predict(x, verbose=0), copy.predict(x, verbose=0))
    assert model.compiled and isinstance(model.optimizer, keras.optimizers.Adam)
    assert model.optimizer.iterations.numpy() == 1
    model.fit(x, y, epochs=1, verbose=0)
    assert model.optimizer.iterations.numpy() == 2


def test_export_writes_model_and_sidecar_from_the_run(run_dir, exported):
    from kvision.models import load_model

    assert sorted(p.name for p in exported.iterdir()) == [
        "lenet-expert.keras",
        "lenet-expert.keras.json",
    ]
    card = json.loads((exported / "lenet-expert.keras.json").read_text())
    reader = RunReader(run_dir)
    assert card["format"] == "kvision-model/1" and card["file"] == "lenet-expert.keras"
    assert card["class_names"] == reader.of("data_loaded")[-1]["class_names"]
    assert card["input"] == {
        "shape": [28, 28, 1],
        "layout": "NHWC",
        "dtype": "float32",
        "channels": 1,
        "color": "gray",
        "pixel_range": [0, 255],
    }
    inside = card["preprocessing"]["inside_model"]
    assert inside["mean"] == [0.5] and inside["std"] == [0.5]  # normalize = "half"
    assert [(s["stage"], s["condition"], s["epochs_run"]) for s in card["trained_on"]] == [
        ("pretrain", "clear", 1),
        ("train", "blurred", 1),
    ]
    assert card["trained_on"][1]["condition_settings"]["blur"]["sigma"] == 1.0
    assert card["final_metrics"]["matrix"] == reader.evaluations()[-1]["matrix"]
    assert card["exported_with"]["backend"] == "torch" and card["exported_with"]["keras"]
    x = np.random.default_rng(1).uniform(0, 255, (4, 28, 28, 1)).astype("float32")
    trained = load_model(run_dir / "trials/lenet-expert/model.keras").predict(x, verbose=0)
    shared = load_model(exported / "lenet-expert.keras").predict(x, verbose=0)
    np.testing.assert_array_equal(shared, trained)


@pytest.mark.slow  # a fresh interpreter with Keras and no kvision (~5 s)
def test_exported_model_loads_in_plain_keras(exported):
    """What the receiver runs: Keras alone, safe mode, kvision never imported."""
    code = (
        "import sys, keras\n"
        "m = keras.saving.load_model(sys.argv[1], safe_mode=True)\n"
        "assert 'kvision' not in sys.modules\n"
        "print(m.output_shape)"
    )
    proc = subprocess.run(
        [sys.executable, "-c", code, str(exported / "lenet-expert.keras")],
        env={**os.environ, "KERAS_BACKEND": "torch"},
        capture_output=True,
        text=True,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert proc.stdout.strip() == "(None, 10)"


def test_export_onnx_matches_keras(run_dir, tmp_path):
    missing = [
        m for m in ("onnx", "onnxscript", "onnxruntime") if importlib.util.find_spec(m) is None
    ]
    if missing:
        pytest.skip(
            f"the 'onnx' extra is not installed (missing {', '.join(missing)}): "
            "pip install 'kvision[onnx]'; .ci/run installs it"
        )
    import onnxruntime

    from kvision.models import load_model

    proc = kvision_cli("export", str(run_dir), "--format", "onnx", "--to", str(tmp_path))
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "onnxruntime vs Keras" in proc.stdout
    card = json.loads((tmp_path / "lenet-expert.onnx.json").read_text())
    assert card["file"] == "lenet-expert.onnx" and card["onnx"]["checked_max_abs_diff"] < 1e-4
    data = np.load(Path(__file__).resolve().parents[1] / "kvision/data/builtin/fashion7k.npz")
    x = data["test_images"][:16].reshape(16, 28, 28, 1).astype("float32")  # real images
    session = onnxruntime.InferenceSession(str(tmp_path / "lenet-expert.onnx"))
    got = session.run(None, {session.get_inputs()[0].name: x})[0]
    expected = load_model(run_dir / "trials/lenet-expert/model.keras").predict(x, verbose=0)
    print(f"onnxruntime vs Keras, 16 test images: max |diff| {np.abs(got - expected).max():.3e}")
    np.testing.assert_allclose(got, expected, atol=1e-4, rtol=0)


def test_predict_prints_top_classes_of_files_and_folders(exported, images):
    from kvision.models import load_model

    folder, pixels, files = images
    model = load_model(exported / "lenet-expert.keras")
    expected = model.predict(pixels.reshape(-1, 28, 28, 1).astype("float32"), verbose=0)
    names = json.loads((exported / "lenet-expert.keras.json").read_text())["class_names"]
    proc = kvision_cli(
        "predict", str(exported / "lenet-expert.keras"), *files, "--top", "2", "--json"
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    out = json.loads(proc.stdout)
    assert out["class_names_known"] is True
    for row, logits in zip(out["predictions"], expected, strict=True):
        probs = np.exp(logits - logits.max()) / np.exp(logits - logits.max()).sum()
        order = np.argsort(-probs)[:2]
        assert [t["index"] for t in row["top"]] == order.tolist()
        assert [t["class"] for t in row["top"]] == [names[i] for i in order]
        np.testing.assert_allclose([t["probability"] for t in row["top"]], probs[order], atol=1e-5)
    table = kvision_cli("predict", str(exported / "lenet-expert.keras"), str(folder), "--top", "1")
    assert table.returncode == 0, table.stderr[-2000:]
    lines = table.stdout.splitlines()
    assert lines[0].split() == ["image", "rank", "class", "probability"]
    assert len(lines) == 1 + 4 and "big.jpg" in table.stdout  # 3 PNGs + the resized RGB JPEG
    assert any(name in lines[1] for name in names)


def test_predict_accepts_trial_and_run_directories(run_dir, images):
    _, _, files = images
    for target in (
        ["predict", str(run_dir / "trials/lenet-expert")],
        ["predict", str(run_dir), "--trial", "lenet-expert"],
        ["predict", str(run_dir)],
    ):
        proc = kvision_cli(*target, files[0], "--json")
        assert proc.returncode == 0, proc.stderr[-2000:]
        assert json.loads(proc.stdout)["class_names_known"] is True


def test_predict_without_sidecar_shows_indices_and_says_so(exported, images, tmp_path):
    _, _, files = images
    shutil.copy(exported / "lenet-expert.keras", tmp_path / "plain.keras")
    proc = kvision_cli("predict", str(tmp_path / "plain.keras"), files[0], "--top", "3")
    assert proc.returncode == 0, proc.stderr[-2000:]
    notes = [line for line in proc.stderr.splitlines() if line.startswith("note:")]
    assert len(notes) == 1 and "no kvision sidecar" in notes[0] and "by index" in notes[0]
    classes = [line.split()[-2] for line in proc.stdout.splitlines()[1:]]
    assert len(classes) == 3 and all(c.isdigit() for c in classes)


def test_predict_bad_input_is_one_paragraph_exit_2(exported, images, tmp_path):
    import keras

    _, _, files = images
    model = exported / "lenet-expert.keras"
    (tmp_path / "notes.txt").write_text("not an image")
    assert_user_error(
        kvision_cli("predict", str(model), str(tmp_path / "notes.txt")), "notes.txt", "not an image"
    )
    assert_user_error(
        kvision_cli("predict", str(model), str(tmp_path / "missing.png")),
        "missing.png",
        "does not exist",
    )
    assert_user_error(kvision_cli("predict", str(tmp_path / "nope.keras"), files[0]), "nope.keras")
    (tmp_path / "fake.keras").write_text("hello")
    assert_user_error(
        kvision_cli("predict", str(tmp_path / "fake.keras"), files[0]), "fake.keras", "zip archive"
    )
    assert_user_error(kvision_cli("predict", str(model), files[0], "--top", "0"), "--top")
    inputs = keras.Input((28, 28, 1))
    x = keras.layers.Lambda(lambda t: t * 2.0)(inputs)
    keras.Model(inputs, keras.layers.Dense(3)(keras.layers.Flatten()(x))).save(
        tmp_path / "lambda.keras"
    )
    assert_user_error(
        kvision_cli("predict", str(tmp_path / "lambda.keras"), files[0]),
        "lambda.keras",
        "safe mode",
        "Lambda",
    )


def test_export_bad_input_is_one_paragraph_exit_2(run_dir, tmp_path):
    assert_user_error(
        kvision_cli("export", str(run_dir), "--format", "tflite"),
        "Unknown export format 'tflite'",
        "keras, onnx",
    )
    assert_user_error(kvision_cli("export", str(tmp_path)), "not a kvision run directory")
    assert_user_error(
        kvision_cli("export", str(run_dir), "--trial", "lenet-expret"),
        "Did you mean: 'lenet-expert'",
    )


def test_export_of_a_run_without_models_says_why(run_dir, tmp_path):
    copy = tmp_path / "copy"
    shutil.copytree(run_dir, copy, ignore=shutil.ignore_patterns("*.keras"))
    assert_user_error(kvision_cli("export", str(copy)), "no saved model", "files are missing")
    # A run still being written: its writer (this process) is alive, no last word yet.
    events = [
        line
        for line in (copy / "events.jsonl").read_text().splitlines()
        if '"run_finished"' not in line
    ]
    (copy / "events.jsonl").write_text("\n".join(events) + "\n")
    meta = json.loads((copy / "meta.json").read_text())
    meta.update(pid=os.getpid(), host=socket.gethostname())
    (copy / "meta.json").write_text(json.dumps(meta))
    hold(copy)  # what "being written" means: this process holds the run's writer lock
    try:
        assert RunReader(copy).status() == "running"
        assert_user_error(kvision_cli("export", str(copy)), "still running", "lenet-expert")
    finally:
        release(copy)


def test_console_script_bad_input_has_no_traceback(tmp_path):
    (tmp_path / "notes.txt").write_text("not an image")
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "kvision",
            "predict",
            str(tmp_path / "x.keras"),
            str(tmp_path / "notes.txt"),
        ],
        capture_output=True,
        text=True,
    )
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    assert proc.stderr.count("\n") == 1 and "x.keras" in proc.stderr  # one paragraph


def test_onnx_falls_back_to_a_fixed_batch_where_the_exporter_needs_it(tmp_path):
    """AlexNet's adaptive pooling to 6x6 from a smaller map has no batch-dynamic ONNX form."""
    if (
        importlib.util.find_spec("onnxruntime") is None
        or importlib.util.find_spec("onnxscript") is None
    ):
        pytest.skip("the 'onnx' extra is not installed: pip install 'kvision[onnx]'")
    from kvision.models import create_model
    from kvision.portable.onnx_export import CHECK_IMAGES, export_onnx

    model = create_model("alexnet_seed", input_shape=(64, 64, 1), num_classes=3, downscale=16)
    path, facts = export_onnx(model, tmp_path / "a.onnx")
    assert path.is_file() and not list(tmp_path.glob(".*"))
    assert facts["input_shape"][0] == 1 and "fixed batch of 1" in facts["note"]
    assert facts["checked_images"] == CHECK_IMAGES and facts["checked_max_abs_diff"] < 1e-4


def test_predict_reads_every_format_export_writes(run_dir, exported, images, tmp_path):
    """A torch.export program (.pt2, loadable by torch alone) and an ONNX file, each with its
    sidecar; predict gives the .keras file's classes and probabilities from either."""
    import torch

    from kvision.portable.torch_export import keras_exports_torch

    _, pixels, files = images
    formats = ["torch"] if keras_exports_torch() else []  # Keras 3.15 on (the oldest is 3.14)
    formats += ["onnx"] if importlib.util.find_spec("onnxruntime") else []
    keras_out = json.loads(
        kvision_cli("predict", str(exported / "lenet-expert.keras"), *files, "--json").stdout
    )["predictions"]
    for fmt, suffix in (("torch", ".pt2"), ("onnx", ".onnx")):
        if fmt not in formats:
            continue
        proc = kvision_cli(
            "export",
            str(run_dir),
            "--trial",
            "lenet-expert",
            "--format",
            fmt,
            "--to",
            str(tmp_path),
        )
        assert proc.returncode == 0, proc.stderr[-2000:]
        assert re.search(r"lenet-expert\S*  \+ \S+\.json  \(\d+\.\d s\)", proc.stdout)  # timed
        model = tmp_path / f"lenet-expert{suffix}"
        card = json.loads((tmp_path / f"lenet-expert{suffix}.json").read_text())
        assert card["file"] == model.name and card["class_names"]
        out = json.loads(kvision_cli("predict", str(model), *files, "--json").stdout)
        assert out["class_names_known"] is True
        for got, want in zip(out["predictions"], keras_out, strict=True):
            assert [t["class"] for t in got["top"]] == [t["class"] for t in want["top"]]
            # float32 logits of one network in another runtime's summation order; softmax
            # probabilities in [0, 1] then differ by well under 1e-4 (reordering, numerics.py)
            np.testing.assert_allclose(
                [t["probability"] for t in got["top"]],
                [t["probability"] for t in want["top"]],
                atol=1e-4,
            )
    if "torch" not in formats:
        return
    # the .pt2 runs with torch alone, any batch size
    program = torch.export.load(str(tmp_path / "lenet-expert.pt2")).module()
    batch = torch.from_numpy(pixels.reshape(-1, 28, 28, 1).astype("float32"))
    assert tuple(program(batch).shape) == (len(batch), len(card["class_names"]))


def test_viz_names_an_exported_models_classes_from_its_sidecar(exported):
    from kvision.insight.viz import resolve_target
    from kvision.portable.target import ModelArg

    card = json.loads((exported / "lenet-expert.keras.json").read_text())
    target = resolve_target(ModelArg(exported / "lenet-expert.keras"), None)
    assert target.class_names == card["class_names"] and len(card["class_names"]) > 1


def test_torch_export_on_a_keras_without_it_is_one_paragraph(monkeypatch, tmp_path):
    """Keras 3.14 (supported) has no format="torch": one paragraph naming the version, no file."""
    import keras

    from kvision.portable.torch_export import export_torch

    monkeypatch.setattr(keras, "version", lambda: "3.14.0")
    with pytest.raises(KvisionError, match=r"from version 3\.15; this environment has Keras 3\.14"):
        export_torch(None, tmp_path / "m.pt2")
    assert not list(tmp_path.iterdir())


def test_export_check_compares_with_keras_on_the_runs_test_images(run_dir, tmp_path):
    """--check: one table per exported file, a row per evaluated condition (clear, blurred)."""
    fmt = "onnx" if importlib.util.find_spec("onnxruntime") else "keras"
    proc = kvision_cli(
        "export", str(run_dir), "--trial", "lenet-expert", "--format", fmt, "--to", str(tmp_path),
        "--check",
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-2000:]
    rows = re.findall(r"^  (clear|blurred) +(\d+) +([\d.]+)% +(\S+)$", proc.stdout, re.M)
    assert [r[0] for r in rows] == ["clear", "blurred"], proc.stdout
    test_images = RunReader(run_dir).of("data_loaded")[0]["counts"]["test"]
    for _, images, agree, diff in rows:
        assert int(images) == min(test_images, 256)
        # the same network in another runtime: float32 reordering only (tests/numerics.py),
        # far below 1e-3 of these logits; top-1 can flip only at an exact near-tie
        assert float(diff) < 1e-3 and float(agree) >= 90.0
