r"""The DST rule: drop the lowest-scoring active weights, regrow as many elsewhere.

At an update after :math:`t` optimizer steps, with drop fraction :math:`p_t` from the schedule:

1. **Drop.** ``local`` scope: in each layer remove :math:`k_l = \lceil p_t a_l \rceil` of its
   :math:`a_l` active weights, those with the lowest criterion score. ``global`` scope: remove
   :math:`k = \lceil p_t \sum_l a_l \rceil` lowest-scoring weights over all layers at once.
   (``set_paper_code`` alone removes its own count; see :mod:`dst_core.criteria`.)
2. **Grow.** In each layer activate exactly as many inactive positions as were removed there,
   those with the highest growth score. Positions removed in this same update are eligible.
3. **Apply once.** Only the new mask is applied, as in the paper's code and RigL: a weight removed
   and regrown in the same update keeps its value and optimizer state (so an update of a layer that
   ERK made dense changes nothing); a removed weight that is not regrown is set to 0; a grown
   weight that was inactive is 0 already. The optimizer state of a newly grown weight is the
   momentum it gathered while inactive (gradients reach masked weights), as in the paper's code
   (``grown_momentum="keep"``), or 0 as in RigL (``"zero"``). Removed weights keep their optimizer
   state, as in both references. The density after an update equals the density before, exactly.

   With Adam or AdamW (our extension; the paper's code uses SGD only) the state is the two moments
   ``exp_avg`` and ``exp_avg_sq``: ``keep`` leaves both as gathered while inactive, ``zero`` sets
   both to 0 at newly grown positions. Adam's ``step`` count is one per tensor, not per weight, so
   it is left alone: a zeroed position's next update is bias-corrected with the tensor's count.
   Whatever a removed weight's state holds, the trainer multiplies the weight
   back to 0 after every optimizer step, so it cannot come back until the weight is regrown (and
   under ``zero`` its state is reset then).

Where the update sits in an iteration (:data:`UPDATE_ORDERS`, see :func:`resolve_order`):
``before_step`` runs it between ``backward`` and ``optimizer.step`` (the paper's order for MEST,
SNIP, Sensitivity and ReciprocalSensitivity); ``after_step`` runs it after the step and the mask
(the paper's order for magnitude, SET and Random); ``paper`` picks per criterion. Either way the
scores see this minibatch's gradient. Random draws come from generators seeded by (trial seed,
step, layer), so an update is a pure function of the state and a resumed run repeats it exactly.
"""

from __future__ import annotations

import contextlib
import math
import time
from dataclasses import dataclass, field
from typing import Any, Mapping

import torch
from torch import Tensor

from .config import GROWN_MOMENTUM, SCOPES, UPDATE_ORDERS
from .criteria import CRITERIA, check_params, prune_active
from .errors import ConfigError, ContractError, Diverged
from .growth import GROWTH, grow_indices
from .masks import MaskSet, indices_to_mask
from .schedules import DropSchedule, UpdateSchedule

__all__ = ["GROWN_MOMENTUM", "SCOPES", "TopologyUpdater", "UPDATE_ORDERS", "UpdateStats", "derive_generator",
           "drop_and_grow", "n_drop", "plan_update", "resolve_order", "select_removals"]


def resolve_order(order: str, criterion: str) -> str:
    """``before_step`` or ``after_step``: where ``criterion``'s update runs under ``order``."""
    if order not in UPDATE_ORDERS:
        raise ConfigError(f"update_order: got {order!r}; expected one of {', '.join(UPDATE_ORDERS)}")
    return CRITERIA.get(criterion).paper_order if order == "paper" else order


def n_drop(active: int, drop_fraction: float) -> int:
    """Removal count ``ceil(p * active)``; rounding noise (0.3 * 10 = 3.0000000000000004) is ignored."""
    return min(active, math.ceil(round(drop_fraction * active, 6)))


def derive_generator(seed: int, step: int, index: int, device: torch.device | str = "cpu") -> torch.Generator:
    """A generator for one draw, seeded by (trial seed, step, layer index): no RNG state to carry."""
    mixed = (seed * 0x9E3779B97F4A7C15 + step * 0xBF58476D1CE4E5B9 + (index + 1) * 0x94D049BB133111EB)
    return torch.Generator(device=device).manual_seed(mixed % (2**63))


def select_removals(weights: Mapping[str, Tensor], grads: Mapping[str, Tensor], masks: Mapping[str, Tensor],
                    drop_fraction: float, criterion: str, scope: str, seed: int, step: int,
                    params: Mapping[str, Any]) -> dict[str, Tensor]:
    """Step 1 of the rule: per layer, the flat indices of the weights ``criterion`` removes."""
    names = list(weights)
    needs_grad = CRITERIA.get(criterion).needs_grad
    active = {n: masks[n].reshape(-1).nonzero().squeeze(1) for n in names}
    w = {n: weights[n].reshape(-1)[active[n]] for n in names}
    g = {n: grads[n].reshape(-1)[active[n]] if needs_grad else None for n in names}
    if scope == "local":
        out = {}
        for i, n in enumerate(names):
            with _naming(f"layer {n}, step {step}"):
                out[n] = active[n][prune_active(criterion, w[n], g[n], n_drop(active[n].numel(), drop_fraction),
                                                derive_generator(seed, step, i, w[n].device), **params)]
        return out
    all_w = torch.cat([w[n] for n in names])
    all_g = torch.cat([g[n] for n in names]) if needs_grad else None
    k = n_drop(all_w.numel(), drop_fraction)
    with _naming(f"all {len(names)} layers at once (global scope), step {step}"):
        chosen = prune_active(criterion, all_w, all_g, k, derive_generator(seed, step, -1, all_w.device), **params)
    removed, start = {}, 0
    for n in names:
        end = start + w[n].numel()
        removed[n] = active[n][chosen[(chosen >= start) & (chosen < end)] - start]
        start = end
    return removed


@contextlib.contextmanager
def _naming(where: str):
    """A component's broken contract or a divergence it met, told with where it was called (layer, step)."""
    try:
        yield
    except (ContractError, Diverged) as e:
        raise type(e)(f"{e} ({where})") from None


def plan_update(weights: Mapping[str, Tensor], grads: Mapping[str, Tensor], masks: Mapping[str, Tensor],
                drop_fraction: float, *, criterion: str, growth: str, scope: str = "local", seed: int = 0,
                step: int = 0, criterion_params: Mapping[str, Any] | None = None
                ) -> dict[str, tuple[Tensor, Tensor, Tensor]]:
    """Drop and grow without touching the inputs: per layer ``(new_mask, removed, grown)``.

    ``removed`` and ``grown`` are flat indices; a position can be in both (removed, then regrown).
    ``grads`` may be empty when neither rule needs gradients.
    """
    removed = select_removals(weights, grads, masks, drop_fraction, criterion, scope, seed, step,
                              dict(criterion_params or {}))
    plan = {}
    for i, name in enumerate(weights):
        new = masks[name].clone()
        new.view(-1)[removed[name]] = False
        gen = derive_generator(seed, step, len(weights) + i, new.device)
        with _naming(f"layer {name}, step {step}"):
            grown = grow_indices(growth, weights[name], grads.get(name), new, removed[name].numel(), gen)
        new.view(-1)[grown] = True
        plan[name] = (new, removed[name], grown)
    return plan


def drop_and_grow(weights: Mapping[str, Tensor], grads: Mapping[str, Tensor], masks: Mapping[str, Tensor],
                  drop_fraction: float, **kwargs: Any) -> tuple[dict[str, Tensor], dict[str, Tensor]]:
    """Pure drop-and-grow: ``(new_masks, removed)`` as boolean tensors per layer.

    The survivors are ``masks & ~removed``; every other position of ``new_masks`` was grown.
    Keyword arguments as for :func:`plan_update`.
    """
    plan = plan_update(weights, grads, masks, drop_fraction, **kwargs)
    return ({n: new for n, (new, _, _) in plan.items()},
            {n: indices_to_mask(removed, masks[n].shape) for n, (_, removed, _) in plan.items()})


@dataclass
class UpdateStats:
    step: int  # optimizer steps taken before the update
    drop_fraction: float
    n_removed: dict[str, int]  # per layer; as many were grown there
    seconds: float

    @property
    def total_removed(self) -> int:
        return sum(self.n_removed.values())


@dataclass
class TopologyUpdater:
    """Runs :func:`plan_update` on a model's weights at the scheduled steps (module docstring).

    ``params`` are the sparsified parameters by name, ``masks`` their :class:`MaskSet`. With
    ``grown_momentum="zero"`` the ``optimizer``'s per-parameter state tensors of the weight's shape
    (SGD's ``momentum_buffer``; Adam's ``exp_avg``, ``exp_avg_sq``, ``max_exp_avg_sq``) are reset at
    newly grown positions; nothing else of the optimizer is touched.
    """

    params: Mapping[str, torch.nn.Parameter]
    masks: MaskSet
    optimizer: torch.optim.Optimizer
    criterion: str
    growth: str
    drop_schedule: DropSchedule
    update_schedule: UpdateSchedule
    scope: str = "local"
    seed: int = 0
    criterion_params: Mapping[str, Any] = field(default_factory=dict)
    grown_momentum: str = "keep"
    n_updates: int = 0  # updates done so far (state)

    def __post_init__(self):
        self.criterion = CRITERIA.canonical(self.criterion)
        self.growth = GROWTH.canonical(self.growth)
        if self.scope not in SCOPES:
            raise ConfigError(f"scope: got {self.scope!r}; expected one of {', '.join(SCOPES)}")
        self.criterion_params = check_params(self.criterion, dict(self.criterion_params))
        if self.grown_momentum not in GROWN_MOMENTUM:
            raise ConfigError(f"grown_momentum: got {self.grown_momentum!r}; "
                              f"expected one of {', '.join(GROWN_MOMENTUM)}")

    @property
    def needs_grad(self) -> bool:
        return CRITERIA.get(self.criterion).needs_grad or GROWTH.get(self.growth).needs_grad

    def maybe_update(self, step: int) -> UpdateStats | None:
        return self.update(step) if self.update_schedule(step) else None

    @torch.no_grad()
    def update(self, step: int) -> UpdateStats:
        start = time.perf_counter()
        p = self.drop_schedule(step)
        weights = {n: w.detach() for n, w in self.params.items()}
        grads = {n: w.grad for n, w in self.params.items() if w.grad is not None}
        if self.needs_grad and len(grads) != len(weights):
            raise RuntimeError(f"{self.criterion}/{self.growth} need gradients; call backward() first")
        plan = plan_update(weights, grads, self.masks.masks, p, criterion=self.criterion, growth=self.growth,
                           scope=self.scope, seed=self.seed, step=step, criterion_params=self.criterion_params)
        for name, w in self.params.items():
            new, removed, grown = plan[name]
            old = self.masks[name].view(-1)
            w.mul_(new.view(torch.uint8))  # the one mask application: only removed-and-not-regrown weights change
            if self.grown_momentum == "zero":
                fresh = grown[~old[grown]]  # newly grown; a removed-and-regrown weight keeps its state
                for value in self.optimizer.state.get(w, {}).values():
                    if isinstance(value, Tensor) and value.shape == w.shape:
                        value.view(-1)[fresh] = 0
            self.masks.set(name, new)
        self.n_updates += 1
        if any(w.is_cuda for w in weights.values()):
            torch.cuda.synchronize()
        n_removed = {n: removed.numel() for n, (_, removed, _) in plan.items()}
        return UpdateStats(step, p, n_removed, time.perf_counter() - start)

    def state_dict(self) -> dict[str, Any]:
        return {"n_updates": self.n_updates, "masks": self.masks.state_dict()}

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        self.n_updates = int(state.get("n_updates", 0))
        self.masks.load_state_dict(state["masks"])
