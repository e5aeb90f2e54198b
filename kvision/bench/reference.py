"""Plain PyTorch versions of kvision's benchmarked architectures, written the reports' way.

These are the baseline of ``kvision bench``: ``torch.nn`` modules with the same layers,
widths and parameter counts as the Keras models of ``kvision.models`` (so both sides do the
same arithmetic), trained by the usual PyTorch loop in :mod:`kvision.bench.speed`.
"""

from __future__ import annotations

from torch import nn


def _conv_bn_relu(cin: int, cout: int, kernel: int, pad: int) -> list[nn.Module]:
    return [nn.Conv2d(cin, cout, kernel, padding=pad), nn.BatchNorm2d(cout), nn.ReLU()]


class LeNet(nn.Module):
    """Report 004's LeNet: 2x (conv 5x5 'same', BN, ReLU, maxpool 2), dropout, linear."""

    def __init__(self, in_channels: int, size: int, num_classes: int, dropout: float = 0.5):
        super().__init__()
        self.features = nn.Sequential(
            *_conv_bn_relu(in_channels, 16, 5, 2),
            nn.MaxPool2d(2),
            *_conv_bn_relu(16, 32, 5, 2),
            nn.MaxPool2d(2),
        )
        side = size // 4
        self.head = nn.Sequential(
            nn.Flatten(), nn.Dropout(dropout), nn.Linear(32 * side * side, num_classes)
        )

    def forward(self, x):
        return self.head(self.features(x))


class AlexNetSeed(nn.Module):
    """Report 000's AlexNet variant: conv, ReLU, BN per stage; 6x6 adaptive pool; MLP head."""

    _CONVS = (
        (64, 11, 4, 2, True),
        (192, 5, 1, 2, True),
        (384, 3, 1, 1, False),
        (256, 3, 1, 1, False),
        (256, 3, 1, 1, True),
    )

    def __init__(
        self, in_channels: int, num_classes: int, downscale: int = 1, dropout: float = 0.5
    ):
        super().__init__()
        layers: list[nn.Module] = []
        cin = in_channels
        for filters, kernel, stride, pad, pool in self._CONVS:
            cout = filters // downscale
            layers += [nn.Conv2d(cin, cout, kernel, stride, pad), nn.ReLU(), nn.BatchNorm2d(cout)]
            if pool:
                layers.append(nn.MaxPool2d(3, 2))
            cin = cout
        self.features = nn.Sequential(*layers, nn.AdaptiveAvgPool2d(6), nn.Flatten())
        hidden1, hidden2 = 4096 // downscale, 1024 // downscale
        self.head = nn.Sequential(
            nn.Dropout(dropout),
            nn.Linear(cin * 36, hidden1),
            nn.ReLU(),
            nn.Dropout(dropout),
            nn.Linear(hidden1, hidden2),
            nn.ReLU(),
            nn.Linear(hidden2, num_classes),
        )

    def forward(self, x):
        return self.head(self.features(x))


class VGG11(nn.Module):
    """VGG11 (no BN) in torchvision's layout, every width divided by ``width``."""

    def __init__(
        self,
        in_channels: int,
        num_classes: int,
        width: int = 1,
        head: int = 4096,
        dropout: float = 0.5,
    ):
        super().__init__()
        layers: list[nn.Module] = []
        cin = in_channels
        for repeats, filters in zip((1, 1, 2, 2, 2), (64, 128, 256, 512, 512), strict=True):
            for _ in range(repeats):
                layers += [nn.Conv2d(cin, filters // width, 3, padding=1), nn.ReLU()]
                cin = filters // width
            layers.append(nn.MaxPool2d(2))
        self.features = nn.Sequential(*layers, nn.AdaptiveAvgPool2d(7), nn.Flatten())
        hidden = max(1, head // width)
        self.head = nn.Sequential(
            nn.Linear(cin * 49, hidden),
            nn.ReLU(),
            nn.Dropout(dropout),
            nn.Linear(hidden, hidden),
            nn.ReLU(),
            nn.Dropout(dropout),
            nn.Linear(hidden, num_classes),
        )

    def forward(self, x):
        return self.head(self.features(x))


class BasicBlock(nn.Module):
    """ResNet basic block with torchvision's 1x1 projection shortcut."""

    def __init__(self, cin: int, cout: int, stride: int):
        super().__init__()
        self.body = nn.Sequential(
            nn.Conv2d(cin, cout, 3, stride, 1, bias=False),
            nn.BatchNorm2d(cout),
            nn.ReLU(),
            nn.Conv2d(cout, cout, 3, 1, 1, bias=False),
            nn.BatchNorm2d(cout),
        )
        self.shortcut = nn.Identity()
        if stride != 1 or cin != cout:
            self.shortcut = nn.Sequential(
                nn.Conv2d(cin, cout, 1, stride, bias=False), nn.BatchNorm2d(cout)
            )
        self.relu = nn.ReLU()

    def forward(self, x):
        return self.relu(self.body(x) + self.shortcut(x))


class ResNet18(nn.Module):
    """ResNet-18 in torchvision's layout: stem, layer1..layer4 of two basic blocks, avgpool."""

    def __init__(self, in_channels: int, num_classes: int):
        super().__init__()
        layers: list[nn.Module] = [
            nn.Conv2d(in_channels, 64, 7, 2, 3, bias=False),
            nn.BatchNorm2d(64),
            nn.ReLU(),
            nn.MaxPool2d(3, 2, 1),
        ]
        cin = 64
        for stage, filters in enumerate((64, 128, 256, 512)):
            for block in range(2):
                layers.append(BasicBlock(cin, filters, 2 if block == 0 and stage else 1))
                cin = filters
        self.features = nn.Sequential(*layers, nn.AdaptiveAvgPool2d(1), nn.Flatten())
        self.fc = nn.Linear(cin, num_classes)

    def forward(self, x):
        return self.fc(self.features(x))


def build_reference(
    arch: str, *, in_channels: int, size: int, num_classes: int, options: dict
) -> nn.Module:
    """The PyTorch twin of kvision architecture ``arch`` built with ``options``."""
    if arch == "lenet":
        return LeNet(in_channels, size, num_classes, **options)
    if arch == "alexnet_seed":
        return AlexNetSeed(in_channels, num_classes, **options)
    if arch == "vgg11":
        return VGG11(in_channels, num_classes, **options)
    if arch == "resnet18":
        return ResNet18(in_channels, num_classes)
    raise ValueError(f"no PyTorch reference for {arch!r}")
