"""Hostile input to every command: each case is what a careless or malicious user (or a shared
model, recipe or run folder) hands kvision; each must end in one paragraph naming what is
wrong, exit code 2, no traceback, nothing already written lost, and no control character
from a file reaching the terminal.

One row per case; each row names the class of failure it stands for (one guarded place per
class in the code): output paths (cli's OSError guard), nesting (cli's RecursionError guard),
damaged run files (kvision.runs.reader.damage_guard), recipe validation (kvision.recipe),
image decoding (kvision.data.images.decode_image), storage URLs (kvision.sweep.storage).

The command line runs in this process (``kvision_cli``: ``kvision.cli.main``, the console
script's entry): a case that escaped the guards would raise here, traceback and all.
test_portable runs the console script itself on bad input.
"""

from __future__ import annotations

import json
import os
import subprocess
import textwrap
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
from conftest import TINY_DATA, kvision_cli

from kvision.recipe.compat import BUILTIN_SHAPES

RECIPE = TINY_DATA + textwrap.dedent("""
    [conditions.clear]

    [models.lenet]
    arch = "lenet"

    [[arms]]
    name = "plain"
    stages = [{ name = "first", condition = "clear", epochs = 1 }]
    """)

ESC = "\x1b]0;pwned\x07\x1b[2J"  # sets the terminal's title and clears the screen


@dataclass
class Case:
    """``args`` (built in ``tmp``) must exit 2 saying ``says``; ``gone``: must not exist after."""

    kind: str  # the class of failure the case stands for
    args: Callable[[Path], list[str]]
    says: str
    gone: Callable[[Path], Path] | None = None
    code: int = 2


def _recipe(tmp: Path, text: str = RECIPE) -> str:
    path = tmp / "r.toml"
    path.write_text(text)
    return str(path)


def _file(tmp: Path, name: str = "afile") -> str:
    (tmp / name).write_text("I am a file")
    return str(tmp / name)


def _run(tmp: Path, name: str, meta: object, lines: list[str]) -> str:
    """A run directory as a user may find it: ``meta`` and raw ``lines`` of events.jsonl."""
    run = tmp / "runs" / name
    run.mkdir(parents=True)
    (run / "meta.json").write_text(meta if isinstance(meta, str) else json.dumps(meta))
    (run / "events.jsonl").write_text("".join(line + "\n" for line in lines))
    return str(run)


def _good_run(tmp: Path, name: str = "20260101-000000-good") -> str:
    return _run(
        tmp,
        name,
        {"pid": 1, "host": "elsewhere", "recipe_name": "tiny"},
        [
            json.dumps({"event": "run_started", "time": "2026-01-01T00:00:00+00:00"}),
            json.dumps(
                {
                    "event": "epoch_end",
                    "time": "2026-01-01T00:00:05+00:00",
                    "trial": "lenet-plain",
                    "stage": "first",
                    "epoch": 1,
                    "metrics": {"loss": 1.0, "val_loss": 1.0, "accuracy": 0.5, "val_accuracy": 0.5},
                }
            ),
            json.dumps({"event": "run_finished", "time": "2026-01-01T00:00:09+00:00"}),
        ],
    )


def _damaged_run(tmp: Path) -> str:
    return _run(
        tmp,
        "20260101-000001-damaged",
        "[1, 2]",
        ["5", '"text"', json.dumps({"event": "evaluation", "trial": 7, "matrix": "zz"})],
    )


def _png(tmp: Path, name: str, width: int, height: int) -> str:
    from PIL import Image

    Image.new("L", (width, height)).save(tmp / name, optimize=True)
    return str(tmp / name)


def _truncated_jpeg(tmp: Path) -> str:
    import cv2

    ok, data = cv2.imencode(".jpg", np.full((64, 64, 3), 120, np.uint8))
    (tmp / "cut.jpg").write_bytes(data.tobytes()[: len(data) // 2])
    return str(tmp / "cut.jpg")


FUNCTION = textwrap.dedent("""\
    [experiment]
    name = "fn"
    seed = 1

    [data]
    source = "function:FORMULA"

    [models.mlp]
    arch = "mlp"
    hidden = [4]

    [training]
    loss = "mse"

    [[arms]]
    name = "fit"
    stages = [{ name = "fit", condition = "clear", epochs = 1 }]
    """)

SWEEP = RECIPE + textwrap.dedent("""
    [sweep]
    trials = 1

    [sweep.params]
    "training.batch_size" = [4, 8]
    """)


def _deep(n: int = 5000) -> str:
    return "[" * n + "]" * n


CASES = {
    # -- output paths: one OSError guard names the path and the cause ----------------------
    "runs-dir is a file": Case(
        "output path",
        lambda t: ["run", _recipe(t), "--runs-dir", _file(t)],
        "Cannot create the runs folder",
    ),
    "run-dir is a file": Case(
        "output path",
        lambda t: ["run", _recipe(t), "--run-dir", _file(t)],
        "is a file, not a folder",
    ),
    "run-dir under a file": Case(
        "output path",
        lambda t: ["run", _recipe(t), "--run-dir", _file(t) + "/run"],
        "Cannot create the run directory",
    ),
    "recipe name over the limit": Case(
        "file name too long",
        lambda t: ["validate", str(t / ("a" * 300 + ".toml"))],
        "File name too long",
    ),
    "recipes copy name over the limit": Case(
        "file name too long",
        lambda t: ["recipes", "copy", "naive_vs_expert", str(t / ("b" * 300 + ".toml"))],
        "File name too long",
    ),
    "recipes copy under a file": Case(
        "output path",
        lambda t: ["recipes", "copy", "naive_vs_expert", _file(t) + "/x.toml"],
        "Cannot use",
    ),
    "recipes copy over a dangling symlink": Case(
        "output path",
        lambda t: (
            os.symlink(t / "nowhere", t / "link.toml"),
            ["recipes", "copy", "naive_vs_expert", str(t / "link.toml")],
        )[1],
        "nor replaces a symlink",
    ),
    "compare --png into a file's child": Case(
        "output path",
        lambda t: [
            "compare",
            _good_run(t),
            _good_run(t, "20260101-000002-b"),
            "--png",
            _file(t) + "/x.png",
        ],
        "Cannot use",
        code=2,
    ),
    # -- nesting: one RecursionError guard ---------------------------------------------------
    "recipe nested 5000 deep": Case(
        "nesting",
        lambda t: ["validate", _recipe(t, RECIPE + f"\n[extra]\nx = {_deep()}\n")],
        "nested too deeply",
    ),
    "--set nested 3000 deep": Case(
        "nesting",
        lambda t: ["run", _recipe(t), "--set", f"data.x={_deep(3000)}"],
        "nested too deeply",
    ),
    # -- recipe validation that means what it says ---------------------------------------
    "image size that cannot fit": Case(
        "validation",
        lambda t: [
            "run",
            _recipe(t),
            "--set",
            "data.image_size=[20000,20000]",
            "--runs-dir",
            str(t / "runs"),
        ],
        "TiB",
        gone=lambda t: t / "runs",
    ),
    "input too small for the model": Case(
        "validation",
        lambda t: [
            "run",
            _recipe(t),
            "--set",
            'models.lenet.arch="alexnet_seed"',
            "--run-dir",
            str(t / "x"),
        ],
        "needs at least 63x63",
        gone=lambda t: t / "x",
    ),
    "seed beyond the generators": Case(
        "validation",
        lambda t: ["validate", _recipe(t), "--set", "experiment.seed=99999999999"],
        "key 'experiment.seed'",
    ),
    "name ending in a newline": Case(
        "validation",
        lambda t: ["validate", _recipe(t), "--set", 'experiment.name="tiny\\n"'],
        "is not a valid name",
    ),
    "--gpus 0": Case("validation", lambda t: ["run", _recipe(t), "--gpus", "0"], "--gpus must"),
    "--gpus -1": Case("validation", lambda t: ["run", _recipe(t), "--gpus", "-1"], "--gpus must"),
    "--repeats 0": Case(
        "validation", lambda t: ["run", _recipe(t), "--repeats", "0"], "--repeats must"
    ),
    "mistyped --set": Case(
        "validation",
        lambda t: ["run", _recipe(t), "--set", "trainingg.batch_size=4", "--run-dir", str(t / "y")],
        "Did you mean: 'training'",
        gone=lambda t: t / "y",
    ),
    "formula dividing by zero": Case(
        "validation",
        lambda t: [
            "run",
            _recipe(t, FUNCTION.replace("FORMULA", "1/(x-x)")),
            "--runs-dir",
            str(t / "runs"),
        ],
        "not finite",
        gone=lambda t: t / "runs",
    ),
    "formula overflowing": Case(
        "validation",
        lambda t: [
            "run",
            _recipe(t, FUNCTION.replace("FORMULA", "exp(exp(exp(x)))")),
            "--runs-dir",
            str(t / "runs"),
        ],
        "not finite",
        gone=lambda t: t / "runs",
    ),
    # -- damaged run files: readers skip and warn, one bad run never breaks the others -----
    "show a damaged run": Case(
        "damaged run", lambda t: ["show", _damaged_run(t)], "cannot be read"
    ),
    "compare with a damaged run": Case(
        "damaged run",
        lambda t: ["compare", _good_run(t), _damaged_run(t), "--no-png"],
        "not JSON objects",
        code=0,  # compared as far as it can be read, with the warning
    ),
    "resume a run named by a file": Case(
        "output path", lambda t: ["run", "--resume", _file(t)], "not a kvision run directory"
    ),
    # -- images: decompression bombs and truncated files, as the folder loader treats them --
    "predict a decompression bomb": Case(
        "image",
        lambda t: ["predict", str(t / "model.keras"), _png(t, "bomb.png", 20000, 20000)],
        "too large to decode",
    ),
    "predict a truncated JPEG": Case(
        "image",
        lambda t: ["predict", str(t / "model.keras"), _truncated_jpeg(t)],
        "truncated JPEG",
    ),
    # -- storage URLs ------------------------------------------------------------------
    "storage URL with a non-numeric port": Case(
        "storage URL",
        lambda t: ["sweep", _recipe(t, SWEEP), "--storage", "postgresql://kv:SECRET@host:abc/db"],
        "port is not a number",
    ),
}


def kvision(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    return kvision_cli(*args, cwd=cwd, env={"COLUMNS": "200"})


@pytest.fixture(scope="module")
def model(tmp_path_factory) -> Path:
    """A small saved classifier for predict's cases (built, never trained)."""
    import keras

    from kvision.models import create_model

    path = tmp_path_factory.mktemp("model") / "model.keras"
    create_model("lenet", input_shape=(28, 28, 1), num_classes=3).save(path)
    assert keras.saving.load_model(path, safe_mode=True)
    return path


@pytest.mark.parametrize("name", list(CASES))
def test_hostile_input_is_one_paragraph_and_exit_2(name, tmp_path, request):
    case = CASES[name]
    if name.startswith("predict"):
        (tmp_path / "model.keras").symlink_to(request.getfixturevalue("model"))
    proc = kvision(*case.args(tmp_path), cwd=tmp_path)
    out = proc.stdout + proc.stderr
    assert proc.returncode == case.code, out[-3000:]
    assert "Traceback" not in out, out[-3000:]
    assert case.says in out, out[-3000:]
    assert "SECRET" not in out
    if case.code == 2:
        assert proc.stderr.strip(), "the reason goes to stderr"
    if case.gone is not None:
        gone = case.gone(tmp_path)
        assert not gone.exists() or not any(gone.iterdir()), f"{gone} was left behind"


def test_ls_lists_every_run_when_one_is_damaged(tmp_path):
    _good_run(tmp_path)
    _damaged_run(tmp_path)
    proc = kvision("ls", "--runs-dir", str(tmp_path / "runs"), cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert "20260101-000000-good" in proc.stdout and "finished" in proc.stdout
    assert "20260101-000001-damaged" in proc.stdout and "damaged" in proc.stdout
    assert "not JSON objects" in proc.stderr and "Traceback" not in proc.stderr


def test_text_from_run_files_reaches_the_terminal_escaped(tmp_path):
    name = "20260101-000003-x"
    run = _run(
        tmp_path,
        name,
        {"recipe_name": ESC, "pid": 1, "host": "elsewhere"},
        [
            json.dumps({"event": "run_started", "time": "2026-01-01T00:00:00+00:00"}),
            json.dumps(
                {"event": "run_failed", "time": "2026-01-01T00:00:01+00:00", "error": f"boom {ESC}"}
            ),
        ],
    )
    for args in (["ls", "--runs-dir", str(tmp_path / "runs")], ["show", run]):
        proc = kvision(*args, cwd=tmp_path)
        assert proc.returncode == 0, proc.stderr
        assert "\x1b" not in proc.stdout + proc.stderr and "\x07" not in proc.stdout
    assert "\\x1b]0;pwned" in kvision("show", run, cwd=tmp_path).stdout


def test_builtin_shapes_match_the_shipped_files():
    from kvision.data.sources import BUILTIN_DIR

    for name, (shape, counts, classes) in BUILTIN_SHAPES.items():
        with np.load(BUILTIN_DIR / f"{name}.npz") as data:
            assert len(data["class_names"]) == classes
            for split, n in counts.items():
                assert data[f"{split}_images"].shape[0] == n
                assert data[f"{split}_images"].shape[1:3] == shape[:2]


@pytest.fixture(scope="module")
def malicious(tmp_path_factory, model) -> Path:
    """Shared models as someone might hand them over: weights damaged inside an intact zip,
    two inputs, a spatial output, a sidecar whose class names drive the terminal."""
    import shutil
    import zipfile

    import cv2
    import keras

    t = tmp_path_factory.mktemp("malicious")
    with zipfile.ZipFile(model) as z:
        members = {n: z.read(n) for n in z.namelist()}
    with zipfile.ZipFile(t / "zlib.keras", "w", compression=zipfile.ZIP_DEFLATED) as z:
        for name, data in members.items():
            z.writestr(name, data)
    raw = bytearray((t / "zlib.keras").read_bytes())
    at = raw.find(b"model.weights.h5") + 200  # inside the weights' compressed bytes
    raw[at : at + 64] = bytes(64)
    (t / "zlib.keras").write_bytes(bytes(raw))
    a, b = keras.Input((28, 28, 1)), keras.Input((28, 28, 1))
    head = keras.layers.Dense(3)(keras.layers.Flatten()(keras.layers.Add()([a, b])))
    keras.Model([a, b], head).save(t / "two.keras")
    c = keras.Input((28, 28, 1))
    keras.Model(c, keras.layers.Conv2D(3, 3)(c)).save(t / "spatial.keras")
    shutil.copy(model, t / "esc.keras")
    from kvision.portable.sidecar import FORMAT

    (t / "esc.keras.json").write_text(
        json.dumps({"format": FORMAT, "class_names": [ESC, "b", "c"]})
    )
    cv2.imwrite(str(t / "a.png"), np.zeros((28, 28), np.uint8))
    _two_input_exports(t)
    return t


def _two_input_exports(t: Path) -> None:
    """A two-input ONNX graph and a two-input torch.export program (.pt2), as a shared file
    in the formats kvision export writes might come."""
    import onnx
    import torch
    from onnx import TensorProto, helper

    spec = [None, 28, 28, 1]
    graph = helper.make_graph(
        [helper.make_node("Add", ["a", "b"], ["y"])],
        "two",
        [helper.make_tensor_value_info(n, TensorProto.FLOAT, spec) for n in ("a", "b")],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, spec)],
    )
    onnx.save(helper.make_model(graph), t / "two_onnx.onnx")

    class Two(torch.nn.Module):
        def forward(self, a, b):
            return (a + b).flatten(1)

    x = torch.zeros(1, 28, 28, 1)
    torch.export.save(torch.export.export(Two(), (x, x)), t / "two_pt2.pt2")


@pytest.mark.parametrize(
    ("name", "says"),
    [
        ("zlib.keras", "Cannot load"),
        ("two.keras", "has 2 input(s)"),
        ("spatial.keras", "output(s) of shape (26, 26, 3)"),
        ("two_onnx.onnx", "has 2 input(s) and 1 output(s)"),
        ("two_pt2.pt2", "has 2 input(s) and 1 output(s)"),
    ],
)
def test_malicious_models_are_refused_in_one_paragraph(malicious, name, says):
    proc = kvision("predict", str(malicious / name), "a.png", cwd=malicious)
    assert proc.returncode == 2, proc.stderr[-3000:]
    assert "Traceback" not in proc.stderr and says in proc.stderr, proc.stderr[-3000:]


def test_sidecar_class_names_reach_the_terminal_escaped(malicious):
    proc = kvision("predict", str(malicious / "esc.keras"), "a.png", "--top", "3", cwd=malicious)
    assert proc.returncode == 0, proc.stderr
    assert "\x1b" not in proc.stdout and "\x07" not in proc.stdout
    assert "\\x1b]0;pwned" in proc.stdout
