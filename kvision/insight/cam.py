"""Grad-CAM and Grad-CAM++ heatmaps (report 001): where the model looked for a class.

Grad-CAM (Selvaraju et al., 2017) weighs each feature map A_k by the spatial mean of
dY_c/dA_k. Grad-CAM++ (Chattopadhay et al., 2018) weighs only the positive gradients, each
with alpha = g^2 / (2 g^2 + sum_ab A_ab g^3), the closed form that holds for S_c = exp(Y_c).
Both end with ReLU(sum_k w_k A_k).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING

import cv2
import numpy as np

from kvision.insight._plot import image_grid

if TYPE_CHECKING:
    import keras


METHODS = ("gradcam", "gradcam++")


def gradcam(feats: np.ndarray, grads: np.ndarray) -> np.ndarray:
    """Grad-CAM maps (N, h, w) from layer outputs and gradients (N, h, w, k)."""
    weights = grads.mean(axis=(1, 2), keepdims=True)
    return np.maximum((weights * feats).sum(axis=-1), 0.0)


def gradcam_pp(feats: np.ndarray, grads: np.ndarray) -> np.ndarray:
    """Grad-CAM++ maps (N, h, w) from layer outputs and gradients (N, h, w, k)."""
    g2, g3 = grads**2, grads**3
    denom = 2.0 * g2 + feats.sum(axis=(1, 2), keepdims=True) * g3
    safe = np.where(denom != 0.0, denom, 1.0)
    alpha = np.where(denom != 0.0, g2 / safe, 0.0)  # no gradient at a position: no weight
    weights = (alpha * np.maximum(grads, 0.0)).sum(axis=(1, 2), keepdims=True)
    return np.maximum((weights * feats).sum(axis=-1), 0.0)


def class_activation_maps(
    model: keras.Model,
    layer_name: str,
    images: np.ndarray,
    classes: np.ndarray,
    method: str = "gradcam",
) -> tuple[np.ndarray, np.ndarray]:
    """Heatmaps (N, h, w) for one class per image, plus the model outputs (N, num_classes)."""
    from kvision.insight._grad import layer_gradients

    feats, grads, outputs = layer_gradients(model, layer_name, images, classes)
    maps = gradcam(feats, grads) if method == "gradcam" else gradcam_pp(feats, grads)
    return maps, outputs


def overlay(image: np.ndarray, cam: np.ndarray, alpha: float = 0.45) -> np.ndarray:
    """The heatmap, scaled to its own max and resized, blended over a uint8 image (RGB out)."""
    h, w = image.shape[:2]
    peak = float(cam.max())
    norm = cam / peak if peak > 0 else np.zeros_like(cam)
    heat = cv2.resize(norm.astype(np.float32), (w, h), interpolation=cv2.INTER_LINEAR)
    colour = cv2.cvtColor(
        cv2.applyColorMap(np.uint8(255 * heat), cv2.COLORMAP_JET), cv2.COLOR_BGR2RGB
    )
    base = np.repeat(image, 3, axis=-1) if image.shape[-1] == 1 else image
    return cv2.addWeighted(base.astype(np.uint8), 1.0 - alpha, colour, alpha, 0.0)


def plot_cams(
    images: np.ndarray,
    panels: dict[str, list[tuple[np.ndarray, str]]],
    row_titles: list[str],
    path: str | os.PathLike,
    *,
    title: str,
) -> Path:
    """Rows of samples: the input, then one overlay per column of ``panels``.

    ``panels`` maps a column title to one (heatmap, caption) pair per image.
    """
    cells = [
        [image] + [overlay(image, cells[r][0]) for cells in panels.values()]
        for r, image in enumerate(images)
    ]
    captions = [[""] + [cells[r][1] for cells in panels.values()] for r in range(len(images))]
    return image_grid(
        cells,
        path,
        title=title,
        col_titles=["input", *panels],
        row_titles=row_titles,
        captions=captions,
        cell=112,
        smooth=True,
        # overlay() scales each map to its own peak and colours it with OpenCV's JET
        colourbar=("jet", "CAM / its peak"),
    )


def cam_panels(
    model: keras.Model,
    layer_name: str,
    images: np.ndarray,
    labels: np.ndarray,
    class_names: list[str],
    *,
    methods: tuple[str, ...] = METHODS,
    targets: tuple[str, ...] = ("true", "predicted"),
    batch_size: int = 16,
) -> dict[str, list[tuple[np.ndarray, str]]]:
    """Heatmap columns for :func:`plot_cams`: one per (method, target class) pair.

    The gradients for a target are computed once and shared by both methods, and the
    predicted classes come from the outputs of the true-class pass.
    """
    from kvision.insight._grad import layer_gradients
    from kvision.models.inference import probabilities  # Keras: not in the drawing worker

    names = {"gradcam": "Grad-CAM", "gradcam++": "Grad-CAM++"}
    formulas = {"gradcam": gradcam, "gradcam++": gradcam_pp}
    columns: dict[str, list[tuple[np.ndarray, str]]] = {}
    outputs = None  # the model's outputs, known after the first gradient pass
    for target in targets:
        if target == "true":
            classes = np.asarray(labels)
        else:
            if outputs is None:
                outputs = np.asarray(
                    model.predict(images.astype(np.float32), batch_size=batch_size, verbose=0)
                )
            classes = outputs.argmax(axis=-1)
        feats, grads, outputs = layer_gradients(model, layer_name, images, classes, batch_size)
        probs = probabilities(outputs)
        # The column title names the target (true / predicted), so a caption stays short.
        captions = [f"{class_names[c]} p={probs[i, c]:.2f}" for i, c in enumerate(classes)]
        for method in methods:
            maps = formulas[method](feats, grads)
            columns[f"{names[method]}\n({target})"] = list(zip(maps, captions, strict=True))
    return columns
