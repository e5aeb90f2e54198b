"""Per-channel normalisation constants (applied inside the model; see kvision.models)."""

from __future__ import annotations

import numpy as np

from kvision.data.dataset import Dataset
from kvision.recipe.schema_data import DataSection

_IMAGENET = ((0.485, 0.456, 0.406), (0.229, 0.224, 0.225))
NORMALIZE_PRESETS = {
    "half": ((0.5,) * 3, (0.5,) * 3),  # report 000: (x - 0.5) / 0.5
    "imagenet": _IMAGENET,
    "none": ((0.0,) * 3, (1.0,) * 3),  # plain 0..1
}


def dataset_mean_std(images: np.ndarray, chunk: int = 1024) -> tuple[list[float], list[float]]:
    """Per-channel mean and std of uint8 NHWC images on the 0..1 scale (report 001)."""
    c = images.shape[3]
    total, squares, n = np.zeros(c), np.zeros(c), 0
    for start in range(0, len(images), chunk):  # float64 sums in chunks: exact, low memory
        x = images[start : start + chunk].reshape(-1, c).astype(np.float64) / 255.0
        total += x.sum(0)
        squares += (x * x).sum(0)
        n += len(x)
    mean = total / n
    std = np.sqrt(np.maximum(squares / n - mean * mean, 0.0))
    return mean.tolist(), np.maximum(std, 1e-6).tolist()


def normalization(data: DataSection, dataset: Dataset) -> tuple[list[float], list[float]]:
    """(mean, std) per channel on the 0..1 scale for ``data.normalize``."""
    channels = dataset.image_shape[2]
    if data.normalize == "dataset":
        if "normalization" not in dataset.info:
            dataset.info["normalization"] = dataset_mean_std(dataset.splits["train"].images)
        mean, std = dataset.info["normalization"]
        return list(mean), list(std)
    mean, std = NORMALIZE_PRESETS[data.normalize]
    if channels == 1:  # one gray channel: the average of the RGB constants
        return [float(np.mean(mean))], [float(np.mean(std))]
    return list(mean), list(std)
