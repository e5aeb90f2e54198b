"""PyTorch state_dict import: reference torch modules (written here, after the reports' code
and torchvision's layout) give the same outputs as the Keras models after import."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from numerics import assert_close_to_scale
from torch import nn

import kvision  # noqa: F401  (selects the torch backend before keras is imported)
from kvision.errors import KvisionError
from kvision.models import create_model, load_torch_state_dict


class AlexNetSeed(nn.Module):
    """Report 000's AlexNet: conv, ReLU, BN per stage, adaptive 6x6 pool, it, classifier."""

    def __init__(self, num_classes: int, d: int):
        super().__init__()

        def stage(cin, cout, k, s, p, pool):
            layers = [nn.Conv2d(cin, cout, k, s, p), nn.ReLU(), nn.BatchNorm2d(cout)]
            return nn.Sequential(*layers, *([nn.MaxPool2d(3, 2)] if pool else []))

        self.retina = stage(3, 64 // d, 11, 4, 2, True)
        self.lgn = stage(64 // d, 192 // d, 5, 1, 2, True)
        self.v1 = stage(192 // d, 384 // d, 3, 1, 1, False)
        self.v2 = stage(384 // d, 256 // d, 3, 1, 1, False)
        self.v4 = stage(256 // d, 256 // d, 3, 1, 1, True)
        self.avgpool = nn.AdaptiveAvgPool2d((6, 6))
        self.it = nn.Sequential(
            nn.Dropout(),
            nn.Linear(256 // d * 36, 4096 // d),
            nn.ReLU(),
            nn.Dropout(),
            nn.Linear(4096 // d, 1024 // d),
            nn.ReLU(),
        )
        self.classifier = nn.Linear(1024 // d, num_classes)

    def forward(self, x):
        for stage in (self.retina, self.lgn, self.v1, self.v2, self.v4):
            x = stage(x)
        return self.classifier(self.it(torch.flatten(self.avgpool(x), 1)))


class LeNet(nn.Module):
    """Report 004's LeNet."""

    def __init__(self, num_classes: int):
        super().__init__()
        self.conv1 = nn.Sequential(
            nn.Conv2d(1, 16, 5, 1, 2), nn.BatchNorm2d(16), nn.ReLU(), nn.MaxPool2d(2)
        )
        self.conv2 = nn.Sequential(
            nn.Conv2d(16, 32, 5, 1, 2), nn.BatchNorm2d(32), nn.ReLU(), nn.MaxPool2d(2)
        )
        self.output = nn.Sequential(nn.Dropout(0.5), nn.Linear(32 * 7 * 7, num_classes))

    def forward(self, x):
        return self.output(torch.flatten(self.conv2(self.conv1(x)), 1))


class SmallAlexNet(nn.Module):
    """Report 004's small AlexNet with LocalResponseNorm (hidden width reduced for speed)."""

    def __init__(self, num_classes: int, head: int):
        super().__init__()
        self.features = nn.Sequential(
            nn.Conv2d(1, 16, 5, 1, 2),
            nn.ReLU(),
            nn.MaxPool2d(2),
            nn.LocalResponseNorm(16),
            nn.Conv2d(16, 32, 5, 1, 2),
            nn.ReLU(),
            nn.MaxPool2d(2),
            nn.LocalResponseNorm(32),
            nn.Conv2d(32, 96, 3, 1, 1),
            nn.ReLU(),
            nn.Conv2d(96, 64, 3, 1, 1),
            nn.ReLU(),
            nn.Conv2d(64, 64, 3, 1, 1),
            nn.ReLU(),
            nn.MaxPool2d(1),
        )
        self.classifier = nn.Sequential(
            nn.Dropout(0.5),
            nn.Linear(64 * 7 * 7, head),
            nn.ReLU(),
            nn.Dropout(0.5),
            nn.Linear(head, head),
            nn.ReLU(),
            nn.Linear(head, num_classes),
        )

    def forward(self, x):
        return self.classifier(torch.flatten(self.features(x), 1))


class VGG(nn.Module):
    """torchvision's VGG layout (features, 7x7 adaptive pool, classifier), widths divided."""

    def __init__(self, cfg, num_classes: int, batchnorm: bool, width: int, head: int):
        super().__init__()
        layers, cin = [], 3
        for v in cfg:
            if v == "M":
                layers.append(nn.MaxPool2d(2, 2))
            else:
                layers += [nn.Conv2d(cin, v // width, 3, padding=1)]
                layers += [nn.BatchNorm2d(v // width)] if batchnorm else []
                layers += [nn.ReLU()]
                cin = v // width
        self.features = nn.Sequential(*layers)
        self.avgpool = nn.AdaptiveAvgPool2d((7, 7))
        hidden = head // width
        self.classifier = nn.Sequential(
            nn.Linear(cin * 49, hidden),
            nn.ReLU(),
            nn.Dropout(),
            nn.Linear(hidden, hidden),
            nn.ReLU(),
            nn.Dropout(),
            nn.Linear(hidden, num_classes),
        )

    def forward(self, x):
        return self.classifier(torch.flatten(self.avgpool(self.features(x)), 1))


class VGGSeed(VGG):
    """Report 000's VGG: no 7x7 pool, Flatten of 512 x H/32 x W/32, Dropout before Linear."""

    def __init__(self, cfg, num_classes: int, width: int, head: int, side: int):
        super().__init__(cfg, num_classes, False, width, head)
        self.avgpool = nn.Identity()
        flat, hidden = 512 // width * (side // 32) ** 2, head // width
        self.classifier = nn.Sequential(
            nn.Dropout(),
            nn.Linear(flat, hidden),
            nn.ReLU(),
            nn.Dropout(),
            nn.Linear(hidden, hidden),
            nn.ReLU(),
            nn.Linear(hidden, num_classes),
        )


class BasicBlock(nn.Module):
    expansion = 1

    def __init__(self, cin, planes, stride, shortcut="projection"):
        super().__init__()
        self.conv1 = nn.Conv2d(cin, planes, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(planes)
        self.conv2 = nn.Conv2d(planes, planes, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(planes)
        self.downsample = None
        self.pad = None
        if stride != 1 or cin != planes:
            if shortcut == "projection":
                self.downsample = nn.Sequential(
                    nn.Conv2d(cin, planes, 1, stride, bias=False), nn.BatchNorm2d(planes)
                )
            else:  # CIFAR option A: subsample, zero-pad channels
                extra = planes - cin
                self.pad = (stride, extra // 2, extra - extra // 2)

    def forward(self, x):
        out = self.bn2(self.conv2(torch.relu(self.bn1(self.conv1(x)))))
        if self.downsample is not None:
            x = self.downsample(x)
        elif self.pad is not None:
            s, front, back = self.pad
            x = nn.functional.pad(x[:, :, ::s, ::s], (0, 0, 0, 0, front, back))
        return torch.relu(out + x)


class Bottleneck(nn.Module):
    expansion = 4

    def __init__(self, cin, planes, stride, shortcut="projection"):
        super().__init__()
        self.conv1 = nn.Conv2d(cin, planes, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(planes)
        self.conv2 = nn.Conv2d(planes, planes, 3, stride, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(planes)
        self.conv3 = nn.Conv2d(planes, planes * 4, 1, bias=False)
        self.bn3 = nn.BatchNorm2d(planes * 4)
        self.downsample = None
        if stride != 1 or cin != planes * 4:
            self.downsample = nn.Sequential(
                nn.Conv2d(cin, planes * 4, 1, stride, bias=False), nn.BatchNorm2d(planes * 4)
            )

    def forward(self, x):
        out = torch.relu(self.bn1(self.conv1(x)))
        out = torch.relu(self.bn2(self.conv2(out)))
        out = self.bn3(self.conv3(out))
        return torch.relu(out + (x if self.downsample is None else self.downsample(x)))


class ResNet(nn.Module):
    """torchvision's ResNet layout; ``cifar`` gives the 3-stage ResNet-20 with option A."""

    def __init__(self, block, repeats, num_classes, cifar=False):
        super().__init__()
        widths = (16, 32, 64) if cifar else (64, 128, 256, 512)
        if cifar:
            self.conv1 = nn.Conv2d(3, 16, 3, 1, 1, bias=False)
            self.stem_pool = nn.Identity()
        else:
            self.conv1 = nn.Conv2d(3, 64, 7, 2, 3, bias=False)
            self.stem_pool = nn.MaxPool2d(3, 2, 1)
        self.bn1 = nn.BatchNorm2d(widths[0])
        cin = widths[0]
        for i, (n, planes) in enumerate(zip(repeats, widths, strict=True), start=1):
            blocks = []
            for j in range(n):
                stride = 2 if j == 0 and i > 1 else 1
                blocks.append(block(cin, planes, stride, "pad" if cifar else "projection"))
                cin = planes * block.expansion
            setattr(self, f"layer{i}", nn.Sequential(*blocks))
        self.stages = len(repeats)
        self.fc = nn.Linear(cin, num_classes)

    def forward(self, x):
        x = self.stem_pool(torch.relu(self.bn1(self.conv1(x))))
        for i in range(1, self.stages + 1):
            x = getattr(self, f"layer{i}")(x)
        return self.fc(torch.flatten(nn.functional.adaptive_avg_pool2d(x, 1), 1))


VGG11 = [64, "M", 128, "M", 256, 256, "M", 512, 512, "M", 512, 512, "M"]

CASES = {
    "alexnet_seed": (lambda: AlexNetSeed(3, 16), (64, 64, 3), {"downscale": 16}),
    "lenet": (lambda: LeNet(3), (28, 28, 1), {}),
    "alexnet_small": (lambda: SmallAlexNet(3, 32), (28, 28, 1), {"head": 32}),
    "vgg11_bn": (lambda: VGG(VGG11, 3, True, 16, 64), (32, 32, 3), {"width": 16, "head": 64}),
    "vgg11_seed": (lambda: VGGSeed(VGG11, 3, 16, 64, 64), (64, 64, 3), {"width": 16, "head": 64}),
    "resnet18": (lambda: ResNet(BasicBlock, (2, 2, 2, 2), 3), (40, 40, 3), {}),
    "resnet50": (lambda: ResNet(Bottleneck, (3, 4, 6, 3), 3), (40, 40, 3), {}),
    "resnet20": (lambda: ResNet(BasicBlock, (3, 3, 3), 3, cifar=True), (32, 32, 3), {}),
}


def _randomise_running_stats(module: nn.Module) -> None:
    """Non-trivial BN statistics, so that importing them is actually checked."""
    gen = torch.Generator().manual_seed(0)
    for m in module.modules():
        if isinstance(m, nn.BatchNorm2d):
            n = m.num_features
            m.running_mean.copy_(torch.randn(n, generator=gen) * 0.1)
            m.running_var.copy_(torch.rand(n, generator=gen) + 0.5)
            m.weight.data.copy_(torch.rand(n, generator=gen) + 0.5)
            m.bias.data.copy_(torch.randn(n, generator=gen) * 0.1)


def _outputs_agree(arch: str, reference: nn.Module, shape, options, seed: int) -> None:
    model = create_model(arch, input_shape=shape, num_classes=3, **options)
    load_torch_state_dict(model, reference.state_dict())
    x = np.random.default_rng(seed).normal(size=(2, *shape)).astype("float32")
    with torch.no_grad():
        want = reference(torch.from_numpy(x).permute(0, 3, 1, 2)).numpy()
    got = np.asarray(model.predict(x, verbose=0))
    # Keras' NHWC graph vs torch's NCHW module: the same sums in another order, through up to
    # 50 layers (ResNet-50), each adding its float32 reordering; 1e-4 of the output's scale.
    assert_close_to_scale(got, want)


@pytest.mark.numeric_cap(3)
@pytest.mark.parametrize(
    "arch",
    [pytest.param(a, marks=pytest.mark.slow) if a == "resnet50" else a for a in sorted(CASES)],
)
def test_imported_state_dict_gives_the_same_outputs(arch, numeric_seed):
    torch.manual_seed(numeric_seed)
    make, shape, options = CASES[arch]
    reference = make().eval()
    _randomise_running_stats(reference)
    _outputs_agree(arch, reference, shape, options, numeric_seed)


def test_checkpoint_file_with_a_state_dict_wrapper(tmp_path):
    torch.manual_seed(1)
    reference = LeNet(3).eval()
    torch.save({"epoch": 5, "state_dict": reference.state_dict()}, tmp_path / "ckpt.pth")
    model = create_model("lenet", input_shape=(28, 28, 1), num_classes=3)
    load_torch_state_dict(model, tmp_path / "ckpt.pth")
    x = np.random.default_rng(1).normal(size=(1, 28, 28, 1)).astype("float32")
    with torch.no_grad():
        want = reference(torch.from_numpy(x).permute(0, 3, 1, 2)).numpy()
    assert_close_to_scale(np.asarray(model.predict(x, verbose=0)), want)


def test_state_dict_of_another_architecture_names_the_first_mismatching_layer():
    model = create_model("alexnet_small", input_shape=(28, 28, 1), num_classes=3, head=32)
    before = [w.copy() for w in model.get_weights()]
    with pytest.raises(
        KvisionError,
        match=r"does not fit model 'alexnet_small': the first "
        r"mismatching layer is 'conv2_conv'",
    ):
        load_torch_state_dict(model, LeNet(3).state_dict())
    for old, new in zip(before, model.get_weights(), strict=True):
        np.testing.assert_array_equal(old, new)  # nothing half-loaded


def test_resnet_state_dict_missing_a_module_names_it():
    state = ResNet(BasicBlock, (3, 3, 3), 3, cifar=True).state_dict()
    state = {k: v for k, v in state.items() if not k.startswith("layer3.1.bn2")}
    model = create_model("resnet20", input_shape=(32, 32, 3), num_classes=3)
    with pytest.raises(
        KvisionError,
        match=r"'layer3_block2_bn2', which expects "
        r"'layer3.1.bn2'",
    ):
        load_torch_state_dict(model, state)
