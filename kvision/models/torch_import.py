"""Importing a PyTorch ``state_dict`` (the reports' checkpoints, torchvision) into a kvision model.

The only module of the zoo that touches torch, and only to read a ``.pt``/``.pth`` file: a
state_dict already in memory may hold torch tensors or numpy arrays.

Sequential architectures (LeNet, the AlexNets, VGG, MyNet) are matched in order: the k-th
Conv2d/Linear/BatchNorm2d of the state_dict fills the k-th Conv2D/Dense/BatchNormalization
of the Keras graph. ResNets are matched by torchvision's names (``layer2.0.downsample.1`` is
``layer2_block1_down_bn``; ``conv1``/``bn1``/``fc`` are ``stem_conv``/``stem_bn``/``classifier``).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import keras
import numpy as np

from kvision.errors import KvisionError

_WEIGHTED = (keras.layers.Conv2D, keras.layers.Dense, keras.layers.BatchNormalization)


def load_torch_state_dict(model: keras.Model, state_dict: Mapping[str, Any] | str | Path) -> None:
    """Set ``model``'s weights from a PyTorch state_dict (or a file holding one).

    Raises KvisionError naming the first layer whose kind or shape does not match.
    """
    if isinstance(state_dict, str | Path):
        state_dict = _read_file(Path(state_dict))
    modules = _group_modules(state_dict)
    layers = _weighted(model)
    if model.name.startswith("resnet"):
        names = [_resnet_torch_name(layer.name) for layer in layers]
    else:
        names = list(modules)[: len(layers)]
    flatten_shapes = _flatten_inputs(model)
    converted = []  # all converted before any is set: a mismatch leaves the model untouched
    for i, layer in enumerate(layers):
        if i >= len(names) or names[i] not in modules:
            what = f"'{names[i]}'" if i < len(names) else "one more weighted module"
            raise _mismatch(model, layer, f"expects {what} in the state_dict, which is missing")
        params = modules.pop(names[i])
        converted.append(_convert(model, layer, params, flatten_shapes.get(layer.name)))
    if modules:
        raise KvisionError(
            f"PyTorch state_dict has modules that model '{model.name}' lacks: "
            f"{', '.join(modules)}. Import a state_dict of the same architecture."
        )
    for layer, weights in zip(layers, converted, strict=True):
        layer.set_weights(weights)


def _read_file(path: Path) -> Mapping[str, Any]:
    if not path.is_file():
        raise KvisionError(f"PyTorch weights file '{path}' does not exist.")
    import torch  # only here: reading PyTorch's pickle-based format needs torch

    loaded = torch.load(path, map_location="cpu", weights_only=True)
    for key in ("state_dict", "model_state_dict", "model"):  # common checkpoint wrappers
        if isinstance(loaded, Mapping) and isinstance(loaded.get(key), Mapping):
            return loaded[key]
    if not isinstance(loaded, Mapping):
        raise KvisionError(
            f"PyTorch file '{path}' holds a {type(loaded).__name__}, not a state_dict. Save "
            f"it with torch.save(model.state_dict(), path)."
        )
    return loaded


def _group_modules(state_dict: Mapping[str, Any]) -> dict[str, dict[str, np.ndarray]]:
    """{'features.0': {'weight': ..., 'bias': ...}, ...} in state_dict order (= forward order)."""
    modules: dict[str, dict[str, np.ndarray]] = {}
    for key, value in state_dict.items():
        prefix, _, param = key.rpartition(".")
        if param == "num_batches_tracked":
            continue
        if hasattr(value, "detach"):
            value = value.detach().cpu().numpy()
        modules.setdefault(prefix, {})[param] = np.asarray(value, dtype="float32")
    return modules


def _weighted(model: keras.Model) -> list:
    return [layer for layer in model.layers if isinstance(layer, _WEIGHTED)]


def _resnet_torch_name(name: str) -> str:
    fixed = {"stem_conv": "conv1", "stem_bn": "bn1", "classifier": "fc"}
    if name in fixed:
        return fixed[name]
    stage, block, rest = re.fullmatch(r"(layer\d)_block(\d+)_(\w+)", name).groups()
    rest = {"down_conv": "downsample.0", "down_bn": "downsample.1"}.get(rest, rest)
    return f"{stage}.{int(block) - 1}.{rest}"


def _flatten_inputs(model: keras.Model) -> dict[str, tuple[int, int, int]]:
    """Dense layers fed by a Flatten of an (H, W, C) map -> that shape.

    PyTorch flattens (C, H, W) and Keras (H, W, C), so those kernels' rows are permuted.
    """
    shapes, pending = {}, None
    for layer in model.layers:
        if isinstance(layer, keras.layers.Flatten) and len(layer.input.shape) == 4:
            pending = tuple(layer.input.shape[1:])
        elif isinstance(layer, keras.layers.Dense) and pending:
            shapes[layer.name], pending = pending, None
    return shapes


def _convert(
    model: keras.Model,
    layer,
    params: dict[str, np.ndarray],
    flatten_shape: tuple[int, int, int] | None,
) -> list[np.ndarray]:
    expected = [tuple(w.shape) for w in layer.weights]
    try:
        if isinstance(layer, keras.layers.BatchNormalization):
            weights = [params[k] for k in ("weight", "bias", "running_mean", "running_var")]
        else:
            kernel = params["weight"]
            if isinstance(layer, keras.layers.Conv2D):
                kernel = kernel.transpose(2, 3, 1, 0)  # (out, in, kh, kw) -> (kh, kw, in, out)
            else:
                if flatten_shape and kernel.ndim == 2:
                    h, w, c = flatten_shape
                    kernel = (
                        kernel.reshape(-1, c, h, w)
                        .transpose(0, 2, 3, 1)
                        .reshape(kernel.shape[0], -1)
                    )
                kernel = kernel.T
            weights = [kernel] + ([params["bias"]] if layer.use_bias else [])
    except (KeyError, ValueError) as error:
        raise _mismatch(
            model, layer, f"cannot take the torch parameters {sorted(params)} ({error})"
        ) from None
    got = [tuple(w.shape) for w in weights]
    if got != expected:
        raise _mismatch(
            model,
            layer,
            f"has weight shapes {expected} but the state_dict gives {got} (in Keras layout)",
        )
    return weights


def _mismatch(model: keras.Model, layer, what: str) -> KvisionError:
    name = layer.name
    return KvisionError(
        f"PyTorch state_dict does not fit model '{model.name}': the first mismatching layer is "
        f"'{name}', which {what}. Import a state_dict saved from the same architecture, input "
        f"size and number of classes."
    )
