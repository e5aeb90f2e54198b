"""The memory-mapped store: entries on disk, splits as row selections, atomic and locked
builds, least-recently-used eviction, header checks, progress and the `kvision cache` command."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import cv2
import numpy as np
import pytest
from conftest import run_kvision

import kvision  # noqa: F401
from kvision.data import cache, load_dataset
from kvision.data.conditions import apply_condition, condition_view
from kvision.data.progress import Progress
from kvision.data.rows import Rows
from kvision.errors import KvisionError
from kvision.recipe.schema_data import ConditionSection, DataSection
from kvision.recipe.spec import Context, parse


def section(cls, **table):
    ctx = Context()
    out = parse(cls, table, ctx, "data")
    assert not ctx.errors, ctx.errors
    return out


@pytest.fixture(autouse=True)
def _private_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("KVISION_CACHE", str(tmp_path / "cache"))


def _folder(root: Path, n: int = 12, side: int = 20, sizes=None) -> Path:
    rng = np.random.default_rng(0)
    for i in range(n):
        cls = ("cat", "dog")[i % 2]
        (root / cls).mkdir(parents=True, exist_ok=True)
        s = sizes[i] if sizes else side
        cv2.imwrite(str(root / cls / f"{i:05d}.png"), rng.integers(0, 255, (s, s, 3), np.uint8))
    return root


def test_splits_are_row_selections_of_one_read_only_map(tmp_path):
    data = section(DataSection, source=f"folder:{_folder(tmp_path / 'f')}", image_size=[16, 16])
    ds = load_dataset(data, seed=0)
    bases = {id(s.images.base) for s in ds.splits.values()}
    assert len(bases) == 1  # every split indexes the same array: no copies
    train = ds.splits["train"].images
    assert isinstance(train, Rows) and isinstance(train.base, np.memmap)
    assert not train.base.flags.writeable
    assert train.shape == (len(ds.splits["train"]), 16, 16, 3) and train.dtype == np.uint8
    # Gathering any order gives the rows of the map in that order.
    pick = np.array([2, 0, 1])
    assert np.array_equal(train[pick], np.asarray(train.base)[train.index[pick]])
    (entry,) = cache.entries()
    assert (entry.path / "images.npy").stat().st_size >= 12 * 16 * 16 * 3


def test_a_second_load_maps_the_same_pixels(tmp_path):
    data = section(DataSection, source=f"folder:{_folder(tmp_path / 'f')}", image_size=[16, 16])
    first, second = load_dataset(data, seed=0), load_dataset(data, seed=0)
    assert not first.info["cache_hit"] and second.info["cache_hit"]
    for name in first.splits:
        assert np.array_equal(first.splits[name].images, second.splits[name].images)
        assert first.splits[name].ids == second.splits[name].ids


def test_a_blurred_view_of_the_map_is_a_scratch_map_equal_to_the_whole_blur(tmp_path, monkeypatch):
    from kvision.data import conditions

    data = section(DataSection, source=f"folder:{_folder(tmp_path / 'f')}", image_size=[16, 16])
    ds = load_dataset(data, seed=0)
    cond = section(ConditionSection, blur={"kind": "gaussian", "sigma": 2.0})
    monkeypatch.setattr(conditions, "CHUNK", 5)  # several chunks
    view = condition_view(ds, "train", "blurred", cond)
    assert isinstance(view, Rows) and isinstance(view.base, np.memmap)  # not held in RAM
    assert not list((tmp_path / "cache" / ".scratch").iterdir())  # unlinked at once
    whole = apply_condition(np.asarray(ds.splits["train"].images), cond)
    assert np.array_equal(view, whole)  # uint8, the same OpenCV calls per image: exact


def test_mixed_sizes_refused_from_headers_before_decoding(tmp_path, monkeypatch):
    from kvision.data import images

    root = _folder(tmp_path / "f", n=40, sizes=[10 if i % 3 else 12 for i in range(40)])
    decoded = []
    monkeypatch.setattr(images, "decode_image", lambda *a: decoded.append(a) or (None, "x"))
    with pytest.raises(KvisionError, match=r"key 'data.image_size'.*different sizes.*12x12"):
        load_dataset(section(DataSection, source=f"folder:{root}"), seed=0)
    assert decoded == []  # refused from the first headers, no file decoded
    assert not [p for p in (tmp_path / "cache").iterdir() if not p.name.endswith(".lock")]


def test_a_decompression_bomb_is_skipped_before_decoding(tmp_path, monkeypatch):
    from kvision.data import store

    root = _folder(tmp_path / "f", n=12)
    cv2.imwrite(str(root / "cat" / "huge.png"), np.zeros((300, 300), np.uint8))
    monkeypatch.setattr(store, "MAX_PIXELS", 200 * 200)
    ds = load_dataset(section(DataSection, source=f"folder:{root}", image_size=[16, 16]), seed=0)
    (skip,) = [s for s in ds.info["skipped"] if s["path"] == "cat/huge.png"]
    assert "too large to decode safely (300x300 px" in skip["reason"]


def test_lru_eviction_keeps_the_budget_and_the_newest(tmp_path, monkeypatch):
    root = _folder(tmp_path / "f")
    for side in (16, 24):
        load_dataset(section(DataSection, source=f"folder:{root}", image_size=[side, side]), 0)
        time.sleep(0.02)  # distinct last-use times
    assert len(cache.entries()) == 2
    newest = cache.entries()[0]
    budget = newest.size() + 100  # room for one entry only
    monkeypatch.setenv("KVISION_CACHE_BUDGET", str(budget))
    load_dataset(section(DataSection, source=f"folder:{root}", image_size=[20, 20]), 0)
    left = cache.entries()
    assert len(left) == 1 and left[0].meta["shape"] == [20, 20, 3]  # the one just built


BUILD = textwrap.dedent("""
    import sys, time
    import kvision
    from kvision.data import load_dataset, store
    from kvision.recipe.schema_data import DataSection
    from kvision.recipe.spec import Context, parse
    delay = float(sys.argv[2])
    real = store._decode_row
    def slow(*a):
        time.sleep(delay)
        return real(*a)
    store._decode_row = slow
    data = parse(DataSection, {"source": "folder:" + sys.argv[1], "image_size": [16, 16]},
                 Context(), "data")
    ds = load_dataset(data, seed=0)
    print("hit" if ds.info["cache_hit"] else "built", flush=True)
""")


def _builder(tmp_path: Path, root: Path, delay: float) -> subprocess.Popen:
    script = tmp_path / "build.py"
    script.write_text(BUILD)
    return subprocess.Popen(
        [sys.executable, str(script), str(root), str(delay)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "KVISION_CACHE": str(tmp_path / "cache")},
    )


def test_two_processes_build_one_entry_once(tmp_path):
    root = _folder(tmp_path / "f", n=20)
    procs = [_builder(tmp_path, root, 0.05) for _ in range(2)]
    outs = sorted(p.communicate(timeout=120)[0].strip() for p in procs)
    assert [p.returncode for p in procs] == [0, 0]
    assert outs == ["built", "hit"]  # the second waited on the lock, then mapped the entry
    assert len(cache.entries()) == 1


def test_a_killed_build_leaves_no_entry_and_the_next_load_builds(tmp_path):
    root = _folder(tmp_path / "f", n=40)
    proc = _builder(tmp_path, root, 0.5)
    folder = tmp_path / "cache"
    deadline = time.monotonic() + 60
    while not any(folder.glob(".folder-*.tmp-*/images.npy")):  # mid-build
        assert time.monotonic() < deadline and proc.poll() is None, proc.stderr.read()
        time.sleep(0.05)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert cache.entries() == []  # the half-built folder does not read as an entry
    data = section(DataSection, source=f"folder:{root}", image_size=[16, 16])
    ds = load_dataset(data, seed=0)
    assert not ds.info["cache_hit"] and sum(ds.info["counts"].values()) == 40
    assert not list(folder.glob(".folder-*"))  # the killed build's leftovers are gone


def test_progress_lines_without_a_terminal(tmp_path, monkeypatch):
    import io

    from kvision.data import progress as progress_module

    monkeypatch.setattr(progress_module, "EVERY_S", 0.0)
    out, events = io.StringIO(), []
    p = Progress(4, "decoding f", stream=out, sink=lambda **kw: events.append(kw))
    for _ in range(4):
        p.step()
    p.close()
    lines = out.getvalue().splitlines()
    assert lines[0].startswith("decoding f 1/4 files (25%),") and "img/s" in lines[0]
    assert lines[-1].startswith("decoding f 4/4 files (100%)")
    assert events[-1]["done"] == 4 and events[-1]["total"] == 4


def _kvision(*args: str, env: dict) -> subprocess.CompletedProcess:
    return run_kvision(*args, env=env, timeout=120)


def test_cache_ls_and_prune_commands(tmp_path):
    root = _folder(tmp_path / "f")
    for side in (16, 24):
        load_dataset(section(DataSection, source=f"folder:{root}", image_size=[side, side]), 0)
    env = {"KVISION_CACHE": str(tmp_path / "cache")}
    ls = _kvision("cache", "ls", env=env)
    assert ls.returncode == 0, ls.stderr
    assert ls.stdout.count(f"folder:{root}") == 2 and "12 x 24x24x3" in ls.stdout
    bad = _kvision("cache", "prune", "--budget", "lots", env=env)
    assert bad.returncode == 2 and "'lots' is not a size" in bad.stderr
    assert "Traceback" not in bad.stderr
    pruned = _kvision("cache", "prune", "--all", env=env)
    assert pruned.returncode == 0 and "removed 2 entries" in pruned.stdout
    assert cache.entries() == []
    assert "no entries" in _kvision("cache", "ls", env=env).stdout
