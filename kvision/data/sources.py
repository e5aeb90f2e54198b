"""Dataset sources behind ``[data] source``: builtin:, idx:, folder: and tfds:.

Each source returns the splits it provides (train, maybe val/test) as uint8 NHWC arrays with
stable ids, so that a recorded split can be reproduced later.
"""

from __future__ import annotations

import gzip
from pathlib import Path

import numpy as np

from kvision.data.dataset import SourceData, Split
from kvision.data.images import convert_channels, resize_images
from kvision.data.source_blur import SourceBlur
from kvision.errors import RecipeError
from kvision.recipe.schema_data import BUILTIN_NAMES, DataSection, parse_source

BUILTIN_DIR = Path(__file__).parent / "builtin"


def read_source(data: DataSection, source_blur: SourceBlur | None = None) -> SourceData:
    """Load the images ``data.source`` names, resized and channel-converted as ``data`` says.

    With ``source_blur``, each split also carries its images under those conditions, blurred
    at the stored resolution before the resize (``Split.views``).
    """
    prefix, rest = parse_source(data.source)
    if prefix == "builtin":
        src = _builtin(rest)
    elif prefix == "idx":
        src = _idx(_existing_path(rest, "data.source"))
    elif prefix == "folder":
        from kvision.data.folder import read_folder  # OpenCV decoding, only when used

        return read_folder(_existing_path(rest, "data.source"), data, source_blur)
    elif prefix == "tfds":
        from kvision.data.tfds import read_tfds  # optional extra: kvision[tfds]

        src = read_tfds(rest, data, source_blur)  # views (if any) made per image, at size
    else:
        raise RecipeError(f"unknown data source '{data.source}'.", key="data.source")
    for name, split in src.splits.items():
        images = resize_images(convert_channels(split.images, data.channels), data.image_size)
        if split.views:
            views = {
                n: resize_images(convert_channels(v, data.channels), data.image_size)
                for n, v in split.views.items()
            }
        else:
            views = (
                source_blur.views(split.images, data.image_size, name, data.channels)
                if source_blur
                else {}
            )
        src.splits[name] = Split(images, split.labels, split.ids, views)
    return src


def _existing_path(text: str, key: str) -> Path:
    path = Path(text).expanduser()
    if not path.exists():
        raise RecipeError(
            f"the path '{path}' does not exist. Give an existing folder after the source prefix.",
            key=key,
        )
    return path


def _builtin(name: str) -> SourceData:
    if name not in BUILTIN_NAMES:
        raise RecipeError(
            f"unknown built-in dataset '{name}'. Known: {', '.join(BUILTIN_NAMES)}.",
            key="data.source",
        )
    with np.load(BUILTIN_DIR / f"{name}.npz") as npz:
        class_names = [str(c) for c in npz["class_names"]]
        splits = {
            s: _array_split(npz[f"{s}_images"], npz[f"{s}_labels"], s) for s in ("train", "test")
        }
    return SourceData(f"builtin:{name}", class_names, splits)


def _array_split(images: np.ndarray, labels: np.ndarray, split: str) -> Split:
    if images.ndim == 3:
        images = images[..., None]
    return Split(
        np.ascontiguousarray(images, np.uint8),
        labels.astype(np.int64),
        [f"{split}/{i}" for i in range(len(labels))],
    )


# IDX (MNIST format): files named like train-images-idx3-ubyte[.gz] / t10k-labels-idx1-ubyte.
_IDX_PREFIXES = {"train": ("train",), "test": ("t10k", "test")}


def _idx(folder: Path) -> SourceData:
    if not folder.is_dir():
        raise RecipeError(
            f"'{folder}' is not a folder; idx: expects a folder holding "
            f"train-images-idx3-ubyte[.gz] and train-labels-idx1-ubyte[.gz] "
            f"(and t10k-* for the test split).",
            key="data.source",
        )
    splits = {}
    for split, prefixes in _IDX_PREFIXES.items():
        images = _find_idx(folder, prefixes, "images")
        labels = _find_idx(folder, prefixes, "labels")
        if images and labels:
            splits[split] = _array_split(_read_idx(images), _read_idx(labels), split)
    if "train" not in splits:
        raise RecipeError(
            f"no train-images-idx3-ubyte[.gz] / train-labels-idx1-ubyte[.gz] pair in '{folder}'.",
            key="data.source",
        )
    num = int(max(s.labels.max() for s in splits.values())) + 1
    names_file = folder / "class_names.txt"
    names = (
        names_file.read_text().split("\n")[:num]
        if names_file.exists()
        else [str(i) for i in range(num)]
    )
    return SourceData(f"idx:{folder}", [n.strip() for n in names], splits)


def _find_idx(folder: Path, prefixes: tuple[str, ...], kind: str) -> Path | None:
    for path in sorted(folder.iterdir()):
        low = path.name.lower()
        if low.startswith(prefixes) and f"-{kind}-idx" in low:
            return path
    return None


def _read_idx(path: Path) -> np.ndarray:
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "rb") as fh:
        raw = fh.read()
    if len(raw) < 4 or raw[:2] != b"\0\0" or raw[2] != 0x08:
        raise RecipeError(f"'{path}' is not an unsigned-byte IDX file.", key="data.source")
    ndim = raw[3]
    dims = [int.from_bytes(raw[4 + 4 * i : 8 + 4 * i], "big") for i in range(ndim)]
    if len(raw) - 4 - 4 * ndim != int(np.prod(dims)):
        raise RecipeError(
            f"'{path}' is truncated: its header promises {dims} values.", key="data.source"
        )
    return np.frombuffer(raw, np.uint8, offset=4 + 4 * ndim).reshape(dims)
