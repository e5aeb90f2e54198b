"""The TUI's non-visual parts: run digest, charts, half-block images, launching helpers."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from rich.console import Console
from test_tui_fakes import fake_events, write_run

from kvision.errors import KvisionError
from kvision.runs import RunReader
from kvision_tui.charts import downsample, nice_ticks, tick_label
from kvision_tui.images import HalfBlock, ImageLoadError, load_image, prepare_native
from kvision_tui.recipes_screen import find_recipes, recipe_name
from kvision_tui.runstate import RunState, format_seconds, open_run


def test_state_digests_trials_stages_and_evaluations(tmp_path: Path) -> None:
    state = RunState(write_run(tmp_path, epochs=(2, 3)))
    assert list(state.trials) == ["lenet-arm0", "lenet-arm1"]
    trial = state.trials["lenet-arm0"]
    assert [r.global_epoch for r in trial.rows()] == [1, 2, 3, 4, 5]
    assert trial.boundaries() == [2]  # the second stage starts at the 3rd epoch (index 2)
    assert state.final_matrices()["lenet-arm1"]["checkpoint"] == "after_stage1"
    # the headline kvision ls shows: best final test accuracy (after_stage1 of lenet-arm0)
    assert state.best_test() == (pytest.approx(0.8), "accuracy")
    assert state.status() == "finished"
    assert format_seconds(state.duration()) == "13s"
    assert ("warning", "skipped bad.png: cannot decode") in state.messages


def test_state_skips_a_partial_last_line_and_picks_it_up_when_completed(tmp_path: Path) -> None:
    run = write_run(tmp_path, trials=1, epochs=(2,), finish="running", partial_line=True)
    state = RunState(run)
    assert len(state.trials["lenet-arm0"].epochs) == 2
    # the writer completes the torn line, then appends a whole new epoch
    rest = {
        "event": "epoch_end",
        "trial": "lenet-arm0",
        "stage": "stage0",
        "epoch": 3,
        "global_epoch": 3,
        "metrics": {"loss": 0.1},
        "seconds": 1.0,
    }
    with open(run / "events.jsonl", "a") as fh:
        fh.write('00:00.000+00:00"}\n' + json.dumps(rest) + "\n")
    new = state.poll()
    # the completed line is read now; it lacks an epoch number, so it becomes a warning
    assert [e["event"] for e in new] == ["epoch_end", "epoch_end"]
    assert any("Could not read a epoch_end" in text for _, text in state.messages)
    assert state.trials["lenet-arm0"].series("loss")[-1] == 0.1


def test_resumed_epoch_replaces_the_earlier_one_and_bad_events_become_warnings(
    tmp_path: Path,
) -> None:
    run = write_run(tmp_path, trials=1, epochs=(2,), finish="running")
    state = RunState(run)
    state.add({"event": "run_resumed", "lost_partial_epoch": True})
    state.add(
        {
            "event": "epoch_end",
            "trial": "lenet-arm0",
            "stage": "stage0",
            "epoch": 2,
            "global_epoch": 2,
            "metrics": {"loss": 9.0},
        }
    )
    state.add({"event": "epoch_end", "trial": "lenet-arm0"})  # no epoch: malformed
    assert state.trials["lenet-arm0"].series("loss")[-1] == 9.0
    assert len(state.trials["lenet-arm0"].epochs) == 2
    assert any("Could not read a epoch_end" in text for _, text in state.messages)
    assert any("Resumed" in text for _, text in state.messages)


def test_failed_run_reports_its_error(tmp_path: Path) -> None:
    state = RunState(write_run(tmp_path, trials=1, finish="failed"))
    assert state.status() == "failed"
    assert ("error", "Run failed: CUDA out of memory (traceback in run.log)") in state.messages


def test_open_run_explains_a_directory_that_is_not_a_run(tmp_path: Path) -> None:
    with pytest.raises(KvisionError, match="is not a kvision run directory"):
        open_run(tmp_path)
    with pytest.raises(KvisionError, match="does not exist"):
        open_run(tmp_path / "nope")


def test_thousands_of_epochs_digest_quickly(tmp_path: Path) -> None:
    import time

    from kvision_tui.live_screen import curves

    run = write_run(tmp_path, trials=4, epochs=(1500, 1500), images=False)
    start = time.perf_counter()
    state = RunState(run)
    loss, _ = curves(state.trials["lenet-arm3"])
    assert len(state.trials["lenet-arm3"].epochs) == 3000
    assert time.perf_counter() - start < 5  # ~0.5 s here; generous for a loaded CI machine
    assert loss.series[0].xs[-1] == 3000 and loss.boundaries == (1500.5,)


def test_downsample_averages_into_bins() -> None:
    assert downsample([1, 2, 3, 4, 5, 6], [1, 2, 3, 4, 5, 6], 3) == (
        [1.5, 3.5, 5.5],
        [1.5, 3.5, 5.5],
    )
    assert downsample([1, 2], [3, 4], 5) == ([1, 2], [3, 4])
    assert len(downsample(range(10_000), list(range(10_000)), 37)[1]) == 37


def test_ticks_are_round_numbers_with_just_enough_decimals() -> None:
    assert nice_ticks(0.31, 0.97, 5) == [0.4, 0.6, 0.8]
    assert nice_ticks(1, 3000, 3) == [1000, 2000, 3000]
    assert nice_ticks(1, 3000, 6) == [500, 1000, 1500, 2000, 2500, 3000]
    assert nice_ticks(0.4154, 0.5682, 2) == [0.45, 0.5, 0.55]  # never fewer than two
    assert [tick_label(v, 0.2) for v in (0.4, 0.6)] == ["0.4", "0.6"]
    assert tick_label(1500.0, 500) == "1500" and tick_label(0.05, 0.01) == "0.05"


def _png(path: Path, size=(4, 4), color=(255, 0, 0)) -> Path:
    from PIL import Image

    Image.new("RGB", size, color).save(path)
    return path


def test_half_blocks_fit_the_width_and_carry_both_pixel_colours(tmp_path: Path) -> None:
    from PIL import Image

    img = Image.new("RGB", (2, 2))
    img.putdata([(255, 0, 0), (255, 0, 0), (0, 0, 255), (0, 0, 255)])
    console = Console(width=8, height=4, color_system="truecolor")
    # 8 columns but only 1 row (2 px high) allowed: the height limits the scale to 1
    segments = [s for s in console.render(HalfBlock(img, max_height=1)) if s.text == "▀"]
    assert len(segments) == 2
    assert {(s.style.color.triplet.hex, s.style.bgcolor.triplet.hex) for s in segments} == {
        ("#ff0000", "#0000ff")
    }  # top pixel as foreground, bottom pixel as background
    wide = [s for s in console.render(HalfBlock(img, max_height=4)) if s.text == "▀"]
    assert len(wide) == 8 * 4  # scaled up to the full 8 columns, 4 rows


def test_half_blocks_fall_back_to_a_luminance_ramp_without_colour() -> None:
    from PIL import Image

    console = Console(width=4, height=2, color_system=None, record=True)
    console.print(HalfBlock(Image.new("RGB", (4, 4), (255, 255, 255)), max_height=2))
    assert console.export_text().splitlines()[0] == "@@@@"


def test_load_image_names_missing_and_corrupt_files(tmp_path: Path) -> None:
    assert load_image(_png(tmp_path / "ok.png")).size == (4, 4)
    (tmp_path / "bad.png").write_bytes(b"\x89PNG\r\n garbage")
    with pytest.raises(ImageLoadError, match="cannot be decoded"):
        load_image(tmp_path / "bad.png")
    with pytest.raises(ImageLoadError, match="is missing"):
        load_image(tmp_path / "gone.png")


def test_find_recipes_and_recipe_name(tmp_path: Path) -> None:
    (tmp_path / "b.toml").write_text("")
    (tmp_path / "a.toml").write_text("")
    (tmp_path / "notes.txt").write_text("")
    found = find_recipes([tmp_path, tmp_path / "a.toml"])
    assert [p.name for p in found] == ["a.toml", "b.toml"]
    assert recipe_name(object(), tmp_path / "a.toml") == "a"


def test_fake_events_cover_every_trial() -> None:
    trials = {e["trial"] for e in fake_events(trials=3) if e["event"] == "trial_started"}
    assert len(trials) == 3


def test_image_modes_fall_back_to_half_blocks_off_a_terminal() -> None:
    # pytest's stdout is not a terminal, so no graphics protocol can be detected
    assert prepare_native("halfblock") == "halfblock"
    assert prepare_native("auto") == "halfblock"
    assert prepare_native("native") == "halfblock"


@pytest.mark.parametrize(
    ("finish", "pid", "expected"),
    [
        ("finished", None, "finished"),
        ("failed", None, "failed"),
        ("running", None, "stale"),
        ("running", "self", "running"),
    ],
)
def test_state_status_agrees_with_the_reader(tmp_path: Path, finish, pid, expected) -> None:
    import os

    run = write_run(
        tmp_path, trials=1, finish=finish, images=False, pid=os.getpid() if pid == "self" else None
    )
    assert RunState(run).status() == RunReader(run).status() == expected


def test_regression_run_charts_mae_and_shows_r2_as_a_number(tmp_path: Path) -> None:
    """A function-fitting run has MAE instead of accuracy and R^2 in its evaluation matrix."""
    from kvision_tui.live_screen import curves, matrix_rows

    run = write_run(tmp_path, trials=1, epochs=(3,), images=False)
    events = [json.loads(line) for line in (run / "events.jsonl").read_text().splitlines()]
    for e in events:
        if e["event"] == "epoch_end":
            e["metrics"]["mae"] = e["metrics"].pop("accuracy")
            e["metrics"]["val_mae"] = e["metrics"].pop("val_accuracy")
        if e["event"] == "evaluation":
            e.update(metric="r2", matrix={"clear": {"test": 0.95123}})
    (run / "events.jsonl").write_text("".join(json.dumps(e) + "\n" for e in events))
    state = RunState(run)
    trial = state.trials["lenet-arm0"]
    _, second = curves(trial)
    train, val = second.series
    assert (train.label, val.label) == ("train mae", "val mae")
    assert list(train.values) == trial.series("mae") and len(train.values) == 3
    _, rows = matrix_rows(state.evaluations)
    assert rows[-1][-1] == "0.9512"


def _append(run: Path, *events: dict) -> None:
    with open(run / "events.jsonl", "a") as fh:
        for e in events:
            fh.write(
                json.dumps(
                    {"time": "2026-01-01T13:00:00.000+00:00", "trial": None, "stage": None, **e}
                )
                + "\n"
            )


def test_state_follows_the_trial_that_trains_and_sees_evaluations_in_progress(
    tmp_path: Path,
) -> None:
    run = write_run(tmp_path, trials=1, epochs=(2,), finish="running", images=False)
    state = RunState(run)
    assert state.active == "lenet-arm0"
    _append(
        run,
        {"event": "trial_started", "trial": "lenet-arm9", "model": "lenet", "arm": "arm9"},
        {"event": "evaluation_started", "trial": "lenet-arm9", "checkpoint": "before"},
    )
    state.poll()
    assert state.active == "lenet-arm9"
    assert (state.evaluating.trial, state.evaluating.checkpoint) == ("lenet-arm9", "before")
    _append(
        run,
        {
            "event": "evaluation",
            "trial": "lenet-arm9",
            "checkpoint": "before",
            "matrix": {"clear": {"test": 0.1}},
        },
    )
    state.poll()
    assert state.evaluating is None


def test_warning_events_and_failed_trials_become_messages(tmp_path: Path) -> None:
    """The schema issue 15 emits: kind, trial/stage (or null), message, details."""
    run = write_run(tmp_path, trials=2, epochs=(2,), finish="running", images=False)
    _append(
        run,
        {
            "event": "warning",
            "trial": "lenet-arm1",
            "stage": "stage0",
            "kind": "non_finite_loss",
            "message": "loss became NaN at epoch 2.",
            "details": {"epoch": 2},
        },
        {"event": "warning", "kind": "missing_split", "message": "no val split."},
        {
            "event": "trial_failed",
            "trial": "lenet-arm1",
            "stage": "stage0",
            "error": "non-finite loss",
        },
    )
    state = RunState(run)
    assert (
        "warning",
        "[non_finite_loss] lenet-arm1 stage0: loss became NaN at epoch 2.",
    ) in state.messages
    assert ("warning", "[missing_split] no val split.") in state.messages
    assert state.trials["lenet-arm1"].failed == "non-finite loss"
    assert any(level == "error" and "lenet-arm1 failed" in text for level, text in state.messages)


def test_duration_is_total_run_time_across_resumes() -> None:
    from kvision.runs.summary import run_seconds

    def at(kind: str, minute: int, **kw) -> dict:
        return {"event": kind, "time": f"2026-01-01T12:{minute:02d}:00+00:00", **kw}

    events = [
        at("run_started", 0),
        at("epoch_end", 5),
        at("run_interrupted", 10),
        at("run_resumed", 30),
        at("epoch_end", 33),
        at("run_finished", 40, seconds=600),
    ]
    assert run_seconds(events) == 600 + 600  # 10 min before the resume + the runner's 600 s
    assert run_seconds(events[:5]) == 600 + 180  # still running: until its latest event
    assert run_seconds([]) is None
    from datetime import datetime

    from kvision.runs.summary import RunClock

    clock = RunClock()
    for e in events[:5]:
        clock.add(e)
    later = datetime.fromisoformat("2026-01-01T12:35:00+00:00")
    assert clock.seconds(now=later) == 600 + 300  # a live view counts up to now


def test_ls_and_the_history_show_the_same_headline(tmp_path: Path) -> None:
    from kvision.runs.listing import format_runs, run_summary
    from kvision.runs.summary import HEADLINE
    from kvision_tui.history_screen import COLUMNS, summary_row

    run = write_run(tmp_path, images=False)
    summary = run_summary(RunReader(run))
    assert summary["best_test"] == pytest.approx(0.8)  # lenet-arm0's final clear test
    assert HEADLINE in format_runs(tmp_path).splitlines()[0] and COLUMNS[-2] == HEADLINE
    assert "80.00%" in format_runs(tmp_path)
    # the headline names the trial and the condition it was measured on
    assert summary["best_where"] == ("lenet-arm0", "clear")
    assert format_runs(tmp_path).splitlines()[2].endswith("80.00%  lenet-arm0, clear test")
    assert summary_row(RunState(run))[-2] == "80.00%"
    assert summary_row(RunState(run))[-3] == format_seconds(summary["duration"])


def test_compare_pairs_trials_by_model_arm_and_repeat_not_by_name(tmp_path: Path) -> None:
    from kvision.runs.compare import compare, final_rows, format_comparison, paired_rows

    a = write_run(tmp_path, "20260101-120000-a", images=False)
    b = write_run(tmp_path, "20260102-120000-b", images=False)
    events = [json.loads(line) for line in (b / "events.jsonl").read_text().splitlines()]
    for e in events:  # b names its trials differently; the structured fields still match
        if e.get("trial"):
            e["trial"] = "x-" + e["trial"]
        for t in e.get("trials") or []:
            t["trial"] = "x-" + t["trial"]
        if e["event"] == "evaluation" and e["checkpoint"] == "after_stage1":
            e["matrix"]["clear"]["test"] += 0.05
    (b / "events.jsonl").write_text("".join(json.dumps(e) + "\n" for e in events))
    comparison = compare([a, b])
    assert comparison.identities == [("lenet", "arm0", 0), ("lenet", "arm1", 0)]
    head, rows = final_rows(comparison)
    assert head == ["trial", "cell", "A", "B", "B-A"]
    assert rows[0] == ["lenet / arm0", "clear test", "80.00", "85.00", "+5.00"]
    _, paired = paired_rows(comparison)
    # per trial type (model and arm), never pooled across them: one repeat each, no interval
    assert paired[0] == ["B-A", "lenet / arm0", "clear test", "+5.00", "none (n=1)", "1"]
    assert "Paired differences" in format_comparison(comparison)
    with pytest.raises(KvisionError, match="at least two run directories"):
        compare([a])
    with pytest.raises(KvisionError, match="is not a kvision run directory"):
        compare([a, tmp_path])


def test_history_columns_shrink_before_they_disappear() -> None:
    from kvision_tui.history_screen import MIN_WIDTHS, compact_time, end_cut, fit_widths, shorten

    natural = [1, 19, 15, 11, 8, 9, 40]
    assert fit_widths(natural, 200) == natural
    narrow = fit_widths(natural, 60)
    assert sum(narrow) <= 60 and all(w >= m for w, m in zip(narrow, MIN_WIDTHS, strict=True))
    assert narrow[4:6] == [8, 9]  # duration and best test keep their width
    assert narrow[6] < 40  # the overrides give up width first
    assert shorten("20260101-120000-fashion-blur", 12) == "202601…-blur"
    assert compact_time("2026-01-01 12:00:05", 14) == "01-01 12:00:05"
    assert compact_time("2026-01-01 12:00:05", 11) == "12:00:05"
    assert end_cut("data.limit_per_class=4, training.epochs=2", 12) == "data.limit_…"


def test_history_names_runs_by_start_and_shows_their_overrides(tmp_path: Path) -> None:
    from kvision_tui.history_screen import overrides_text, run_label, summary_row

    assert run_label("20261206-072106-naive_vs_expert", "naive_vs_expert") == "2026-12-06 07:21:06"
    assert run_label("20261206-072106-naive_vs_expert-2", "naive_vs_expert") == (
        "2026-12-06 07:21:06-2"
    )
    assert run_label("my-run", "x") == "my-run"
    run = write_run(tmp_path, "20260101-120000-demo", images=False)
    meta = json.loads((run / "meta.json").read_text())
    meta["overrides"] = ["data.limit_per_class=4", "experiment.repeats=2"]
    (run / "meta.json").write_text(json.dumps(meta))
    row = summary_row(RunState(run))
    assert row[0] == "2026-01-01 12:00:00" and row[1] == "demo"
    assert row[-1] == "data.limit_per_class=4, experiment.repeats=2"
    assert overrides_text({}) == "-"


def test_recipe_names_are_relative_to_their_folder(tmp_path: Path) -> None:
    from kvision_tui.recipes_screen import recipe_names

    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    (tmp_path / "a" / "x.toml").write_text("")
    (tmp_path / "b" / "y.toml").write_text("")
    assert list(recipe_names([tmp_path / "a"]).values()) == ["x.toml"]
    assert list(recipe_names([tmp_path / "a", tmp_path / "b"]).values()) == ["a/x.toml", "b/y.toml"]


def test_skipped_files_are_said_once_whether_or_not_the_run_warned(tmp_path: Path) -> None:
    old = RunState(write_run(tmp_path, "20260101-120000-old", images=False))
    assert [m for m in old.messages if "bad.png" in m[1]] == [
        ("warning", "skipped bad.png: cannot decode")
    ]  # a run from before skipped_files
    run = write_run(tmp_path, "20260102-120000-new", images=False)
    events = [json.loads(line) for line in (run / "events.jsonl").read_text().splitlines()]
    events.insert(
        2,
        {
            "event": "warning",
            "time": events[1]["time"],
            "trial": None,
            "stage": None,
            "kind": "skipped_files",
            "message": "1 file(s) in data were skipped: bad.png (cannot decode).",
        },
    )
    (run / "events.jsonl").write_text("".join(json.dumps(e) + "\n" for e in events))
    new = RunState(run)
    assert [text for _, text in new.messages if "bad.png" in text] == [
        "[skipped_files] 1 file(s) in data were skipped: bad.png (cannot decode)."
    ]


def test_compare_overlay_shows_one_model_at_a_time(tmp_path: Path) -> None:
    from kvision.runs.compare import compare
    from kvision_tui.compare_screen import overlay

    runs = []
    for name in ("20260101-120000-a", "20260102-120000-b"):
        run = write_run(tmp_path, name, images=False)
        events = [json.loads(line) for line in (run / "events.jsonl").read_text().splitlines()]
        for e in events:  # the second trial becomes another model's
            for t in [*(e.get("trials") or []), e]:
                if t.get("trial") == "lenet-arm1" and "model" in t:
                    t["model"] = "vgg"
        (run / "events.jsonl").write_text("".join(json.dumps(e) + "\n" for e in events))
        runs.append(run)
    comparison = compare(runs)
    states = [RunState(r) for r in runs]
    loss, _, _ = overlay(states, comparison)
    assert len(loss.series) == 4  # every run and trial
    loss, _, _ = overlay(states, comparison, only="vgg")
    assert [s.label for s in loss.series] == ["A vgg / arm1", "B vgg / arm1"]


def test_text_from_run_files_reaches_the_screens_with_control_characters_escaped(
    tmp_path: Path,
) -> None:
    """A shared run whose name and events carry escape sequences (set the terminal's title,
    clear the screen): the TUI shows them escaped; Textual would write them to the terminal."""
    hostile = "\x1b]2;PWNED\x07\x1b[2J"
    run = write_run(tmp_path, name=f"20260101-120000-x{hostile}")
    _append(run, {"event": "warning", "time": "2026-01-01T13:00:00", "message": f"bad{hostile}"})
    state = RunState(run)
    state.poll()
    assert state.name == "20260101-120000-x\\x1b]2;PWNED\\x07\\x1b[2J"
    shown = [text for _, text in state.messages]
    assert "bad\\x1b]2;PWNED\\x07\\x1b[2J" in shown
    assert not any("\x1b" in text or "\x07" in text for text in shown)
