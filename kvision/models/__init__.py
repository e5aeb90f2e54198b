"""The model zoo: registered architectures built as Keras functional graphs.

``kvision.models.catalog`` is importable without Keras; everything else here is loaded on first
use, so ``import kvision.models.catalog`` stays fast.
"""

from __future__ import annotations

import importlib
from typing import Any

# public name -> submodule defining it
_LAZY = {
    "create_model": "factory",
    "list_models": "catalog",
    "IMAGENET_CAFFE_PREPROCESS": "weights",
    "describe": "roles",
    "ModelRoles": "roles",
    "load_model": "saving",
    "check_backend_limits": "backend_limits",
    "load_weights": "weights",
    "load_torch_state_dict": "torch_import",
    "replace_head": "transfer",
    "apply_trainable": "transfer",
    "format_model_list": "listing",
    "format_layer_table": "listing",
    # The torch fast paths, installed through these names only (kvision.models._fast is
    # private to this package): the direct graph on a model, fused Adam on its optimizer,
    # the lean train step of a compiled classifier.
    "speed_paths_status": "_fast",
    "direct_graph": "_fast",
    "fuse_adam": "_fast",
    "lean_train_step": "_fast",
    # A quiet predict's captured forward, made up front (a benchmark reports its cost apart).
    "capture_forward": "_fast",
}

__all__ = sorted(_LAZY)


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'kvision.models' has no attribute '{name}'")
    return getattr(importlib.import_module(f"kvision.models.{module}"), name)
