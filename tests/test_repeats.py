"""Repeated trials: paired by the recorded (model, arm, repeat), never by parsing names."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
from conftest import quiet, recipe_text, write_recipe
from scipy import stats

from kvision.runs import RunReader
from kvision.runs.repeats import final_groups, paired_differences
from kvision.runs.result_tables import repeats_table
from kvision.train.runner import run_recipe

# Names chosen so that splitting at the first '-' or at '-s' goes wrong: model "net-a" and
# arm "naive-x" give the trial "net-a-naive-x-s0".
MODELS = ("net-a", "net-b")
ARMS = ("naive-x", "expert-s1")


def _fake_run(tmp_path: Path, accuracy) -> Path:
    """A run directory written by hand: one final evaluation per (model, arm, repeat)."""
    d = tmp_path / "run"
    d.mkdir()
    (d / "meta.json").write_text(json.dumps({"seed": 10}))
    arms = "".join(f'[[arms]]\nname = "{a}"\n' for a in ARMS)
    (d / "recipe.toml").write_text(f'[experiment]\nname = "x"\nseed = 10\nrepeats = 4\n{arms}')
    trials, events = [], []
    for r in range(3):
        for m in MODELS:
            for a in ARMS:
                name = f"{m}-{a}-s{r}"
                trials.append({"trial": name, "model": m, "arm": a, "repeat": r})
                events.append(
                    {
                        "event": "evaluation",
                        "trial": name,
                        "checkpoint": "after_train",
                        "matrix": {"blurred": {"test": accuracy(m, a, r)}},
                    }
                )
                events.append({"event": "trial_finished", "trial": name})
    # A fourth repeat still running: evaluated after its first stage, not finished.
    trials.append({"trial": "net-a-naive-x-s3", "model": "net-a", "arm": "naive-x", "repeat": 3})
    events.append(
        {
            "event": "evaluation",
            "trial": "net-a-naive-x-s3",
            "checkpoint": "before",
            "matrix": {"blurred": {"test": 0.1}},
        }
    )
    lines = [{"event": "run_started", "trials": trials}, *events]
    (d / "events.jsonl").write_text("".join(json.dumps(e) + "\n" for e in lines))
    return d


def _accuracy(model: str, arm: str, repeat: int) -> float:
    # Model b is far better than model a: a cross-model pair would show a difference near 0.5.
    return (
        (0.2 if model == "net-a" else 0.7)
        + (0.01 * repeat if arm == "expert-s1" else 0.0)
        + 0.03 * repeat
    )


def test_pairs_by_recorded_identity_with_hyphenated_names(tmp_path):
    reader = RunReader(_fake_run(tmp_path, _accuracy))
    groups = final_groups(reader)
    assert set(groups) == {(m, a) for m in MODELS for a in ARMS}
    assert all(sorted(reps) == [0, 1, 2] for reps in groups.values())
    diffs = paired_differences(reader)
    assert [(d.model, d.arm, d.other) for d in diffs] == [
        ("net-a", "expert-s1", "naive-x"),
        ("net-b", "expert-s1", "naive-x"),
    ]
    per_repeat = [0.0, 0.01, 0.02]  # expert − naive of repeats 0, 1, 2 in both models
    half = stats.t.ppf(0.975, 2) * 0.01 / math.sqrt(3)
    for d in diffs:
        assert d.n == 3 and d.mean == pytest.approx(sum(per_repeat) / 3)
        assert (d.low, d.high) == pytest.approx((0.01 - half, 0.01 + half))
    table = repeats_table(reader)
    assert "| net-a | expert-s1 − naive-x | blurred test | +1 |" in table
    rows = [
        line.split(" | ")[:2]
        for line in table.split("Paired")[1].splitlines()
        if line.startswith("| net-")
    ]
    assert rows == [["| net-a", "expert-s1 − naive-x"], ["| net-b", "expert-s1 − naive-x"]]


def test_versus_names_the_contrasts(tmp_path):
    d = _fake_run(tmp_path, _accuracy)
    recipe = (
        (d / "recipe.toml")
        .read_text()
        .replace('name = "expert-s1"\n', 'name = "expert-s1"\nversus = ["naive-x"]\n')
    )
    (d / "recipe.toml").write_text(
        recipe.replace('[[arms]]\nname = "naive-x"\n', '[[arms]]\nname = "naive-x"\nversus = []\n')
    )
    diffs = paired_differences(RunReader(d))
    assert {(x.arm, x.other) for x in diffs} == {("expert-s1", "naive-x")}


def test_old_runs_without_repeat_fall_back_to_the_seed(tmp_path):
    d = tmp_path / "old"
    d.mkdir()
    (d / "meta.json").write_text("{}")
    (d / "recipe.toml").write_text('[experiment]\nname = "x"\nseed = 10\n')
    events = [
        {"event": "trial_started", "trial": f"t{r}", "model": "m-1", "arm": "a-b", "seed": 10 + r}
        for r in range(2)
    ]
    (d / "events.jsonl").write_text("".join(json.dumps(e) + "\n" for e in events))
    ids = RunReader(d).identities()
    assert [(i.model, i.arm, i.repeat) for i in ids.values()] == [
        ("m-1", "a-b", 0),
        ("m-1", "a-b", 1),
    ]


@pytest.fixture(scope="module")
def pairs_run(tmp_path_factory) -> Path:
    """One finished run of tests/recipes/pairs.toml (hyphenated names, two repeats)."""
    folder = tmp_path_factory.mktemp("pairs")
    path = write_recipe(folder, recipe_text("pairs"), "pairs.toml")
    result = run_recipe(str(path), [], runs_dir=str(folder / "runs"), console=quiet())
    assert result.status == "finished", result.message
    return result.run_dir


def test_real_run_with_hyphenated_names_pairs_within_a_model(pairs_run):
    reader = RunReader(pairs_run)
    started = {e["trial"]: (e["model"], e["arm"], e["repeat"]) for e in reader.of("trial_started")}
    assert started["net-a-naive-x-s1"] == ("net-a", "naive-x", 1)
    finals = {e["trial"]: e["matrix"]["blurred"]["test"] for e in reader.evaluations()}
    diffs = paired_differences(reader)
    assert [(d.model, d.arm, d.other, d.n) for d in diffs] == [
        ("net-a", "expert-y", "naive-x", 2),
        ("net-b", "expert-y", "naive-x", 2),
    ]
    for d in diffs:
        expected = [
            finals[f"{d.model}-expert-y-s{r}"] - finals[f"{d.model}-naive-x-s{r}"] for r in range(2)
        ]
        assert d.mean == pytest.approx(sum(expected) / 2)
    report = (pairs_run / "report.md").read_text()
    assert "| net-b | expert-y − naive-x | blurred test |" in report


def test_evidence_script_tables_come_from_the_run(tmp_path, capsys):
    import importlib.util

    path = Path(__file__).resolve().parents[1] / "benchmarks" / "evidence.py"
    spec = importlib.util.spec_from_file_location("evidence", path)
    evidence = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(evidence)
    run = _fake_run(tmp_path, _accuracy)
    out = tmp_path / "evidence.md"
    assert evidence.main([str(run), "--cells", "blurred test", "--markdown", str(out)]) == 0
    text = out.read_text()
    assert text in capsys.readouterr().out
    assert (
        "3 of 4 repeats finished" in text and "| net-b | expert-s1 | blurred test | 74.00 |" in text
    )
    assert "| net-a | expert-s1 − naive-x | blurred test | +1.00 | [" in text
    assert text.count("| yes |") == 0 and text.count("| no |") == 2  # interval [-1.5, 3.5] pp


def test_real_report_opens_with_the_answer(pairs_run):
    """report.md of a real run with repeats: the answer first, paired intervals, the arms."""
    report = (pairs_run / "report.md").read_text()
    assert report.startswith("# pairs\n\n## Answer\n")
    diffs = {d.model: d for d in paired_differences(RunReader(pairs_run))}
    d = diffs["net-b"]
    row = f"| net-b | expert-y − naive-x | {d.mean * 100:+.1f} [{d.low * 100:+.1f}, "
    assert row in report and "n=2" in report
    assert (
        "- **expert-y**: pretrain: 1 epoch on clear (unchanged images), then train: 1 epoch on blurred (gaussian blur, sigma 1.5)."
        in report
    )
    answer = report.split("## Answer")[1].split("\n## ")[0]
    assert "no interval excludes 0" in answer or "Intervals that exclude 0" in answer
