"""Build kvision's built-in dataset from Fashion-MNIST IDX files.

The built-in dataset must install with the package and need no network, so a stratified,
seeded subset of Fashion-MNIST (MIT licence, Zalando Research) ships inside the wheel.
Source on Debian: ``apt-get install dataset-fashion-mnist``.

    python scripts/make_builtin_dataset.py /usr/share/datasets/fashion-mnist kvision/data/builtin
"""

from __future__ import annotations

import gzip
import sys
from pathlib import Path

import numpy as np

CLASS_NAMES = [
    "t-shirt",
    "trouser",
    "pullover",
    "dress",
    "coat",
    "sandal",
    "shirt",
    "sneaker",
    "bag",
    "ankle-boot",
]
TRAIN_PER_CLASS = 600  # 6,000 train images: enough to learn, small enough for a 2-core CPU
TEST_PER_CLASS = 100  # 1,000 test images, as balanced as the original test set


def read_idx(path: Path) -> np.ndarray:
    with gzip.open(path, "rb") as fh:
        data = fh.read()
    ndim = data[3]
    dims = [int.from_bytes(data[4 + 4 * i : 8 + 4 * i], "big") for i in range(ndim)]
    return np.frombuffer(data, np.uint8, offset=4 + 4 * ndim).reshape(dims)


def stratified(labels: np.ndarray, per_class: int, rng: np.random.Generator) -> np.ndarray:
    picks = [rng.choice(np.flatnonzero(labels == c), per_class, replace=False) for c in range(10)]
    return np.sort(np.concatenate(picks))


def main(src: str, dst: str) -> None:
    src_dir, out = Path(src), Path(dst)
    rng = np.random.default_rng(20261123)
    arrays = {}
    for split, prefix, per_class in (
        ("train", "train", TRAIN_PER_CLASS),
        ("test", "t10k", TEST_PER_CLASS),
    ):
        images = read_idx(src_dir / f"{prefix}-images-idx3-ubyte.gz")
        labels = read_idx(src_dir / f"{prefix}-labels-idx1-ubyte.gz")
        idx = stratified(labels, per_class, rng)
        arrays[f"{split}_images"] = images[idx]
        arrays[f"{split}_labels"] = labels[idx]
    out.mkdir(parents=True, exist_ok=True)
    np.savez_compressed(out / "fashion7k.npz", class_names=np.array(CLASS_NAMES), **arrays)


if __name__ == "__main__":
    main(*sys.argv[1:3])
