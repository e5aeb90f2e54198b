"""`kvision bench`: the speed comparison runs both sides for real and reports honestly."""

from __future__ import annotations

import argparse
import json
import subprocess
import sys

import pytest

import kvision  # noqa: F401  (selects the torch backend before keras is imported)
from kvision.bench import reference, speed
from kvision.bench.cli import select_cases
from kvision.bench.commands import add_arguments
from kvision.errors import KvisionError

TINY = speed.Case("tiny-lenet", "lenet", 12, 1, 3, 8, 2)


@pytest.mark.parametrize(("arch", "size", "options"), [
    ("lenet", 28, {}),
    ("alexnet_seed", 64, {"downscale": 8}),
    ("vgg11", 64, {"width": 16}),
    ("resnet18", 32, {}),
])
def test_reference_has_kvision_parameter_count(arch, size, options):
    """The PyTorch twin does the same arithmetic: same number of parameters as kvision's."""
    from kvision.models import create_model

    channels = 1 if arch == "lenet" else 3
    keras_model = create_model(arch, input_shape=(size, size, channels), num_classes=5,
                               **options)
    torch_model = reference.build_reference(arch, in_channels=channels, size=size,
                                            num_classes=5, options=options)
    torch_params = sum(p.numel() for p in torch_model.parameters())
    keras_params = sum(int(w.numpy().size) for w in keras_model.trainable_weights)
    assert torch_params == keras_params


@pytest.mark.parametrize("mode", ["train", "infer"])
def test_run_case_times_both_sides(mode):
    result = speed.run_case(TINY, mode, repeats=2)
    summary = result.summary()
    assert len(result.kvision_ips) == len(result.torch_ips) == 2
    assert all(v > 0 for v in result.kvision_ips + result.torch_ips)
    ratio = summary["ratio"]
    assert ratio["min"] <= ratio["median"] <= ratio["max"]
    assert summary["mode"] == mode and summary["device"] in ("cpu", "cuda")
    assert result.peak_rss_mb > 50  # torch and keras alone take more than this
    table = speed.format_table([result])
    assert "tiny-lenet" in table and mode in table
    json.dumps(summary)


def test_unknown_case_names_the_known_ones():
    with pytest.raises(KvisionError, match=r"Unknown benchmark case 'lenet'.*lenet-28-gray"):
        select_cases(["lenet"], gpu=False, steps=None)


def test_steps_override_and_gpu_widths():
    (case,) = select_cases(["lenet-28-gray"], gpu=False, steps=3)
    assert case.steps == 3
    assert "vgg11/8-64" in {c.name for c in speed.default_cases(gpu=False)}
    assert "vgg11/1-64" in {c.name for c in speed.default_cases(gpu=True)}
    with pytest.raises(KvisionError, match="--steps must be a positive"):
        select_cases(None, gpu=False, steps=0)


def test_arguments_defaults():
    parser = argparse.ArgumentParser()
    add_arguments(parser)
    args = parser.parse_args([])
    assert (args.mode, args.repeats, args.threads, args.json) == ("both", 3, 2, False)


def test_cli_lists_cases():
    out = subprocess.run([sys.executable, "-m", "kvision", "bench", "--list"],
                         capture_output=True, text=True, timeout=120, check=True).stdout
    assert "resnet18-64" in out and "alexnet_seed/2-128" in out
