"""Built-in and IDX sources through the store: a plain IDX file is mapped in place, anything
converted (compressed, resized, other channels, blurred at the source) goes through a cache
entry; either way every split is a selection of one read-only memory map with the pixels the
arrays hold."""

from __future__ import annotations

import gzip
from pathlib import Path

import numpy as np
import pytest
from sections import valid

import kvision  # noqa: F401
from kvision.data import load_dataset
from kvision.data.array_sources import BUILTIN_DIR
from kvision.data.cache import entries
from kvision.data.images import convert_channels, resize_images
from kvision.data.rows import Rows
from kvision.data.source_blur import SourceBlur
from kvision.recipe.schema_data import ConditionSection, DataSection


@pytest.fixture(autouse=True)
def _private_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("KVISION_CACHE", str(tmp_path / "cache"))


def _write_idx(path: Path, array: np.ndarray) -> None:
    header = bytes([0, 0, 8, array.ndim]) + b"".join(d.to_bytes(4, "big") for d in array.shape)
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "wb") as fh:
        fh.write(header + array.astype(np.uint8).tobytes())


def _idx_folder(root: Path, suffix: str = "") -> dict[str, np.ndarray]:
    rng = np.random.default_rng(3)
    root.mkdir()
    arrays = {
        "train-images-idx3-ubyte": rng.integers(0, 256, (24, 10, 12)),
        "train-labels-idx1-ubyte": np.repeat([0, 1, 2], 8),
        "t10k-images-idx3-ubyte": rng.integers(0, 256, (6, 10, 12)),
        "t10k-labels-idx1-ubyte": np.repeat([0, 1, 2], 2),
    }
    for name, array in arrays.items():
        _write_idx(root / (name + suffix), array)
    return arrays


def _by_id(ds, raw: dict[str, np.ndarray]) -> None:
    """Every image of every split equals the source array's row its id names."""
    for split in ds.splits.values():
        for i, ident in enumerate(split.ids):
            name, row = ident.split("/")
            expected = raw[name][int(row)]
            np.testing.assert_array_equal(split.images[i], expected.reshape(split.images[i].shape))


def test_a_plain_idx_file_is_mapped_in_place_and_nothing_is_cached(tmp_path):
    arrays = _idx_folder(tmp_path / "idx")
    ds = load_dataset(valid(DataSection, {"source": f"idx:{tmp_path / 'idx'}"}), 0)
    images = ds.splits["train"].images
    assert isinstance(images, Rows) and isinstance(images.base, np.memmap)
    assert Path(images.base.filename) == tmp_path / "idx" / "train-images-idx3-ubyte"
    assert not images.base.flags.writeable
    assert ds.image_shape == (10, 12, 1)
    _by_id(
        ds, {"train": arrays["train-images-idx3-ubyte"], "test": arrays["t10k-images-idx3-ubyte"]}
    )
    assert entries() == []  # the file itself is the store


def test_compressed_idx_and_a_resize_go_through_one_cache_entry(tmp_path):
    arrays = _idx_folder(tmp_path / "idx", ".gz")
    data = valid(DataSection, {"source": f"idx:{tmp_path / 'idx'}", "image_size": [8, 8]})
    first = load_dataset(data, 0)
    (entry,) = entries()
    assert entry.meta["source"] == data.source and entry.meta["count"] == 30
    images = first.splits["train"].images
    assert isinstance(images.base, np.memmap) and Path(images.base.filename).parent == entry.path
    raw = {
        "train": resize_images(
            arrays["train-images-idx3-ubyte"][..., None].astype(np.uint8), (8, 8)
        ),
        "test": resize_images(arrays["t10k-images-idx3-ubyte"][..., None].astype(np.uint8), (8, 8)),
    }
    _by_id(first, raw)
    second = load_dataset(data, 0)  # mapped from the entry, the same split and pixels
    assert len(entries()) == 1
    for name, split in first.splits.items():
        assert split.ids == second.splits[name].ids
        np.testing.assert_array_equal(
            np.asarray(split.images), np.asarray(second.splits[name].images)
        )


@pytest.mark.parametrize("kind", ["gaussian", "motion"])
def test_builtin_resized_and_blurred_at_the_source_equals_the_whole_array_conversion(kind):
    blur = {"kind": kind, "sigma": 1.5} if kind == "gaussian" else {"kind": kind, "severity": 2}
    conditions = {"blurred": valid(ConditionSection, {"blur": {**blur, "at": "source"}})}
    data = valid(
        DataSection,
        {
            "source": "builtin:fashion7k",
            "image_size": [20, 20],
            "channels": 3,
            "limit_per_class": 3,
        },
    )
    ds = load_dataset(data, 2, conditions=conditions)
    assert isinstance(ds.splits["train"].images.base, np.memmap)
    with np.load(BUILTIN_DIR / "fashion7k.npz") as npz:
        stored = {s: npz[f"{s}_images"][..., None] for s in ("train", "test")}
    # what the loader did before the store: each whole split converted and blurred at once
    converted = {s: resize_images(convert_channels(a, 3), (20, 20)) for s, a in stored.items()}
    views = {
        s: SourceBlur(dict(conditions)).views(a, (20, 20), s, 3)["blurred"]
        for s, a in stored.items()
    }
    _by_id(ds, converted)
    for split in ds.splits.values():
        for i, ident in enumerate(split.ids):
            name, row = ident.split("/")
            np.testing.assert_array_equal(split.views["blurred"][i], views[name][int(row)])
