"""Every architecture: reference parameter counts, output shapes, 1/3 channels, stage names,
the pooling and LRN layers against PyTorch, and the .keras round trip."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from numerics import assert_close_to_scale

import kvision  # noqa: F401  (selects the torch backend before keras is imported)
from kvision.models import create_model, describe, load_model
from kvision.models.counting import build_shapes_only, count_parameters, trainable_count
from kvision.models.layers import LocalResponseNormalization


def to_numpy(tensor) -> np.ndarray:
    from keras import ops  # after kvision, which picks the backend

    return ops.convert_to_numpy(tensor)


# Trainable parameters as torch's parameters() counts them: the reference figures
# (torchvision at 224x224, 1,000 classes), report 000's (256x256, 2 classes) and counts of the
# reports' PyTorch code (MyNet's Linear(56180, 500) at 224x224, 19 classes).
REFERENCE_COUNTS = [
    ("alexnet", (224, 224, 3), 1000, {}, 61_100_840),
    ("vgg11", (224, 224, 3), 1000, {}, 132_863_336),
    ("vgg13", (224, 224, 3), 1000, {}, 133_047_848),
    ("vgg16", (224, 224, 3), 1000, {}, 138_357_544),
    ("vgg19", (224, 224, 3), 1000, {}, 143_667_240),
    ("vgg16_bn", (224, 224, 3), 1000, {}, 138_365_992),
    ("resnet18", (224, 224, 3), 1000, {}, 11_689_512),
    ("resnet34", (224, 224, 3), 1000, {}, 21_797_672),
    ("resnet50", (224, 224, 3), 1000, {}, 25_557_032),
    ("alexnet_seed", (256, 256, 3), 2, {"downscale": 2}, 11_114_018),
    ("vgg11_seed", (256, 256, 3), 2, {}, 160_231_810),
    ("vgg16_seed", (256, 256, 3), 2, {}, 165_726_018),
    ("mynet", (224, 224, 3), 19, {}, 28_105_799),
    ("mlp", (1,), 1, {}, 4_353),
]


@pytest.mark.parametrize(
    ("arch", "shape", "classes", "options", "expected"),
    REFERENCE_COUNTS,
    ids=[c[0] for c in REFERENCE_COUNTS],
)
def test_reference_parameter_counts(arch, shape, classes, options, expected):
    assert count_parameters(arch, input_shape=shape, num_classes=classes, **options) == expected


def test_real_build_counts_like_the_shape_only_build():
    model = create_model("alexnet_seed", input_shape=(256, 256, 3), num_classes=2, downscale=2)
    assert trainable_count(model) == 11_114_018
    assert model.output_shape == (None, 2)


# Small configurations of every image architecture, cheap enough to run on 2 CPU cores.
SMALL = {
    "lenet": ((28, 28), {}),
    "alexnet_small": ((28, 28), {"head": 32}),
    "alexnet_seed": ((64, 64), {"downscale": 16}),
    "alexnet": ((63, 63), {"width": 16}),
    "mynet": ((20, 20), {}),
    "mynet_pro": ((63, 63), {"width": 16}),
    "vgg11": ((32, 32), {"width": 16, "head": 64}),
    "vgg13": ((32, 32), {"width": 16, "head": 64}),
    "vgg16": ((32, 32), {"width": 16, "head": 64}),
    "vgg19": ((32, 32), {"width": 16, "head": 64}),
    "vgg11_bn": ((32, 32), {"width": 16, "head": 64}),
    "vgg13_bn": ((32, 32), {"width": 16, "head": 64}),
    "vgg16_bn": ((32, 32), {"width": 16, "head": 64}),
    "vgg19_bn": ((32, 32), {"width": 16, "head": 64}),
    "vgg11_seed": ((32, 32), {"width": 16, "head": 64}),
    "vgg16_seed": ((32, 32), {"width": 16, "head": 64}),
    "resnet18": ((32, 32), {"width": 16}),
    "resnet34": ((32, 32), {"width": 16}),
    "resnet50": ((32, 32), {"width": 16}),
    "resnet20": ((32, 32), {}),
}


WIDTHS = {"alexnet": "width", "mynet_pro": "width", "alexnet_seed": "downscale"}
WIDTHS |= {arch: "width" for arch in ("resnet18", "resnet34", "resnet50", "vgg11", "vgg16_bn")}


@pytest.mark.parametrize("arch", sorted(WIDTHS))
def test_width_divides_every_conv_and_hidden_dense_layer(arch):
    """The narrow builds that CI's export test and small recipe commands use are the same
    graph with every layer's width divided: same layers, same kernels, only widths change."""
    import keras

    (h, w), _ = SMALL[arch]

    def widths(divisor: int) -> list[tuple[str, tuple, int]]:
        model = build_shapes_only(
            arch, input_shape=(h, w, 3), num_classes=5, **{WIDTHS[arch]: divisor}
        )
        return [
            (
                layer.name,
                getattr(layer, "kernel_size", ()),
                getattr(layer, "filters", None) or layer.units,
            )
            for layer in model.layers
            if isinstance(layer, keras.layers.Conv2D | keras.layers.Dense)
        ]

    full, narrow = widths(1), widths(4)
    assert [(n, k) for n, k, _ in narrow] == [(n, k) for n, k, _ in full]
    *hidden, (_, _, classes) = narrow
    assert classes == 5  # the classifier keeps the class count
    assert [c for _, _, c in hidden] == [c // 4 for _, _, c in full[:-1]]


def test_every_image_model_has_a_small_configuration():
    from kvision.models.catalog import MODELS

    assert set(SMALL) == {n for n, e in MODELS.items() if len(e.default_input) == 3}


@pytest.mark.parametrize("arch", sorted(SMALL))
def test_one_and_three_channel_inputs(arch):
    (h, w), options = SMALL[arch]

    gray = build_shapes_only(arch, input_shape=(h, w, 1), num_classes=5, **options)
    rgb = build_shapes_only(arch, input_shape=(h, w, 3), num_classes=5, **options)
    kh, kw, _, filters = rgb.get_layer(describe(rgb).first_conv).kernel.shape
    # Only the first conv sees the channels: two more input planes, kh x kw x filters each.
    assert trainable_count(rgb) - trainable_count(gray) == 2 * kh * kw * filters
    assert gray.output_shape == rgb.output_shape == (None, 5)


STAGES = {
    "alexnet_seed": ["retina", "lgn", "v1", "v2", "v4", "it", "classifier"],
    "lenet": ["conv1", "conv2", "head", "classifier"],
    "vgg16": ["block1", "block2", "block3", "block4", "block5", "head", "classifier"],
    "resnet18": ["stem", "layer1", "layer2", "layer3", "layer4", "classifier"],
    "resnet20": ["stem", "layer1", "layer2", "layer3", "classifier"],
}


@pytest.mark.parametrize("arch", sorted(STAGES))
def test_stage_names_and_roles(arch):

    (h, w), options = SMALL[arch]
    model = build_shapes_only(arch, input_shape=(h, w, 3), num_classes=2, **options)
    roles = describe(model)
    assert list(roles.stages) == STAGES[arch]
    assert roles.stages["classifier"] == "classifier"
    names = [layer.name for layer in model.layers]
    assert names == [
        layer.name
        for layer in build_shapes_only(arch, input_shape=(h, w, 3), num_classes=2, **options).layers
    ]  # stable names
    if arch == "alexnet_seed":
        assert (roles.first_conv, roles.last_conv) == ("retina_conv", "v4_conv")
        assert roles.stages["v4"] == "v4_pool" and roles.stages["it"] == "it_relu2"
        assert {"retina_conv", "retina_bn", "v4_pool", "it_dense1"} <= set(names)
    if arch == "resnet18":
        assert roles.stages["layer4"] == "layer4_block2_out"


# Grad-CAM's default layer: the rectified output of the last convolutional block, written
# out per model from its architecture (not derived by the code under test).
CAM_LAYERS = {
    "lenet": "conv2_relu",  # conv2 -> BN -> ReLU -> pool
    "alexnet_small": "conv5_relu",
    "alexnet_seed": "v4_relu",  # v4: conv -> ReLU -> BN -> pool; BN can be negative
    "alexnet": "conv5_relu",
    "mynet": "conv2_relu",  # conv2 -> pool -> ReLU
    "mynet_pro": "conv5_relu",
    **{
        f"vgg{d}{bn}": f"block5_relu{n}"
        for d, n in ((11, 2), (13, 2), (16, 3), (19, 4))
        for bn in ("", "_bn")
    },
    "vgg11_seed": "block5_relu2",
    "vgg16_seed": "block5_relu3",
    "resnet18": "layer4_block2_out",  # after the skip add and its ReLU
    "resnet34": "layer4_block3_out",
    "resnet50": "layer4_block3_out",
    "resnet20": "layer3_block3_out",  # CIFAR ResNets end at layer3
}


def test_every_image_model_has_a_default_cam_layer():
    assert set(CAM_LAYERS) == set(SMALL)


@pytest.mark.parametrize("arch", sorted(SMALL))
def test_default_cam_layer_is_the_rectified_last_block(arch):
    import keras

    from kvision.insight._grad import layer_gradients
    from kvision.insight._layers import cam_layer

    (h, w), options = SMALL[arch]
    x = np.random.default_rng(5).uniform(0, 255, size=(3, h, w, 3)).astype("float32")
    # The weights are seeded: unseeded, they followed from whatever ran before in the process.
    # An untrained narrow head can still have every ReLU unit dead on three random images
    # (vgg16_seed at seed 5: all-zero gradients), which says nothing about the wiring, so a
    # few fixed seeds are tried; a layer cut off from the logits has zero gradients under all.
    for seed in (5, 6, 7):
        keras.utils.set_random_seed(seed)
        model = create_model(
            arch,
            input_shape=(h, w, 3),
            num_classes=4,
            preprocess=([0.5] * 3, [0.5] * 3),
            **options,
        )
        feats, grads, _ = layer_gradients(model, CAM_LAYERS[arch], x, np.array([0, 1, 2]))
        if np.abs(grads).max() > 0.0:
            break
    assert describe(model).cam_layer == CAM_LAYERS[arch]
    assert cam_layer(model) == CAM_LAYERS[arch]
    # Grad-CAM++'s closed-form weights assume A >= 0; the maps must also not be all zero.
    assert feats.ndim == 4 and feats.min() >= 0.0 and feats.max() > 0.0
    assert np.abs(grads).max() > 0.0, f"no gradient reaches {CAM_LAYERS[arch]} under 3 seeds"


def test_an_explicit_cam_layer_wins():
    from kvision.insight._layers import cam_layer

    (h, w), options = SMALL["resnet20"]
    model = create_model("resnet20", input_shape=(h, w, 3), num_classes=4, **options)
    assert cam_layer(model, "layer3_block3_conv2") == "layer3_block3_conv2"
    assert cam_layer(model, "layer2") == "layer2_block3_out"  # a stage: its output layer


@pytest.mark.parametrize("size", [(28, 28), (64, 64), (13, 13), (6, 6), (1, 1), (5, 9), (3, 20)])
def test_adaptive_pool_matches_torch(size, numeric_seed):
    """Keras' own layer, which the AlexNets and VGGs use, bins as PyTorch's does."""
    import keras

    x = np.random.default_rng(numeric_seed).normal(size=(2, *size, 3)).astype("float32")
    ours = to_numpy(keras.layers.AdaptiveAveragePooling2D(6)(x))
    theirs = (
        torch.nn.functional.adaptive_avg_pool2d(torch.from_numpy(x).permute(0, 3, 1, 2), (6, 6))
        .permute(0, 2, 3, 1)
        .numpy()
    )
    assert_close_to_scale(ours, theirs)


@pytest.mark.parametrize(
    ("size", "channels", "alpha", "beta", "k"),
    [
        (5, 8, 1e-4, 0.75, 1.0),
        (16, 16, 1e-4, 0.75, 1.0),
        (4, 7, 0.5, 0.5, 2.0),
        (3, 2, 1.0, 1.0, 0.5),
    ],
)
def test_lrn_matches_torch(size, channels, alpha, beta, k, numeric_seed):
    x = np.random.default_rng([1, numeric_seed]).normal(scale=3.0, size=(2, 4, 5, channels))
    x = x.astype("float32")
    layer = LocalResponseNormalization(size=size, alpha=alpha, beta=beta, k=k)
    ours = to_numpy(layer(x))
    theirs = torch.nn.functional.local_response_norm(
        torch.from_numpy(x).permute(0, 3, 1, 2), size, alpha, beta, k
    ).permute(0, 2, 3, 1)
    assert_close_to_scale(ours, theirs.numpy())


# One per family and every layer that is not a plain conv stack (adaptive pool, LRN,
# the channel-padding shortcut, ZeroPadding2D before strided convs).
ROUND_TRIP = [
    "lenet",
    "alexnet_small",
    "alexnet_seed",
    "mynet",
    "vgg11_seed",
    "vgg16_bn",
    "resnet20",
]


@pytest.mark.parametrize("arch", ROUND_TRIP)
def test_keras_round_trip_gives_identical_predictions(arch, tmp_path):
    (h, w), options = SMALL[arch]
    channels = 1 if arch in ("lenet", "alexnet_small") else 3
    model = create_model(
        arch,
        input_shape=(h, w, channels),
        num_classes=3,
        preprocess=([0.5] * channels, [0.5] * channels),
        **options,
    )
    x = np.random.default_rng(2).uniform(0, 255, size=(2, h, w, channels)).astype("float32")
    before = np.asarray(model.predict(x, verbose=0))
    model.save(tmp_path / "m.keras")
    loaded = load_model(tmp_path / "m.keras")
    np.testing.assert_array_equal(np.asarray(loaded.predict(x, verbose=0)), before)
    assert describe(loaded) == describe(model)


def test_mlp_round_trip_and_shape(tmp_path):
    model = create_model("mlp", input_shape=(1,), num_classes=1)
    x = np.linspace(-2, 2, 7, dtype="float32")[:, None]
    before = np.asarray(model.predict(x, verbose=0))
    assert before.shape == (7, 1)
    model.save(tmp_path / "mlp.keras")
    loaded = load_model(tmp_path / "mlp.keras")
    np.testing.assert_array_equal(np.asarray(loaded.predict(x, verbose=0)), before)
    assert describe(model).first_conv is None


def test_preprocess_layer_computes_normalised_pixels():
    model = create_model(
        "lenet",
        input_shape=(28, 28, 3),
        num_classes=2,
        preprocess=([0.4, 0.5, 0.6], [0.2, 0.25, 0.5]),
    )
    x = np.random.default_rng(3).uniform(0, 255, size=(1, 28, 28, 3)).astype("float32")
    got = to_numpy(model.get_layer("preprocess")(x))
    want = (x / 255 - np.array([0.4, 0.5, 0.6])) / np.array([0.2, 0.25, 0.5])
    # float32 against the float64 formula: two roundings of values below 5 (~5e-7 each).
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-5)
