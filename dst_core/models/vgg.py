"""VGG-16 with BatchNorm, CIFAR variant (as in e.g. the lottery-ticket / pruning literature).

Features: cfg 64,64,M,128,128,M,256,256,256,M,512,512,512,M,512,512,512,M where a number is
conv 3x3 (padding 1) -> BN -> ReLU and M a 2x2 max pool; then global average pool and a single
classifier ``Linear(512, num_classes)`` (not the 512-512-classes head; the 4096-wide ImageNet
head is far too big for 32x32 inputs).

Max pools use ``ceil_mode=True``: on 32x32 this is the usual 32->16->8->4->2->1, and it lets
28x28 images reach 1x1 too (28->14->7->4->2->1) instead of collapsing to 0 pixels.
"""

from __future__ import annotations

from torch import Tensor, nn

from . import MODELS, image_shape

__all__ = ["VGG", "VGG16_CFG", "vgg16"]

VGG16_CFG: tuple[int | str, ...] = (64, 64, "M", 128, 128, "M", 256, 256, 256, "M", 512, 512, 512, "M", 512, 512, 512, "M")


class VGG(nn.Module):
    def __init__(self, in_channels: int, num_classes: int, cfg: tuple[int | str, ...] = VGG16_CFG):
        super().__init__()
        layers: list[nn.Module] = []
        c = in_channels
        for v in cfg:
            if v == "M":
                layers.append(nn.MaxPool2d(2, ceil_mode=True))
            else:
                layers += [nn.Conv2d(c, int(v), kernel_size=3, padding=1), nn.BatchNorm2d(int(v)), nn.ReLU(inplace=True)]
                c = int(v)
        layers.append(nn.AdaptiveAvgPool2d(1))
        self.features = nn.Sequential(*layers)
        self.classifier = nn.Linear(c, num_classes)
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
                nn.init.zeros_(m.bias)

    def forward(self, x: Tensor) -> Tensor:
        return self.classifier(self.features(x).flatten(1))


@MODELS.register(
    "vgg16",
    description="CIFAR VGG-16 with BatchNorm (13 conv + Linear(512, classes))",
    example_input_shape=(3, 32, 32),
)
def vgg16(input_shape: tuple[int, ...], num_classes: int) -> nn.Module:
    c, _, _ = image_shape("vgg16", input_shape)
    return VGG(c, num_classes)
