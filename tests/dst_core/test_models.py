"""Model zoo: every registered model builds, has the documented size, and rejects bad shapes."""

from __future__ import annotations

import importlib
import pkgutil

import pytest
import torch
from torch import nn

import dst_core.models as models_pkg
from dst_core.errors import ConfigError, UnknownNameError
from dst_core.models import MODELS, build_model

ALL = [e.name for e in MODELS]


def n_params(m: nn.Module) -> int:
    return sum(p.numel() for p in m.parameters())


@pytest.mark.parametrize("name", ALL)
def test_every_model_builds_and_outputs_logits(name: str) -> None:
    entry = MODELS.get(name)
    assert entry.meta["description"] and "\n" not in entry.meta["description"]
    shape = entry.meta["example_input_shape"]
    torch.manual_seed(0)
    model = build_model(name, shape, 10)
    out = model(torch.randn(3, *shape))
    assert out.shape == (3, 10)
    assert torch.isfinite(out).all()
    # only the module types the sparsity code knows carry weights
    weighted = {type(m) for m in model.modules() if getattr(m, "weight", None) is not None}
    assert weighted <= {nn.Linear, nn.Conv1d, nn.Conv2d, nn.BatchNorm2d}


@pytest.mark.parametrize("name", ["lenet5", "convnet", "resnet56", "vgg16", "mlp_cifar10", "mnist1d_mlp"])
def test_image_models_take_28x28_grayscale(name: str) -> None:
    model = build_model(name, (1, 28, 28), 10).eval()
    assert model(torch.randn(2, 1, 28, 28)).shape == (2, 10)


def test_lenet5_accepts_flat_and_2d_inputs() -> None:
    for shape in [(784,), (28, 28)]:
        model = build_model("lenet5", shape, 10)
        assert model(torch.randn(2, *shape)).shape == (2, 10)
    # classic LeNet-5 size on 28x28: 156 + 2416 + 48120 + 10164 + 850
    assert n_params(build_model("lenet5", (1, 28, 28), 10)) == 61706


def test_mnist1d_cnn_accepts_channel_dim() -> None:
    model = build_model("mnist1d_cnn", (1, 40), 10)
    assert model(torch.randn(2, 1, 40)).shape == (2, 10)


def test_mlp_higgs_has_one_logit_for_binary() -> None:
    assert build_model("mlp_higgs", (28,), 2)(torch.randn(4, 28)).shape == (4, 1)
    assert build_model("mlp_higgs", (28,), 3)(torch.randn(4, 28)).shape == (4, 3)
    # in-256-256-1 with in = prod(input_shape)
    assert n_params(build_model("mlp_higgs", (24,), 2)) == 24 * 256 + 256 + 256 * 256 + 256 + 256 + 1


def test_exact_parameter_counts() -> None:
    assert n_params(build_model("mlp_cifar10", (3, 32, 32), 10)) == (
        3072 * 1024 + 1024 + 1024 * 512 + 512 + 512 * 10 + 10
    )
    assert n_params(build_model("mnist1d_mlp", (40,), 10)) == 40 * 256 + 256 + 256 * 256 + 256 + 256 * 10 + 10
    # known size of the CIFAR ResNet-56 with option-A shortcuts (0.85 M)
    assert n_params(build_model("resnet56", (3, 32, 32), 10)) == 853_018


def test_resnet56_has_56_weighted_layers() -> None:
    model = build_model("resnet56", (3, 32, 32), 10)
    convs = sum(isinstance(m, nn.Conv2d) for m in model.modules())
    fcs = sum(isinstance(m, nn.Linear) for m in model.modules())
    # 1 stem conv + 3 stages x 9 blocks x 2 convs = 55 convs, + 1 fc = 56. The option-A
    # shortcuts (subsample + zero-pad) have no weights, so there are no extra 1x1 convs.
    assert (convs, fcs) == (55, 1)


def test_vgg16_has_13_convs_and_one_linear() -> None:
    model = build_model("vgg16", (3, 32, 32), 100)
    assert sum(isinstance(m, nn.Conv2d) for m in model.modules()) == 13
    linears = [m for m in model.modules() if isinstance(m, nn.Linear)]
    assert [(m.in_features, m.out_features) for m in linears] == [(512, 100)]


def test_every_model_module_registers_a_model() -> None:
    registered = {e.obj.__module__ for e in MODELS}
    for info in pkgutil.iter_modules(models_pkg.__path__):
        mod = importlib.import_module(f"dst_core.models.{info.name}")
        assert mod.__name__ in registered, f"{mod.__name__} registers no model (missing import in __init__?)"


@pytest.mark.parametrize(
    "name, shape",
    [("resnet56", (40,)), ("vgg16", (40,)), ("convnet", (3, 4, 4)), ("lenet5", (40,)), ("mnist1d_cnn", (3, 32, 32))],
)
def test_incompatible_shape_raises_config_error(name: str, shape: tuple[int, ...]) -> None:
    with pytest.raises(ConfigError) as err:
        build_model(name, shape, 10)
    assert name in str(err.value) and str(shape) in str(err.value)


def test_resnet_shape_message() -> None:
    with pytest.raises(ConfigError, match=r"model 'resnet56' expects image input \(C, H, W\); got input shape \(40,\)"):
        build_model("resnet56", (40,), 10)


def test_bad_num_classes() -> None:
    with pytest.raises(ConfigError, match="num_classes"):
        build_model("mnist1d_mlp", (40,), 0)


def test_unknown_model_lists_choices() -> None:
    with pytest.raises(UnknownNameError) as err:
        build_model("resnet57", (3, 32, 32), 10)
    msg = str(err.value)
    assert "did you mean 'resnet56'" in msg
    for name in ALL:
        assert name in msg


def test_names_ignore_case_and_separators() -> None:
    assert MODELS.canonical("MNIST1D-MLP") == "mnist1d_mlp"
    assert isinstance(build_model("Mnist1d_MLP", (40,), 10), nn.Module)
