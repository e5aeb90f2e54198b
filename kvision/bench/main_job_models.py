"""The main job's two models (``recipes/naive_vs_expert.toml``) as benchmarks build them."""

from __future__ import annotations

#: (row name, architecture, options) of the main job's models
MODELS: tuple[tuple[str, str, dict], ...] = (
    ("AlexNet/2", "alexnet_seed", {"downscale": 2}),
    ("VGG11/8", "vgg11_seed", {"width": 8, "head": 4096}),
)
#: The main job's images: Fashion-MNIST upscaled to 64x64, one channel
SHAPE = (64, 64, 1)
