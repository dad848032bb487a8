"""Models for MNIST-1D (40-sample 1-D signals): the platform's default MLP and a small 1-D CNN."""

from __future__ import annotations

from torch import Tensor, nn

from ..errors import ConfigError
from . import MODELS, flat_features
from .mlp import mlp

__all__ = ["Conv1dNet", "mnist1d_cnn", "mnist1d_mlp"]


@MODELS.register(
    "mnist1d_mlp",
    description="MLP 40-256-256-10 for MNIST-1D (default model; flattens any input), ReLU",
    example_input_shape=(40,),
)
def mnist1d_mlp(input_shape: tuple[int, ...], num_classes: int) -> nn.Module:
    return mlp(flat_features("mnist1d_mlp", input_shape), (256, 256), num_classes)


class Conv1dNet(nn.Module):
    """``depth`` x (Conv1d k5 p2 -> ReLU), then flatten and one Linear to the logits.

    'Same' padding keeps the length, so the classifier sees ``channels * length`` features and
    the network keeps the position information MNIST-1D's templates carry.
    """

    def __init__(self, in_channels: int, length: int, num_classes: int, channels: int = 32, depth: int = 3):
        super().__init__()
        layers: list[nn.Module] = []
        c = in_channels
        for _ in range(depth):
            layers += [nn.Conv1d(c, channels, kernel_size=5, padding=2), nn.ReLU(inplace=True)]
            c = channels
        self.features = nn.Sequential(*layers)
        self.classifier = nn.Linear(channels * length, num_classes)

    def forward(self, x: Tensor) -> Tensor:
        if x.dim() == 2:  # (B, L) -> (B, 1, L)
            x = x.unsqueeze(1)
        return self.classifier(self.features(x).flatten(1))


@MODELS.register(
    "mnist1d_cnn",
    description="1-D CNN for MNIST-1D: 3 x Conv1d(32, k5) + ReLU, then Linear; input (L,) or (C, L)",
    example_input_shape=(40,),
)
def mnist1d_cnn(input_shape: tuple[int, ...], num_classes: int) -> nn.Module:
    if len(input_shape) == 1:
        c, length = 1, input_shape[0]
    elif len(input_shape) == 2:
        c, length = input_shape
    else:
        c = length = 0
    if c <= 0 or length <= 0:
        raise ConfigError(
            f"model 'mnist1d_cnn' expects sequence input (L,) or (C, L); got input shape {tuple(input_shape)}"
        )
    return Conv1dNet(c, length, num_classes)
