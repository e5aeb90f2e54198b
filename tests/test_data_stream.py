"""data.store = "stream": a folder decoded per batch, nothing cached, the same images, labels,
splits and skipped files as the cache; under data parallel each rank reads only its rows."""

from __future__ import annotations

import warnings
from pathlib import Path

import cv2
import numpy as np
import pytest
from sections import data_section, parsed, valid
from test_data_sources import _messy_folder

import kvision  # noqa: F401
from kvision.data import load_dataset
from kvision.data.cache import cache_dir, entries
from kvision.data.conditions import condition_view
from kvision.data.pipeline import make_batches
from kvision.data.stream import DecodedFiles
from kvision.errors import KvisionError
from kvision.recipe.schema_data import AugmentOp, ConditionSection, DataSection
from kvision.train.distributed import ShardedBatches


@pytest.fixture(autouse=True)
def _private_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("KVISION_CACHE", str(tmp_path / "cache"))


def _folder(root: Path, n: int = 24) -> Path:
    rng = np.random.default_rng(1)
    for i in range(n):
        cls = ("cat", "dog", "owl")[i % 3]
        (root / cls).mkdir(parents=True, exist_ok=True)
        side = 18 + i % 5  # stored sizes differ: the source blur starts from each one
        cv2.imwrite(
            str(root / cls / f"{i:03d}.png"), rng.integers(0, 255, (side, side + 3, 3), np.uint8)
        )
    return root


CONDITIONS = {
    "at_source": {"blur": {"kind": "gaussian", "sigma": 1.5, "at": "source"}},
    "at_input": {"blur": {"kind": "defocus", "radius": 2, "at": "input"}},
    "clear": {},
}


def _conditions() -> dict[str, ConditionSection]:
    out = {}
    for name, table in CONDITIONS.items():
        out[name] = valid(ConditionSection, table)
    return out


def test_stream_gives_the_cache_s_images_labels_and_splits_and_writes_nothing(tmp_path):
    root = _folder(tmp_path / "f")
    table = dict(source=f"folder:{root}", image_size=[16, 16], split=[0.5, 0.25, 0.25])
    conditions = _conditions()
    streamed = load_dataset(data_section(**table, store="stream"), 4, conditions=conditions)
    assert entries() == [] and not any(cache_dir().glob("folder-*"))  # no entry, no lock
    cached = load_dataset(data_section(**table), 4, conditions=conditions)
    assert len(entries()) == 1
    assert streamed.info["store"] == "stream"
    assert streamed.info["blur_placement"] == cached.info["blur_placement"]
    for name, split in cached.splits.items():
        other = streamed.splits[name]
        assert isinstance(other.images.base, DecodedFiles)
        assert other.ids == split.ids
        np.testing.assert_array_equal(other.labels, split.labels)
        np.testing.assert_array_equal(np.asarray(other.images), np.asarray(split.images))
        for cond_name, cond in conditions.items():
            np.testing.assert_array_equal(
                np.asarray(condition_view(streamed, name, cond_name, cond)),
                np.asarray(condition_view(cached, name, cond_name, cond)),
            )


def test_stream_skips_what_the_cache_build_skips(tmp_path):
    _messy_folder(tmp_path / "pets")
    table = dict(source=f"folder:{tmp_path / 'pets'}", image_size=[16, 16], val_fraction=0.25)
    streamed = load_dataset(data_section(**table, store="stream"), 0)
    cached = load_dataset(data_section(**table), 0)
    assert streamed.info["skipped"] == cached.info["skipped"]
    for name, split in cached.splits.items():
        assert streamed.splits[name].ids == split.ids
        np.testing.assert_array_equal(
            np.asarray(streamed.splits[name].images), np.asarray(split.images)
        )


def test_a_file_that_fails_only_when_its_batch_comes_is_black_with_a_warning(tmp_path):
    root = _folder(tmp_path / "f", n=6)
    data = data_section(
        source=f"folder:{root}", image_size=[16, 16], store="stream", val_fraction=0.5
    )
    ds = load_dataset(data, 0)
    split = ds.splits["train"]
    victim = root / split.ids[0]
    victim.write_bytes(victim.read_bytes()[:60])  # header intact, pixels gone
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        batch = split.images[[0, 1]]
    assert not batch[0].any() and batch[1].any()
    assert any(split.ids[0] in str(w.message) for w in caught)


def test_each_data_parallel_rank_decodes_only_its_rows_of_every_batch(tmp_path, monkeypatch):
    root = _folder(tmp_path / "f", n=30)
    data = data_section(
        source=f"folder:{root}", image_size=[16, 16], store="stream", val_fraction=0.2
    )
    train = load_dataset(data, 0).splits["train"]
    flip, errors = parsed(AugmentOp, {"op": "hflip", "p": 0.5})
    assert not errors
    batches = make_batches(
        train.images, train.labels, batch_size=8, seed=3, shuffle=True, augment=[flip]
    )
    whole = [batches[i] for i in range(len(batches))]  # every row, as one process reads them
    decoded: list[int] = []
    one = DecodedFiles._one
    monkeypatch.setattr(
        DecodedFiles, "_one", lambda self, row: decoded.append(row) or one(self, row)
    )
    world = 3
    for rank in range(world):
        decoded.clear()
        shard = ShardedBatches(batches, rank, world)
        for i in range(len(batches)):
            x, y, _ = shard[i]
            np.testing.assert_array_equal(x, whole[i][0][rank::world])
            np.testing.assert_array_equal(y, whole[i][1][rank::world])
        picks = [batches.order[i * 8 : (i + 1) * 8][rank::world] for i in range(len(batches))]
        expected = train.images.index[np.concatenate(picks)]
        assert sorted(decoded) == sorted(expected.tolist())  # its share of the files, no more


@pytest.mark.parametrize(
    "table, key, says",
    [
        (
            {"source": "builtin:fashion7k", "store": "stream"},
            "data.store",
            "folder: or tfds: source",
        ),
        ({"source": "folder:/x", "store": "stream"}, "data.image_size", "needs image_size"),
        ({"source": "folder:/x", "store": "strem"}, "data.store", "stream"),
    ],
)
def test_stream_recipe_problems_name_the_key(table, key, says):
    _, errors = parsed(DataSection, table)
    assert errors and any(key in str(e) and says in str(e) for e in errors), errors


def test_motion_blur_at_the_input_is_refused_in_stream_mode(tmp_path):
    root = _folder(tmp_path / "f", n=6)
    motion, errors = parsed(
        ConditionSection, {"blur": {"kind": "motion", "severity": 2, "at": "input"}}
    )
    assert not errors
    data = data_section(source=f"folder:{root}", image_size=[16, 16], store="stream")
    with pytest.raises(KvisionError, match="conditions.shake.blur.at"):
        load_dataset(data, 0, conditions={"shake": motion})


def test_a_recipe_runs_to_its_report_in_stream_mode_with_no_cache_entry(tmp_path):
    from conftest import quiet
    from test_run_loading import _recipe

    from kvision.runs import RunReader
    from kvision.train.runner import run_recipe

    folder = _folder(tmp_path / "pets", n=18)
    result = run_recipe(
        str(_recipe(tmp_path, folder)),
        ['data.store="stream"'],
        runs_dir=str(tmp_path / "runs"),
        console=quiet(),
    )
    assert result.status == "finished", result.message
    loaded = RunReader(result.run_dir).of("data_loaded")[0]
    assert loaded["info"]["store"] == "stream" and sum(loaded["counts"].values()) == 18
    assert RunReader(result.run_dir).evaluations()
    assert entries() == []
