"""tfds: source through TFDS's random-access data source, with TFDS's own mock data (no
TensorFlow, no network), and the errors for datasets that are not there."""

from __future__ import annotations

import numpy as np
import pytest

import kvision  # noqa: F401
from kvision.data import load_dataset
from kvision.data import tfds as kv_tfds
from kvision.data.rows import Rows
from kvision.errors import KvisionError
from kvision.recipe.schema_data import DataSection
from kvision.recipe.spec import Context, parse

tfds = pytest.importorskip("tensorflow_datasets", reason="optional extra kvision[tfds]")


def section(**table) -> DataSection:
    ctx = Context()
    data = parse(DataSection, table, ctx, "data")
    assert not ctx.errors, ctx.errors
    return data


def test_cifar10_mock_reads_without_tensorflow():
    with tfds.testing.mock_data(num_examples=12):
        ds = load_dataset(section(source="tfds:cifar10"), seed=0)
    assert ds.image_shape == (32, 32, 3) and ds.num_classes == 10
    assert set(ds.splits) >= {"train", "test"}
    assert ds.splits["train"].ids[0] == "train/0"
    assert ds.splits["train"].images.dtype == np.uint8


def test_cats_vs_dogs_mock_needs_and_uses_image_size():
    with tfds.testing.mock_data(num_examples=10):
        with pytest.raises(KvisionError, match="key 'data.image_size'.*different sizes"):
            load_dataset(section(source="tfds:cats_vs_dogs"), seed=0)
        ds = load_dataset(
            section(source="tfds:cats_vs_dogs", image_size=[24, 24], channels=1), seed=0
        )
    assert ds.class_names == ["cat", "dog"] and ds.image_shape == (24, 24, 1)


def test_unknown_dataset_suggests_a_name(tmp_path):
    with pytest.raises(
        KvisionError, match="TFDS has no dataset 'cifar_10'.*Did you mean: 'cifar10'"
    ):
        load_dataset(section(source="tfds:cifar_10", data_dir=str(tmp_path)), seed=0)


def test_not_prepared_without_tensorflow_says_how_to_fix(tmp_path, monkeypatch):
    monkeypatch.setattr(kv_tfds, "tensorflow_available", lambda: False)
    with pytest.raises(KvisionError) as err:
        load_dataset(section(source="tfds:mnist", data_dir=str(tmp_path)), seed=0)
    message = str(err.value)
    assert "key 'data.source'" in message and "is not prepared in" in message
    assert f"tfds build mnist --file_format=array_record --data_dir={tmp_path}" in message


def test_not_prepared_and_not_downloadable(tmp_path, monkeypatch):
    monkeypatch.setattr(kv_tfds, "tensorflow_available", lambda: True)

    def offline(self, **kwargs):
        raise ConnectionError("no network")

    monkeypatch.setattr(tfds.core.DatasetBuilder, "download_and_prepare", offline)
    with pytest.raises(
        KvisionError,
        match="neither prepared in .* nor downloadable here "
        r"\(ConnectionError: no network\)",
    ):
        load_dataset(section(source="tfds:mnist", data_dir=str(tmp_path)), seed=0)


def test_with_image_size_the_examples_go_to_a_memory_map(tmp_path, monkeypatch):
    monkeypatch.setenv("KVISION_CACHE", str(tmp_path / "cache"))
    with tfds.testing.mock_data(num_examples=10):
        ds = load_dataset(
            section(source="tfds:cats_vs_dogs", image_size=[24, 24], channels=3), seed=0
        )
    images = ds.splits["train"].images
    mapped = images.base if isinstance(images, Rows) else images
    assert isinstance(mapped, np.memmap)  # written row by row, not stacked in RAM
    assert images.shape[1:] == (24, 24, 3) and np.asarray(images).any()
    assert not list((tmp_path / "cache" / ".scratch").iterdir())  # unlinked: nothing left


def test_stream_mode_decodes_per_batch_the_examples_the_cache_path_keeps(tmp_path, monkeypatch):
    from kvision.data.conditions import condition_view
    from kvision.data.tfds_stream import TfdsExamples
    from kvision.recipe.schema_data import ConditionSection

    monkeypatch.setenv("KVISION_CACHE", str(tmp_path / "cache"))
    ctx = Context()
    blurred = parse(
        ConditionSection, {"blur": {"kind": "gaussian", "sigma": 2.0, "at": "source"}}, ctx, "c"
    )
    assert not ctx.errors
    table = dict(source="tfds:cats_vs_dogs", image_size=[24, 24], channels=1, val_fraction=0.25)
    with tfds.testing.mock_data(num_examples=10):
        kept = load_dataset(section(**table), 0, conditions={"blurred": blurred})
        streamed = load_dataset(
            section(**table, store="stream"), 0, conditions={"blurred": blurred}
        )
    # the data source stays readable after the mock: batches are decoded from here on
    assert streamed.info["blur_placement"] == kept.info["blur_placement"]
    for name, split in kept.splits.items():
        other = streamed.splits[name]
        assert isinstance(other.images.base, TfdsExamples) and other.ids == split.ids
        np.testing.assert_array_equal(other.labels, split.labels)
        np.testing.assert_array_equal(np.asarray(other.images), np.asarray(split.images))
        np.testing.assert_array_equal(
            np.asarray(condition_view(streamed, name, "blurred", blurred)),
            np.asarray(condition_view(kept, name, "blurred", blurred)),
        )


@pytest.mark.parametrize("store", ["cache", "stream"])
def test_the_pass_over_the_examples_reports_its_progress(tmp_path, monkeypatch, store):
    monkeypatch.setenv("KVISION_CACHE", str(tmp_path / "cache"))
    events: list[dict] = []
    with tfds.testing.mock_data(num_examples=6):
        ds = load_dataset(
            section(source="tfds:cats_vs_dogs", image_size=[16, 16], store=store),
            0,
            progress=lambda **figures: events.append(figures),
        )
    total = sum(len(s) for s in ds.splits.values())
    assert events[0]["done"] == 0 and events[0]["total"] == total  # said at the start
    assert events[-1]["done"] == events[-1]["total"] == total  # and at the end
