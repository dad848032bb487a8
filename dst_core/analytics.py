"""Mask analytics: pure functions over masks, never called inside a topology update.

* :func:`jaccard`: ``|A ∩ B| / |A ∪ B|`` of two sets of positions (1 when both are empty).
* :func:`removal_overlap`: the Jaccard similarity between the sets that each pair of criteria
  would remove from one and the same state (figure 6 of Nowak et al. 2023).
* ITOP rate (Liu et al. 2021): the fraction of all sparsified weights that were ever active,
  kept by :class:`dst_core.masks.MaskSet` (``itop_rate()``); per-layer densities likewise.
"""

from __future__ import annotations

from typing import Any, Mapping, Sequence

import torch
from torch import Tensor

from .criteria import CRITERIA
from .masks import indices_to_mask
from .topology import select_removals

__all__ = ["jaccard", "removal_overlap"]


def jaccard(a: Tensor | Mapping[str, Tensor], b: Tensor | Mapping[str, Tensor]) -> float:
    """Jaccard similarity of two boolean tensors, or of two ``{name: tensor}`` collections."""
    if isinstance(a, Mapping):
        inter = sum(int((a[n] & b[n]).sum()) for n in a)
        union = sum(int((a[n] | b[n]).sum()) for n in a)
    else:
        inter, union = int((a & b).sum()), int((a | b).sum())
    return inter / union if union else 1.0


def removal_overlap(criteria: Sequence[str], weights: Mapping[str, Tensor], grads: Mapping[str, Tensor],
                    masks: Mapping[str, Tensor], drop_fraction: float, *, scope: str = "local",
                    seed: int = 0, criterion_params: Mapping[str, Mapping[str, Any]] | None = None
                    ) -> dict[tuple[str, str], float]:
    """Jaccard similarity of what each pair of ``criteria`` would remove from this state.

    Returns ``{(a, b): similarity}`` for every ordered pair (the diagonal is 1).
    """
    names = [CRITERIA.canonical(c) for c in criteria]
    params = criterion_params or {}
    with torch.no_grad():
        removed = {c: {n: indices_to_mask(idx, masks[n].shape) for n, idx in select_removals(
            weights, grads, masks, drop_fraction, c, scope, seed, 0, dict(params.get(c, {}))).items()}
            for c in names}
    return {(a, b): jaccard(removed[a], removed[b]) for a in names for b in names}
