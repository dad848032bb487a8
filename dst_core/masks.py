"""Boolean masks over a model's sparsified weights, the rounding rule and the one top-k.

Sparsified tensors are the weights of ``nn.Linear`` and ``nn.Conv{1,2,3}d`` modules; biases and
normalisation layers stay dense. A mask is a ``torch.bool`` tensor of the weight's shape (one byte
per weight); masked weights are exactly zero whenever the model is used.

Two rules are defined here once and used everywhere:

* :func:`n_active`: a layer of ``size`` weights at density ``d`` has ``floor(d * size + 0.5)``
  active weights (round half up; never a Bernoulli draw).
* :func:`top_indices`: the ``k`` highest (or lowest) scores. Selection is exact and
  deterministic: ties at the threshold go to the lower flat index. It finds the threshold with
  ``kthvalue`` (linear time) on a pool cut down by a sampled threshold, never sorting whole
  tensors. :func:`select_top` applies it to the candidates of a tensor and returns a mask.
"""

from __future__ import annotations

import fnmatch
import math
import sys
from dataclasses import dataclass
from typing import Iterable, Mapping

import torch
from torch import Tensor, nn

from .errors import ConfigError

__all__ = [
    "DEFAULT_SPARSE",
    "SPARSE_MODULES",
    "MaskSet",
    "ParamChoice",
    "choose_params",
    "indices_to_mask",
    "n_active",
    "random_mask",
    "select_top",
    "sparsifiable",
    "top_indices",
    "top_indices_among",
]

SPARSE_MODULES = (nn.Linear, nn.Conv1d, nn.Conv2d, nn.Conv3d)


def n_active(size: int, density: float) -> int:
    """THE rounding rule: number of active weights of a ``size``-weight layer at ``density``."""
    return min(size, max(0, math.floor(density * size + 0.5)))


# The parameters sparsified unless a rule says otherwise: the weights of Linear and Conv layers (the
# paper's rule) and the input projections of attention (Q, K and V in one tensor or three), the largest
# matrices of a transformer layer; its output projection is a Linear. Biases, norms and embeddings stay dense.
DEFAULT_SPARSE = {**{m: ("weight",) for m in SPARSE_MODULES},
                  nn.MultiheadAttention: ("in_proj_weight", "q_proj_weight", "k_proj_weight", "v_proj_weight")}


@dataclass(frozen=True)
class ParamChoice:
    """Whether one parameter tensor of a model is sparsified, and why."""
    name: str  # its first name in ``named_parameters`` order (the name of its mask)
    shape: tuple[int, ...]
    sparse: bool
    why: str  # the rule that decided: "Linear.weight", "keep_dense 'head.*'", "frozen", ...
    also: tuple[str, ...] = ()  # its other names: a weight shared or tied between modules has one mask

    @property
    def size(self) -> int:
        return math.prod(self.shape)


def choose_params(model: nn.Module, sparsify_also: Iterable[str] = (), keep_dense: Iterable[str] = ()
                  ) -> list[ParamChoice]:
    """Every parameter tensor of ``model``, once (shared and tied weights by identity), in model order,
    with whether it is sparsified: by :data:`DEFAULT_SPARSE`, plus those matching a ``sparsify_also``
    pattern, less those matching a ``keep_dense`` pattern (which wins). A pattern is an ``fnmatch``
    glob over a parameter's names (``head.weight``, ``encoder.*.in_proj_weight``) or over
    ``<module class>.<attribute>`` (``Embedding.weight``, ``Linear.*``). Frozen parameters
    (``requires_grad=False``) are never sparsified: nothing would regrow them. A pattern that matches
    no parameter is an error (a typo would otherwise change nothing, silently)."""
    sparsify_also, keep_dense = tuple(sparsify_also), tuple(keep_dense)
    names: dict[int, list[str]] = {}
    keys: dict[int, set[str]] = {}
    default: dict[int, str] = {}
    tensors: dict[int, nn.Parameter] = {}
    for prefix, module in model.named_modules(remove_duplicate=False):
        for attr, param in module._parameters.items():
            if param is None:
                continue
            key = id(param)
            tensors[key] = param
            name = f"{prefix}.{attr}" if prefix else attr
            if name not in names.setdefault(key, []):
                names[key].append(name)
            keys.setdefault(key, set()).update((name, f"{type(module).__name__}.{attr}"))
            for kind, attrs in DEFAULT_SPARSE.items():  # an out_proj (a Linear's subclass) is a Linear.weight too
                if isinstance(module, kind):
                    keys[key].add(f"{kind.__name__}.{attr}")
                    if attr in attrs:
                        default.setdefault(key, f"{type(module).__name__}.{attr}")
    for field, patterns in (("sparsify_also", sparsify_also), ("keep_dense", keep_dense)):
        for pattern in patterns:
            if not any(fnmatch.fnmatchcase(k, pattern) for ks in keys.values() for k in ks):
                shown = ", ".join(n[0] for n in list(names.values())[:8]) + ", ..." * (len(names) > 8)
                raise ConfigError(f"{field}: pattern {pattern!r} matches no parameter of {type(model).__name__} "
                                  f"(its parameters: {shown}; a pattern may also name <module class>.<attribute>, "
                                  "e.g. Embedding.weight)")
    order = {n: i for i, (n, _) in enumerate(model.named_parameters())}
    out = []
    for key in sorted(names, key=lambda k: order.get(names[k][0], len(order))):
        def match(patterns: tuple[str, ...]) -> str | None:
            return next((p for p in patterns if any(fnmatch.fnmatchcase(k, p) for k in keys[key])), None)

        param, dense, also = tensors[key], match(keep_dense), match(sparsify_also)
        if not param.requires_grad:
            sparse, why = False, "frozen (requires_grad=False)"
        elif dense is not None:
            sparse, why = False, f"keep_dense {dense!r}"
        elif key in default:
            sparse, why = True, default[key]
        elif also is not None:
            sparse, why = True, f"sparsify_also {also!r}"
        else:
            sparse, why = False, "not a Linear, Conv or attention weight"
        out.append(ParamChoice(names[key][0], tuple(param.shape), sparse, why, tuple(names[key][1:])))
    return out


def sparsifiable(model: nn.Module, sparsify_also: Iterable[str] = (), keep_dense: Iterable[str] = ()
                 ) -> dict[str, nn.Parameter]:
    """The parameters to sparsify (:func:`choose_params`), keyed by their first ``named_parameters``
    name, in model order."""
    params = dict(model.named_parameters())
    return {c.name: params[c.name] for c in choose_params(model, sparsify_also, keep_dense) if c.sparse}


def top_indices(values: Tensor, k: int, *, largest: bool = True) -> Tensor:
    """Flat indices of the ``k`` largest (or smallest) entries of ``values``: THE top-k.

    Exact and deterministic: ties at the threshold go to the lower index, NaN counts as the worst
    score. When ``k`` is a small part of a large tensor, a threshold read from a random sample
    first cuts the pool down to about ``1.2 k`` entries; the exact selection then runs on that
    pool, so the result is the same as without the shortcut, only cheaper.
    """
    vals = values.reshape(-1)
    n = vals.numel()
    if not 0 <= k <= n:
        raise ValueError(f"top_indices: cannot select {k} of {n} entries")
    if k == 0:
        return torch.zeros(0, dtype=torch.long, device=vals.device)
    return _top(vals if largest else -vals, k)


def _top(vals: Tensor, k: int) -> Tensor:
    """:func:`top_indices` of the largest entries of a 1-D tensor, ``0 < k <= n``."""
    n = vals.numel()
    threshold = _sampled_threshold(vals, k) if n > _SAMPLE_MIN and 4 * k < n else None
    if threshold is not None:  # NaN never passes these comparisons
        above = vals > threshold
        n_above = int(above.count_nonzero())
        if n_above >= k:  # the k largest are all above: select among them only
            pool = above.nonzero().squeeze(1)
            return pool[_exact_top(vals[pool], k)]
        tie = vals == threshold
        if n_above + int(tie.count_nonzero()) >= k:  # the threshold is the k-th largest value itself
            # (many equal scores, e.g. zero gradients of dead units): lowest-index ties, no kthvalue
            return torch.cat([above.nonzero().squeeze(1), tie.nonzero().squeeze(1)[:k - n_above]])
    return _exact_top(vals, k)  # the sample overshot: select over everything


_SAMPLE_MIN = 1 << 16  # below this size a direct kthvalue is as fast as sampling
_SAMPLE_SIZE = 1 << 14


def _sampled_threshold(vals: Tensor, k: int) -> Tensor | None:
    """A value that about ``1.2 k`` entries exceed, read from a random sample (None: -inf).

    The sample positions are random, not strided: a stride that divides the row length would see
    only a few columns of a weight matrix, whose gradients differ in scale column by column. They
    come from a fixed seed, so the work done is repeatable (the result is exact either way).
    """
    n = vals.numel()
    positions = torch.randint(n, (_SAMPLE_SIZE,), device=vals.device,
                              generator=torch.Generator(device=vals.device).manual_seed(0))
    sample = vals[positions]
    m = sample.numel()
    expected = k * m / n
    rank = min(m, math.ceil(1.2 * expected + 4 * math.sqrt(expected) + 8))
    threshold = torch.kthvalue(sample, m - rank + 1).values
    return None if threshold == -math.inf else threshold


def _exact_top(vals: Tensor, k: int) -> Tensor:
    n = vals.numel()
    if k == n:
        return torch.arange(n, device=vals.device)
    vals = torch.nan_to_num(vals, nan=-math.inf, posinf=math.inf, neginf=-math.inf)
    threshold = torch.kthvalue(vals, n - k + 1).values  # the k-th largest value
    above = vals > threshold
    tie = vals == threshold
    need = k - int(above.count_nonzero())
    if int(tie.count_nonzero()) > need:  # keep the lowest-index ties only
        tie &= tie.cumsum(0) <= need
    return (above | tie).nonzero().squeeze(1)


def top_indices_among(scores: Tensor, candidates: Tensor, k: int, *, largest: bool = True) -> Tensor:
    """Flat indices of the ``k`` candidates with the largest (or smallest) ``scores``.

    Same rules as :func:`top_indices` (ties to the lower flat index, NaN worst).
    """
    cand = candidates.reshape(-1)
    n_cand = int(cand.count_nonzero())
    if not 0 <= k <= n_cand:
        raise ValueError(f"select_top: cannot select {k} of {n_cand} candidates")
    if k == 0:
        return torch.zeros(0, dtype=torch.long, device=scores.device)
    vals = scores.reshape(-1) if largest else -scores.reshape(-1)
    chosen = _top(vals.masked_fill(~cand, -math.inf), k)
    if bool(cand[chosen].all()):
        return chosen
    # some candidates score NaN or -inf and tie with the non-candidates: rank candidates alone
    idx = cand.nonzero().squeeze(1)
    low = torch.finfo(vals.dtype).min
    return idx[_top(torch.nan_to_num(vals[idx], nan=low, posinf=math.inf, neginf=low), k)]


def select_top(scores: Tensor, candidates: Tensor, k: int, *, largest: bool = True) -> Tensor:
    """Boolean tensor marking the ``k`` candidates with the largest (or smallest) ``scores``."""
    return indices_to_mask(top_indices_among(scores, candidates, k, largest=largest), scores.shape)


def indices_to_mask(indices: Tensor, shape: Iterable[int]) -> Tensor:
    """Boolean tensor of ``shape`` that is True at the given flat indices."""
    out = torch.zeros(tuple(shape), dtype=torch.bool, device=indices.device)
    out.view(-1)[indices] = True
    return out


def random_mask(shape: Iterable[int], k: int, generator: torch.Generator | None = None,
                device: torch.device | str | None = None) -> Tensor:
    """A boolean mask of ``shape`` with exactly ``k`` uniformly chosen True entries."""
    shape = tuple(shape)
    scores = torch.rand(shape, generator=generator, device=device)
    return indices_to_mask(top_indices(scores, k), shape)


# Multiplying a little-endian int64 that holds eight 0/1 bytes by this constant moves byte i to
# bit 56 + i with no carries, so ``(x * _GATHER) >> 56`` packs 8 booleans into one byte.
_GATHER = 0x0102040810204080


def _pack(bits: Tensor) -> Tensor:
    """Pack a boolean tensor into uint8, 8 positions per byte (position 8j + i is bit i of byte j)."""
    flat = bits.reshape(-1)
    pad = (-flat.numel()) % 8
    if pad:
        flat = torch.cat([flat, flat.new_zeros(pad)])
    if sys.byteorder != "little":  # pragma: no cover - the slower, portable way
        weights = (1 << torch.arange(8, device=bits.device)).to(torch.uint8)
        return (flat.view(-1, 8).to(torch.uint8) * weights).sum(1, dtype=torch.uint8)
    words = flat.view(torch.uint8).view(torch.int64)
    return ((words * _GATHER) >> 56).to(torch.uint8)


def _popcount(packed: Tensor) -> int:
    shifts = torch.arange(8, device=packed.device, dtype=torch.uint8)
    return int(((packed.unsqueeze(1) >> shifts) & 1).sum())


class MaskSet:
    """Masks keyed by parameter name, plus the set of positions that were ever active (ITOP).

    The ever-active record is bit-packed, so masks and record together cost 1.125 bytes/weight.
    """

    def __init__(self, masks: Mapping[str, Tensor]):
        self.masks: dict[str, Tensor] = {}
        self._ever: dict[str, Tensor] = {}
        for name, mask in masks.items():
            self.set(name, mask)

    @classmethod
    def from_counts(cls, params: Mapping[str, Tensor], counts: Mapping[str, int],
                    generator: torch.Generator | None = None) -> "MaskSet":
        """Random masks with exactly ``counts[name]`` active weights per layer."""
        return cls({name: random_mask(p.shape, counts[name], generator, p.device)
                    for name, p in params.items()})

    def set(self, name: str, mask: Tensor) -> None:
        if mask.dtype != torch.bool:
            raise TypeError(f"mask {name!r}: expected a torch.bool tensor, got {mask.dtype}")
        self.masks[name] = mask
        packed = _pack(mask)
        self._ever[name] = self._ever[name] | packed if name in self._ever else packed

    def __getitem__(self, name: str) -> Tensor:
        return self.masks[name]

    def __iter__(self):
        return iter(self.masks)

    def items(self):
        return self.masks.items()

    @torch.no_grad()
    def apply_(self, params: Mapping[str, Tensor]) -> None:
        """Zero the masked weights of ``params`` in place (one fused multiply).

        The masks are multiplied as uint8 views of the same bytes: the same result as a bool
        multiply at about half its cost, which matters because this runs after every step.
        """
        names = list(self.masks)
        torch._foreach_mul_([params[n] for n in names], [self.masks[n].view(torch.uint8) for n in names])

    def n_active(self) -> dict[str, int]:
        return {name: int(m.sum()) for name, m in self.masks.items()}

    def layer_densities(self) -> dict[str, float]:
        return {name: int(m.sum()) / m.numel() for name, m in self.masks.items()}

    def density(self) -> float:
        total = sum(m.numel() for m in self.masks.values())
        return sum(int(m.sum()) for m in self.masks.values()) / total if total else 1.0

    def itop_rate(self) -> float:
        """Fraction of all sparsified weights that have been active at some point."""
        total = sum(m.numel() for m in self.masks.values())
        return sum(_popcount(p) for p in self._ever.values()) / total if total else 1.0

    def state_dict(self) -> dict[str, dict[str, Tensor]]:
        return {"masks": {n: m.clone() for n, m in self.masks.items()},
                "ever_active": {n: e.clone() for n, e in self._ever.items()}}

    def load_state_dict(self, state: Mapping[str, Mapping[str, Tensor]]) -> None:
        masks = state["masks"]
        if set(masks) != set(self.masks):
            raise ValueError(f"mask names differ: checkpoint has {sorted(masks)}, "
                             f"model has {sorted(self.masks)}")
        for name, mask in masks.items():
            if mask.shape != self.masks[name].shape:
                raise ValueError(f"mask {name!r} has shape {tuple(mask.shape)}; "
                                 f"model expects {tuple(self.masks[name].shape)}")
            device = self.masks[name].device
            self.masks[name] = mask.to(device=device, dtype=torch.bool).clone()
            self._ever[name] = state.get("ever_active", {}).get(name, _pack(mask)).to(device).clone()
