"""A small CIFAR ConvNet: a cheap convolutional baseline between the MLPs and ResNet/VGG.

Architecture (3x3 convs, padding 1, ReLU after every conv and the hidden fc):

    conv C->32 -> maxpool 2 -> conv 32->64 -> maxpool 2 -> conv 64->128 -> maxpool 2
    -> adaptive avg pool to 4x4 -> flatten (128*4*4 = 2048) -> fc 256 -> fc num_classes

On 32x32 input the adaptive pool is the identity (the feature map already is 4x4); it lets the
same network take 28x28 (or other >= 8x8) images.
"""

from __future__ import annotations

from torch import Tensor, nn

from . import MODELS, image_shape

__all__ = ["ConvNet", "convnet"]


class ConvNet(nn.Module):
    def __init__(self, in_channels: int, num_classes: int):
        super().__init__()
        layers: list[nn.Module] = []
        c = in_channels
        for width in (32, 64, 128):
            layers += [nn.Conv2d(c, width, kernel_size=3, padding=1), nn.ReLU(inplace=True), nn.MaxPool2d(2)]
            c = width
        layers.append(nn.AdaptiveAvgPool2d((4, 4)))
        self.features = nn.Sequential(*layers)
        self.classifier = nn.Sequential(
            nn.Flatten(),
            nn.Linear(128 * 4 * 4, 256),
            nn.ReLU(inplace=True),
            nn.Linear(256, num_classes),
        )

    def forward(self, x: Tensor) -> Tensor:
        return self.classifier(self.features(x))


@MODELS.register(
    "convnet",
    description="small CIFAR ConvNet: conv32-pool-conv64-pool-conv128-pool, fc 2048-256-classes",
    example_input_shape=(3, 32, 32),
)
def convnet(input_shape: tuple[int, ...], num_classes: int) -> nn.Module:
    c, _, _ = image_shape("convnet", input_shape, min_size=8)  # three 2x2 max pools
    return ConvNet(c, num_classes)
