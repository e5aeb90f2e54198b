"""What kvision sets for threads on import: OpenMP waiting threads spin briefly (docs/speed.md)."""

from __future__ import annotations

import os

import pytest
from conftest import pythons_at_once

# What the process that imports kvision, then torch (as every kvision command does), sees.
PROBE = "import os, kvision, torch; print(os.environ.get('GOMP_SPINCOUNT', '-'))"


def _seen(**cases: dict[str, str]) -> dict[str, str]:
    """{case: GOMP_SPINCOUNT as a probe with the case's variables saw it}, probes at once."""
    mine = ("OMP_WAIT_POLICY", "GOMP_SPINCOUNT")
    clean = {k: v for k, v in os.environ.items() if k not in mine}
    done = pythons_at_once({case: (["-c", PROBE], {**clean, **env}) for case, env in cases.items()})
    return {case: out.stdout.strip() for case, out in done.items()}


@pytest.mark.slow  # four fresh interpreters importing torch (~4 s at once)
def test_openmp_threads_spin_briefly_unless_the_user_says_otherwise():
    seen = _seen(
        default={},
        spin={"GOMP_SPINCOUNT": "300000"},
        active={"OMP_WAIT_POLICY": "ACTIVE"},
        passive={"OMP_WAIT_POLICY": "PASSIVE"},
    )
    assert seen["default"] == "10000"
    assert seen["spin"] == "300000"  # the user's spin count wins
    # A user's wait policy wins too: kvision adds no spin count that would override it.
    assert seen["active"] == "-"
    assert seen["passive"] == "-"
