"""DST in any training loop: :func:`attach` masks a model's weights and updates their topology.

::

    sparse = attach(model, optimizer, total_steps=steps, density=0.1, criterion="snip", growth="gradient")
    for x, y in batches:
        optimizer.zero_grad()
        loss_fn(model(x), y).backward()
        optimizer.step()  # hooks: a before_step update first, the masks re-applied after
        sparse.step()     # counts the step; an after_step update here

The settings are :class:`~dst_core.config.TrainConfig`'s fields of the same names and defaults
(:data:`~dst_core.config.SPARSITY_FIELDS`), and ``total_steps`` the optimizer steps of the run (the
schedules' :math:`T`). What must happen inside an optimizer step happens in hooks on the optimizer
(``register_step_pre_hook`` / ``register_step_post_hook``): an update of ``update_order``
``before_step`` runs just before the step, on this minibatch's gradients, and the masks are
multiplied back after it, so masked weights are exactly 0 after every step whatever the optimizer
does. :meth:`SparseTraining.step` then counts the step and runs an ``after_step`` update. The
trainer runs its iterations with this same object, so a loop like the one above, with the
trainer's seeding, data order and optimizer, ends with bit-identical weights and masks.

A closure (``optimizer.step(closure)``: PyTorch Lightning's automatic optimization, L-BFGS) computes
the step's loss and gradients inside the step, after the pre-step hook: a ``before_step`` update then
runs when the closure has returned for the first time, on the gradients it computed, before the
optimizer uses them (L-BFGS calls the closure again at points along its search; those calls are not
scored). An optimizer that never calls its closure gets its update after the step, as ``after_step``.

Mixed precision: ``scaler.step(optimizer)`` unscales the gradients before it calls
``optimizer.step()``, so both orders score unscaled gradients; call ``sparse.step()`` after it. A
step the scaler skips (inf gradients) never reaches the hooks and is not counted. A fused optimizer
(``fused=True``) unscales inside its step: under it a ``before_step`` update that reads gradients
needs ``scaler.unscale_(optimizer)`` before ``scaler.step(optimizer)``, and says so if it is missing.
"""

from __future__ import annotations

import math
import warnings
from typing import Any, Mapping

import torch
from torch import nn

from .config import SPARSITY_FIELDS, TrainConfig
from .density import layer_counts
from .errors import ConfigError, DstError, DstWarning
from .masks import MaskSet, ParamChoice, choose_params
from .registry import did_you_mean
from .schedules import UpdateSchedule, drop_schedule
from .topology import TopologyUpdater, UpdateStats, derive_generator, resolve_order

__all__ = ["SparseTraining", "active_counts", "attach", "check_counts", "describe_choices", "describe_config",
           "never_updates"]

_MASK_INIT = -2  # derive_generator stream of the first masks (the trainer's data streams are -3 to -6)


def attach(model: nn.Module, optimizer: torch.optim.Optimizer, *, total_steps: int,
           **settings: Any) -> SparseTraining:
    """Sparse training of ``model``'s Linear and Conv weights under ``optimizer`` (module docstring).

    ``settings``: any of density, init, erk_power, static, criterion, criterion_params, growth,
    schedule, drop_fraction, eta_min, update_period, stop_fraction, scope, update_order,
    grown_momentum, seed, with :class:`~dst_core.config.TrainConfig`'s defaults and checks. Attach
    after the model is on its device; the first masks are applied at once.
    """
    for key in settings:
        if key not in SPARSITY_FIELDS:
            raise ConfigError(f"attach: unknown setting {key!r}{did_you_mean(key, SPARSITY_FIELDS)} "
                              f"(settings: {', '.join(sorted(SPARSITY_FIELDS))})")
    config = TrainConfig(**settings)
    sparse = SparseTraining(model, optimizer, config, total_steps)
    reason = config.kind == "dst" and never_updates(config, total_steps)
    if reason:
        warnings.warn(reason, DstWarning, stacklevel=2)
    return sparse


def never_updates(config: TrainConfig, total_steps: int, steps_text: str = "") -> str | None:
    """Why a DST run of ``config`` over ``total_steps`` optimizer steps would never change its mask, or None."""
    stop = math.floor(config.stop_fraction * total_steps)
    if config.update_period >= stop:
        return (f"update_period {config.update_period} >= the {stop} steps in which updates may happen "
                f"({steps_text or f'{total_steps} steps'}, stop_fraction {config.stop_fraction:g}): no topology "
                "update will happen, the run is static")
    if config.drop_fraction == 0 and (config.schedule == "constant" or config.eta_min == 0):
        return "drop_fraction 0: every topology update removes nothing, the run is static"
    return None


def active_counts(choices: list[ParamChoice], config: TrainConfig) -> dict[str, int]:
    """Active weights per sparsified tensor under ``config``'s density and init, checked to leave
    every one of them a weight (:func:`check_counts`)."""
    shapes = {c.name: c.shape for c in choices if c.sparse}
    counts = layer_counts(shapes, config.density, config.init, config.erk_power)
    check_counts(counts, shapes, config)
    return counts


def describe_config(config: TrainConfig) -> str:
    """:func:`describe_choices` of the model a run of ``config`` builds, before anything trains (the
    model is built on the CPU from its data set's declared shape): what ``validate --show-sparsity``
    prints, and a density too low for the model is refused here as it would be at every trial."""
    from .data import DATASETS
    from .models import build_model

    meta = DATASETS.get(config.dataset).meta
    choices = choose_params(build_model(config.model, meta["input_shape"], meta["num_classes"]),
                            config.sparsify_also, config.keep_dense)
    return describe_choices(choices, active_counts(choices, config) if any(c.sparse for c in choices) else None)


def describe_choices(choices: list[ParamChoice], active: Mapping[str, int] | None = None) -> str:
    """Lines naming each sparsified parameter (shape, density when ``active`` counts are given, the rule
    that chose it) and each parameter left dense by a rule (frozen, ``keep_dense``); the others left
    dense (biases, norms, embeddings) are counted on one line."""
    sparse = [c for c in choices if c.sparse]
    total, n_sparse = sum(c.size for c in choices), sum(c.size for c in sparse)
    width = max((len(c.name) for c in choices), default=0)
    head = f"sparsified: {len(sparse)} of {len(choices)} parameter tensors, {n_sparse:,} of {total:,} weights"
    if active is not None and n_sparse:
        kept = sum(active.values())
        head += (f"; density {kept / n_sparse:.4f} over them, {(kept + total - n_sparse) / total:.4f} over all "
                 "weights")
    lines = [head]
    for c in sparse:
        density = f"  density {active[c.name] / c.size:.4f}" if active is not None else ""
        tied = f"  (also {', '.join(c.also)}: one tensor, one mask)" if c.also else ""
        lines.append(f"  {c.name:<{width}}  {str(c.shape):<14}{density}  {c.why}{tied}")
    ruled = [c for c in choices if not c.sparse and not c.why.startswith("not a ")]
    if ruled:
        lines.append("left dense by a rule:")
        lines += [f"  {c.name:<{width}}  {str(c.shape):<14}  {c.why}" for c in ruled]
    rest = [c for c in choices if not c.sparse and c.why.startswith("not a ")]
    if rest:
        lines.append(f"left dense: {len(rest)} other parameter tensors ({sum(c.size for c in rest):,} weights: "
                     "biases, norms, embeddings, ...)")
    return "\n".join(lines)


def check_counts(counts: Mapping[str, int], shapes: Mapping[str, tuple[int, ...]], cfg: TrainConfig) -> None:
    """A layer without a single active weight cuts the network: refuse the density up front."""
    empty = [n for n, c in counts.items() if c == 0]
    if not empty:
        return
    low, high = cfg.density, 1.0  # the lowest density that leaves every layer a weight, by bisection
    for _ in range(40):
        mid = (low + high) / 2
        if all(layer_counts(shapes, mid, cfg.init, cfg.erk_power).values()):
            high = mid
        else:
            low = mid
    raise ConfigError(f"density: got {cfg.density:g}; under {cfg.init} layer {empty[0]} {shapes[empty[0]]} would "
                      f"get no active weight ({len(empty)} layer{'s' if len(empty) > 1 else ''} in all); expected "
                      f"at least {high:.3g} for this model")


def _skips(optimizer: torch.optim.Optimizer) -> bool:
    """Whether a fused optimizer under a GradScaler is called on inf gradients, and so skips itself."""
    found_inf = getattr(optimizer, "found_inf", None)
    return found_inf is not None and bool(found_inf)


class SparseTraining:
    """The masks of a model's sparsified weights, kept through its optimizer's steps, and their updater.

    ``masks`` is the :class:`~dst_core.masks.MaskSet`, ``updater`` the
    :class:`~dst_core.topology.TopologyUpdater` (None for static and dense settings), ``steps`` the
    optimizer steps counted so far. Made by :func:`attach` or, from a checked config, by the trainer.
    """

    def __init__(self, model: nn.Module, optimizer: torch.optim.Optimizer, config: TrainConfig, total_steps: int):
        if isinstance(total_steps, bool) or not isinstance(total_steps, int) or total_steps < 1:
            raise ConfigError(f"total_steps: got {total_steps!r}; expected the run's optimizer steps, an integer >= 1")
        self.choices = choose_params(model, config.sparsify_also, config.keep_dense)
        named = dict(model.named_parameters())
        self.params = {c.name: named[c.name] for c in self.choices if c.sparse}
        if not self.params:
            raise ConfigError(f"attach: {type(model).__name__} has no parameter to sparsify (Linear, Conv and "
                              "attention weights are, unless frozen or kept dense; sparsify_also adds others)")
        frozen = [c.name for c in self.choices if c.why.startswith("frozen")]
        if frozen:  # said, not refused: fine-tuning part of a network is common
            warnings.warn(f"{len(frozen)} frozen parameter tensor{'s' * (len(frozen) > 1)} left dense (requires_grad="
                          f"False: nothing would regrow them): {', '.join(frozen[:5])}{', ...' * (len(frozen) > 5)}",
                          DstWarning, stacklevel=3)
        counts = active_counts(self.choices, config)
        device = next(iter(self.params.values())).device
        self.masks = MaskSet.from_counts(self.params, counts, derive_generator(config.seed, 0, _MASK_INIT, device))
        self.masks.apply_(self.params)
        self.updater: TopologyUpdater | None = None
        if config.kind == "dst":
            self.updater = TopologyUpdater(
                self.params, self.masks, optimizer, config.criterion, config.growth,
                drop_schedule(config.schedule, config.drop_fraction, total_steps, config.eta_min),
                UpdateSchedule(config.update_period, math.floor(config.stop_fraction * total_steps)),
                config.scope, config.seed, config.criterion_params, config.grown_momentum)
        self.update_order = resolve_order(config.update_order, config.criterion)
        self.steps = 0  # optimizer steps counted by step()
        self._stepped = False  # the optimizer stepped since the last step()
        self._stats: UpdateStats | None = None  # the update of this iteration, if any
        self._closure_pending = False  # a before_step update waits for step(closure)'s first call
        self._hooks = [optimizer.register_step_pre_hook(self._before_step),
                       optimizer.register_step_post_hook(self._after_step)]

    def density_all(self) -> float:
        """Active weights over all of the model's parameters, a dense parameter counting as active (each
        shared tensor once): what the sparsified ones' density means for the whole model."""
        total = sum(c.size for c in self.choices)
        dense = sum(c.size for c in self.choices if not c.sparse)
        return (sum(self.masks.n_active().values()) + dense) / total

    def describe(self) -> str:
        """What is sparsified (parameter, shape, density, the rule) and what is left dense, as lines."""
        return describe_choices(self.choices, self.masks.n_active())

    def step(self) -> UpdateStats | None:
        """Call once after each ``optimizer.step()``: counts it and runs a due ``after_step`` update.

        Returns the statistics of the update this iteration made (before or after the optimizer
        step), or None. Without an optimizer step since the last call (a GradScaler skipped it) it
        does nothing.
        """
        if not self._stepped:
            return None
        self._stepped = False
        self.steps += 1
        if self.update_order == "after_step":
            self._maybe_update()
        stats, self._stats = self._stats, None
        return stats

    def _maybe_update(self) -> None:
        if self.updater is not None:
            self._stats = self.updater.maybe_update(self.steps)

    def _before_step(self, optimizer: torch.optim.Optimizer, args: Any, kwargs: Any) -> tuple | None:
        moved = next((n for n, p in self.params.items() if p.device != self.masks.masks[n].device), None)
        if moved is not None:  # model.to(...) after attach moves the weights, not the masks
            raise DstError(f"attach: weight {moved} is on {self.params[moved].device} but its mask on "
                           f"{self.masks.masks[moved].device}: the model moved after attach; move the model "
                           "to its device first, then attach")
        if self._stepped:
            raise DstError("attach: optimizer.step() ran again without sparse.step() after the last one; call "
                           "sparse.step() once after every optimizer step")
        if self.update_order != "before_step" or _skips(optimizer):
            return None
        if getattr(optimizer, "grad_scale", None) is not None and self.updater and self.updater.needs_grad:
            raise DstError(f"attach: {type(optimizer).__name__} unscales the gradients inside its step (fused), "
                           f"after {self.updater.criterion}/{self.updater.growth} would score them; call "
                           "scaler.unscale_(optimizer) before scaler.step(optimizer)")
        closure = kwargs.get("closure", args[1] if len(args) > 1 else None)  # args: (optimizer, closure?)
        if closure is None:
            self._maybe_update()
            return None
        # step(closure) (Lightning's automatic optimization, L-BFGS) computes this step's gradients inside
        # the step, after this hook: the update runs once the closure has first run, on its gradients
        self._closure_pending = True

        def closure_then_update():
            loss = closure()
            if self._closure_pending:
                self._closure_pending = False
                self._maybe_update()
            return loss

        if "closure" in kwargs:
            return args, {**kwargs, "closure": closure_then_update}
        return (args[0], closure_then_update, *args[2:]), kwargs

    def _after_step(self, optimizer: torch.optim.Optimizer, args: Any, kwargs: Any) -> None:
        if self._closure_pending:  # an optimizer that never called its closure: the gradients it stepped on
            self._closure_pending = False
            self._maybe_update()
        if not _skips(optimizer):
            self.masks.apply_(self.params)
            self._stepped = True

    def detach(self) -> None:
        """Remove the optimizer hooks: its steps no longer re-apply the masks nor update them."""
        for handle in self._hooks:
            handle.remove()
        self._hooks = []

    def state_dict(self) -> dict[str, Any]:
        """The step count, updates done and masks (with the ever-active record): save it with the
        model's and the optimizer's, after ``step()``."""
        return {"step": self.steps, "n_updates": self.updater.n_updates if self.updater else 0,
                "masks": self.masks.state_dict()}

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        self.steps = int(state["step"])
        self.masks.load_state_dict(state["masks"])
        if self.updater is not None:
            self.updater.n_updates = int(state.get("n_updates", 0))
        self._stepped, self._stats = False, None
