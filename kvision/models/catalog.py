"""The model registry: architecture names -> builders, options and expected input.

This module never imports keras (the recipe validator and ``kvision models`` read it), so the
builders are named by module and function and imported only when a model is built.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from kvision.errors import KvisionError, did_you_mean, unknown_name


@dataclass(frozen=True)
class OptionSpec:
    """One builder option as a recipe's ``[models.X]`` table may set it."""

    name: str
    type: type | tuple[type, ...]
    default: Any
    help: str


@dataclass(frozen=True)
class ModelEntry:
    """A registered architecture; ``builder`` is a function name in ``kvision.models.<module>``."""

    name: str
    family: str
    module: str
    builder: str
    description: str
    default_input: tuple[int, ...]  # (H, W, C) for images, (features,) for the MLP
    min_input: int  # smallest square side the pooling stack accepts
    default_classes: int = 1000
    options: tuple[OptionSpec, ...] = field(default_factory=tuple)

    def option_names(self) -> list[str]:
        """Names of the options this architecture accepts, in declaration order."""
        return [o.name for o in self.options]


# Every architecture accepts `weights` (resolved in kvision.models.weights).
_WEIGHTS = OptionSpec(
    "weights",
    (str, type(None)),
    None,
    "None (random init), 'imagenet', a .weights.h5/.keras file, or a kvision run directory",
)
_DROPOUT_05 = OptionSpec("dropout", float, 0.5, "dropout rate in the dense head")


def _opts(*extra: OptionSpec) -> tuple[OptionSpec, ...]:
    return (*extra, _WEIGHTS)


_VGG_OPTS = _opts(
    _DROPOUT_05,
    OptionSpec("width", int, 1, "divide every conv and dense width by this (small CPU runs)"),
    OptionSpec("head", int, 4096, "width of the two hidden dense layers (before `width`)"),
)
_RESNET_OPTS = _opts()

MODELS: dict[str, ModelEntry] = {}


def _register(entry: ModelEntry) -> None:
    assert entry.name not in MODELS, entry.name
    MODELS[entry.name] = entry


_register(
    ModelEntry(
        "lenet",
        "lenet",
        "lenet",
        "build_lenet",
        "LeNet of report 004: 2x (conv 5x5 + BN + ReLU + maxpool), dropout, dense",
        (28, 28, 1),
        4,
        12,
        _opts(_DROPOUT_05),
    )
)
_register(
    ModelEntry(
        "alexnet_small",
        "alexnet",
        "alexnet",
        "build_alexnet_small",
        "Small AlexNet of report 004 with Local Response Normalization (28x28 grayscale)",
        (28, 28, 1),
        4,
        12,
        _opts(
            _DROPOUT_05,
            OptionSpec(
                "norm",
                str,
                "lrn",
                "normalisation after the first two convs: "
                "'lrn', 'batchnorm' or 'none' (report 004's ablation)",
            ),
            OptionSpec("head", int, 2048, "width of the two hidden dense layers"),
        ),
    )
)
_register(
    ModelEntry(
        "alexnet_seed",
        "alexnet",
        "alexnet",
        "build_alexnet_seed",
        "AlexNet variant of report 000 with stages retina, lgn, v1, v2, v4, it, classifier",
        (256, 256, 3),
        63,
        2,
        _opts(
            _DROPOUT_05,
            OptionSpec("downscale", int, 1, "divide every conv and dense width by this"),
        ),
    )
)
_register(
    ModelEntry(
        "alexnet",
        "alexnet",
        "alexnet",
        "build_alexnet",
        "AlexNet as in the common reference implementation (torchvision layout)",
        (224, 224, 3),
        63,
        1000,
        _opts(_DROPOUT_05),
    )
)
_register(
    ModelEntry(
        "mynet",
        "mynet",
        "mynet",
        "build_mynet",
        "MyNet of report 001: 2x (conv 5x5 + maxpool), dense 500, dense",
        (224, 224, 3),
        16,
        19,
        _opts(),
    )
)
_register(
    ModelEntry(
        "mynet_pro",
        "mynet",
        "alexnet",
        "build_mynet_pro",
        "MyNetPro of report 001: AlexNet with BatchNorm and dropout 0.3",
        (224, 224, 3),
        63,
        19,
        _opts(OptionSpec("dropout", float, 0.3, "dropout rate in the dense head")),
    )
)
for _depth in (11, 13, 16, 19):
    _register(
        ModelEntry(
            f"vgg{_depth}",
            "vgg",
            "vgg",
            "build_vgg",
            f"VGG{_depth} (reference layout, no BatchNorm)",
            (224, 224, 3),
            32,
            1000,
            _VGG_OPTS,
        )
    )
    _register(
        ModelEntry(
            f"vgg{_depth}_bn",
            "vgg",
            "vgg",
            "build_vgg",
            f"VGG{_depth} with BatchNorm after every conv",
            (224, 224, 3),
            32,
            1000,
            _VGG_OPTS,
        )
    )
for _depth in (11, 16):
    _register(
        ModelEntry(
            f"vgg{_depth}_seed",
            "vgg",
            "vgg",
            "build_vgg",
            f"VGG{_depth} of report 000 (256px head, Xavier-uniform init)",
            (256, 256, 3),
            32,
            2,
            _VGG_OPTS,
        )
    )
_STRIDE_IN_1X1 = OptionSpec(
    "stride_in_1x1",
    bool,
    False,
    "stride the first 1x1 conv of each downsampling block (ResNet v1, as Keras' ImageNet "
    "weights) instead of the 3x3 conv (v1.5, torchvision); set automatically for imagenet",
)
for _depth in (18, 34, 50):
    _register(
        ModelEntry(
            f"resnet{_depth}",
            "resnet",
            "resnet",
            "build_resnet",
            f"ResNet-{_depth} (torchvision layout: stem, layer1..layer4, avgpool, classifier)",
            (224, 224, 3),
            1,
            1000,
            _opts(_STRIDE_IN_1X1) if _depth == 50 else _RESNET_OPTS,
        )
    )
_register(
    ModelEntry(
        "resnet20",
        "resnet",
        "resnet",
        "build_resnet20",
        "ResNet-20 for CIFAR (3 stages of 3 basic blocks, 16/32/64 filters, identity shortcuts)",
        (32, 32, 3),
        1,
        10,
        _RESNET_OPTS,
    )
)
_register(
    ModelEntry(
        "mlp",
        "mlp",
        "mlp",
        "build_mlp",
        "MLP 1-64-64-1 with sigmoid hidden units for function fitting (report 002)",
        (1,),
        1,
        1,
        _opts(
            OptionSpec("hidden", list, [64, 64], "hidden layer widths"),
            OptionSpec("activation", str, "sigmoid", "hidden activation (a Keras activation name)"),
        ),
    )
)


def model_names() -> list[str]:
    """Every registered architecture name, sorted."""
    return sorted(MODELS)


def list_models(pattern: str = "*", *, family: str | None = None) -> list[str]:
    """Registered names matching a shell-style ``pattern`` (``"vgg*_bn"``), sorted, as timm's
    ``list_models``; ``family`` keeps one family (``"resnet"``)."""
    from fnmatch import fnmatchcase

    return [
        name
        for name in model_names()
        if fnmatchcase(name, pattern) and (family is None or MODELS[name].family == family)
    ]


def get_entry(name: str) -> ModelEntry:
    """The entry for ``name``; an unknown name raises KvisionError with a suggestion."""
    try:
        return MODELS[name]
    except KeyError:
        raise unknown_name("model architecture", name, MODELS) from None


def check_options(entry: ModelEntry, options: dict[str, Any]) -> dict[str, Any]:
    """Return ``options`` completed with defaults; unknown or mistyped options raise."""
    specs = {o.name: o for o in entry.options}
    resolved = {name: spec.default for name, spec in specs.items()}
    for key, value in options.items():
        spec = specs.get(key)
        if spec is None:
            allowed = ", ".join(specs) or "none"
            raise KvisionError(
                f"Unknown option '{key}' for model architecture '{entry.name}'."
                f"{did_you_mean(key, specs)} Allowed options: {allowed}."
            )
        if not _type_ok(value, spec.type):
            raise KvisionError(
                f"Option '{key}' of model architecture '{entry.name}' must be "
                f"{_type_name(spec.type)} ({spec.help}). Received: {key}={value!r}."
            )
        resolved[key] = value
    return resolved


def _type_ok(value: Any, expected: type | tuple[type, ...]) -> bool:
    types = expected if isinstance(expected, tuple) else (expected,)
    if isinstance(value, bool) and bool not in types:
        return False  # bool is an int subclass, but `downscale = true` is a mistake
    if float in types and isinstance(value, int) and not isinstance(value, bool):
        return True  # TOML writes `dropout = 0` as an integer
    return isinstance(value, types)


def _type_name(expected: type | tuple[type, ...]) -> str:
    types = expected if isinstance(expected, tuple) else (expected,)
    names = ["none" if t is type(None) else t.__name__ for t in types]
    return " or ".join(names)
