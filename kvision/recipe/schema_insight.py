"""The ``[insight]`` section: which pictures and tables a run produces after its trials.

Everything is on by default except retrieval (report 002's experiment, not a per-run view);
the defaults keep image generation to a small share of a recipe's run time.
"""

from __future__ import annotations

from dataclasses import dataclass

from kvision.recipe.schema_data import BLUR_KINDS
from kvision.recipe.spec import option

CAM_METHODS = ("gradcam", "gradcam++", "both")
CAM_CLASSES = ("true", "predicted", "both")


@dataclass(frozen=True)
class CamSpec:
    """``[insight.cam]``: Grad-CAM / Grad-CAM++ heatmaps over the sample images (report 001)."""

    enabled: bool = option(True, help="Draw class-activation heatmaps after each trial.")
    method: str = option(
        "both", choices=CAM_METHODS, help="gradcam, gradcam++ or both (one column each)."
    )
    layer: str | None = option(
        None,
        help="Layer or stage to explain (default: the rectified "
        "output of the last conv block, e.g. "
        "layer4_block2_out, block5_relu2, v4_relu).",
    )
    classes: str = option(
        "both", choices=CAM_CLASSES, help="Explain the true class, the predicted class, or both."
    )


@dataclass(frozen=True)
class RobustnessSpec:
    """``[insight.robustness]``: test accuracy against blur strength, one line per trial."""

    enabled: bool = option(True, help="Measure the blur robustness curve after each trial.")
    condition: str | None = option(
        None, help="Condition whose test images are blurred (default: the first evaluated)."
    )
    # 0 is the unblurred reference; 5 is report 000's training blur.
    sigmas: tuple[float, ...] = option(
        (0.0, 1.0, 2.0, 3.0, 5.0),
        ge=0.0,
        le=50.0,
        help="Gaussian sigmas of the sweep (pixels); empty: none.",
    )
    # Glass blur is left out by default: its per-pixel shuffle (as in ImageNet-C) is ~30x
    # slower than the other kinds and alone would exceed the time budget of insight.
    kinds: tuple[str, ...] = option(
        ("gaussian", "defocus", "motion", "zoom"),
        choices=BLUR_KINDS,
        help="Blur kinds measured at each severity; empty: none.",
    )
    severities: tuple[int, ...] = option(
        (1, 2, 3, 4, 5), ge=1, le=5, help="ImageNet-C-style severities of the kinds."
    )
    baseline: str | None = option(
        None, help="Trial (MODEL-ARM) whose errors normalise the mCE (default: the first trial)."
    )
    # A seeded, class-stratified subset keeps the 25 measurements cheap next to training
    # (200 images: accuracy to about +/-3.5 points per measurement, 1 standard error).
    max_images: int = option(200, ge=1, help="Test images per measurement (stratified subset).")


@dataclass(frozen=True)
class RetrievalSpec:
    """``[insight.retrieval]``: the model as an image encoder (report 002)."""

    enabled: bool = option(False, help="Index the test split and save query strips per trial.")
    layer: str | None = option(None, help="Feature layer (default: the pooled features).")
    k: int = option(5, ge=1, le=100, help="Neighbours per query (report 002: 5).")
    threshold: float | None = option(
        None, gt=0.0, le=2.0, help="Keep only neighbours closer than this (normalised L2)."
    )
    queries: int = option(3, ge=0, le=50, help="Query strips saved per trial.")


@dataclass(frozen=True)
class InsightSection:
    """``[insight]``: filters, activations, curves, classification, CAM, robustness."""

    enabled: bool = option(True, help="Produce insight images and tables at all.")
    checkpoints: tuple[str, ...] = option(
        (),
        help="Checkpoints drawn for filters and activations, e.g. ['before', "
        "'after_pretrain'] (default: every evaluation checkpoint).",
    )
    filters: bool = option(True, help="First-conv filter grids per checkpoint.")
    # Report 000 shows the first 16 filters as a 4x4 grid.
    max_filters: int = option(16, ge=1, le=256, help="Filters shown per grid.")
    activations: bool = option(True, help="Activation maps of the sample images per checkpoint.")
    stages: tuple[str, ...] = option(
        (), help="Stages or layers for activations (default: v1, v2, v4 when the model has them)."
    )
    top_channels: int = option(
        6, ge=0, le=32, help="Strongest channels shown per stage (0: channel means only)."
    )
    samples_per_class: int = option(1, ge=1, le=10, help="Sample images per class.")
    max_samples: int = option(8, ge=1, le=64, help="Cap on sample images (rows) in a figure.")
    curves: bool = option(True, help="Loss/accuracy curves per trial and a comparison figure.")
    classification: bool = option(
        True, help="Classification report and confusion matrix per evaluated condition."
    )
    batch_size: int | None = option(
        None,
        ge=1,
        le=4096,
        help="Images per forward pass of insight (default: the evaluation's, 256 images of "
        "64x64 pixels, fewer of larger ones).",
    )
    cam: CamSpec = option(default_factory=CamSpec, help="[insight.cam] table.")
    robustness: RobustnessSpec = option(
        default_factory=RobustnessSpec, help="[insight.robustness] table."
    )
    retrieval: RetrievalSpec = option(
        default_factory=RetrievalSpec, help="[insight.retrieval] table."
    )

    def check(self) -> list[tuple[str, str]]:
        """Checkpoint names follow the evaluation events: 'before' or 'after_<stage>'."""
        return [
            (
                f"checkpoints[{i}]",
                f"'{name}' is not a checkpoint name: use 'before' or "
                "'after_<stage>' (e.g. 'after_pretrain').",
            )
            for i, name in enumerate(self.checkpoints)
            if name != "before" and not name.startswith("after_")
        ]
