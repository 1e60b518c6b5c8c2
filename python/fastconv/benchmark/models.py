"""Reference CNNs for tests and benchmarks: ResNet-18, ResNet-50 and MobileNetV2, randomly
initialised, with torchvision's layer shapes and state_dict keys (`build(name)`).

torchvision's own models are used when torchvision imports; its PyPI wheels are built against
one torch release each and fail to import beside another ("operator torchvision::nms does not
exist"), so compact definitions of the same architectures stand in. Only this module imports
torch; the rest of fastconv.benchmark does not need it.
"""

from __future__ import annotations

from typing import Callable, Optional

import torch
from torch import Tensor, nn

NAMES = ("resnet18", "resnet50", "mobilenet_v2")


def build(name: str, num_classes: int = 1000) -> nn.Module:
    """A freshly initialised `name` (one of NAMES) for `num_classes` classes, in training mode:
    torchvision.models.<name>(weights=None) when torchvision imports, else the definitions
    below (same layers, parameter shapes and state_dict keys)."""
    if name not in NAMES:
        raise ValueError(f"unknown model {name!r}; expected one of {NAMES}")
    tv = _torchvision()
    if tv is not None:
        return getattr(tv.models, name)(weights=None, num_classes=num_classes)
    return _BUILDERS[name](num_classes)


_TORCHVISION: list = []  # [module or None] once tried: a failed import is slow and noisy


def _torchvision():
    if not _TORCHVISION:
        try:
            import torchvision
        except Exception:  # not installed (ImportError), or built for another torch (RuntimeError)
            torchvision = None
        _TORCHVISION.append(torchvision)
    return _TORCHVISION[0]


def _init_conv_bn(model: nn.Module) -> None:
    # He initialisation (fan-out) for convolutions and unit-scale, zero-shift BatchNorm: the
    # reference models' initialisation, so activations keep their scale through the depth.
    for m in model.modules():
        if isinstance(m, nn.Conv2d):
            nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
            if m.bias is not None:
                nn.init.zeros_(m.bias)
        elif isinstance(m, nn.BatchNorm2d):
            nn.init.ones_(m.weight)
            nn.init.zeros_(m.bias)


# ---- ResNet (v1.5: a bottleneck strides in its 3x3 convolution)


def _conv_bn(cin: int, cout: int, kernel: int, stride: int = 1) -> list[nn.Module]:
    return [
        nn.Conv2d(cin, cout, kernel, stride, kernel // 2, bias=False),
        nn.BatchNorm2d(cout),
    ]


class _Basic(nn.Module):
    """Two 3x3 convolutions around a shortcut (ResNet-18/34)."""

    expansion = 1

    def __init__(self, cin: int, width: int, stride: int, downsample: Optional[nn.Module]):
        super().__init__()
        self.conv1, self.bn1 = _conv_bn(cin, width, 3, stride)
        self.relu = nn.ReLU(inplace=True)
        self.conv2, self.bn2 = _conv_bn(width, width, 3)
        self.downsample = downsample

    def forward(self, x: Tensor) -> Tensor:
        shortcut = x if self.downsample is None else self.downsample(x)
        y = self.relu(self.bn1(self.conv1(x)))
        return self.relu(self.bn2(self.conv2(y)) + shortcut)


class _Bottleneck(nn.Module):
    """1x1 down to `width`, 3x3, 1x1 up to 4 * width, around a shortcut (ResNet-50 and up)."""

    expansion = 4

    def __init__(self, cin: int, width: int, stride: int, downsample: Optional[nn.Module]):
        super().__init__()
        self.conv1, self.bn1 = _conv_bn(cin, width, 1)
        self.conv2, self.bn2 = _conv_bn(width, width, 3, stride)
        self.conv3, self.bn3 = _conv_bn(width, width * self.expansion, 1)
        self.relu = nn.ReLU(inplace=True)
        self.downsample = downsample

    def forward(self, x: Tensor) -> Tensor:
        shortcut = x if self.downsample is None else self.downsample(x)
        y = self.relu(self.bn1(self.conv1(x)))
        y = self.relu(self.bn2(self.conv2(y)))
        return self.relu(self.bn3(self.conv3(y)) + shortcut)


class ResNet(nn.Module):
    """Stem (7x7/2 conv, 3x3/2 max pool), four stages of blocks at widths 64..512 (each stage
    after the first halves the resolution in its first block), global average pool, fc."""

    def __init__(self, block: Callable, depths: tuple, num_classes: int = 1000):
        super().__init__()
        self.conv1, self.bn1 = _conv_bn(3, 64, 7, 2)
        self.relu = nn.ReLU(inplace=True)
        self.maxpool = nn.MaxPool2d(kernel_size=3, stride=2, padding=1)
        channels = 64
        for i, (depth, width) in enumerate(zip(depths, (64, 128, 256, 512))):
            stride = 1 if i == 0 else 2
            blocks = []
            for j in range(depth):
                out = width * block.expansion
                downsample = None
                if j == 0 and (stride != 1 or channels != out):  # the shortcut must match too
                    downsample = nn.Sequential(*_conv_bn(channels, out, 1, stride))
                blocks.append(block(channels, width, stride if j == 0 else 1, downsample))
                channels = out
            setattr(self, f"layer{i + 1}", nn.Sequential(*blocks))
        self.avgpool = nn.AdaptiveAvgPool2d((1, 1))
        self.fc = nn.Linear(channels, num_classes)
        _init_conv_bn(self)

    def forward(self, x: Tensor) -> Tensor:
        x = self.maxpool(self.relu(self.bn1(self.conv1(x))))
        x = self.layer4(self.layer3(self.layer2(self.layer1(x))))
        return self.fc(torch.flatten(self.avgpool(x), 1))


# ---- MobileNetV2


def _conv_bn_relu6(cin: int, cout: int, kernel: int, stride: int = 1, groups: int = 1):
    return nn.Sequential(
        nn.Conv2d(cin, cout, kernel, stride, kernel // 2, groups=groups, bias=False),
        nn.BatchNorm2d(cout),
        nn.ReLU6(inplace=True),
    )


class _InvertedResidual(nn.Module):
    """1x1 expansion by `expand` (none when 1), 3x3 depthwise, linear 1x1 projection; a
    shortcut where the block keeps the shape."""

    def __init__(self, cin: int, cout: int, stride: int, expand: int):
        super().__init__()
        hidden = cin * expand
        layers = [] if expand == 1 else [_conv_bn_relu6(cin, hidden, 1)]
        layers += [
            _conv_bn_relu6(hidden, hidden, 3, stride, groups=hidden),
            nn.Conv2d(hidden, cout, 1, bias=False),
            nn.BatchNorm2d(cout),
        ]
        self.conv = nn.Sequential(*layers)
        self.use_res_connect = stride == 1 and cin == cout

    def forward(self, x: Tensor) -> Tensor:
        y = self.conv(x)
        return x + y if self.use_res_connect else y


# (expansion, output channels, blocks, stride of the first block) per stage: MobileNetV2's
# table at width multiplier 1 (every width already a multiple of 8, so no rounding applies).
_MOBILENET_V2_STAGES = (
    (1, 16, 1, 1),
    (6, 24, 2, 2),
    (6, 32, 3, 2),
    (6, 64, 4, 2),
    (6, 96, 3, 1),
    (6, 160, 3, 2),
    (6, 320, 1, 1),
)


class MobileNetV2(nn.Module):
    """3x3/2 stem to 32 channels, the inverted-residual stages, 1x1 to 1280, global average
    pool, dropout 0.2, linear classifier."""

    def __init__(self, num_classes: int = 1000):
        super().__init__()
        layers = [_conv_bn_relu6(3, 32, 3, 2)]
        channels = 32
        for expand, out, n, stride in _MOBILENET_V2_STAGES:
            for j in range(n):
                layers.append(_InvertedResidual(channels, out, stride if j == 0 else 1, expand))
                channels = out
        layers.append(_conv_bn_relu6(channels, 1280, 1))
        self.features = nn.Sequential(*layers)
        self.classifier = nn.Sequential(nn.Dropout(p=0.2), nn.Linear(1280, num_classes))
        _init_conv_bn(self)
        linear = self.classifier[1]
        nn.init.normal_(linear.weight, 0.0, 0.01)
        nn.init.zeros_(linear.bias)

    def forward(self, x: Tensor) -> Tensor:
        x = nn.functional.adaptive_avg_pool2d(self.features(x), (1, 1))
        return self.classifier(torch.flatten(x, 1))


_BUILDERS = {
    "resnet18": lambda k: ResNet(_Basic, (2, 2, 2, 2), k),
    "resnet50": lambda k: ResNet(_Bottleneck, (3, 4, 6, 3), k),
    "mobilenet_v2": MobileNetV2,
}
