"""ResNet-56 for CIFAR (He et al. 2016, "Deep Residual Learning", section 4.2).

conv 3x3 16 -> BN -> ReLU, then 3 stages x 9 BasicBlocks with 16 / 32 / 64 channels (the first
block of stages 2 and 3 has stride 2), global average pool, fc num_classes: 6n+2 = 56 weighted
layers for n = 9.

Shortcuts are **option A** of the paper: identity, and where the shape changes, subsample by 2
and zero-pad the new channels. They hold no weights, so the network has exactly 55 Conv2d and 1
Linear module (the 56 layers of the name, ~0.85 M parameters) and every weight the sparsity code
sees is one of the paper's layers. Convs are initialised Kaiming-normal (fan_out), as in the paper.
"""

from __future__ import annotations

import torch.nn.functional as F
from torch import Tensor, nn

from . import MODELS, image_shape

__all__ = ["BasicBlock", "CifarResNet", "resnet56"]


class _PadShortcut(nn.Module):
    """Option-A shortcut: take every 2nd pixel and zero-pad the extra channels (no weights)."""

    def __init__(self, in_planes: int, planes: int, stride: int):
        super().__init__()
        self.stride = stride
        extra = planes - in_planes
        self.pad = (extra // 2, extra - extra // 2)

    def forward(self, x: Tensor) -> Tensor:
        x = x[:, :, :: self.stride, :: self.stride]
        return F.pad(x, (0, 0, 0, 0, *self.pad))


class BasicBlock(nn.Module):
    """Two 3x3 conv-BN layers with a residual connection (ReLU after the sum)."""

    def __init__(self, in_planes: int, planes: int, stride: int = 1):
        super().__init__()
        self.conv1 = nn.Conv2d(in_planes, planes, kernel_size=3, stride=stride, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(planes)
        self.conv2 = nn.Conv2d(planes, planes, kernel_size=3, stride=1, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(planes)
        self.shortcut: nn.Module = (
            _PadShortcut(in_planes, planes, stride) if stride != 1 or in_planes != planes else nn.Identity()
        )

    def forward(self, x: Tensor) -> Tensor:
        out = F.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return F.relu(out + self.shortcut(x))


class CifarResNet(nn.Module):
    """ResNet-(6n+2) for small images: 3 stages of ``n`` BasicBlocks, widths 16/32/64."""

    def __init__(self, in_channels: int, num_classes: int, n: int = 9, widths: tuple[int, int, int] = (16, 32, 64)):
        super().__init__()
        self.conv1 = nn.Conv2d(in_channels, widths[0], kernel_size=3, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(widths[0])
        blocks: list[nn.Module] = []
        in_planes = widths[0]
        for stage, planes in enumerate(widths):
            for i in range(n):
                stride = 2 if stage > 0 and i == 0 else 1
                blocks.append(BasicBlock(in_planes, planes, stride))
                in_planes = planes
        self.layers = nn.Sequential(*blocks)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(in_planes, num_classes)
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")

    def forward(self, x: Tensor) -> Tensor:
        x = F.relu(self.bn1(self.conv1(x)))
        x = self.pool(self.layers(x))
        return self.fc(x.flatten(1))


@MODELS.register(
    "resnet56",
    description="CIFAR ResNet-56 (He et al. 2016): 3x9 BasicBlocks, 16/32/64 ch, option-A shortcuts",
    example_input_shape=(3, 32, 32),
)
def resnet56(input_shape: tuple[int, ...], num_classes: int) -> nn.Module:
    c, _, _ = image_shape("resnet56", input_shape)
    return CifarResNet(c, num_classes, n=9)
