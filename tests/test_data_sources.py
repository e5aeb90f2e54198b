"""Sources: the built-in dataset, IDX files, and class-per-folder trees with real-world mess."""

from __future__ import annotations

import gzip
import os
from pathlib import Path

import cv2
import numpy as np
import pytest
from PIL import Image

import kvision  # noqa: F401
from kvision.data import load_dataset
from kvision.data.images import decode_image
from kvision.errors import KvisionError
from kvision.recipe.schema_data import DataSection
from kvision.recipe.spec import Context, parse


def data_section(**table) -> DataSection:
    ctx = Context()
    data = parse(DataSection, table, ctx, "data")
    assert not ctx.errors, ctx.errors
    return data


@pytest.fixture(autouse=True)
def _private_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("KVISION_CACHE", str(tmp_path / "cache"))


def test_builtin_fashion7k():
    ds = load_dataset(data_section(source="builtin:fashion7k"), seed=1)
    assert ds.info["counts"] == {"train": 4800, "val": 1200, "test": 1000}
    assert ds.image_shape == (28, 28, 1) and ds.num_classes == 10
    assert ds.class_names[0] == "t-shirt"
    val = np.bincount(ds.splits["val"].labels)
    assert val.tolist() == [120] * 10  # stratified
    assert ds.splits["train"].images.dtype == np.uint8


def test_builtin_resized_to_rgb():
    ds = load_dataset(
        data_section(
            source="builtin:fashion7k", image_size=[32, 40], channels=3, limit_per_class=5
        ),
        seed=1,
    )
    assert ds.image_shape == (32, 40, 3)
    assert ds.info["counts"] == {"train": 50, "val": 50, "test": 50}


def _write_idx(path: Path, array: np.ndarray) -> None:
    header = bytes([0, 0, 8, array.ndim]) + b"".join(d.to_bytes(4, "big") for d in array.shape)
    with gzip.open(path, "wb") as fh:
        fh.write(header + array.astype(np.uint8).tobytes())


def test_idx_folder(tmp_path):
    rng = np.random.default_rng(0)
    _write_idx(tmp_path / "train-images-idx3-ubyte.gz", rng.integers(0, 255, (40, 8, 8)))
    _write_idx(tmp_path / "train-labels-idx1-ubyte.gz", np.repeat([0, 1, 2, 3], 10))
    _write_idx(tmp_path / "t10k-images-idx3-ubyte.gz", rng.integers(0, 255, (8, 8, 8)))
    _write_idx(tmp_path / "t10k-labels-idx1-ubyte.gz", np.repeat([0, 1, 2, 3], 2))
    ds = load_dataset(data_section(source=f"idx:{tmp_path}", val_fraction=0.25), seed=0)
    assert ds.info["counts"] == {"train": 30, "val": 10, "test": 8}
    assert ds.class_names == ["0", "1", "2", "3"]


def test_idx_missing_files(tmp_path):
    with pytest.raises(KvisionError, match="key 'data.source'.*train-images-idx3-ubyte"):
        load_dataset(data_section(source=f"idx:{tmp_path}"), seed=0)


def _jpeg(path: Path, image: np.ndarray, **kw) -> None:
    Image.fromarray(image).save(path, "JPEG", **kw)


def _messy_folder(root: Path, per_class: int = 6) -> None:
    rng = np.random.default_rng(0)
    for cls in ("cat", "dog"):
        (root / cls).mkdir(parents=True)
        for i in range(per_class):
            _jpeg(root / cls / f"{i}.jpg", rng.integers(0, 255, (20, 30, 3), dtype=np.uint8))
    cat = root / "cat"
    _jpeg(cat / "gray.JPEG", rng.integers(0, 255, (20, 30), dtype=np.uint8))
    Image.fromarray(rng.integers(0, 255, (20, 30, 4), dtype=np.uint8), "RGBA").save(
        cat / "rgba.PNG"
    )
    cv2.imwrite(str(cat / "deep.png"), rng.integers(0, 65535, (20, 30), dtype=np.uint16))
    Image.fromarray(rng.integers(0, 255, (20, 30, 3), dtype=np.uint8)).convert("CMYK").save(
        cat / "cmyk.jpg", "JPEG"
    )
    (cat / "notes.txt").write_text("not an image")
    (cat / ".hidden.jpg").write_bytes((cat / "0.jpg").read_bytes())
    (cat / "corrupt.jpg").write_bytes(b"\xff\xd8\xff\xe0 this is not a jpeg \xff\xd9")
    whole = (cat / "1.jpg").read_bytes()
    (cat / "truncated.jpg").write_bytes(whole[: len(whole) // 2])
    _jpeg(cat / "tiny.jpg", np.zeros((4, 4, 3), np.uint8))
    os.symlink(cat / "0.jpg", root / "dog" / "linked.jpg")
    os.symlink(root / "missing.jpg", root / "dog" / "dangling.jpg")
    os.symlink(root / "dog", root / "dog" / "loop")  # a folder symlink pointing at itself
    (root / "README.md").write_text("a stray file beside the class folders")


def test_messy_folder_loads_and_lists_what_it_skipped(tmp_path):
    _messy_folder(tmp_path / "pets")
    ds = load_dataset(
        data_section(source=f"folder:{tmp_path / 'pets'}", image_size=[16, 16], val_fraction=0.25),
        seed=0,
    )
    skipped = {s["path"]: s["reason"] for s in ds.info["skipped"]}
    assert set(skipped) == {
        "cat/notes.txt",
        "cat/.hidden.jpg",
        "cat/corrupt.jpg",
        "cat/truncated.jpg",
        "cat/tiny.jpg",
        "dog/dangling.jpg",
        "README.md",
    }
    assert skipped["README.md"] == "not inside a class folder"
    assert "truncated" in skipped["cat/truncated.jpg"]
    assert "too small (4x4 px" in skipped["cat/tiny.jpg"]
    assert "not an image file" in skipped["cat/notes.txt"]
    loaded = ds.splits["train"].ids + ds.splits["val"].ids
    # gray, RGBA, 16-bit, CMYK, upper-case extensions and the symlink all load, once each
    assert {
        "cat/gray.JPEG",
        "cat/rgba.PNG",
        "cat/deep.png",
        "cat/cmyk.jpg",
        "dog/linked.jpg",
    } <= set(loaded)
    assert len(loaded) == len(set(loaded)) == 6 + 4 + 6 + 1
    assert ds.image_shape == (16, 16, 3) and ds.class_names == ["cat", "dog"]


def test_decode_converts_depth_colour_and_exif(tmp_path):
    rgb = np.zeros((10, 20, 3), np.uint8)
    rgb[:, :10] = (255, 0, 0)  # left half red
    _jpeg(tmp_path / "rot.jpg", rgb, quality=100, exif=_exif_orientation(6))
    image, _ = decode_image((tmp_path / "rot.jpg").read_bytes(), 3, 1)
    assert image.shape == (20, 10, 3)  # orientation 6: rotated 90 degrees clockwise
    assert image[2, 5, 0] > 200 and image[-3, 5, 0] < 60  # the red half is now on top
    deep = np.full((12, 12), 40000, np.uint16)
    cv2.imwrite(str(tmp_path / "deep.png"), deep)
    gray, _ = decode_image((tmp_path / "deep.png").read_bytes(), 1, 1)
    assert (
        gray.dtype == np.uint8 and gray.shape == (12, 12, 1) and abs(int(gray[0, 0, 0]) - 156) <= 1
    )


def _exif_orientation(value: int) -> bytes:
    exif = Image.Exif()
    exif[0x0112] = value
    return exif.tobytes()


def test_folder_cache_reused_and_invalidated(tmp_path):
    _messy_folder(tmp_path / "pets")
    data = data_section(source=f"folder:{tmp_path / 'pets'}", image_size=[16, 16])
    first = load_dataset(data, seed=0)
    second = load_dataset(data, seed=0)
    assert not first.info["cache_hit"] and second.info["cache_hit"]
    assert np.array_equal(first.splits["train"].images, second.splits["train"].images)
    assert second.info["skipped"] == first.info["skipped"]
    _jpeg(tmp_path / "pets" / "dog" / "new.jpg", np.zeros((20, 20, 3), np.uint8))
    third = load_dataset(data, seed=0)
    assert not third.info["cache_hit"]
    assert sum(third.info["counts"].values()) == sum(first.info["counts"].values()) + 1
    # Both entries stay (several per folder); only the size budget removes the older one.
    assert len(list((tmp_path / "cache").glob("folder-*/meta.json"))) == 2


def test_given_split_folders(tmp_path):
    rng = np.random.default_rng(1)
    for split, n in (("train", 6), ("develop", 2), ("test", 3)):
        for cls in ("a", "b"):
            (tmp_path / split / cls).mkdir(parents=True)
            for i in range(n):
                cv2.imwrite(
                    str(tmp_path / split / cls / f"{i}.png"),
                    rng.integers(0, 255, (9, 9), dtype=np.uint8),
                )
    ds = load_dataset(data_section(source=f"folder:{tmp_path}", channels=1), seed=0)
    assert ds.info["counts"] == {"train": 12, "val": 4, "test": 6}
    assert ds.image_shape == (9, 9, 1)
    assert ds.splits["val"].ids[0].startswith("develop/")


@pytest.mark.parametrize(
    "make,key,expected",
    [
        (lambda r: (r / "only").mkdir(parents=True), "data.source", "has only the class 'only'"),
        (lambda r: r.mkdir(), "data.source", "no class sub-folder with images"),
        (None, "data.source", "does not exist"),
    ],
)
def test_bad_folders(tmp_path, make, key, expected):
    root = tmp_path / "data"
    if make:
        make(root)
        if (root / "only").exists():
            cv2.imwrite(str(root / "only" / "x.png"), np.zeros((9, 9), np.uint8))
    with pytest.raises(KvisionError, match=f"key '{key}'.*{expected}"):
        load_dataset(data_section(source=f"folder:{root}"), seed=0)


def test_mixed_sizes_need_image_size(tmp_path):
    for cls, size in (("a", 10), ("b", 12)):
        (tmp_path / cls).mkdir()
        for i in range(5):
            cv2.imwrite(str(tmp_path / cls / f"{i}.png"), np.zeros((size, size), np.uint8))
    with pytest.raises(KvisionError, match="key 'data.image_size'.*different sizes"):
        load_dataset(data_section(source=f"folder:{tmp_path}"), seed=0)


@pytest.mark.slow
def test_ten_thousand_images_with_three_bad_files_train(tmp_path):
    """The issue's acceptance case: 10,000 files, 3 of them broken, load and train."""
    rng = np.random.default_rng(0)
    root = tmp_path / "big"
    for c in range(4):
        (root / f"class{c}").mkdir(parents=True)
    for i in range(10_000 - 3):
        image = np.full((8, 8), (i % 4) * 60, np.uint8) + rng.integers(
            0, 20, (8, 8), dtype=np.uint8
        )
        cv2.imwrite(str(root / f"class{i % 4}" / f"{i}.png"), image)
    (root / "class0" / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n broken")
    (root / "class1" / "empty.jpg").write_bytes(b"")
    (root / "class2" / "cut.jpg").write_bytes(b"\xff\xd8\xff\xe0" + bytes(100))
    data = data_section(source=f"folder:{root}", channels=1)
    ds = load_dataset(data, seed=0)
    assert sorted(s["path"] for s in ds.info["skipped"]) == [
        "class0/broken.png",
        "class1/empty.jpg",
        "class2/cut.jpg",
    ]
    assert sum(ds.info["counts"].values()) == 9_997

    import keras  # after kvision: torch backend

    from kvision.data import make_batches

    train = ds.splits["train"]
    inputs = keras.Input((8, 8, 1))
    x = keras.layers.Rescaling(1 / 255)(inputs)
    x = keras.layers.Flatten()(x)
    model = keras.Model(inputs, keras.layers.Dense(4)(x))
    model.compile(
        keras.optimizers.Adam(0.05),
        keras.losses.SparseCategoricalCrossentropy(from_logits=True),
        metrics=["accuracy"],
    )
    history = model.fit(
        make_batches(train.images, train.labels, batch_size=256, seed=0, shuffle=True, workers=2),
        epochs=2,
        shuffle=False,
        verbose=0,
    )
    assert history.history["accuracy"][-1] > 0.5  # the classes are separable by brightness
