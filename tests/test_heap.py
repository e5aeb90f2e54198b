"""The trainer's C heap keeps large blocks (kvision.train.heap): a gradient of 40 MiB is
served from the heap, not from a memory map of its own that is faulted in and unmapped at
every step. Checked in fresh interpreters, since malloc's settings last for the process."""

from __future__ import annotations

import json
import os
import platform

import pytest
from conftest import pythons_at_once

pytestmark = pytest.mark.skipif(
    platform.libc_ver()[0] != "glibc", reason="the setting is glibc malloc's"
)

#: A 40 MiB block, held while glibc's own count of memory-mapped bytes (mallinfo2.hblkhd) is
#: read: above the 32 MiB ceiling of glibc's adaptive threshold, so by default it is a map of
#: its own, and with the trainer's setting it comes from the heap.
PROBE = """
import json, sys
import numpy as np
from kvision.train.heap import heap_usage, keep_large_blocks

applied = keep_large_blocks() if sys.argv[1] == "trainer" else None
mapped = heap_usage()["mapped"]
block = np.ones(40 * 2**20, dtype=np.uint8)
print(json.dumps({"applied": applied, "mapped_mib": (heap_usage()["mapped"] - mapped) / 2**20}))
"""


def test_large_blocks_come_from_the_heap_unless_the_user_set_malloc_or_turned_it_off():
    env = {k: v for k, v in os.environ.items() if not k.startswith("MALLOC_")}
    done = pythons_at_once(
        {
            "default": (["-c", PROBE, "default"], env),
            "trainer": (["-c", PROBE, "trainer"], env),
            "user": (["-c", PROBE, "trainer"], {**env, "MALLOC_MMAP_THRESHOLD_": "1048576"}),
            "off": (["-c", PROBE, "trainer"], {**env, "KVISION_HEAP": "glibc"}),
        }
    )
    seen = {name: json.loads(d.stdout.strip().splitlines()[-1]) for name, d in done.items()}
    # whole MiB: the block is 40 MiB and nothing else of that size is mapped meanwhile
    assert seen["default"]["mapped_mib"] >= 40  # a map of its own, without the setting
    assert seen["trainer"] == {"applied": True, "mapped_mib": 0}
    assert seen["user"]["applied"] is False  # the user's own malloc setting wins
    assert seen["user"]["mapped_mib"] >= 40  # ... and it maps blocks above 1 MiB
    assert seen["off"]["applied"] is False and seen["off"]["mapped_mib"] >= 40


def test_a_run_sets_it_before_training(recipe, tmp_path, monkeypatch):
    """Every run (and resume) goes through the runner's one start, which asks for it."""
    from conftest import quiet

    from kvision.train import heap
    from kvision.train.runner import run_recipe

    calls = []
    monkeypatch.setattr(heap, "keep_large_blocks", lambda: calls.append("asked") or False)
    result = run_recipe(str(recipe("tiny")), [], runs_dir=str(tmp_path / "runs"), console=quiet())
    assert result.status == "finished" and calls == ["asked"]
