"""Image retrieval with a classifier as encoder (report 002).

The model up to its pooled features encodes each image; features are L2-normalised, so the
L2 distance between two images is sqrt(2 - 2 cos) and lies in [0, 2]. Neighbours come from
scikit-learn's exact nearest-neighbour search.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from kvision.insight._plot import as_rgb, image_grid

if TYPE_CHECKING:
    import keras


def feature_layer(model: keras.Model, layer: str | None = None) -> str:
    """The layer whose output is the image's feature vector.

    ``layer`` if given (checked); else the last global pooling layer; else the last layer
    with a spatial (4-D) output, which :func:`encoder` averages over space.
    """
    import keras

    from kvision.errors import KvisionError
    from kvision.insight._layers import resolve_layer

    if layer:
        return resolve_layer(model, layer)
    pools = (keras.layers.GlobalAveragePooling2D, keras.layers.GlobalMaxPooling2D)
    pooled = [lay.name for lay in model.layers if isinstance(lay, pools)]
    if pooled:
        return pooled[-1]
    spatial = [
        lay.name
        for lay in model.layers
        if len(lay.output.shape) == 4 and not isinstance(lay, keras.layers.InputLayer)
    ]
    if not spatial:
        raise KvisionError(
            f"Model '{model.name}' has no pooled or spatial feature layer to "
            "use as an encoder; pass a layer name with --layer."
        )
    return spatial[-1]


def encoder(model: keras.Model, layer: str | None = None) -> keras.Model:
    """A Keras model from the classifier's input to its (globally averaged) features."""
    import keras

    out = model.get_layer(feature_layer(model, layer)).output
    if len(out.shape) == 4:
        out = keras.layers.GlobalAveragePooling2D(name="kvision_pool")(out)
    elif len(out.shape) != 2:
        out = keras.layers.Flatten(name="kvision_flatten")(out)
    return keras.Model(model.inputs, out, name=f"{model.name}_encoder")


def encode(enc: keras.Model, images: np.ndarray, batch_size: int = 64) -> np.ndarray:
    """L2-normalised float32 features (N, d) of uint8 images (cast one batch at a time)."""
    from kvision.insight._batches import ArrayBatches

    feats = np.asarray(enc.predict(ArrayBatches([images], batch_size), verbose=0), np.float32)
    norms = np.linalg.norm(feats, axis=1, keepdims=True)
    return feats / np.maximum(norms, 1e-12)  # an all-zero feature stays zero, not NaN


@dataclass
class Neighbours:
    """Top-k result for one query: database indices and their L2 distances, nearest first."""

    indices: np.ndarray
    distances: np.ndarray


class FeatureIndex:
    """Normalised features of a database split with their labels, searchable by L2 distance."""

    def __init__(self, features: np.ndarray, labels: np.ndarray | None = None) -> None:
        from sklearn.neighbors import NearestNeighbors

        self.features = features
        self.labels = labels
        self._nn = NearestNeighbors(metric="euclidean").fit(features)

    def search(
        self,
        queries: np.ndarray,
        k: int,
        threshold: float | None = None,
        exclude: np.ndarray | None = None,
    ) -> list[Neighbours]:
        """The ``k`` nearest database items per query (closer than ``threshold`` if given).

        ``exclude`` gives, per query, a database index to leave out: the query itself when
        queries are taken from the database.
        """
        k_eff = min(k + int(exclude is not None), len(self.features))
        dist, idx = self._nn.kneighbors(queries, n_neighbors=k_eff)
        out = []
        for q, (d, i) in enumerate(zip(dist, idx, strict=True)):
            keep = i != exclude[q] if exclude is not None else np.ones_like(i, dtype=bool)
            if threshold is not None:
                keep &= d <= threshold
            out.append(Neighbours(i[keep][:k], d[keep][:k]))
        return out


def precision_at_k(
    index: FeatureIndex,
    query_feats: np.ndarray,
    query_labels: np.ndarray,
    k: int,
    exclude_self: bool = False,
) -> float:
    """Mean over queries of the share of the top ``k`` neighbours with the query's label.

    ``exclude_self``: the queries are the database itself (row i is database item i), and
    each query's own entry is not counted as a neighbour.
    """
    assert index.labels is not None
    exclude = np.arange(len(query_feats)) if exclude_self else None
    hits = [
        (index.labels[n.indices] == label).mean() if len(n.indices) else 0.0
        for n, label in zip(
            index.search(query_feats, k, exclude=exclude), query_labels, strict=True
        )
    ]
    return float(np.mean(hits))


def plot_strip(
    query: np.ndarray,
    neighbours: list[np.ndarray],
    captions: list[str],
    path: str | os.PathLike,
    *,
    title: str,
    query_caption: str = "query",
) -> Path:
    """The query image (framed in red) followed by its neighbours, each captioned."""
    import cv2

    framed = cv2.copyMakeBorder(
        as_rgb(query), 3, 3, 3, 3, cv2.BORDER_CONSTANT, value=(0.85, 0.1, 0.1)
    )
    return image_grid(
        [[framed, *neighbours]], path, title=title, captions=[[query_caption, *captions]], cell=96
    )
