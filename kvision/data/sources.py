"""Dataset sources behind ``[data] source``: builtin:, idx:, folder: and tfds:.

Each source returns the splits it provides (train, maybe val/test) as uint8 NHWC arrays with
stable ids, so that a recorded split can be reproduced later.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

from kvision.data.array_sources import BUILTIN_DIR, read_builtin, read_idx_folder
from kvision.data.dataset import SourceData, Split
from kvision.data.images import convert_channels, resize_images
from kvision.data.source_blur import SourceBlur
from kvision.errors import RecipeError
from kvision.recipe.schema_data import DataSection, parse_source

__all__ = ["BUILTIN_DIR", "check_source", "read_source"]


def read_source(
    data: DataSection,
    source_blur: SourceBlur | None = None,
    progress: Callable[..., None] | None = None,
) -> SourceData:
    """Load the images ``data.source`` names, resized and channel-converted as ``data`` says.

    With ``source_blur``, each split also carries its images under those conditions, blurred
    at the stored resolution before the resize (``Split.views``). ``progress`` receives the
    figures of a folder's decoding or a TFDS pass (kvision.data.progress).
    """
    prefix, rest = parse_source(data.source)
    if prefix == "builtin":
        return read_builtin(rest, data, source_blur)
    if prefix == "idx":
        return read_idx_folder(_existing_path(rest, "data.source"), data, source_blur)
    if prefix == "folder":
        from kvision.data.folder import read_folder  # OpenCV decoding, only when used

        return read_folder(_existing_path(rest, "data.source"), data, source_blur, progress)
    if prefix == "tfds":
        from kvision.data.tfds import read_tfds  # optional extra: kvision[tfds]

        src = read_tfds(rest, data, source_blur, progress)  # views made per image, at size
        if data.store == "stream":  # rows decoded, sized and converted per batch
            return src
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


def check_source(data: DataSection) -> None:
    """What can be checked of ``data.source`` without reading it: a folder (folder:, idx:)
    exists and may be listed. ``kvision run`` checks this before it makes a run directory."""
    prefix, rest = parse_source(data.source)
    if prefix not in ("folder", "idx"):
        return
    path = _existing_path(rest, "data.source")
    if not os.access(path, os.R_OK | (os.X_OK if path.is_dir() else 0)):
        raise RecipeError(
            f"'{path}' cannot be read (permission denied); give a folder this user may read.",
            key="data.source",
        )


def _existing_path(text: str, key: str) -> Path:
    path = Path(text).expanduser()
    if not path.exists():
        raise RecipeError(
            f"the path '{path}' does not exist. Give an existing folder after the source prefix.",
            key=key,
        )
    return path
