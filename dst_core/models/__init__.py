"""Model zoo: every network the platform can train, looked up by name.

Each module below registers factories ``factory(input_shape, num_classes) -> nn.Module`` in
:data:`MODELS`. Models hold their weights only in ``nn.Linear`` / ``nn.Conv1d`` / ``nn.Conv2d``
(the tensors the sparsity code masks) plus BatchNorm, ReLU and pooling, and do no I/O.

Registry meta of every model:

* ``description`` -- one line for CLI help;
* ``example_input_shape`` -- an input shape the model is meant for (used by tests and help).

The shape helpers live here (above the imports) so the model modules share one wording of the
"incompatible input shape" error.
"""

from __future__ import annotations

import math
from typing import Callable, Sequence

import torch
from torch import nn

from ..errors import ConfigError
from ..registry import Meta, Registry

__all__ = ["MODELS", "build_model", "check_compatible", "flat_features", "image_shape", "output_problem"]

MODELS: Registry[Callable[[tuple[int, ...], int], nn.Module]] = Registry(
    "model", Meta(required={"description": str}, optional={"example_input_shape": tuple}), arity=2,
    signature="factory(input_shape, num_classes) -> nn.Module")


def _fmt(shape: Sequence[int]) -> str:
    return str(tuple(shape))


def flat_features(model: str, input_shape: tuple[int, ...]) -> int:
    """Number of inputs of an MLP that flattens ``input_shape`` (its product)."""
    n = math.prod(input_shape)
    if len(input_shape) == 0 or n <= 0:
        raise ConfigError(
            f"model {model!r}: input shape must be non-empty with positive sizes; "
            f"got input shape {_fmt(input_shape)}"
        )
    return n


def image_shape(model: str, input_shape: tuple[int, ...], *, min_size: int = 1) -> tuple[int, int, int]:
    """``(C, H, W)`` of an image model's input, or :class:`ConfigError` naming the model.

    ``min_size`` is the smallest height/width for which the network's pooling still leaves at
    least one pixel; smaller images are rejected here rather than failing inside ``forward``.
    """
    if len(input_shape) != 3 or any(d <= 0 for d in input_shape):
        raise ConfigError(
            f"model {model!r} expects image input (C, H, W); got input shape {_fmt(input_shape)}"
        )
    c, h, w = input_shape
    if h < min_size or w < min_size:
        raise ConfigError(
            f"model {model!r}: image too small: got input shape {_fmt(input_shape)}; "
            f"expected height and width >= {min_size}"
        )
    return c, h, w


def build_model(name: str, input_shape: tuple[int, ...], num_classes: int) -> nn.Module:
    """Build the registered model ``name`` for inputs of ``input_shape`` (without batch dim)."""
    entry = MODELS.get(name)  # UnknownNameError with the choices
    try:
        shape = tuple(int(d) for d in input_shape)
    except (TypeError, ValueError):
        raise ConfigError(
            f"model {entry.name!r}: input shape must be a tuple of ints; got {input_shape!r}"
        ) from None
    if isinstance(num_classes, bool) or not isinstance(num_classes, int) or num_classes < 1:
        raise ConfigError(
            f"model {entry.name!r}: num_classes must be a positive int; got {num_classes!r}"
        )
    return entry.obj(shape, num_classes)


def check_compatible(model: str, input_shape: tuple[int, ...], num_classes: int, what: str = "data") -> None:
    """Raise ConfigError unless ``model`` takes inputs of ``input_shape`` (without batch dim).

    The model is built on the CPU and runs one forward pass of two zero inputs (tens of
    milliseconds for the largest). PyTorch's ``meta`` device would spare the memory, but its ops
    run Python decompositions that import torch._dynamo and sympy: 1.5 s before a study starts.
    """
    entry = MODELS.get(model)
    try:
        with torch.no_grad():
            out = build_model(entry.name, input_shape, num_classes).eval()(torch.zeros((2, *input_shape)))
    except ConfigError as e:
        raise ConfigError(f"{what}: {e}") from None
    except (RuntimeError, ValueError, TypeError) as e:
        first = str(e).strip().splitlines()[0][:200] if str(e).strip() else type(e).__name__
        raise ConfigError(f"model {entry.name!r} cannot take {what} of shape {tuple(input_shape)} ({first})") from None
    problem = output_problem(out, 2, num_classes)
    if problem:
        raise ConfigError(f"model {entry.name!r} on {what} ({num_classes} classes) {problem}")


def output_problem(out: object, n: int, num_classes: int) -> str | None:
    """Why a model's output for ``n`` examples breaks its contract, or None. The contract: a floating
    tensor of shape ``(n, num_classes)``, one row of logits per example (``(n, 1)`` for two classes:
    one logit, the binary loss). Checked by ``validate`` and on every training step (two compares)."""
    if isinstance(out, torch.Tensor):
        classes = (num_classes, 1) if num_classes == 2 else (num_classes,)
        if out.dim() == 2 and out.shape[0] == n and out.shape[1] in classes and out.is_floating_point():
            return None
        expected = " or ".join(f"({n}, {c})" for c in classes)
        return (f"returned a {out.dtype} tensor of shape {tuple(out.shape)} for {n} examples; expected a floating "
                f"tensor of shape {expected}: one row of logits per example")
    logits = "out.logits" if hasattr(out, "logits") else "out['logits']" if isinstance(out, dict) and "logits" in out \
        else "the logits tensor"
    keys = f" with keys {', '.join(map(str, list(out)[:5]))}" if isinstance(out, dict) else ""
    return (f"returned a {type(out).__name__}{keys}; expected a tensor of shape ({n}, {num_classes}), one row of "
            f"logits per example. Register a wrapper whose forward returns {logits}: class Logits(nn.Module): "
            f"def __init__(self, model): super().__init__(); self.model = model; def forward(self, x): out = "
            f"self.model(x); return {logits if logits != 'the logits tensor' else '...'}")


# Explicit imports (one per module) so that every model registers; tests check none is missing.
from . import mlp  # noqa: E402,F401
from . import mnist1d  # noqa: E402,F401
from . import lenet  # noqa: E402,F401
from . import convnet  # noqa: E402,F401
from . import resnet_cifar  # noqa: E402,F401
from . import vgg  # noqa: E402,F401
