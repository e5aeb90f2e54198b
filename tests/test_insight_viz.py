"""`kvision viz` on a saved .keras model and on a run directory, including bad input."""

from __future__ import annotations

import kvision  # noqa: F401  (selects the torch backend before keras is imported)

# isort: split
import argparse
import json
import re

import cv2
import keras
import numpy as np
import pytest

from kvision.errors import KvisionError
from kvision.insight.commands import register


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="kvision")
    register(parser.add_subparsers(dest="command"))
    return parser


def _viz(*argv: str) -> int:
    args = _parser().parse_args(["viz", *map(str, argv)])
    return args.handler(args)


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    """A saved tiny CNN, a saved MLP, two class folders of PNGs and a text file."""
    tmp = tmp_path_factory.mktemp("viz")
    keras.utils.set_random_seed(0)
    inp = keras.Input((12, 12, 3))
    x = keras.layers.Conv2D(4, 3, activation="relu", name="v1_conv")(inp)
    x = keras.layers.Conv2D(5, 3, activation="relu", name="v2_conv")(x)
    x = keras.layers.GlobalAveragePooling2D(name="avgpool")(x)
    keras.Model(inp, keras.layers.Dense(3, name="classifier")(x)).save(tmp / "cnn.keras")
    inp = keras.Input((12, 12, 3))
    flat = keras.layers.Flatten()(inp)
    keras.Model(inp, keras.layers.Dense(3)(flat), name="mlp").save(tmp / "mlp.keras")
    rng = np.random.default_rng(0)
    for cls in ("ants", "bees"):
        (tmp / "db" / cls).mkdir(parents=True)
        for i in range(3):
            image = rng.integers(0, 255, (20, 16, 3), dtype=np.uint8)  # resized on reading
            cv2.imwrite(str(tmp / "db" / cls / f"{i}.png"), image)
    (tmp / "notes.txt").write_text("not an image")
    return tmp


def test_filters_and_activations_of_a_keras_file(files, capsys):
    out = files / "out"
    assert _viz("filters", files / "cnn.keras", "--out", out) == 0
    assert (out / "filters/cnn_first-conv_viz.png").is_file()
    assert (
        _viz(
            "activations",
            files / "cnn.keras",
            "--image",
            files / "db/ants/0.png",
            "--layer",
            "v2",
            "--top-channels",
            "2",
            "--out",
            out,
        )
        == 0
    )
    printed = capsys.readouterr().out.split()
    assert printed[-2:] == [
        str(out / "activations/cnn_stage-means_viz.png"),
        str(out / "activations/cnn_v2_top-channels_viz.png"),
    ]


def test_cam_for_an_asked_class(files):
    out = files / "out"
    assert (
        _viz(
            "cam",
            files / "cnn.keras",
            "--image",
            files / "db/ants/0.png",
            "--image",
            files / "db/bees/1.png",
            "--class-index",
            "2",
            "--class-names",
            "a,b,c",
            "--out",
            out,
        )
        == 0
    )
    assert (out / "cam/cnn_both_v2_conv_viz.png").is_file()


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (
            ["cam", "{m}", "--image", "{db}/ants/0.png", "--class-index", "3"],
            "--class-index 3 is out of range: the model has 3 classes, so use 0 to 2.",
        ),
        (["cam", "{m}", "--image", "{notes}"], "is not an image OpenCV can read"),
        (
            ["cam", "{m}", "--image", "{db}/ants/0.png", "--layer", "v3_conv"],
            "The model has no stage or layer 'v3_conv'. Did you mean: 'v2_conv'? Named stages: v1, v2",
        ),
        (
            ["cam", "{mlp}", "--image", "{db}/ants/0.png"],
            "Model 'mlp' has no convolution layer, so Grad-CAM has no feature map to explain.",
        ),
        (["filters", "{notes}"], "is neither a kvision run directory"),
        (["robustness", "{m}"], "A .keras model has no stored robustness results: pass --data DIR"),
        (["robustness", "{m}", "--data", "{db}", "--kinds", "blurr"], "Unknown blur kind 'blurr'."),
        (
            ["retrieve", "{m}", "--index", "{db}", "--query", "{db}/ants/0.png", "--k", "0"],
            "--k must be at least 1, got 0.",
        ),
        (
            ["retrieve", "{m}", "--index", "{notes}", "--query", "{db}/ants/0.png"],
            "is not a folder of images.",
        ),
    ],
)
def test_bad_input_is_a_kvision_error(files, argv, message):
    names = {
        "m": files / "cnn.keras",
        "mlp": files / "mlp.keras",
        "db": files / "db",
        "notes": files / "notes.txt",
    }
    with pytest.raises(KvisionError) as err:
        _viz(*[a.format(**names) for a in argv])
    assert message in str(err.value)


def test_retrieve_ranks_the_query_image_itself_first(files, capsys):
    out = files / "out"
    assert (
        _viz(
            "retrieve",
            files / "cnn.keras",
            "--index",
            files / "db",
            "--query",
            files / "db/bees/2.png",
            "--k",
            "3",
            "--out",
            out,
        )
        == 0
    )
    printed = capsys.readouterr().out
    assert "cnn: precision@3 by label over 6 index images:" in printed
    assert (out / "retrieval/cnn_2_top-3_viz.png").is_file()
    from kvision.insight.retrieval import FeatureIndex, encode, encoder
    from kvision.insight.viz import read_image_folder, read_images
    from kvision.portable.loading import load_checked

    model = load_checked(files / "cnn.keras")
    images, labels, classes = read_image_folder(files / "db", model)
    assert classes == ["ants", "bees"] and labels.tolist() == [0, 0, 0, 1, 1, 1]
    enc = encoder(model)
    (hit,) = FeatureIndex(encode(enc, images)).search(
        encode(enc, read_images([str(files / "db/bees/2.png")], model)), k=1
    )
    assert hit.indices.tolist() == [5] and hit.distances[0] < 1e-3


def test_robustness_measured_on_a_folder(files, capsys):
    out = files / "out"
    assert (
        _viz(
            "robustness",
            files / "cnn.keras",
            "--data",
            files / "db",
            "--sigmas",
            "0,2",
            "--kinds",
            "defocus",
            "--out",
            out,
        )
        == 0
    )
    table = capsys.readouterr().out
    assert "| trial | σ=0 | σ=2 | defocus |" in table and "| cnn |" in table
    assert (out / "robustness/blur-robustness_viz.png").is_file()


def test_run_directory_trials_and_stored_robustness(files, capsys):
    run = files / "run"
    (run / "trials/cnn-naive").mkdir(parents=True)
    (run / "meta.json").write_text("{}")
    events = [
        {"event": "trial_started", "trial": "cnn-naive", "model": "cnn", "arm": "naive"},
        {"event": "data_loaded", "class_names": ["x", "y", "z"]},
    ]
    (run / "events.jsonl").write_text("".join(json.dumps(e) + "\n" for e in events))
    (run / "trials/cnn-naive/model.keras").write_bytes((files / "cnn.keras").read_bytes())
    (run / "trials/cnn-naive/robustness.json").write_text(
        json.dumps({"n": 4, "sigma": {"0": 1.0, "3": 0.5}, "severity": {"zoom": {"1": 0.75}}})
    )
    assert _viz("robustness", run) == 0
    assert "| cnn-naive | 100.0 | 50.0 | 75.0 | 75.0 | 1.000 |" in capsys.readouterr().out
    assert (run / "images/robustness/blur-robustness_viz.png").is_file()
    with pytest.raises(
        KvisionError,
        match=re.escape(
            "has no trial 'cnn-naiv' with a saved model. Did you mean: 'cnn-naive'? "
            "Trials with a model: cnn-naive."
        ),
    ):
        _viz("filters", run, "--trial", "cnn-naiv")
