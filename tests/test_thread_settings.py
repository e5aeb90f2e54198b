"""What kvision sets for threads on import: OpenMP waiting threads sleep (docs/speed.md)."""

from __future__ import annotations

import os
import subprocess
import sys

# What the process that imports kvision, then torch (as every kvision command does), sees.
PROBE = "import os, kvision, torch; print(os.environ['OMP_WAIT_POLICY'])"


def _probe(**env: str) -> str:
    clean = {k: v for k, v in os.environ.items() if k != "OMP_WAIT_POLICY"}
    out = subprocess.run(
        [sys.executable, "-c", PROBE],
        env={**clean, **env},
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    return out.stdout.strip()


def test_openmp_threads_wait_passively_unless_the_user_says_otherwise():
    assert _probe() == "PASSIVE"
    assert _probe(OMP_WAIT_POLICY="ACTIVE") == "ACTIVE"  # the user's value wins
