"""The recipe's data tables: ``[data]`` (source, size, splits, balance, augmentation) and
``[conditions.NAME]`` (the image conditions, e.g. clear and blurred, a stage trains on).

Validation only: nothing here imports cv2, keras or torch, so the TUI can check a recipe
without the heavy stack. The meaning of each key is implemented in :mod:`kvision.data`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, fields

from kvision.errors import did_you_mean
from kvision.recipe.registry import Registry
from kvision.recipe.spec import option

#: Source prefixes ``[data] source`` accepts, with what follows the colon.
SOURCE_KINDS = {
    "builtin": "a dataset shipped with kvision, e.g. builtin:fashion7k",
    "idx": "a folder of MNIST-style IDX files, e.g. idx:/data/fashion-mnist",
    "folder": "a folder with one sub-folder per class, e.g. folder:~/data/pets",
    "tfds": "a TensorFlow Datasets name, e.g. tfds:cats_vs_dogs or tfds:cifar10/plain_text",
    "function": "a formula in x to fit (a regression task), e.g. function:x**2 + 2*cos(x)",
}
#: Source prefixes whose data are (x, y) samples of a function: the recipe is a regression.
REGRESSION_SOURCES = ("function",)
BUILTIN_NAMES = ("fashion7k",)
NORMALIZE_CHOICES = ("half", "imagenet", "dataset", "none")
STORE_CHOICES = ("cache", "stream")
#: Glass blur as ImageNet-C published it (pixels duplicated) or with a true pixel swap.
GLASS_VARIANTS = ("imagenet_c", "swap")
#: Where a condition's blur is applied: on the resized image the model sees, or on the
#: image at its stored resolution before the resize (report 000's order).
BLUR_AT = ("input", "source")
#: Parameter sets for the ``severity`` presets (``auto`` picks by image size).
BLUR_PRESETS = ("auto", "imagenet_c", "tiny_imagenet_c", "cifar10_c")

#: The blur kinds, each declared once with the explicit parameters it takes (those without a
#: default are needed when no severity is given); kvision.data.blur implements each by name,
#: with the same parameters and defaults. Ranges and help are BlurSpec's, below.
BLURS = Registry("blur kind")


@BLURS.declare("gaussian")
class GaussianBlur:
    """A Gaussian of ``sigma`` pixels (0 = unchanged)."""

    sigma: float


@BLURS.declare("defocus")
class DefocusBlur:
    """A disk of ``radius`` pixels whose edge a Gaussian of ``alias_blur`` smooths."""

    radius: float
    alias_blur: float = 0.5


@BLURS.declare("motion")
class MotionBlur:
    """A one-sided streak of ``radius`` pixels falling off with ``sigma``, along ``angle``
    (random in [-45, 45] per image, from ``seed``, when not given)."""

    radius: float
    sigma: float
    angle: float | None = None
    seed: int | None = None


@BLURS.declare("zoom")
class ZoomBlur:
    """The mean of the image and its centre zoomed by each factor of ``zooms``
    (start, stop, step)."""

    zooms: tuple[float, float, float]


@BLURS.declare("glass")
class GlassBlur:
    """Gaussian, a local pixel shuffle within ``max_delta`` (``iterations`` passes), Gaussian."""

    sigma: float
    max_delta: int
    iterations: int
    seed: int | None = None
    variant: str = "imagenet_c"


BLUR_KINDS = BLURS.names()
#: The explicit parameters each blur kind takes (besides kind, severity, preset).
BLUR_PARAMS = {kind: BLURS.takes(kind) for kind in BLUR_KINDS}
#: The explicit parameters a blur needs when no severity is given.
REQUIRED_BLUR_PARAMS = {kind: BLURS.needs(kind) for kind in BLUR_KINDS}

#: The augmentation ops, each declared once with the parameters it takes (``p``, the
#: probability, applies to all); kvision.data.augment implements each by name. Ranges and
#: help are AugmentOp's, below.
AUGMENTS = Registry("augmentation op")


@AUGMENTS.declare("hflip")
class HorizontalFlip:
    """Mirror left-right."""


@AUGMENTS.declare("vflip")
class VerticalFlip:
    """Mirror top-bottom."""


@AUGMENTS.declare("rotate")
class Rotate:
    """Rotate by a random angle in [-degrees, degrees] or by a fixed ``angle`` (one of them)."""

    degrees: float | None = None
    angle: float | None = None


@AUGMENTS.declare("random_resized_crop")
class RandomResizedCrop:
    """torchvision's crop of a random area and aspect ratio, resized to ``size``."""

    size: tuple[int, int] | None = None
    scale: tuple[float, float] | None = None
    ratio: tuple[float, float] | None = None


@AUGMENTS.declare("random_crop")
class RandomCrop:
    """A ``size`` crop at a random place."""

    size: tuple[int, int]


@AUGMENTS.declare("center_crop")
class CenterCrop:
    """A ``size`` crop at the centre."""

    size: tuple[int, int]


@AUGMENTS.declare("resize")
class Resize:
    """Resize to ``size``."""

    size: tuple[int, int]


@AUGMENTS.declare("grayscale")
class Grayscale:
    """Gray, kept in three channels."""


@AUGMENTS.declare("color_jitter")
class ColorJitter:
    """Random brightness and/or contrast factors in [1-b, 1+b] and [1-c, 1+c]."""

    brightness: float | None = None
    contrast: float | None = None


AUGMENT_OPS = AUGMENTS.names()
#: The parameters each augmentation op takes (``p`` is allowed on all of them).
AUGMENT_PARAMS = {op: AUGMENTS.takes(op) for op in AUGMENT_OPS}
BALANCE_METHODS = ("none", "undersample", "oversample", "class_weights")


def parse_source(source: str) -> tuple[str, str]:
    """Split ``"prefix:rest"``; (``""``, source) when there is no known prefix."""
    prefix, sep, rest = source.partition(":")
    if not sep or prefix not in SOURCE_KINDS:
        return "", source
    return prefix, rest


def _source_problem(source: str) -> str | None:
    prefix, sep, rest = source.partition(":")
    allowed = "; ".join(f"{k}: ({v})" for k, v in SOURCE_KINDS.items())
    if not sep:
        return f"'{source}' has no source prefix. Allowed prefixes: {allowed}."
    if prefix not in SOURCE_KINDS:
        return (
            f"unknown source prefix '{prefix}:'.{did_you_mean(prefix, SOURCE_KINDS)} "
            f"Allowed prefixes: {allowed}."
        )
    if not rest.strip():
        return f"'{source}' names no dataset after '{prefix}:'. Expected {SOURCE_KINDS[prefix]}."
    if prefix == "builtin" and rest not in BUILTIN_NAMES:
        return (
            f"unknown built-in dataset '{rest}'.{did_you_mean(rest, BUILTIN_NAMES)} "
            f"Known: {', '.join(BUILTIN_NAMES)}."
        )
    if prefix == "function":
        from kvision.recipe.formula import FormulaError, parse_formula

        try:
            parse_formula(rest)
        except FormulaError as exc:
            return str(exc)
    return None


@dataclass(frozen=True)
class BalanceSpec:
    """``[data.balance]``: how the class imbalance of report 001 is handled."""

    method: str = option(
        "none",
        choices=BALANCE_METHODS,
        help="undersample: cap every class at per_class; oversample: repeat "
        "images of small classes up to per_class; class_weights: weight "
        "the loss by inverse class frequency; none: leave as is.",
    )
    per_class: int | None = option(
        None,
        ge=1,
        help="Target images per class (default: the smallest class "
        "for undersample, the largest for oversample).",
    )
    before_split: bool = option(
        False,
        help="Undersample the whole pool before the ratio split "
        "(report 001) instead of the train split only.",
    )

    def check(self) -> list[tuple[str, str]]:
        problems = []
        if self.per_class is not None and self.method not in ("undersample", "oversample"):
            problems.append(
                (
                    "per_class",
                    f"per_class only applies to undersample and "
                    f"oversample, not to method '{self.method}'.",
                )
            )
        if self.before_split and self.method != "undersample":
            problems.append(
                (
                    "before_split",
                    "before_split only applies to method "
                    "'undersample' (oversampling before a split "
                    "would copy images into val and test).",
                )
            )
        return problems


@dataclass(frozen=True)
class AugmentOp:
    """One augmentation step, e.g. ``{ op = "rotate", degrees = 45 }``."""

    op: str = option(choices=AUGMENT_OPS, help="The operation.")
    p: float = option(
        1.0,
        ge=0.0,
        le=1.0,
        help="Probability of applying the step to an image (hflip: 0.5 is usual).",
    )
    degrees: float | None = option(
        None, gt=0.0, le=180.0, help="rotate: random angle in [-degrees, degrees]."
    )
    angle: float | None = option(None, ge=-360.0, le=360.0, help="rotate: a fixed angle.")
    size: tuple[int, int] | None = option(None, ge=1, help="[height, width] of the output.")
    scale: tuple[float, float] | None = option(
        None, gt=0.0, le=1.0, help="random_resized_crop: area fraction range (default [0.08, 1.0])."
    )
    ratio: tuple[float, float] | None = option(
        None, gt=0.0, help="random_resized_crop: aspect-ratio range (default [0.75, 1.3333])."
    )
    brightness: float | None = option(
        None, ge=0.0, le=1.0, help="color_jitter: brightness factor in [1-b, 1+b]."
    )
    contrast: float | None = option(
        None, ge=0.0, le=1.0, help="color_jitter: contrast factor in [1-c, 1+c]."
    )

    def check(self) -> list[tuple[str, str]]:
        allowed = AUGMENT_PARAMS[self.op]
        problems = [
            (
                name,
                f"'{name}' does not apply to op '{self.op}'. "
                f"{self.op} takes: {', '.join(('p',) + allowed)}.",
            )
            for name in _set_fields(self, exclude=("op", "p"))
            if name not in allowed
        ]
        if self.op == "rotate" and (self.degrees is None) == (self.angle is None):
            problems.append(
                (
                    "degrees",
                    "rotate needs exactly one of 'degrees' (random angle "
                    "in [-degrees, degrees]) or 'angle' (fixed).",
                )
            )
        problems += [
            (name, f"{self.op} needs '{name}' = [height, width].")  # only crops need a size
            for name in AUGMENTS.needs(self.op)
            if getattr(self, name) is None
        ]
        for name in ("scale", "ratio"):
            pair = getattr(self, name)
            if pair is not None and pair[0] > pair[1]:
                problems.append(
                    (name, f"{name} must be [low, high] with low <= high, got {list(pair)}.")
                )
        if self.op == "color_jitter" and self.brightness is None and self.contrast is None:
            problems.append(("brightness", "color_jitter needs 'brightness' and/or 'contrast'."))
        return problems


@dataclass(frozen=True)
class AugmentSection:
    """``[data.augment]``: static copies (materialised once) and per-epoch dynamic steps."""

    static: tuple[tuple[AugmentOp, ...], ...] = option(
        (),
        help="Each entry is a pipeline; every train image gets one extra copy per pipeline, "
        "made once (report 001: rotate 45, mirror, crop).",
    )
    dynamic: tuple[AugmentOp, ...] = option(
        (), help="Steps applied anew every epoch as batches are drawn."
    )
    splits: tuple[str, ...] = option(
        ("train",),
        choices=("train", "val", "test"),
        min_len=1,
        help="Splits dynamic augmentation applies to (training only unless asked).",
    )


@dataclass(frozen=True)
class FunctionSpec:
    """``[data.function]``: how a ``function:`` source samples (x, y) pairs (report 002)."""

    domain: tuple[float, float] = option((-2.0, 3.0), help="[low, high] interval of x.")
    train_points: int = option(
        200, ge=2, le=10_000_000, help="Training pairs, x drawn uniformly from the domain (seeded)."
    )
    val_points: int = option(
        100, ge=0, le=10_000_000, help="Validation pairs, drawn like the training ones."
    )
    test_points: int = option(
        400,
        ge=2,
        le=10_000_000,
        help="Test pairs on an even grid over the domain, without noise: "
        "the test error is the fit's error against the true curve.",
    )
    noise: float = option(
        0.0,
        ge=0.0,
        help="Standard deviation of Gaussian noise added to training and "
        "validation targets (what lets long training over-fit).",
    )

    def check(self) -> list[tuple[str, str]]:
        low, high = self.domain
        if not (math.isfinite(low) and math.isfinite(high) and low < high):
            return [
                ("domain", f"domain must be [low, high] with low < high, got {list(self.domain)}.")
            ]
        return []


@dataclass(frozen=True)
class DataSection:
    """The ``[data]`` table."""

    source: str = option(
        help="Where images come from: builtin:NAME, idx:DIR, folder:DIR or "
        "tfds:NAME[/CONFIG]; or function:FORMULA for (x, y) pairs."
    )
    image_size: tuple[int, int] | None = option(
        None, ge=1, help="[height, width] images are resized to (default: the source's own size)."
    )
    channels: int | None = option(
        None, choices=(1, 3), help="1 (gray) or 3 (RGB); default: the source's own."
    )
    val_fraction: float = option(
        0.2,
        ge=0.0,
        lt=1.0,
        help="Share of the pool held out for validation when the source has no validation split.",
    )
    test_fraction: float = option(
        0.0,
        ge=0.0,
        lt=1.0,
        help="Share held out for testing when the source has no test "
        "split (report 001's 8:1:1 = val 0.1, test 0.1).",
    )
    split: tuple[float, float, float] | None = option(
        None,
        ge=0.0,
        le=1.0,
        help="[train, val, test] fractions summing to 1; replaces val_fraction/test_fraction.",
    )
    use_given_splits: bool = option(
        True,
        help="Keep the train/val/test splits the source "
        "provides; false pools them and splits by ratio.",
    )
    normalize: str = option(
        "half",
        choices=NORMALIZE_CHOICES,
        help="half: mean 0.5 std 0.5 (report 000); imagenet; dataset: "
        "computed from the train split (report 001); none: 0..1.",
    )
    limit_per_class: int | None = option(
        None,
        ge=1,
        help="Keep at most this many images per class in each split of limit_splits (quick runs).",
    )
    limit_splits: tuple[str, ...] = option(
        ("train", "val", "test"),
        choices=("train", "val", "test"),
        min_len=1,
        help="The splits limit_per_class applies "
        'to (e.g. ["train", "val"] keeps '
        "the test split whole).",
    )
    balance: BalanceSpec = option(default_factory=BalanceSpec, help="Class balance.")
    augment: AugmentSection = option(default_factory=AugmentSection, help="Augmentation.")
    cache: bool = option(
        True,
        help="Keep decoded, resized folder images in the disk cache "
        "(KVISION_CACHE or ~/.cache/kvision).",
    )
    store: str = option(
        "cache",
        choices=STORE_CHOICES,
        help="folder:/tfds: cache: decode every image once into a memory-mapped cache "
        "entry; stream: decode per batch in the loader threads, nothing on disk (for data "
        "larger than the disk; needs image_size).",
    )
    data_dir: str | None = option(None, help="tfds: the TFDS data directory (default: TFDS's).")
    min_image_size: int = option(
        8,
        ge=1,
        help="folder: images smaller than this many pixels on a side are skipped as unusable.",
    )
    function: FunctionSpec = option(
        default_factory=FunctionSpec, help="function: sampling of the (x, y) pairs."
    )

    @property
    def regression(self) -> bool:
        """Whether the source gives (x, y) pairs to fit rather than labelled images."""
        return parse_source(self.source)[0] in REGRESSION_SOURCES

    @property
    def formula(self) -> str:
        """The formula of a ``function:`` source (what follows the prefix)."""
        return parse_source(self.source)[1]

    def check(self) -> list[tuple[str, str]]:
        problems = []
        bad = _source_problem(self.source)
        if bad:
            problems.append(("source", bad))
        problems += self._kind_problems()
        problems += self._store_problems()
        if self.split is not None:
            if not math.isclose(sum(self.split), 1.0, abs_tol=1e-6):
                problems.append(
                    (
                        "split",
                        f"[train, val, test] fractions must sum to 1, got "
                        f"{list(self.split)} (sum {sum(self.split):g}).",
                    )
                )
            elif self.split[0] <= 0:
                problems.append(("split", "the train fraction must be above 0."))
            if self.val_fraction != 0.2 or self.test_fraction != 0.0:
                problems.append(
                    ("split", "give either split or val_fraction/test_fraction, not both.")
                )
        elif self.val_fraction + self.test_fraction >= 1.0:
            problems.append(
                (
                    "test_fraction",
                    f"val_fraction + test_fraction must stay below 1 "
                    f"(got {self.val_fraction:g} + "
                    f"{self.test_fraction:g}).",
                )
            )
        return problems

    def _store_problems(self) -> list[tuple[str, str]]:
        """What stream mode cannot do: other sources, images of unknown size, static copies."""
        if self.store != "stream":
            return []
        if parse_source(self.source)[0] not in ("folder", "tfds"):
            return [
                (
                    "store",
                    'store = "stream" decodes a folder: or tfds: source per batch; '
                    "builtin: and idx: arrays are small and mapped (or cached) instead.",
                )
            ]
        if self.image_size is None:
            return [
                (
                    "image_size",
                    'store = "stream" needs image_size = [height, width]: the batches are '
                    "decoded one by one and must share one size.",
                )
            ]
        if self.augment.static:
            return [
                (
                    "augment.static",
                    'store = "stream" keeps no decoded images to copy; use dynamic '
                    'augmentation, or store = "cache".',
                )
            ]
        return []

    def _kind_problems(self) -> list[tuple[str, str]]:
        """Image keys on a function source, or function keys on an image source."""
        if not self.regression:
            if self.function != FunctionSpec():
                return [("function", "[data.function] applies to function: sources only.")]
            return []
        image_keys = {
            "image_size": None,
            "channels": None,
            "split": None,
            "limit_per_class": None,
            "balance": BalanceSpec(),
            "augment": AugmentSection(),
        }
        return [
            (
                key,
                f"'{key}' applies to image sources, not to a function: source (its "
                f"sampling is set in [data.function]).",
            )
            for key, default in image_keys.items()
            if getattr(self, key) != default
        ]

    def fractions(self) -> tuple[float, float]:
        """(val, test) fractions of the pool, from ``split`` or the two fraction keys."""
        if self.split is not None:
            return self.split[1], self.split[2]
        return self.val_fraction, self.test_fraction


@dataclass(frozen=True)
class BlurSpec:
    """``blur = { kind = ..., ... }`` in a condition: a severity preset or explicit parameters."""

    kind: str = option(choices=BLUR_KINDS, help="The blur family.")
    severity: int | None = option(
        None, ge=1, le=5, help="ImageNet-C severity 1..5 (instead of explicit parameters)."
    )
    preset: str = option(
        "auto",
        choices=BLUR_PRESETS,
        help="Which published parameter set severity uses; auto: CIFAR-10-C "
        "up to 32 px, Tiny-ImageNet-C up to 64 px, else ImageNet-C.",
    )
    sigma: float | None = option(
        None,
        ge=0.0,
        le=50.0,
        help="gaussian/glass: Gaussian sigma in pixels (0 = clear); "
        "motion: sigma of the fall-off along the streak.",
    )
    radius: float | None = option(
        None, ge=0.0, le=50.0, help="defocus: disk radius; motion: streak length in pixels."
    )
    alias_blur: float | None = option(
        None, ge=0.0, le=5.0, help="defocus: sigma smoothing the disk's edge."
    )
    angle: float | None = option(
        None,
        ge=-360.0,
        le=360.0,
        help="motion: direction in degrees (default: random in "
        "[-45, 45] per image, as ImageNet-C).",
    )
    zooms: tuple[float, float, float] | None = option(
        None, help="zoom: [start, stop, step] of the zoom factors averaged (start >= 1)."
    )
    max_delta: int | None = option(None, ge=1, le=10, help="glass: largest pixel displacement.")
    iterations: int | None = option(None, ge=1, le=10, help="glass: shuffle passes.")
    seed: int | None = option(None, ge=0, help="motion/glass: seed of the random parts.")
    variant: str | None = option(
        None,
        choices=GLASS_VARIANTS,
        help="glass: imagenet_c (default) is the published corruption "
        "bit for bit, whose view-copy 'swap' duplicates pixels; "
        "swap truly swaps them.",
    )
    at: str = option(
        "input",
        choices=BLUR_AT,
        help="input: blur the resized image the model sees; source: blur at the "
        "image's stored resolution, then resize (report 000). The report "
        "gives the effective size at the model's input.",
    )

    def check(self) -> list[tuple[str, str]]:
        allowed = BLUR_PARAMS[self.kind]
        given = _set_fields(self, exclude=("kind", "severity", "preset", "at"))
        problems = [
            (
                name,
                f"'{name}' does not apply to {self.kind} blur. {self.kind} takes: "
                f"severity (1-5) or {', '.join(allowed)}.",
            )
            for name in given
            if name not in allowed
        ]
        explicit = [g for g in given if g not in ("seed", "variant")]
        if self.severity is not None and explicit:
            problems.append(
                (
                    "severity",
                    "give either severity or explicit parameters "
                    f"({', '.join(explicit)}), not both.",
                )
            )
        if self.severity is None and not problems:
            missing = [p for p in REQUIRED_BLUR_PARAMS[self.kind] if p not in given]
            if missing:
                problems.append(
                    (missing[0], f"{self.kind} blur needs severity (1-5) or {', '.join(missing)}.")
                )
        if self.kind == "motion" and self.sigma == 0:
            problems.append(
                ("sigma", "motion blur needs sigma > 0 (the fall-off along the streak).")
            )
        if self.zooms is not None:
            start, stop, step = self.zooms
            if not (1.0 <= start < stop <= 3.0 and 0 < step <= stop - start):
                problems.append(
                    (
                        "zooms",
                        f"zooms must be [start, stop, step] with 1 <= start < "
                        f"stop <= 3 and 0 < step <= stop - start, got "
                        f"{list(self.zooms)}.",
                    )
                )
        return problems

    def params(self) -> dict:
        """The explicit parameters that were given (for kvision.data.blur.apply_blur)."""
        return {
            name: getattr(self, name)
            for name in _set_fields(self, exclude=("kind", "severity", "preset", "at"))
        }


@dataclass(frozen=True)
class ConditionSection:
    """``[conditions.NAME]``: how images look under this condition; empty = clear images."""

    blur: BlurSpec | None = option(None, help="Blur applied to every image of the condition.")
    mix: dict[str, float] | None = option(
        None,
        help="A weighted mix of other conditions, e.g. { clear = 0.5, blurred = 0.5 }: "
        "a stage training on it draws each batch from them in these proportions "
        "(Jang & Tong 2024). Weights are positive and are normalised to sum to 1.",
    )

    def check(self) -> list[tuple[str, str]]:
        """A condition is a blur or a mix, not both; mix weights are positive."""
        if self.mix is None:
            return []
        problems = (
            [("mix", "a condition is either a blur or a mix of other conditions, not both.")]
            if self.blur is not None
            else []
        )
        if len(self.mix) < 2:
            problems.append(("mix", "a mix needs at least two conditions."))
        problems += [
            (f"mix.{name}", f"weight must be positive, got {w:g}.")
            for name, w in self.mix.items()
            if not w > 0
        ]
        return problems


def _set_fields(obj: object, exclude: tuple[str, ...]) -> list[str]:
    return [
        f.name for f in fields(obj) if f.name not in exclude and getattr(obj, f.name) is not None
    ]
