"""Growth rules: where a topology update regrows the weights it removed.

A growth rule is ``score(weight, grad, mask, generator) -> Tensor`` where a **higher score means
grow first**; the updater grows exactly as many weights per layer as it removed there, choosing
the highest-scoring inactive positions (positions removed in the same update are eligible).

* ``random`` (SET): uniform among inactive positions. Rather than a score per position it registers
  its selection (``selects=True``: ``select(candidates, k, generator) -> indices``), a cheaper draw
  with the law of the top-``k`` of uniform random scores.
* ``gradient`` (RigL, Evci et al. 2020): largest ``|g|`` of the dense minibatch gradient.
"""

from __future__ import annotations

import math
from typing import Callable

import torch
from torch import Tensor

from .criteria import checked_scores
from .masks import indices_to_mask, top_indices_among
from .registry import Meta, Registry

__all__ = ["GROWTH", "grow_indices", "select_grow"]

GROWTH: Registry[Callable[..., Tensor]] = Registry(
    "growth", Meta(required={"needs_grad": bool, "description": str}, optional={"selects": bool}),
    arity=4, signature="score(w, g, mask, generator) -> Tensor",
    select_arity=3, select_signature="select(candidates, k, generator) -> indices (with selects=True)")


@GROWTH.register("random", needs_grad=False, selects=True, description="uniform among inactive positions (SET)")
def random(candidates: Tensor, k: int, generator: torch.Generator | None = None) -> Tensor:
    """``k`` flat indices drawn uniformly without replacement among the True entries.

    Draws positions uniformly over the whole tensor, keeps those that are candidates and distinct,
    and repeats until ``k`` are found; a random ``k``-subset of them is returned. The kept set is
    uniform given its size, so the result is a uniform ``k``-subset of the candidates: the same law
    as top-``k`` of random scores, without drawing a score for every position. When ``k`` is a
    large share of the candidates (many repeats), random scores are used instead.
    """
    flat = candidates.reshape(-1)
    n, n_cand = flat.numel(), int(flat.count_nonzero())
    if not 0 <= k <= n_cand:
        raise ValueError(f"random growth: cannot select {k} of {n_cand} candidates")
    if 4 * k > n_cand:
        return top_indices_among(torch.rand(n, generator=generator, device=flat.device), flat, k)
    found = torch.zeros(0, dtype=torch.long, device=flat.device)
    while found.numel() < k:
        draws = math.ceil((k - found.numel()) * n / n_cand * 1.3) + 16
        pos = torch.randint(n, (draws,), generator=generator, device=flat.device)
        found = torch.unique(torch.cat([found, pos[flat[pos]]]))
    keep = torch.randperm(found.numel(), generator=generator, device=flat.device)[:k]
    return found[keep]


@GROWTH.register("gradient", needs_grad=True, description="largest |dense gradient| (RigL)")
def gradient(w: Tensor, g: Tensor, mask: Tensor, generator=None) -> Tensor:
    del w, mask, generator
    return g.abs()


def select_grow(growth: str, weight: Tensor, grad: Tensor | None, mask: Tensor, k: int,
                generator: torch.Generator | None = None) -> Tensor:
    """Boolean tensor of the ``k`` inactive positions (``~mask``) that ``growth`` activates."""
    return indices_to_mask(grow_indices(growth, weight, grad, mask, k, generator), mask.shape)


def grow_indices(growth: str, weight: Tensor, grad: Tensor | None, mask: Tensor, k: int,
                 generator: torch.Generator | None = None) -> Tensor:
    """Flat indices of the ``k`` inactive positions that ``growth`` activates."""
    entry = GROWTH.get(growth)
    if entry.needs_grad and grad is None:
        raise ValueError(f"growth {entry.name!r} needs the gradient; got grad=None")
    if entry.meta.get("selects"):  # its own draw among the inactive positions, not the top-k of scores
        return entry.obj(~mask, k, generator)
    scores = checked_scores(f"growth {entry.name!r}", entry.obj(weight, grad, mask, generator), weight, grad, ~mask)
    return top_indices_among(scores, ~mask, k)
