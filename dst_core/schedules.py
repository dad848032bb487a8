r"""Drop-fraction schedules and the update period: pure functions of the optimizer step.

With initial drop fraction :math:`p_0`, final value :math:`\eta_{min}` (0.005 in the paper) and
``total_steps`` :math:`T` (all optimizer steps of the run):

* ``constant``: :math:`p_t = p_0`.
* ``cosine`` (cosine annealing): :math:`p_t = \eta_{min} + (p_0 - \eta_{min}) (1 + \cos(\pi t / T)) / 2`.
* ``linear``: :math:`p_t = p_0 + (\eta_{min} - p_0) \, t / T`.
* ``linear_paper_code``: :math:`p_t = p_0 \cdot 0.99^{\lfloor t / 600 \rfloor}`, what the paper's code
  runs under the name "linear" (its ``LinearDecay``); ``eta_min`` and ``T`` play no part.

Topology updates happen at steps :math:`t = \Delta T, 2\Delta T, \dots` (``update_period``
:math:`\Delta T`, counted in optimizer steps already taken) while :math:`t < f_{stop} T`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from .errors import ConfigError
from .registry import Meta, Registry

__all__ = ["DropSchedule", "SCHEDULES", "UpdateSchedule", "drop_schedule"]

SCHEDULES: Registry[type] = Registry(
    "schedule", Meta(required={"description": str}), arity=3,
    signature="a DropSchedule subclass: Schedule(initial, total_steps, eta_min)(step) -> float")


@dataclass(frozen=True)
class DropSchedule:
    initial: float  # p_0
    total_steps: int  # T
    eta_min: float = 0.005  # the value reached at T (cosine, linear)

    def __post_init__(self):
        if not 0 <= self.initial <= 1:
            raise ConfigError(f"drop_fraction: got {self.initial!r}; expected a float in [0, 1]")
        if not 0 <= self.eta_min <= 1:
            raise ConfigError(f"eta_min: got {self.eta_min!r}; expected a float in [0, 1]")
        if self.total_steps < 1:
            raise ConfigError(f"total_steps: got {self.total_steps!r}; expected >= 1")

    def progress(self, step: int) -> float:
        return min(max(step / self.total_steps, 0.0), 1.0)

    def __call__(self, step: int) -> float:
        raise NotImplementedError


@SCHEDULES.register("constant", description="p_t = p_0")
@dataclass(frozen=True)
class Constant(DropSchedule):
    def __call__(self, step: int) -> float:
        return self.initial


@SCHEDULES.register("cosine", description="cosine annealing from p_0 to eta_min over training")
@dataclass(frozen=True)
class Cosine(DropSchedule):
    def __call__(self, step: int) -> float:
        cos = math.cos(math.pi * self.progress(step))
        return self.eta_min + (self.initial - self.eta_min) * (1 + cos) / 2


@SCHEDULES.register("linear", description="linear from p_0 to eta_min over training")
@dataclass(frozen=True)
class Linear(DropSchedule):
    def __call__(self, step: int) -> float:
        return self.initial + (self.eta_min - self.initial) * self.progress(step)


@SCHEDULES.register("linear_paper_code", description="p_0 x 0.99 every 600 steps (the paper code's 'linear')")
@dataclass(frozen=True)
class LinearPaperCode(DropSchedule):
    def __call__(self, step: int) -> float:
        return self.initial * 0.99 ** (max(step, 0) // 600)


def drop_schedule(name: str, initial: float, total_steps: int, eta_min: float = 0.005) -> DropSchedule:
    return SCHEDULES.get(name).obj(initial, total_steps, eta_min)


@dataclass(frozen=True)
class UpdateSchedule:
    period: int  # Delta T, optimizer steps between topology updates
    stop_step: int  # no update at or after this step

    def __post_init__(self):
        if self.period < 1:
            raise ConfigError(f"update_period: got {self.period!r}; expected an integer >= 1")

    def __call__(self, step: int) -> bool:
        """True when a topology update happens after ``step`` optimizer steps."""
        return 0 < step < self.stop_step and step % self.period == 0
