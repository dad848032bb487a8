"""Pruning criteria: which active weights a topology update removes.

A criterion is an elementwise score function ``score(weight, grad, mask, generator, **params) ->
Tensor`` where a **higher score means keep**; the ``k`` active positions with the lowest scores
are removed (:func:`dst_core.masks.top_indices`: ties to the lower flat index). Only active
positions compete: the score is computed on the active entries alone (``mask`` is then all True),
so no criterion multiplies by the mask. Hyper-parameters are keyword-only (MEST's ``gamma``).
``needs_grad`` tells the trainer whether the current minibatch gradient is required. A criterion
whose removal is not "the k lowest scores" registers that removal instead, marked ``selects=True``:
``select(w, g, k, generator) -> indices`` of the active weights to remove (the two SETs).
``paper_order`` says where the paper's code runs the topology update for this criterion (after or
before the optimizer step; see :mod:`dst_core.topology`); ``exact_count=False`` marks the one rule
that does not remove exactly ``k`` weights.

========================  ==========================  =========================================
name                      score (higher = keep)       note
========================  ==========================  =========================================
magnitude                 ``|w|``
set                       sign split, see below       Mocanu et al. 2018
set_paper_code            see below                   what the paper's runs called "SET"
mest                      ``|w| + gamma |g|``         Yuan et al. 2021, gamma = 1 by default
snip                      ``|w g|``                   Lee et al. 2019
sensitivity               ``|g| / (|w| + eps)``
reciprocal_sensitivity    ``|w| / (|g| + eps)``
random                    uniform in [0, 1)
========================  ==========================  =========================================

``eps`` is 1e-8, as in the paper's code. Its extra ``+ 1`` and ``+ 1e-5`` terms only lift active
scores above the zeros of inactive positions, which never compete here, so they are left out.

``set`` is SET as published: remove the ``ceil(k/2)`` smallest non-negative weights and the
``floor(k/2)`` negative weights closest to zero; when one sign has too few active weights the rest
comes from the other sign, so exactly ``k`` are removed. Zero-valued active weights (freshly grown
ones) count as non-negative, so they go first. (The paper's ``SET_fixed``, used only for its Jaccard
analysis, removes ``ceil(k/2)`` of each sign: ``k + 1`` when ``k`` is odd.)

``set_paper_code`` is the rule the paper's DST runs used under the name "SET"
(``magnitude_and_negativity_prune``): with ``h = ceil(k/2)``, remove the ``h`` smallest positive
weights, keep only the ``h - 1`` most negative weights (all other negative weights are removed), and
remove active weights that are exactly 0. Since about half of the active weights are negative, it
removes about half of all active weights at every update, whatever the drop fraction; the updater
regrows as many as it removed. Use it to reproduce the paper's SET curves; ``set`` is the method.

A new criterion is one function plus its ``@CRITERIA.register`` line; :func:`select_prune` is the
public way to ask which positions a criterion removes from one layer.
"""

from __future__ import annotations

import inspect
import math
from typing import Any, Callable

import torch
from torch import Tensor

from .errors import ConfigError, ContractError, Diverged
from .masks import indices_to_mask, top_indices
from .registry import Meta, Registry, did_you_mean

__all__ = ["CRITERIA", "EPS", "check_params", "checked_scores", "prune_active", "select_prune"]

EPS = 1e-8  # guards the divisions of sensitivity and reciprocal_sensitivity (the paper's value)

ScoreFn = Callable[..., Tensor]
CRITERIA: Registry[ScoreFn] = Registry(
    "criterion",
    Meta(required={"needs_grad": bool, "paper_order": frozenset({"after_step", "before_step"}), "description": str},
         optional={"selects": bool, "exact_count": bool}),
    arity=4, signature="score(w, g, mask, generator, **params) -> Tensor",
    select_arity=4, select_signature="select(w, g, k, generator) -> indices (with selects=True)")


@CRITERIA.register("magnitude", needs_grad=False, paper_order="after_step", description="|w|")
def magnitude(w: Tensor, g: Tensor | None, mask: Tensor, generator=None) -> Tensor:
    del g, mask, generator  # magnitude looks at weights only
    return w.abs()


@CRITERIA.register("set", needs_grad=False, selects=True, paper_order="after_step",
                   description="smallest positive and negative weights, half each (Mocanu et al. 2018)")
def set_(w: Tensor, g: Tensor | None, k: int, generator=None) -> Tensor:
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


@CRITERIA.register("set_paper_code", needs_grad=False, selects=True, paper_order="after_step", exact_count=False,
                   description="the paper code's SET: removes about half the active weights")
def set_paper_code(w: Tensor, g: Tensor | None, k: int, generator=None) -> Tensor:
    """The paper code's "SET" removal (module docstring): not ``k`` weights, about half of them."""
    del g, generator
    if k == 0:
        return torch.zeros(0, dtype=torch.long, device=w.device)
    h = (k + 1) // 2
    positive = (w > 0).nonzero().squeeze(1)
    negative = (w < 0).nonzero().squeeze(1)
    zero = (w == 0).nonzero().squeeze(1)
    drop_pos = positive[top_indices(w[positive], min(h, positive.numel()), largest=False)]
    keep_neg = top_indices(w[negative], max(min(h, negative.numel()) - 1, 0), largest=False)
    drop_neg = negative[indices_to_mask(keep_neg, negative.shape).logical_not().nonzero().squeeze(1)]
    return torch.cat([drop_pos, drop_neg, zero])


@CRITERIA.register("mest", needs_grad=True, paper_order="before_step",
                   description="|w| + gamma |g| (Yuan et al. 2021)")
def mest(w: Tensor, g: Tensor, mask: Tensor, generator=None, *, gamma: float = 1.0) -> Tensor:
    del mask, generator
    return w.abs() + gamma * g.abs()


@CRITERIA.register("snip", needs_grad=True, paper_order="before_step", description="|w g| (Lee et al. 2019)")
def snip(w: Tensor, g: Tensor, mask: Tensor, generator=None) -> Tensor:
    del mask, generator
    return (w * g).abs()


@CRITERIA.register("sensitivity", needs_grad=True, paper_order="before_step", description="|g| / |w|")
def sensitivity(w: Tensor, g: Tensor, mask: Tensor, generator=None) -> Tensor:
    del mask, generator
    return g.abs() / (w.abs() + EPS)


@CRITERIA.register("reciprocal_sensitivity", needs_grad=True, paper_order="before_step",
                   description="|w| / |g|")
def reciprocal_sensitivity(w: Tensor, g: Tensor, mask: Tensor, generator=None) -> Tensor:
    del mask, generator
    return w.abs() / (g.abs() + EPS)


@CRITERIA.register("random", needs_grad=False, paper_order="after_step", description="uniformly random")
def random(w: Tensor, g: Tensor | None, mask: Tensor, generator=None) -> Tensor:
    del g, mask
    return torch.rand(w.shape, generator=generator, device=w.device)


def check_params(criterion: str, params: dict[str, Any], where: str = "criterion_params") -> dict[str, Any]:
    """Reject hyper-parameters the criterion does not take (e.g. ``gama`` for ``gamma``)."""
    entry = CRITERIA.get(criterion)
    accepted = [p.name for p in inspect.signature(entry.obj).parameters.values()
                if p.kind is inspect.Parameter.KEYWORD_ONLY]
    for key, value in params.items():
        if key not in accepted:
            hint = did_you_mean(key, accepted)
            raise ConfigError(f"{where}: criterion {entry.name!r} takes no parameter {key!r}{hint} "
                              f"(accepted: {', '.join(accepted) or 'none'})")
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
            raise ConfigError(f"{where}: {key} of criterion {entry.name!r}: got {str(value)[:80]!r}; "
                              "expected a finite number")
    return dict(params)


def select_prune(criterion: str, weight: Tensor, grad: Tensor | None, mask: Tensor, k: int,
                 generator: torch.Generator | None = None, **params: Any) -> Tensor:
    """Boolean tensor of the ``k`` active positions that ``criterion`` removes from one layer
    (``set_paper_code``: the positions its own rule removes for this ``k``).

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
    if entry.meta.get("selects"):  # its own removal rule, not the k lowest scores
        return _checked_selection(entry, entry.obj(w, g, k, generator), w, k)
    scores = entry.obj(w, g, torch.ones_like(w, dtype=torch.bool), generator, **params)
    return top_indices(checked_scores(f"criterion {entry.name!r}", scores, w, g), k, largest=False)


def checked_scores(what: str, scores: Any, w: Tensor, g: Tensor | None, deciding: Tensor | None = None) -> Tensor:
    """The scores ``what`` (``criterion 'snip'``) returned for weights ``w`` as its contract says: a tensor
    of ``w``'s shape, finite wherever it decides (``deciding``; everywhere when None: every active
    weight competes). One isfinite pass per layer and update: cheap beside the top-k it feeds."""
    if not isinstance(scores, Tensor) or scores.shape != w.shape:
        got = f"shape {tuple(scores.shape)}" if isinstance(scores, Tensor) else type(scores).__name__
        raise ContractError(f"{what} returned scores of {got} for {w.numel()} weights; expected a tensor of their "
                            f"shape {tuple(w.shape)}, one score per weight")
    finite = torch.isfinite(scores)
    if not bool(finite.all() if deciding is None else (finite | ~deciding).all()):
        bad = ~finite if deciding is None else ~finite & deciding
        given = "weights" if not bool(torch.isfinite(w).all()) else \
            "gradients" if g is not None and not bool(torch.isfinite(g).all()) else None
        if given:  # not the component's fault
            raise Diverged(f"training diverged: the {given} that {what} scores are not finite; a lower lr or "
                           "another seed may train")
        n = int(bad.sum())
        raise ContractError(f"{what} returned {n} NaN or infinite score{'s' * (n > 1)} of "
                            f"{scores.numel() if deciding is None else int(deciding.sum())} that decide, from finite "
                            "weights and gradients")
    return scores


def _checked_selection(entry, chosen: Any, w: Tensor, k: int) -> Tensor:
    """A selecting criterion's removal: distinct integer indices into the active weights (exactly ``k``
    of them unless it registered ``exact_count=False``)."""
    ok = isinstance(chosen, Tensor) and chosen.dim() == 1 and not chosen.dtype.is_floating_point \
        and chosen.dtype != torch.bool
    if ok and chosen.numel():
        ok = int(chosen.min()) >= 0 and int(chosen.max()) < w.numel() and chosen.unique().numel() == chosen.numel()
    if ok and entry.meta.get("exact_count", True):
        ok = chosen.numel() == k
    if not ok:
        got = f"{chosen.dtype} tensor of shape {tuple(chosen.shape)}" if isinstance(chosen, Tensor) \
            else type(chosen).__name__
        count = f"exactly {k} " if entry.meta.get("exact_count", True) else ""
        raise ContractError(f"criterion {entry.name!r} selected a {got}; expected {count}distinct integer indices "
                            f"into its {w.numel()} active weights")
    return chosen
