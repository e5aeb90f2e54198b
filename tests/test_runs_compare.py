"""`kvision compare`: aligned final tables, paired differences and the overlaid curves PNG."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from test_tui_fakes import write_run


def _kvision(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "kvision", *args],
        capture_output=True,
        text=True,
        cwd=cwd,
        timeout=120,
    )


def test_compare_prints_aligned_tables_and_writes_the_curves_png(tmp_path: Path) -> None:
    a = write_run(tmp_path / "runs", "20260101-120000-a", images=False)
    b = write_run(tmp_path / "runs", "20260102-120000-b", trials=1, images=False)
    out = _kvision("compare", str(a), str(b), "--png", "cmp.png", cwd=tmp_path)
    assert out.returncode == 0, out.stderr
    lines = out.stdout.splitlines()
    assert "  A  20260101-120000-a  [finished, 15s, 2 trial(s)]" in lines
    head = next(line for line in lines if line.startswith("trial "))
    row = next(line for line in lines if line.startswith("lenet / arm0  clear test"))
    assert head.index("B-A") + 3 == len(head) and row.endswith("+0.00")  # right-aligned
    assert any(line.startswith("B-A   clear test") for line in lines)  # paired differences
    png = tmp_path / "cmp.png"
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and f"Curves: {png.name}" in out.stdout


def test_compare_refuses_bad_input_with_exit_code_2(tmp_path: Path) -> None:
    a = write_run(tmp_path / "runs", "20260101-120000-a", images=False)
    one = _kvision("compare", str(a), cwd=tmp_path)
    assert one.returncode == 2 and "at least two run directories" in one.stderr
    bad = _kvision("compare", str(a), str(tmp_path), "--no-png", cwd=tmp_path)
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
