"""Classification report and confusion matrix (report 001), computed with scikit-learn."""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
from sklearn.metrics import (
    ConfusionMatrixDisplay,
    accuracy_score,
    classification_report,
    confusion_matrix,
    precision_recall_fscore_support,
)

from kvision.insight._plot import new_figure, save_figure

if TYPE_CHECKING:
    import keras


def predict_classes(model: keras.Model, images: np.ndarray, batch_size: int = 64) -> np.ndarray:
    """Arg-max class per image (uint8 NHWC in, raw pixel values fed to the model).

    Cast to float32 one batch at a time: the whole split cast at once is four times its
    uint8 bytes (1.5 GiB for 2,000 test images at 256 px), which a memory-mapped store exists
    to avoid. The batches are the ones ``predict`` would cut from the array, so the classes
    are the same.
    """
    from kvision.insight._batches import predict_classes_of

    return predict_classes_of(model, [images], batch_size)[0]


def classification_summary(y_true: np.ndarray, y_pred: np.ndarray, class_names: list[str]) -> dict:
    """Accuracy, macro precision/recall/F1, per-class report and confusion matrix as JSON-able.

    The macro averages run over the classes present in the truth or the predictions
    (scikit-learn's default): a class absent from both has no precision or recall to speak
    of, and counting it as 0 would pull the average down for a split that merely lacks it.
    Such classes are listed in ``absent_classes``. A class predicted but never true (or true
    but never predicted) does count, with precision or recall 0 (``zero_division=0``).
    """
    labels = list(range(len(class_names)))
    precision, recall, f1, _ = precision_recall_fscore_support(
        y_true, y_pred, average="macro", zero_division=0
    )
    present = set(np.unique(y_true).tolist()) | set(np.unique(y_pred).tolist())
    report = classification_report(
        y_true, y_pred, labels=labels, target_names=class_names, output_dict=True, zero_division=0
    )
    per_class = {name: {k: float(v) for k, v in report[name].items()} for name in class_names}
    return {
        "n": int(len(y_true)),
        "accuracy": float(accuracy_score(y_true, y_pred)),
        "macro_precision": float(precision),
        "macro_recall": float(recall),
        "macro_f1": float(f1),
        "absent_classes": [name for i, name in enumerate(class_names) if i not in present],
        "per_class": per_class,
        "class_names": list(class_names),
        "confusion_matrix": confusion_matrix(y_true, y_pred, labels=labels).tolist(),
    }


def plot_confusion(summary: dict, path: str | os.PathLike, *, title: str) -> Path:
    """The confusion matrix (rows: true class, columns: predicted) with counts in the cells."""
    names = summary["class_names"]
    size = min(3.0 + 0.45 * len(names), 12.0)
    fig = new_figure(size, size)
    ax = fig.subplots()
    display = ConfusionMatrixDisplay(np.asarray(summary["confusion_matrix"]), display_labels=names)
    display.plot(ax=ax, cmap="Blues", colorbar=False, xticks_rotation=45 if len(names) > 4 else 0)
    ax.set_title(
        f"{title}\naccuracy {summary['accuracy']:.3f}, "
        f"macro F1 {summary['macro_f1']:.3f} (n={summary['n']})",
        fontsize=9,
    )
    return save_figure(fig, path)


def markdown_table(summary: dict) -> str:
    """The per-class report as a markdown table, headed by the overall figures."""
    lines = [
        f"accuracy **{summary['accuracy']:.4f}**, macro precision "
        f"{summary['macro_precision']:.4f}, macro recall {summary['macro_recall']:.4f}, "
        f"macro F1 {summary['macro_f1']:.4f} (n={summary['n']})",
        "",
        "| class | precision | recall | F1 | support |",
        "|---|---:|---:|---:|---:|",
    ]
    if absent := summary.get("absent_classes"):
        lines[1:1] = [
            "",
            f"Macro averages over the {len(summary['class_names']) - len(absent)} "
            f"classes present in the truth or the predictions; absent from both "
            f"(not averaged): {', '.join(absent)}.",
        ]
    for name, row in summary["per_class"].items():
        lines.append(
            f"| {name} | {row['precision']:.3f} | {row['recall']:.3f} | "
            f"{row['f1-score']:.3f} | {int(row['support'])} |"
        )
    return "\n".join(lines)
