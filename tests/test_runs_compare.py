"""`kvision compare`: aligned final tables, paired differences and the overlaid curves PNG."""

from __future__ import annotations

import json
from pathlib import Path

from conftest import kvision_cli
from test_tui_fakes import write_run


def test_compare_prints_aligned_tables_and_writes_the_curves_png(tmp_path: Path) -> None:
    a = write_run(tmp_path / "runs", "20260101-120000-a", images=False)
    b = write_run(tmp_path / "runs", "20260102-120000-b", trials=1, images=False)
    out = kvision_cli("compare", str(a), str(b), "--png", "cmp.png", cwd=tmp_path)
    assert out.returncode == 0, out.stderr
    lines = out.stdout.splitlines()
    assert "  A  20260101-120000-a  [finished, 15s, 2 trial(s)]" in lines
    head = next(line for line in lines if line.startswith("trial "))
    row = next(line for line in lines if line.startswith("lenet / arm0  clear test"))
    assert head.index("B-A") + 3 == len(head) and row.endswith("+0.00")  # right-aligned
    assert "  B vs A: the same recipe" in lines
    # paired differences, per trial type (model / arm), never pooled across them
    assert any(line.startswith("B-A   lenet / arm0  clear test") for line in lines)
    png = tmp_path / "cmp.png"
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and f"Curves: {png.name}" in out.stdout


def test_compare_refuses_bad_input_with_exit_code_2(tmp_path: Path) -> None:
    a = write_run(tmp_path / "runs", "20260101-120000-a", images=False)
    one = kvision_cli("compare", str(a), cwd=tmp_path)
    assert one.returncode == 2 and "at least two run directories" in one.stderr
    bad = kvision_cli("compare", str(a), str(tmp_path), cwd=tmp_path)
    assert bad.returncode == 2 and "is not a kvision run directory" in bad.stderr
    assert "Traceback" not in one.stderr + bad.stderr
    assert not list(tmp_path.glob("*.png"))


def test_compare_pairs_repeats_by_the_structured_repeat_field(tmp_path: Path) -> None:
    """With a ``repeat`` in run_started (issue 16), trials pair by it, whatever the names."""
    from kvision.runs.compare import compare

    runs = []
    for name, order in (("20260101-120000-a", (0, 1)), ("20260102-120000-b", (1, 0))):
        run = write_run(tmp_path, name, images=False)
        events = [json.loads(line) for line in (run / "events.jsonl").read_text().splitlines()]
        repeats = dict(zip(("lenet-arm0", "lenet-arm1"), order, strict=True))
        for e in events:
            for t in e.get("trials") or []:
                t.update(arm="same", repeat=repeats[t["trial"]])
            if e["event"] == "trial_started":
                e.update(arm="same", repeat=repeats[e["trial"]])
        (run / "events.jsonl").write_text("".join(json.dumps(e) + "\n" for e in events))
        runs.append(run)
    comparison = compare(runs)
    assert comparison.identities == [("lenet", "same", 0), ("lenet", "same", 1)]
    # b's first trial is repeat 1: it pairs with a's second trial
    assert comparison.runs[1].trials[("lenet", "same", 1)] == "lenet-arm0"


def test_compare_states_recipe_changes_and_refuses_to_pair_them(tmp_path: Path) -> None:
    """Runs of different recipes: what differs is said, paired statistics need --force, and
    no PNG appears anywhere unless asked for."""
    runs = tmp_path / "runs"
    a = write_run(runs, "20260101-120000-a", images=False)
    b = write_run(runs, "20260102-120000-b", images=False)
    (a / "recipe.toml").write_text(
        '[experiment]\nname = "demo"\nseed = 1\n\n[data]\nlimit_per_class = 150\n'
    )
    (b / "recipe.toml").write_text(
        '[experiment]\nname = "demo"\nseed = 2\n\n[data]\nlimit_per_class = 30\n'
    )
    out = kvision_cli("compare", str(a), str(b), cwd=tmp_path)
    assert out.returncode == 0, out.stderr
    assert "  B vs A: experiment.seed 1 -> 2; data.limit_per_class 150 -> 30" in out.stdout
    assert "Paired differences are not computed" in out.stdout
    assert "(data.limit_per_class)" in out.stdout and "--force" in out.stdout
    assert "95% CI" not in out.stdout
    assert not list(tmp_path.rglob("*.png"))  # the figure only when asked
    forced = kvision_cli("compare", str(a), str(b), "--force", "--png", cwd=tmp_path)
    assert "--force: computed although the recipes differ" in forced.stdout
    assert "B-A   lenet / arm1  clear test" in forced.stdout
    # --png without a path: into the folder that holds the runs, not the current one
    assert [p.name for p in runs.glob("*.png")] == [
        "compare-20260101-120000-a-vs-20260102-120000-b.png"
    ]
    assert not list(tmp_path.glob("*.png"))


def test_a_different_seed_pairs_and_intervals_are_per_trial_type(tmp_path: Path) -> None:
    from kvision.runs.compare import compare, format_comparison, paired_rows

    a = write_run(tmp_path, "20260101-120000-a", images=False)
    b = write_run(tmp_path, "20260102-120000-b", images=False)
    (b / "recipe.toml").write_text('[experiment]\nname = "demo"\nseed = 7\n')
    comparison = compare([a, b])
    assert comparison.blockers() == {}  # only the seed differs
    head, rows = paired_rows(comparison)
    assert head == ["runs", "trial", "cell", "mean", "95% CI", "n"]
    # one row per (model, arm) and cell: lenet/arm0 and lenet/arm1 are never pooled
    assert {r[1] for r in rows} == {"lenet / arm0", "lenet / arm1"}
    assert all(r[4] == "none (n=1)" and r[5] == "1" for r in rows)
    assert "B vs A: experiment.seed (absent) -> 7" in format_comparison(comparison)


def test_the_compare_figure_has_a_row_of_panels_per_model(tmp_path: Path, monkeypatch) -> None:
    import kvision.insight.curves as curves

    a = write_run(tmp_path, "20260101-120000-a", images=False)
    b = write_run(tmp_path, "20260102-120000-b", images=False)
    figures = []
    monkeypatch.setattr(curves, "save_figure", lambda fig, path: figures.append(fig) or path)
    curves.plot_runs_comparison([a, b], tmp_path / "c.png")
    (fig,) = figures
    assert [ax.get_title() for ax in fig.axes] == [
        "lenet: validation loss",
        "lenet: validation accuracy",
    ]
    (legend,) = fig.legends  # one legend for the figure: colour = run, style = arm
    texts = [t.get_text() for t in legend.get_texts()]
    assert texts == ["A = 20260101-120000-a", "B = 20260102-120000-b", "arm0", "arm1"]
