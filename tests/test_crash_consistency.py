"""SIGKILL at random instants (and inside random writes), resume, same result: N = 4 in CI
(two at stratified random times, two inside random writes).

The full measurement (N = 20) is ``python benchmarks/crash_consistency.py --n 20``.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parents[1] / "benchmarks" / "crash_consistency.py"


@pytest.mark.slow(seconds=35)
def test_every_killed_and_resumed_run_ends_like_the_uninterrupted_one(tmp_path):
    out = tmp_path / "crash.json"
    proc = subprocess.run(
        [sys.executable, str(SCRIPT), "--n", "4", "--seed", "1", "--out", str(out)],
        capture_output=True,
        text=True,
        timeout=1500,
    )
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    import json

    summary = json.loads(out.read_text())
    assert summary["n"] == 4 and summary["matched"] == 4
    # both write kills land, and the time kill in the run's first half: not after its end
    assert summary["killed"] >= 3
    assert {k["mode"] for k in summary["kills"]} == {"time", "write"}
