"""report.md answers the question its arms declare (``versus``), and says its subsets."""

from __future__ import annotations

import json
from pathlib import Path

from kvision.runs import RunReader
from kvision.runs.answer import answer_section, arms_paragraph
from kvision.train.report_md import render_report

ARMS = """
[conditions.clear]

[conditions.blurred.blur]
kind = "gaussian"
sigma = 4.0

[[arms]]
name = "naive"
stages = [{ name = "train", condition = "blurred", epochs = 2 }]

[[arms]]
name = "expert"
versus = ["naive", "naive_matched"]
stages = [
  { name = "pretrain", condition = "clear", epochs = 2 },
  { name = "train", condition = "blurred", epochs = 2 },
]

[[arms]]
name = "naive_matched"
stages = [{ name = "train", condition = "blurred", epochs = 4 }]

[evaluate]
max_images = 30
"""

#: Final blurred-test accuracy per (model, arm, repeat); train cells are 0.5 throughout.
ACC = {
    ("alexnet", "naive"): [0.50, 0.52, 0.54],
    ("alexnet", "expert"): [0.60, 0.63, 0.66],  # +10, +11, +12 pp over naive
    ("alexnet", "naive_matched"): [0.59, 0.64, 0.64],  # +1, -1, +2 pp: straddles 0
    ("vgg", "naive"): [0.70, 0.70, 0.70],
    ("vgg", "expert"): [0.70, 0.71, 0.69],
    ("vgg", "naive_matched"): [0.70, 0.70, 0.70],
}


def _run(tmp_path: Path, repeats: int, robustness_n: int = 0) -> Path:
    """A run directory written by hand: data counts, final evaluations, finished trials."""
    d = tmp_path / f"run{repeats}"
    d.mkdir()
    (d / "meta.json").write_text(json.dumps({"seed": 1}))
    (d / "recipe.toml").write_text(f'[experiment]\nname = "q"\nseed = 1\n{ARMS}')
    trials, events = [], []
    for (model, arm), accs in ACC.items():
        for r in range(repeats):
            name = f"{model}-{arm}-s{r}"
            trials.append({"trial": name, "model": model, "arm": arm, "repeat": r})
            matrix = {"blurred": {"train": 0.5, "test": accs[r]}}
            events += [
                {"event": "trial_started", "trial": name, "model": model, "arm": arm, "repeat": r},
                {
                    "event": "evaluation",
                    "trial": name,
                    "checkpoint": "after_train",
                    "matrix": matrix,
                },
                {"event": "trial_finished", "trial": name},
            ]
            if robustness_n:
                curves = {"n": robustness_n, "condition": "clear", "sigma": {"4": accs[r]}}
                curves["severity"] = {}
                (d / "trials" / name).mkdir(parents=True)
                (d / "trials" / name / "robustness.json").write_text(json.dumps(curves))
    loaded = {"event": "data_loaded", "counts": {"train": 80, "val": 20, "test": 40}}
    lines = [{"event": "run_started", "trials": trials}, loaded, *events]
    (d / "events.jsonl").write_text("".join(json.dumps(e) + "\n" for e in lines))
    return d


def test_repeats_give_paired_intervals_and_a_verdict(tmp_path):
    answer = answer_section(RunReader(_run(tmp_path, 3)))
    # alexnet expert − naive: +10, +11, +12 pp: mean +11, t(0.975, 2) * 1 / sqrt(3) = 2.48
    assert "| alexnet | expert − naive | +11.0 [+8.5, +13.5] | +0.0 [+0.0, +0.0] |" in answer
    # expert − naive_matched: +1, -1, +2: mean +0.7, an interval across 0
    assert "| alexnet | expert − naive_matched | +0.7 [" in answer
    assert "n=3" in answer and "n=1" not in answer
    assert "alexnet expert − naive on blurred test +11.0 pp (expert ahead)" in answer
    assert "The other 3 test-cell intervals include 0." in answer


def test_one_run_each_says_n1_no_interval(tmp_path):
    answer = answer_section(RunReader(_run(tmp_path, 1)))
    assert "n=1, no interval" in answer and "--repeats N" in answer
    assert "| alexnet | expert − naive | +10.0 | +0.0 |" in answer
    assert "[" not in answer.split("| model |")[1]  # no interval anywhere in the table


def test_report_opens_with_the_answer_then_the_arms(tmp_path):
    report = render_report(_run(tmp_path, 1))
    assert report.startswith("# q\n\n## Answer\n")
    arms = report.split("### The arms\n")[1].split("\n## ")[0]
    assert "- **naive**: train: 2 epochs on blurred (gaussian blur, sigma 4)." in arms
    assert (
        "- **expert**: pretrain: 2 epochs on clear (unchanged images), "
        "then train: 2 epochs on blurred (gaussian blur, sigma 4)." in arms
    )
    assert "- **naive_matched**: train: 4 epochs on blurred (gaussian blur, sigma 4) " in arms
    assert "(as many epochs in all as expert: the budget-matched control)" in arms


def test_no_versus_no_answer_section(tmp_path):
    d = _run(tmp_path, 1)
    recipe = (d / "recipe.toml").read_text().replace('versus = ["naive", "naive_matched"]\n', "")
    (d / "recipe.toml").write_text(recipe)
    assert answer_section(RunReader(d)) == ""
    assert "## Answer" not in render_report(d)
    assert arms_paragraph({"arms": []}) == ""


def test_tables_say_their_subsets(tmp_path):
    report = render_report(_run(tmp_path, 1, robustness_n=20))
    final = report.split("## Final accuracy (%)")[1].split("\n## ")[0]
    # train 80 > evaluate.max_images 30: a subset; test is always evaluated whole
    assert "train: a seeded subset of 30 of its 80 images; test: all 40 images." in final
    robust = report.split("### Blur robustness")[1]
    assert "a stratified, seeded subset of 20 of the 40 clear test images" in robust
    assert "up to ±11.2 pp" in robust  # 50 / sqrt(20)


def test_show_draws_markdown_for_a_terminal_and_keeps_it_for_a_pipe(tmp_path):
    import subprocess
    import sys

    run = _run(tmp_path, 1)
    cmd = [sys.executable, "-m", "kvision", "show", str(run)]
    piped = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
    assert piped.returncode == 0, piped.stderr
    assert "| model | difference |" in piped.stdout and "|---|---|" in piped.stdout
    drawn = subprocess.run([*cmd, "--format", "text"], capture_output=True, text=True, timeout=120)
    assert drawn.returncode == 0, drawn.stderr
    out = drawn.stdout
    assert "|---" not in out and "---:" not in out and "**" not in out and "## " not in out
    row = next(line for line in out.splitlines() if "expert − naive " in line)
    assert row.split() == ["alexnet", "expert", "−", "naive", "+10.0", "+0.0"]
    assert "n=1, no interval" in out


def test_a_resumed_run_reports_one_total_time_and_its_interruptions(tmp_path):
    """The console's "finished in", report.md's wall time and `kvision ls` agree after a
    resume, and the report says the run was interrupted."""
    from kvision.runs.summary import run_seconds
    from kvision.train.report_md import finished_time

    d = _run(tmp_path, 1)
    t = "2026-01-01T12:{:02d}:00+00:00"
    session = [
        {"event": "run_started", "time": t.format(0)},
        {"event": "epoch_end", "time": t.format(5)},  # 300 s in the first session
        {"event": "run_interrupted", "time": t.format(5), "signal": "SIGTERM"},
        {"event": "run_resumed", "time": t.format(30)},  # 25 minutes paused: not counted
    ]
    events = [json.loads(x) for x in (d / "events.jsonl").read_text().splitlines()]
    lines = session + [e for e in events if e["event"] != "run_started"]
    (d / "events.jsonl").write_text("".join(json.dumps(e) + "\n" for e in lines))
    report = render_report(d, status="finished", session_seconds=120.0)
    assert "- wall time: 420.0 s" in report  # 300 s + the finishing session's 120 s
    assert "- sessions: 2, resumed 1 time(s) after: interrupted by SIGTERM at " + t.format(5) in (
        report
    )
    with open(d / "events.jsonl", "a") as fh:  # what the runner writes next
        fh.write(json.dumps({"event": "run_finished", "seconds": 120.0}) + "\n")
    assert finished_time(d) == "420.0s in all, over 2 sessions (stopped 1 time)"
    assert run_seconds(RunReader(d).events) == 420.0  # kvision ls and the TUI
