"""What kvision sets for threads on import: OpenMP waiting threads spin briefly (docs/speed.md)."""

from __future__ import annotations

import os
import subprocess
import sys

# What the process that imports kvision, then torch (as every kvision command does), sees.
PROBE = "import os, kvision, torch; print(os.environ.get('GOMP_SPINCOUNT', '-'))"


def _probe(**env: str) -> str:
    mine = ("OMP_WAIT_POLICY", "GOMP_SPINCOUNT")
    clean = {k: v for k, v in os.environ.items() if k not in mine}
    out = subprocess.run(
        [sys.executable, "-c", PROBE],
        env={**clean, **env},
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    return out.stdout.strip()


def test_openmp_threads_spin_briefly_unless_the_user_says_otherwise():
    assert _probe() == "10000"
    assert _probe(GOMP_SPINCOUNT="300000") == "300000"  # the user's spin count wins
    # A user's wait policy wins too: kvision adds no spin count that would override it.
    assert _probe(OMP_WAIT_POLICY="ACTIVE") == "-"
    assert _probe(OMP_WAIT_POLICY="PASSIVE") == "-"
