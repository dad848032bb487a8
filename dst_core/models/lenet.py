"""LeNet-5 (LeCun et al. 1998, ReLU variant) for Fashion-MNIST.

conv 6@5x5 (padding 2) -> ReLU -> maxpool 2 -> conv 16@5x5 -> ReLU -> maxpool 2
-> fc 120 -> ReLU -> fc 84 -> ReLU -> fc num_classes.
On 28x28 input the first fc has 16*5*5 = 400 inputs, as in the original network.
"""

from __future__ import annotations

import math

from torch import Tensor, nn

from ..errors import ConfigError
from . import MODELS, image_shape

__all__ = ["LeNet5", "lenet5"]


class LeNet5(nn.Module):
    def __init__(self, image: tuple[int, int, int], num_classes: int):
        super().__init__()
        c, h, w = image
        self.image = image  # inputs of other shapes with the same size are reshaped to this
        self.features = nn.Sequential(
            nn.Conv2d(c, 6, kernel_size=5, padding=2),
            nn.ReLU(inplace=True),
            nn.MaxPool2d(2),
            nn.Conv2d(6, 16, kernel_size=5),
            nn.ReLU(inplace=True),
            nn.MaxPool2d(2),
        )
        fh, fw = (h // 2 - 4) // 2, (w // 2 - 4) // 2
        self.classifier = nn.Sequential(
            nn.Flatten(),
            nn.Linear(16 * fh * fw, 120),
            nn.ReLU(inplace=True),
            nn.Linear(120, 84),
            nn.ReLU(inplace=True),
            nn.Linear(84, num_classes),
        )

    def forward(self, x: Tensor) -> Tensor:
        x = x.reshape(x.shape[0], *self.image)
        return self.classifier(self.features(x))


@MODELS.register(
    "lenet5",
    description="LeNet-5 (conv6-pool-conv16-pool-fc120-fc84), ReLU; input (C,H,W), (H,W) or flat square",
    example_input_shape=(1, 28, 28),
)
def lenet5(input_shape: tuple[int, ...], num_classes: int) -> nn.Module:
    shape = tuple(input_shape)
    if len(shape) == 2:  # (H, W): one channel
        shape = (1, *shape)
    elif len(shape) == 1:  # flat square image, e.g. 784 -> (1, 28, 28)
        side = math.isqrt(max(shape[0], 0))
        if side * side != shape[0] or side == 0:
            raise ConfigError(
                f"model 'lenet5' expects image input (C, H, W), (H, W) or a flat square image "
                f"such as (784,); got input shape {tuple(input_shape)}"
            )
        shape = (1, side, side)
    # conv(p2) keeps the size, pool halves, conv 5x5 removes 4, pool halves: needs >= 10 px
    return LeNet5(image_shape("lenet5", shape, min_size=10), num_classes)
