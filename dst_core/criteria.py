"""Pruning criteria: which active weights a topology update removes.

A criterion is an elementwise score function ``score(weight, grad, mask, generator, **params) ->
Tensor`` where a **higher score means keep**; the ``k`` active positions with the lowest scores
are removed (:func:`dst_core.masks.top_indices`: ties to the lower flat index). Only active
positions compete: the score is computed on the active entries alone (``mask`` is then all True),
so no criterion multiplies by the mask. Hyper-parameters are keyword-only (MEST's ``gamma``).
``needs_grad`` tells the trainer whether the current minibatch gradient is required. A criterion
whose removal is not "the k lowest scores" registers a ``select=`` function instead (SET).

========================  ==========================  =========================================
name                      score (higher = keep)       note
========================  ==========================  =========================================
magnitude                 ``|w|``
set                       sign split, see below       Mocanu et al. 2018
mest                      ``|w| + gamma |g|``         Yuan et al. 2021, gamma = 1 by default
snip                      ``|w g|``                   Lee et al. 2019
sensitivity               ``|g| / (|w| + eps)``
reciprocal_sensitivity    ``|w| / (|g| + eps)``
random                    uniform in [0, 1)
========================  ==========================  =========================================

SET removes the ``ceil(k/2)`` smallest non-negative weights and the ``floor(k/2)`` negative
weights closest to zero; when one sign has too few active weights the rest comes from the other
sign, so exactly ``k`` are removed. (The paper's code removes ``ceil(k/2)`` of each sign, i.e.
``k + 1`` weights when ``k`` is odd; we keep the count exact.) Zero-valued active weights (freshly
grown ones) count as non-negative, so they go first.

A new criterion is one function plus its ``@CRITERIA.register`` line; :func:`select_prune` is the
public way to ask which positions a criterion removes from one layer.
"""

from __future__ import annotations

import inspect
from typing import Any, Callable

import torch
from torch import Tensor

from .errors import ConfigError
from .masks import indices_to_mask, top_indices
from .registry import Registry, did_you_mean

__all__ = ["CRITERIA", "EPS", "check_params", "prune_active", "select_prune"]

EPS = 1e-12  # guards the divisions of sensitivity and reciprocal_sensitivity

ScoreFn = Callable[..., Tensor]
CRITERIA: Registry[ScoreFn] = Registry("criterion")


@CRITERIA.register("magnitude", needs_grad=False, description="|w|")
def magnitude(w: Tensor, g: Tensor | None, mask: Tensor, generator=None) -> Tensor:
    del g, mask, generator  # magnitude looks at weights only
    return w.abs()


def _select_set(w: Tensor, g: Tensor | None, k: int, generator=None) -> Tensor:
    """SET's sign-split removal of exactly ``k`` of the active weights ``w`` (module docstring)."""
    del g, generator
    positive = (w >= 0).nonzero().squeeze(1)
    negative = (w < 0).nonzero().squeeze(1)
    take_pos = min((k + 1) // 2, positive.numel())
    take_neg = min(k - take_pos, negative.numel())
    take_pos = k - take_neg  # if negatives ran short, positives make up the rest
    # the smallest non-negative weights, and the negative weights closest to 0 (largest values)
    return torch.cat([positive[top_indices(w[positive], take_pos, largest=False)],
                      negative[top_indices(w[negative], take_neg)]])


@CRITERIA.register("set", needs_grad=False, select=_select_set,
                   description="smallest positive and negative weights, half each (Mocanu et al. 2018)")
def set_(w: Tensor, g: Tensor | None, mask: Tensor, generator=None) -> Tensor:
    """Ranking SET uses within each sign; its removal is the sign split of ``_select_set``."""
    del g, mask, generator
    return w.abs()


@CRITERIA.register("mest", needs_grad=True, description="|w| + gamma |g| (Yuan et al. 2021)")
def mest(w: Tensor, g: Tensor, mask: Tensor, generator=None, *, gamma: float = 1.0) -> Tensor:
    del mask, generator
    return w.abs() + gamma * g.abs()


@CRITERIA.register("snip", needs_grad=True, description="|w g| (Lee et al. 2019)")
def snip(w: Tensor, g: Tensor, mask: Tensor, generator=None) -> Tensor:
    del mask, generator
    return (w * g).abs()


@CRITERIA.register("sensitivity", needs_grad=True, description="|g| / |w|")
def sensitivity(w: Tensor, g: Tensor, mask: Tensor, generator=None) -> Tensor:
    del mask, generator
    return g.abs() / (w.abs() + EPS)


@CRITERIA.register("reciprocal_sensitivity", needs_grad=True, description="|w| / |g|")
def reciprocal_sensitivity(w: Tensor, g: Tensor, mask: Tensor, generator=None) -> Tensor:
    del mask, generator
    return w.abs() / (g.abs() + EPS)


@CRITERIA.register("random", needs_grad=False, description="uniformly random")
def random(w: Tensor, g: Tensor | None, mask: Tensor, generator=None) -> Tensor:
    del g, mask
    return torch.rand(w.shape, generator=generator, device=w.device)


def check_params(criterion: str, params: dict[str, Any], where: str = "criterion_params") -> dict[str, Any]:
    """Reject hyper-parameters the criterion does not take (e.g. ``gama`` for ``gamma``)."""
    entry = CRITERIA.get(criterion)
    accepted = [p.name for p in inspect.signature(entry.obj).parameters.values()
                if p.kind is inspect.Parameter.KEYWORD_ONLY]
    for key in params:
        if key not in accepted:
            hint = did_you_mean(key, accepted)
            raise ConfigError(f"{where}: criterion {entry.name!r} takes no parameter {key!r}{hint} "
                              f"(accepted: {', '.join(accepted) or 'none'})")
    return dict(params)


def select_prune(criterion: str, weight: Tensor, grad: Tensor | None, mask: Tensor, k: int,
                 generator: torch.Generator | None = None, **params: Any) -> Tensor:
    """Boolean tensor of the ``k`` active positions that ``criterion`` removes from one layer.

    ``weight``, ``grad`` and ``mask`` have one shape. ``grad`` may be None for criteria with
    ``needs_grad=False``.
    """
    active = mask.reshape(-1).nonzero().squeeze(1)
    g = None if grad is None else grad.reshape(-1)[active]
    chosen = prune_active(criterion, weight.reshape(-1)[active], g, k, generator, **params)
    return indices_to_mask(active[chosen], mask.shape)


def prune_active(criterion: str, w: Tensor, g: Tensor | None, k: int,
                 generator: torch.Generator | None = None, **params: Any) -> Tensor:
    """Indices into the 1-D vectors of active weights ``w`` (and gradients ``g``) to remove.

    Scores are elementwise, so they are computed on the active entries only: ten times less work
    than on whole tensors at density 0.1.
    """
    entry = CRITERIA.get(criterion)
    if entry.needs_grad and g is None:
        raise ValueError(f"criterion {entry.name!r} needs the gradient; got grad=None")
    if "select" in entry.meta:
        return entry.select(w, g, k, generator)
    scores = entry.obj(w, g, torch.ones_like(w, dtype=torch.bool), generator, **params)
    return top_indices(scores, k, largest=False)
