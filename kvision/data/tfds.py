"""``tfds:NAME[/CONFIG]`` source through TensorFlow Datasets' random-access data source.

Reading a dataset prepared in the array_record format needs no TensorFlow (only the optional
extra ``kvision[tfds]``). Preparing (downloading and converting) a catalogue dataset does need
TensorFlow; when a dataset is not prepared and cannot be prepared here, the error says so and
gives the command that fixes it.
"""

from __future__ import annotations

import importlib.util
from collections.abc import Callable
from typing import Any

import numpy as np

from kvision.data.dataset import SPLIT_ALIASES, SourceData, Split
from kvision.data.images import resize_image
from kvision.data.progress import Progress
from kvision.data.source_blur import SourceBlur
from kvision.errors import RecipeError, did_you_mean
from kvision.recipe.schema_data import DataSection

_KEY = "data.source"


def read_tfds(
    spec: str,
    data: DataSection,
    source_blur: SourceBlur | None = None,
    sink: Callable[..., None] | None = None,
) -> SourceData:
    """Every train/validation/test split of TFDS dataset ``spec`` as uint8 arrays (or, with
    ``data.store = "stream"``, rows decoded per batch); ``sink`` receives the progress of
    the pass over the examples (kvision.data.progress)."""
    tfds = _import_tfds()
    builder = _builder(tfds, spec, data.data_dir)
    image_key, label_key = _keys(builder, spec)
    names = list(builder.info.splits.keys()) or ["train", "validation", "test"]
    parts = {}
    for tfds_split in names:
        ours = SPLIT_ALIASES.get(tfds_split)
        if ours is None or ours in parts:
            continue
        source = _data_source(tfds, builder, spec, tfds_split, data.data_dir)
        if source is not None:
            parts[ours] = (tfds_split, source)
    total = sum(len(source) for _, source in parts.values())
    progress = Progress(total, f"reading tfds:{spec}", sink=sink)
    try:
        if data.store == "stream":  # decoded per batch from TFDS's data source, nothing kept
            from kvision.data.tfds_stream import stream_tfds

            splits = stream_tfds(parts, (image_key, label_key), data, source_blur, progress)
        else:
            splits = {}
            for ours, (tfds_split, source) in parts.items():
                images, labels, views = _read_all(
                    source, image_key, label_key, data, spec, source_blur, tfds_split, progress
                )
                ids = [f"{tfds_split}/{i}" for i in range(len(labels))]
                splits[ours] = Split(images, labels, ids, views)
    finally:
        progress.close()
    if "train" not in splits:
        raise RecipeError(
            f"TFDS dataset '{spec}' has no train split (it has: {', '.join(names)}).", key=_KEY
        )
    class_names = list(builder.info.features[label_key].names)
    return SourceData(f"tfds:{spec}", class_names, splits, {"tfds_data_dir": str(builder.data_dir)})


def _import_tfds() -> Any:
    try:
        import tensorflow_datasets as tfds
    except ImportError:
        raise RecipeError(
            "tfds: sources need TensorFlow Datasets, an optional extra: "
            "pip install 'kvision[tfds]'.",
            key=_KEY,
        ) from None
    return tfds


def _builder(tfds: Any, spec: str, data_dir: str | None) -> Any:
    try:
        return tfds.builder(spec, data_dir=data_dir)
    except Exception as exc:  # TFDS raises ValueError subclasses with long catalogue dumps
        name = spec.split("/")[0]
        hint = (
            did_you_mean(name, _catalogue(tfds))
            if type(exc).__name__ == "DatasetNotFoundError"
            else ""
        )
        first = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise RecipeError(
            f"TFDS has no dataset '{spec}' ({first}).{hint} See "
            f"https://www.tensorflow.org/datasets/catalog for names and "
            f"configs.",
            key=_KEY,
        ) from None


def _catalogue(tfds: Any) -> list[str]:
    try:  # the community list would need TensorFlow; the built-in catalogue does not
        return list(tfds.list_builders(with_community_datasets=False))
    except Exception:  # a hint is optional; never fail on it
        return []


def _keys(builder: Any, spec: str) -> tuple[str, str]:
    keys = builder.info.supervised_keys
    if keys and len(keys) == 2 and all(isinstance(k, str) for k in keys):
        return keys
    raise RecipeError(
        f"TFDS dataset '{spec}' has no (image, label) supervised keys, so it "
        f"is not an image-classification dataset kvision can train on.",
        key=_KEY,
    )


def tensorflow_available() -> bool:
    """Whether TensorFlow, which TFDS needs to prepare a dataset, is installed."""
    return importlib.util.find_spec("tensorflow") is not None


def _data_source(
    tfds: Any, builder: Any, spec: str, split: str, data_dir: str | None
) -> Any | None:
    try:
        return tfds.data_source(spec, split=split, data_dir=data_dir, download=False)
    except (NotImplementedError, AssertionError, FileNotFoundError, ValueError) as exc:
        if builder.info.splits and split not in builder.info.splits:
            return None
        where = builder.data_dir
        if builder.is_prepared():
            raise RecipeError(
                f"TFDS dataset '{spec}' is prepared in {where} but not in the array_record "
                f"format random access needs ({str(exc).splitlines()[0]}). Re-prepare it: "
                f"tfds build {spec} --file_format=array_record"
                f"{f' --data_dir={data_dir}' if data_dir else ''}.",
                key=_KEY,
            ) from None
        _prepare_or_explain(builder, spec, data_dir, where)
        return tfds.data_source(spec, split=split, data_dir=data_dir, download=False)


def _prepare_or_explain(builder: Any, spec: str, data_dir: str | None, where: Any) -> None:
    command = (
        f"tfds build {spec} --file_format=array_record"
        f"{f' --data_dir={data_dir}' if data_dir else ''}"
    )
    if not tensorflow_available():
        raise RecipeError(
            f"TFDS dataset '{spec}' is not prepared in {where}, and preparing it needs "
            f"TensorFlow, which is not installed. Either install it (pip install tensorflow) "
            f"and run `{command}` once (it downloads the data), or copy an array_record copy "
            f"prepared elsewhere into that folder, or point data.data_dir at one.",
            key=_KEY,
        )
    try:
        builder.download_and_prepare(file_format="array_record")
    except Exception as exc:  # network, manual-download datasets, disk space ...
        raise RecipeError(
            f"TFDS dataset '{spec}' is neither prepared in {where} nor downloadable here "
            f"({type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}). Run "
            f"`{command}` on a machine with network access and copy the folder, or follow "
            f"the dataset's manual-download instructions in the TFDS catalogue.",
            key=_KEY,
        ) from None


def _read_all(
    source: Any,
    image_key: str,
    label_key: str,
    data: DataSection,
    spec: str,
    source_blur: SourceBlur | None,
    split: str,
    progress: Progress,
) -> tuple[np.ndarray, np.ndarray, dict[str, np.ndarray]]:
    """Decode every example, resizing as it goes so only the final size is kept (and each
    source-resolution condition applied before the resize).

    With ``data.image_size`` the rows go straight into scratch memory maps
    (kvision.data.cache.scratch_array), so memory stays flat in the dataset's size; without
    it the examples must be stacked to learn that they share one size.
    """
    if not len(source):
        raise RecipeError(f"TFDS dataset '{spec}' has an empty split.", key=_KEY)
    rows = _Rows(len(source), data) if data.image_size is not None else None
    images, labels, views = [], np.zeros(len(source), np.int64), []
    for index in range(len(source)):
        example = source[index]
        image = np.asarray(example[image_key], np.uint8)
        image = image.reshape(*image.shape[:2], -1)
        blurred = (
            source_blur.views(image[None], data.image_size, f"{split}/{index}")
            if source_blur
            else {}
        )
        if data.image_size is not None:
            image = resize_image(image, data.image_size).reshape(*data.image_size, image.shape[2])
        labels[index] = int(example[label_key])
        progress.step()
        if rows is not None:
            rows.put(index, image, blurred)
        else:
            images.append(image)
            views.append(blurred)
    if rows is not None:
        return rows.images, labels, rows.views
    if len({im.shape for im in images}) > 1:
        raise RecipeError(
            f"the images of TFDS dataset '{spec}' have different sizes; set "
            f"data.image_size = [height, width] to resize them to one size.",
            key="data.image_size",
        )
    stacked = {n: np.concatenate([v[n] for v in views]) for n in views[0]} if views[0] else {}
    return np.stack(images), labels, stacked


class _Rows:
    """Scratch memory maps filled one example at a time (allocated at the first example,
    which gives the channel count)."""

    def __init__(self, n: int, data: DataSection) -> None:
        self.n, self.size = n, tuple(data.image_size)
        self.images: np.ndarray | None = None
        self.views: dict[str, np.ndarray] = {}

    def put(self, index: int, image: np.ndarray, blurred: dict[str, np.ndarray]) -> None:
        from kvision.data.cache import scratch_array

        if self.images is None:
            self.images = scratch_array((self.n, *image.shape))
            self.views = {k: scratch_array((self.n, *v.shape[1:])) for k, v in blurred.items()}
        self.images[index] = image
        for name, view in blurred.items():
            self.views[name][index] = view[0]
