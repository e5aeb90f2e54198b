"""Image files a user points at (``kvision viz``, ``kvision predict``): found, read, fitted.

The one place kvision reads single image files from disk: OpenCV decodes them, and each is
converted to RGB (or gray), resized to what the model takes (:mod:`kvision.data.images`) and
kept as uint8; models normalise pixels themselves. Folders are searched for the suffixes in
:data:`IMAGE_SUFFIXES`; a file named on its own is tried whatever its suffix.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from kvision.errors import KvisionError, printable

#: File suffixes read as images from folders (single files are tried whatever their suffix).
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".gif", ".tif", ".tiff", ".webp")


def read_image(path: str | Path, size: tuple[int, int] | None, channels: int) -> np.ndarray:
    """One image file as uint8 (H, W, C), resized to ``size`` and converted to ``channels``."""
    from kvision.data.images import convert_channels, decode_image, resize_image

    p = Path(path).expanduser()
    if not p.is_file():
        raise KvisionError(f"Image '{printable(path)}' does not exist or is not a file.")
    # as the folder loader decodes: truncated files and decompression bombs refused alike
    image, reason = decode_image(p.read_bytes(), 3, 1)
    if image is None:
        raise KvisionError(
            f"'{printable(path)}' is not an image OpenCV can read: {reason} "
            f"(expected e.g. {', '.join(IMAGE_SUFFIXES[:4])})."
        )
    image = resize_image(image, size) if size else image
    return convert_channels(image[None], channels)[0]


def read_images(
    paths: list[str] | list[Path], size: tuple[int, int] | None, channels: int
) -> np.ndarray:
    """Image files as one uint8 batch; without a ``size`` the first image's size is used."""
    if size is None and len(paths) > 1:
        size = read_image(paths[0], None, channels).shape[:2]  # a batch needs one size
    return np.stack([read_image(p, size, channels) for p in paths])


def folder_images(folder: str | Path) -> list[Path]:
    """The image files under ``folder`` (sorted, hidden ones skipped); none is an error."""
    root = Path(folder).expanduser()
    if not root.is_dir():
        raise KvisionError(f"'{folder}' is not a folder of images.")
    found = sorted(
        f
        for f in root.rglob("*")
        if f.suffix.lower() in IMAGE_SUFFIXES and not f.name.startswith(".")
    )
    if not found:
        raise KvisionError(f"Folder '{folder}' holds no images ({', '.join(IMAGE_SUFFIXES)}).")
    return found


def image_files(items: list[str]) -> list[Path]:
    """Files as given; folders expand to the image files under them (sorted)."""
    files: list[Path] = []
    for item in items:
        p = Path(item).expanduser()
        if p.is_dir():
            files.extend(folder_images(p))
        elif p.is_file():
            files.append(p)
        else:
            raise KvisionError(f"Image '{item}' does not exist.")
    return files


def labelled_folder(
    folder: str | Path, size: tuple[int, int] | None, channels: int
) -> tuple[np.ndarray, np.ndarray, list[str]]:
    """Every image under ``folder``: (images, labels, class names); sub-folders are classes.

    Images directly in ``folder`` get the label of a class named after the folder itself.
    """
    root = Path(folder).expanduser()
    files = folder_images(root)
    classes = sorted({p.parent.relative_to(root).as_posix() for p in files})
    names = [root.name if c == "." else c for c in classes]
    labels = np.asarray([classes.index(p.parent.relative_to(root).as_posix()) for p in files])
    return read_images(files, size, channels), labels, names
