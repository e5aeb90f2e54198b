"""`kvision bench`: the speed comparison runs both sides for real and reports honestly."""

from __future__ import annotations

import argparse
import json
import subprocess
import sys

import pytest

import kvision  # noqa: F401  (selects the torch backend before keras is imported)
from kvision.bench import reference, speed
from kvision.bench.commands import add_arguments
from kvision.bench.driver import select_cases
from kvision.errors import KvisionError

TINY = speed.Case("tiny-lenet", "lenet", 12, 1, 3, 8, 2)


@pytest.mark.parametrize(
    ("arch", "size", "options"),
    [
        ("lenet", 28, {}),
        ("alexnet_seed", 64, {"downscale": 8}),
        ("vgg11", 64, {"width": 16}),
        ("resnet18", 32, {}),
    ],
)
def test_reference_has_kvision_parameter_count(arch, size, options):
    """The PyTorch twin does the same arithmetic: same number of parameters as kvision's."""
    from kvision.models import create_model

    channels = 1 if arch == "lenet" else 3
    keras_model = create_model(arch, input_shape=(size, size, channels), num_classes=5, **options)
    torch_model = reference.build_reference(
        arch, in_channels=channels, size=size, num_classes=5, options=options
    )
    torch_params = sum(p.numel() for p in torch_model.parameters())
    keras_params = sum(int(w.numpy().size) for w in keras_model.trainable_weights)
    assert torch_params == keras_params


@pytest.mark.parametrize("mode", ["train", "infer"])
def test_run_case_times_every_side(mode):
    result = speed.run_case(TINY, mode, repeats=2)
    summary = result.summary()
    assert len(result.kvision_ips) == len(result.torch_ips) == len(result.tuned_ips) == 2
    assert all(v > 0 for v in result.kvision_ips + result.torch_ips + result.tuned_ips)
    for key in ("ratio", "ratio_tuned"):
        spread = summary[key]
        assert spread["min"] <= spread["median"] <= spread["max"]
        assert set(summary["targets"]) == {"ratio", "ratio_tuned"}
    assert summary["mode"] == mode and summary["device"] in ("cpu", "cuda")
    assert summary["tuned"]["channels_last"] and summary["tuned"]["fused_adam"]
    assert summary["tuned"]["inference_mode"] == (mode == "infer")
    assert summary["compile_seconds"] is None and not summary["tuned"]["compile"]
    # kvision's inference side runs captured, the capture made before the timed passes.
    captured = summary["capture_seconds"]
    assert (captured > 0) if mode == "infer" else captured is None
    assert result.peak_rss_mb > 50  # torch and keras alone take more than this
    table = speed.format_table([result])
    assert "tiny-lenet" in table and mode in table and "vs tuned" in table
    json.dumps(summary)


def _result(ours, plain, tuned):
    return speed.CaseResult(
        "c",
        "train",
        "cpu",
        2,
        8,
        2,
        1,
        kvision_ips=ours,
        torch_ips=plain,
        peak_rss_mb=1.0,
        tuned_ips=tuned,
    )


def test_ratios_pair_repeats_and_best_compares_fastest_repeats():
    result = _result([100.0, 400.0, 300.0], [200.0, 200.0, 250.0], [400.0, 400.0, 300.0])
    assert result.ratios == [0.5, 2.0, 1.2]
    assert result.ratios_tuned == [0.25, 1.0, 1.0]
    summary = result.summary()
    assert summary["ratio"] == {"min": 0.5, "median": 1.2, "max": 2.0, "best": 1.6}
    assert summary["ratio_tuned"] == {"min": 0.25, "median": 1.0, "max": 1.0, "best": 1.0}
    row = speed.format_table([result]).splitlines()[1]
    assert "0.50/1.20/2.00  1.60" in row and "0.25/1.00/1.00  1.00" in row


def test_targets_need_the_median_and_every_repeat():
    """Median >= target and no repeat below 0.9 x target (issue 19's rule)."""
    assert speed.meets_target({"min": 0.9, "median": 1.0}, 1.0)
    assert not speed.meets_target({"min": 0.89, "median": 1.3}, 1.0)  # one repeat too low
    assert not speed.meets_target({"min": 0.95, "median": 0.99}, 1.0)
    assert speed.meets_target({"min": 0.81, "median": 0.9}, 0.9)
    targets = _result([100.0] * 3, [100.0] * 3, [120.0] * 3).summary()["targets"]
    assert targets == {"ratio": True, "ratio_tuned": False}  # 1.0 vs plain, 0.83 vs tuned


def test_disturbed_repeats_are_flagged_and_kept():
    """A repeat far from its side's median is listed, and still counts in min/median/max."""
    result = _result([100.0, 101.0, 40.0, 99.0, 100.0], [50.0] * 5, [60.0, 61.0, 59.0, 60.0, 200.0])
    flagged = result.disturbed()
    assert [(d["repeat"], d["side"]) for d in flagged] == [(3, "kvision"), (5, "tuned")]
    assert flagged[0]["vs_median"] == 0.4
    assert result.summary()["ratio"]["min"] == pytest.approx(0.8)  # the 40 img/s repeat
    assert result.summary()["disturbed"] == flagged
    text = speed.format_disturbed([result])
    assert "repeat 3, kvision 40 img/s = 0.40 x its median" in text
    assert "repeat 5, tuned 200 img/s" in text
    assert speed.table_rows([result])[0][9] == "2"
    assert "none" in speed.format_disturbed([_result([1.0] * 3, [1.0] * 3, [1.0] * 3)])
    assert _result([1.0, 9.0], [1.0, 1.0], [1.0, 1.0]).disturbed() == []  # too few to judge


class _FakeClock:
    """perf_counter advanced by the fake sides' passes, so every rate is exact."""

    def __init__(self, monkeypatch):
        self.now = 0.0
        self.calls: list[str] = []
        monkeypatch.setattr(speed.time, "perf_counter", lambda: self.now)
        monkeypatch.setattr(speed.baselines.time, "perf_counter", lambda: self.now)

    def side(self, name: str, seconds: list[float] | float):
        durations = iter(seconds) if isinstance(seconds, list) else None

        def run() -> None:
            self.calls.append(name)
            self.now += next(durations, seconds[-1]) if durations else seconds

        return run


def _fake_sides(monkeypatch, clock, tuned_seconds, compile_fails=False, captured=None):
    monkeypatch.setattr(
        speed, "kvision_side", lambda *a, **k: (clock.side("kvision", 0.5), captured)
    )
    monkeypatch.setattr(
        speed.baselines,
        "plain_side",
        lambda *a, **k: speed.baselines.TorchSide(clock.side("torch", 1.0)),
    )

    def tuned_side(*args, compile=False, **kwargs):
        used = {"compile": compile}
        if compile and compile_fails:

            def broken() -> None:
                raise RuntimeError("inductor: no C++ compiler")

            return speed.baselines.TorchSide(broken, used)
        return speed.baselines.TorchSide(clock.side("tuned", tuned_seconds), used)

    monkeypatch.setattr(speed.baselines, "tuned_side", tuned_side)


def test_run_case_rotates_the_order_and_measures_rates_on_a_fake_clock(monkeypatch):
    clock = _FakeClock(monkeypatch)
    _fake_sides(monkeypatch, clock, 0.25)
    result = speed.run_case(TINY, "train", repeats=3)
    images = TINY.batch_size * TINY.steps
    assert result.kvision_ips == [images / 0.5] * 3 and result.torch_ips == [images / 1.0] * 3
    assert result.tuned_ips == [images / 0.25] * 3
    assert result.ratios == [2.0] * 3 and result.ratios_tuned == [0.5] * 3
    timed = clock.calls[3:]  # after one warm-up pass of each side
    assert timed == [
        "kvision",
        "torch",
        "tuned",
        "torch",
        "tuned",
        "kvision",
        "tuned",
        "kvision",
        "torch",
    ]


def test_compile_time_is_reported_apart_from_the_rate(monkeypatch):
    """The compiled first pass (5 s) less a compiled pass (1 s) is the compile time."""
    clock = _FakeClock(monkeypatch)
    _fake_sides(monkeypatch, clock, [5.0, 1.0])
    result = speed.run_case(TINY, "train", repeats=2, compile=True)
    assert result.compile_seconds == pytest.approx(4.0)
    assert result.tuned_ips == [TINY.batch_size * TINY.steps / 1.0] * 2
    assert "torch.compile took 4.0 s" in speed.format_compile([result])


def test_kvision_capture_time_is_reported_apart_from_the_rate(monkeypatch):
    clock = _FakeClock(monkeypatch)
    _fake_sides(monkeypatch, clock, 0.25, captured=1.25)
    result = speed.run_case(TINY, "infer", repeats=2)
    assert result.capture_seconds == 1.25 and result.summary()["capture_seconds"] == 1.25
    assert result.kvision_ips == [TINY.batch_size * TINY.steps / 0.5] * 2
    assert "kvision captured its forward in 1.2 s" in speed.format_compile([result])


def test_a_failing_compile_falls_back_to_eager_and_says_so(monkeypatch):
    clock = _FakeClock(monkeypatch)
    _fake_sides(monkeypatch, clock, 0.25, compile_fails=True)
    result = speed.run_case(TINY, "infer", repeats=1, compile=True)
    assert result.compile_seconds is None and result.tuned_ips
    assert "no C++ compiler" in result.tuned["compile_error"]
    assert "torch.compile failed, tuned side ran eager" in speed.format_compile([result])


def test_markdown_table_is_stamped(tmp_path):
    from kvision.bench.stamp import write_markdown

    result = _result([100.0, 400.0, 300.0], [200.0, 200.0, 250.0], [400.0, 400.0, 300.0])
    out = write_markdown(
        tmp_path / "bench.md",
        "kvision bench",
        speed.markdown_table([result], 2, 2.0),
        command=["kvision", "bench", "--repeats", "3"],
        note="shared machine",
    )
    text = out.read_text()
    assert "2 torch threads, timed repeats of at least 2 s, 3 alternating repeats" in text
    assert (
        "| c | train | 300 | 200 | 400 | 0.50/1.20/2.00 | 1.60 | 0.25/1.00/1.00 | 1.00 | 2 | 1 |"
        in text
    )
    assert "repeat 1, kvision 100 img/s = 0.33 x its median  " in text  # disturbed, listed
    assert "- command: `kvision bench --repeats 3`" in text and "- note: shared machine" in text
    assert all(f"\n- {field}: " in text for field in ("machine", "software", "date", "command"))
    assert "cores" in text and "torch " in text and "UTC" in text


def test_two_ways_table_gives_each_ways_median_and_the_agreement():
    from kvision.bench.stamp import two_ways_table

    rows = [
        {"model": "A", "seconds": [[0.3, 0.1, 0.2], [0.05, 0.5, 0.04]], "same": True},
        {"model": "B", "seconds": [[1.0], [2.0]], "same": False},
    ]
    assert two_ways_table(("old", "new"), "same in all 3 rounds", rows).splitlines() == [
        "| model | old, median s | new, median s | same in all 3 rounds |",
        "|---|---:|---:|---|",
        "| A | 0.200 | 0.050 | yes |",
        "| B | 1.000 | 2.000 | no |",
    ]


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
    assert (args.mode, args.repeats, args.threads, args.json) == ("both", 5, 2, False)
    assert args.min_seconds == 2.0 and not args.compile and args.markdown is None
    assert args.note is None and not args.mixed_precision


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


def test_run_case_repeats_passes_to_fill_min_seconds(monkeypatch):
    """On a fake clock: the fastest side (tuned, 0.25 s a pass) sets 4 passes for 1 s."""
    clock = _FakeClock(monkeypatch)
    _fake_sides(monkeypatch, clock, 0.25)
    result = speed.run_case(TINY, "infer", repeats=1, min_seconds=1.0)
    assert result.passes == 4 and result.summary()["passes"] == 4
    images = TINY.batch_size * TINY.steps
    assert result.kvision_ips == [4 * images / 2.0] and result.tuned_ips == [4 * images / 1.0]
    assert speed.run_case(TINY, "infer", repeats=1).passes == 1  # min_seconds=0: one pass


def test_bad_options_are_refused_before_any_work():
    from kvision.bench.driver import main

    parser = argparse.ArgumentParser()
    add_arguments(parser)
    for bad in (["--min-seconds", "-1"], ["--repeats", "0"], ["--min-seconds", "nan"]):
        with pytest.raises(KvisionError, match="--min-seconds at least 0"):
            main(parser.parse_args(bad))


def test_mixed_precision_needs_cuda(monkeypatch):
    import torch

    from kvision.bench.driver import main

    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    parser = argparse.ArgumentParser()
    add_arguments(parser)
    threads = torch.get_num_threads()
    with pytest.raises(KvisionError, match="--mixed-precision needs a CUDA device"):
        main(parser.parse_args(["--mixed-precision", "--list", "--threads", str(threads + 1)]))
    assert torch.get_num_threads() == threads  # the caller's thread count, given back


def test_cli_lists_cases():
    out = subprocess.run(
        [sys.executable, "-m", "kvision", "bench", "--list"],
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    ).stdout
    assert "resnet18-64" in out and "alexnet_seed/2-128" in out


def test_the_bench_trains_with_the_batch_end_dispatch_a_run_has():
    """Keras hands batch-end logs to a thread pool only when no callback has its own batch
    end; a run's progress callback has one, so the bench's kvision side must have one too."""
    import keras

    from kvision.train import fit

    def in_a_pool(callbacks) -> bool:
        return keras.callbacks.CallbackList(callbacks)._async_train

    run_callbacks = [fit.SeedEpoch(0), fit._Progress(run=None, epoch=None)]
    bench_callbacks = [fit.SeedEpoch(0), fit.BatchEndHook()]
    assert in_a_pool([fit.SeedEpoch(0)])  # without a hook Keras would use its pool
    assert in_a_pool(run_callbacks) is in_a_pool(bench_callbacks) is False


def test_the_bench_kvision_side_hands_no_batch_to_a_callback_pool(monkeypatch):
    """The side itself, as the bench times it: its fit gives Keras' pool no batch's logs."""
    import concurrent.futures

    handed = []
    real_submit = concurrent.futures.ThreadPoolExecutor.submit

    def counting_submit(self, fn, *args, **kwargs):
        handed.append(getattr(fn, "__name__", fn))
        return real_submit(self, fn, *args, **kwargs)

    monkeypatch.setattr(concurrent.futures.ThreadPoolExecutor, "submit", counting_submit)
    images, labels = speed.case_data(TINY)
    run, _ = speed.kvision_side(TINY, images, labels, "train")
    run()
    assert handed == []
