"""Fully connected networks of the paper: the CIFAR-10 MLP and the HIGGS MLP.

Both flatten their input, so ``in_features = prod(input_shape)`` and they run on any dataset.
"""

from __future__ import annotations

from torch import nn

from . import MODELS, flat_features

__all__ = ["mlp", "mlp_cifar10", "mlp_higgs"]


def mlp(in_features: int, hidden: tuple[int, ...], out_features: int) -> nn.Sequential:
    """``Flatten -> (Linear -> ReLU)* -> Linear``; the last layer gives the logits."""
    layers: list[nn.Module] = [nn.Flatten()]
    width = in_features
    for h in hidden:
        layers += [nn.Linear(width, h), nn.ReLU(inplace=True)]
        width = h
    layers.append(nn.Linear(width, out_features))
    return nn.Sequential(*layers)


@MODELS.register(
    "mlp_cifar10",
    description="MLP 3072-1024-512-10 of the paper (flattens any input), ReLU",
    example_input_shape=(3, 32, 32),
)
def mlp_cifar10(input_shape: tuple[int, ...], num_classes: int) -> nn.Module:
    return mlp(flat_features("mlp_cifar10", input_shape), (1024, 512), num_classes)


@MODELS.register(
    "mlp_higgs",
    description="MLP in-256-256-out for HIGGS (one logit for 2 classes), ReLU",
    example_input_shape=(28,),
)
def mlp_higgs(input_shape: tuple[int, ...], num_classes: int) -> nn.Module:
    """The paper's code uses 24-256-256-1; here ``in`` is whatever the data has (28 for UCI HIGGS).

    Binary problems get ONE logit (the trainer then uses BCE-with-logits); otherwise one logit
    per class.
    """
    out = 1 if num_classes <= 2 else num_classes
    return mlp(flat_features("mlp_higgs", input_shape), (256, 256), out)
