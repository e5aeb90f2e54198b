"""`kvision models` text: the architecture list and a layer table."""

from __future__ import annotations

import kvision  # noqa: F401  (selects the torch backend before keras is imported)
from kvision.models import format_layer_table, format_model_list
from kvision.models.catalog import model_names


def test_model_list_names_every_architecture_with_family_and_input():
    text = format_model_list()
    lines = {line.split()[0]: line for line in text.splitlines()[1:] if line.strip()}
    assert set(model_names()) <= set(lines)
    assert lines["alexnet"].split()[1:3] == ["alexnet", "224x224x3"]
    assert lines["resnet20"].split()[1:4] == ["resnet", "32x32x3", "10"]
    assert "28x28x1" in lines["lenet"]
    assert "kvision models NAME" in text


def test_the_model_list_builds_no_model_and_imports_no_keras():
    """`kvision models` answers from the catalogue (it took ~18 s when it built all 21)."""
    import subprocess
    import sys

    code = (
        "import sys; from kvision.cli import main; main(['models']); "
        "print('HEAVY', sorted(m for m in ('keras', 'torch') if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert "HEAVY []" in out.stdout and "resnet50" in out.stdout


def test_layer_table_of_alexnet_seed():
    text = format_layer_table("alexnet_seed", downscale=2)
    rows = {line.split()[0]: line.split() for line in text.splitlines()[1:] if line.strip()}
    assert rows["retina_conv"][1:] == ["retina", "Conv2D", "63x63x32", "11,648"]
    assert rows["avgpool"][1:4] == ["-", "AdaptiveAveragePooling2D", "6x6x128"]
    assert "11,114,018 trainable parameters" in text
    assert "first conv: retina_conv, last conv: v4_conv" in text


def _cli(*argv: str):
    import argparse

    from kvision.models.commands import register

    parser = argparse.ArgumentParser(prog="kvision")
    register(parser.add_subparsers())
    args = parser.parse_args(["models", *argv])
    return args.handler(args)


def test_models_subcommand_prints_a_layer_table(capsys):
    assert _cli("alexnet_seed", "--input", "64x64x3", "--set", "downscale=16") == 0
    out = capsys.readouterr().out
    assert "input 64x64x3, 2 outputs" in out and "retina_conv" in out


def test_models_subcommand_refuses_bad_names_and_options():
    import pytest

    from kvision.errors import KvisionError

    with pytest.raises(KvisionError, match="Did you mean: 'lenet'"):
        _cli("lenett")
    with pytest.raises(
        KvisionError, match="Unknown option 'downscale' for model architecture 'lenet'"
    ):
        _cli("lenet", "--set", "downscale=2")


def test_models_subcommand_reads_option_values_as_toml(capsys):
    """``--set hidden=[32,32]`` is a list, as it is in a recipe (one value parser)."""
    assert _cli("mlp", "--set", "hidden=[32,32]") == 0
    out = capsys.readouterr().out
    assert "1,153 trainable parameters" in out  # 1-32-32-1: 64 + 1056 + 33
