r"""Distribution of an overall density ``d`` over the sparsified layers.

``d`` is the fraction of active weights over all sparsified tensors. For layer ``l`` with shape
``s_l`` and ``n_l = prod(s_l)`` weights:

* ``uniform``: :math:`d_l = d`.
* ``er`` (Erdős–Rényi, Mocanu et al. 2018): :math:`d_l = \epsilon \, (n^{in}_l + n^{out}_l) /
  (n^{in}_l \, n^{out}_l)` with ``n_out = s[0]``, ``n_in = s[1]`` (kernel dimensions ignored).
* ``erk`` (ER-Kernel, Evci et al. 2020): :math:`d_l = \epsilon \, (\sum_i s_{l,i} /
  \prod_i s_{l,i})^{power}`, kernel dimensions included.

For ``er`` and ``erk`` one factor :math:`\epsilon` is solved so that :math:`\sum_l d_l n_l = d
\sum_l n_l`. A layer whose density would exceed 1 is made dense and :math:`\epsilon` is solved
again for the others until no layer exceeds 1. Masks then hold exactly
``n_active(n_l, d_l)`` weights (see :func:`dst_core.masks.n_active`), so the overall density
matches ``d`` within one weight per layer.
"""

from __future__ import annotations

import math
from typing import Callable, Mapping, Sequence

from .errors import ConfigError
from .masks import n_active
from .registry import Meta, Registry

__all__ = ["DENSITY", "check_density", "layer_counts", "layer_densities"]

Shapes = Mapping[str, Sequence[int]]

# name -> raw(shape, power): the unnormalised density of one layer (None: uniform)
DENSITY: Registry[Callable[[Sequence[int], float], float] | None] = Registry(
    "density distribution", Meta(required={"description": str}), arity=2,
    signature="raw(shape, power) -> float", allow_none=True)


def check_density(density: float, where: str = "density") -> float:
    if isinstance(density, bool) or not isinstance(density, (int, float)) or not 0 < density <= 1:
        raise ConfigError(f"{where}: got {density!r}; expected a float in (0, 1]")
    return float(density)


DENSITY.register("uniform", description="every layer at the overall density")(None)


@DENSITY.register("er", description="Erdős–Rényi: density ∝ (n_in + n_out) / (n_in · n_out)")
def _er(shape: Sequence[int], power: float) -> float:
    n_out, n_in = shape[0], shape[1] if len(shape) > 1 else 1
    return ((n_in + n_out) / (n_in * n_out)) ** power


@DENSITY.register("erk", description="ER-Kernel: density ∝ sum(shape) / prod(shape)")
def _erk(shape: Sequence[int], power: float) -> float:
    return (sum(shape) / math.prod(shape)) ** power


def layer_densities(shapes: Shapes, density: float, method: str = "uniform",
                    power: float = 1.0) -> dict[str, float]:
    """Map ``{name: shape}`` to ``{name: density}`` for ``method`` uniform, er or erk."""
    density = check_density(density)
    raw_fn = DENSITY.get(method).obj
    if raw_fn is None or density == 1.0:
        return {name: density for name in shapes}
    sizes = {name: math.prod(shape) for name, shape in shapes.items()}
    raw = {name: raw_fn(shape, power) for name, shape in shapes.items()}
    budget = density * sum(sizes.values())
    dense: set[str] = set()
    while True:
        sparse = [name for name in shapes if name not in dense]
        remaining = budget - sum(sizes[name] for name in dense)
        eps = remaining / sum(raw[name] * sizes[name] for name in sparse)
        too_dense = {name for name in sparse if eps * raw[name] > 1}
        if not too_dense:
            break
        dense |= too_dense  # a layer that exceeds 1 at eps also exceeds at the larger next eps
    return {name: 1.0 if name in dense else eps * raw[name] for name in shapes}


def layer_counts(shapes: Shapes, density: float, method: str = "uniform",
                 power: float = 1.0) -> dict[str, int]:
    """Exact number of active weights per layer: ``n_active(n_l, d_l)``."""
    densities = layer_densities(shapes, density, method, power)
    return {name: n_active(math.prod(shapes[name]), d) for name, d in densities.items()}
