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


def test_ratios_pair_repeats_and_best_compares_fastest_repeats():
    result = speed.CaseResult("c", "train", "cpu", 2, 8, 2, 1, kvision_ips=[100.0, 400.0, 300.0],
                              torch_ips=[200.0, 200.0, 250.0], peak_rss_mb=1.0)
    assert result.ratios == [0.5, 2.0, 1.2]
    assert result.summary()["ratio"] == {"min": 0.5, "median": 1.2, "max": 2.0, "best": 1.6}
    assert "0.50/1.20/2.00  1.60" in speed.format_table([result])


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
    assert args.min_seconds == 2.0


def test_passes_make_each_timing_last_min_seconds(monkeypatch):
    """On a fake clock: the faster side's pass sets the count, so both time >= min_seconds."""
    clock = [0.0]
    monkeypatch.setattr(speed.time, "perf_counter", lambda: clock[0])
    calls = {"slow": 0, "fast": 0}

    def side(name: str, seconds: float):
        def run() -> None:
            calls[name] += 1
            clock[0] += seconds
        return run

    sides = {"slow": side("slow", 0.3), "fast": side("fast", 0.2)}
    assert speed._passes_for(sides, 1.0, lambda: None) == 5  # ceil(1.0 / 0.2)
    assert calls == {"slow": 1, "fast": 1}  # one calibration pass each
    assert speed._passes_for(sides, 0.1, lambda: None) == 1
    assert speed._seconds(sides["slow"], 5, lambda: None) == pytest.approx(1.5)


def test_run_case_repeats_passes_to_fill_min_seconds():
    result = speed.run_case(TINY, "infer", repeats=1, min_seconds=0.5)
    assert result.passes > 1  # one pass of 16 tiny images takes milliseconds
    assert result.summary()["passes"] == result.passes
    assert speed.run_case(TINY, "infer", repeats=1).passes == 1  # min_seconds=0: one pass


def test_bad_options_are_refused_before_any_work():
    from kvision.bench.cli import main

    parser = argparse.ArgumentParser()
    add_arguments(parser)
    for bad in (["--min-seconds", "-1"], ["--repeats", "0"], ["--min-seconds", "nan"]):
        with pytest.raises(KvisionError, match="--min-seconds at least 0"):
            main(parser.parse_args(bad))


def test_cli_lists_cases():
    out = subprocess.run([sys.executable, "-m", "kvision", "bench", "--list"],
                         capture_output=True, text=True, timeout=120, check=True).stdout
    assert "resnet18-64" in out and "alexnet_seed/2-128" in out


def test_markdown_output_is_the_measured_table_with_its_stamp(tmp_path):
    """``--markdown OUT``: the docs include this file, so it carries machine, date, command."""
    out = tmp_path / "speed.md"
    subprocess.run([sys.executable, "-m", "kvision", "bench", "--case", "lenet-28-gray", "--mode",
                    "infer", "--repeats", "1", "--steps", "1", "--min-seconds", "0",
                    "--markdown", str(out), "--note", "a test"],
                   capture_output=True, text=True, timeout=600, check=True)
    text = out.read_text()
    assert "| `lenet-28-gray` | infer |" in text and "|---|---|---:|" in text
    assert "- machine: " in text and "CPU cores" in text and "- date: " in text
    assert "- command: `kvision bench --case lenet-28-gray --mode infer" in text
    assert "- note: a test" in text
