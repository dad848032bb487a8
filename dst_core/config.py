"""The configuration of one training run: a frozen dataclass, checked when it is built.

``TrainConfig.from_dict`` rejects unknown keys (with a did-you-mean) and every check raises
:class:`~dst_core.errors.ConfigError` naming the field, the value and what is valid. Defaults are
the paper's optimiser settings; ``update_period`` defaults to 100 steps because MNIST-1D epochs
are short (the paper used 800 on CIFAR-10).
"""

from __future__ import annotations

import dataclasses
import math
import re
from dataclasses import dataclass, field
from typing import Any, Mapping

from .errors import ConfigError
from .registry import Registry, did_you_mean

__all__ = ["ADDED_FIELDS", "ALGORITHM_REVISION", "GROWN_MOMENTUM", "KINDS", "OPTIMIZERS", "RUN_ONLY_FIELDS",
           "SCOPES", "SPARSITY_FIELDS", "TrainConfig", "UNUSED_BY_KIND", "UNUSED_BY_OPTIMIZER", "UPDATE_ORDERS"]

# The choices of the fields that no registry holds (see dst_core.topology for their meaning)
SCOPES = ("global", "local")
UPDATE_ORDERS = ("paper", "before_step", "after_step")
GROWN_MOMENTUM = ("keep", "zero")
# torch.optim.SGD (the paper's), Adam (weight decay as L2, added to the gradient) and AdamW (decoupled)
OPTIMIZERS = ("sgd", "adam", "adamw")

# What a given config computes. Bump it when a fix changes the results of an existing config, so
# results of different revisions are never pooled unawares (every result row and checkpoint records
# it). 1: the first release. 2: a weight removed and regrown in one update keeps its value, and the
# rest of the fidelity fixes (update order, grown momentum, validation split; docs/fidelity.md).
ALGORITHM_REVISION = 2

# Fields that choose where or how fast a run happens, or what is observed, not what it computes:
# they are left out of a run's identity, so a checkpoint written on one device resumes on another.
RUN_ONLY_FIELDS = ("data_root", "device", "eval_batch_size", "jaccard_every", "num_workers")

# What a run is: dynamic sparse training, the static sparse baseline (its first mask kept to the
# end, the paper's fix=True) or the dense baseline (density 1). A baseline's identity leaves out
# the fields it never reads, so crossing it with a DST grid yields each baseline trial once.
KINDS = ("dst", "static", "dense")
_TOPOLOGY_FIELDS = ("criterion", "criterion_params", "growth", "schedule", "drop_fraction", "eta_min",
                    "update_period", "stop_fraction", "scope", "update_order", "grown_momentum")
# What dst_core.attach takes: the fields that shape masks and updates, not the data, model or optimizer
_CHOICE_FIELDS = ("sparsify_also", "keep_dense")  # which parameters are sparsified (dst_core.masks.choose_params)
SPARSITY_FIELDS = ("density", "init", "erk_power", "static", "seed") + _CHOICE_FIELDS + _TOPOLOGY_FIELDS
UNUSED_BY_KIND = {"dst": (), "static": _TOPOLOGY_FIELDS,
                  "dense": _TOPOLOGY_FIELDS + _CHOICE_FIELDS + ("init", "erk_power", "static")}
# Every kind trains with its optimizer, which reads only its own hyper-parameters: the others stay
# out of the identity, so an Adam trial's id does not depend on the (unread) SGD momentum.
UNUSED_BY_OPTIMIZER = {"sgd": ("betas", "eps"), "adam": ("momentum", "nesterov"), "adamw": ("momentum", "nesterov")}

# Fields added after trial ids were first given out, each with the value that reproduces what
# versions without it computed: left out of a run's identity while they hold that value, so adding
# a field never changes the ids (and so never re-runs the trials) of studies that began before it.
ADDED_FIELDS: dict[str, Any] = {"static": False, "optimizer": "sgd", "betas": (0.9, 0.999), "eps": 1e-8,
                                "sparsify_also": (), "keep_dense": ()}


def _field(help: str, default: Any = None, *, factory: Any = None) -> Any:
    """A config field with its help text (shown by ``dst-study train --help``) next to it."""
    if factory is not None:
        return field(default_factory=factory, metadata={"help": help})
    return field(default=default, metadata={"help": help})


@dataclass(frozen=True)
class TrainConfig:
    # data and model
    dataset: str = _field("registered dataset", "mnist1d")
    model: str = _field("registered model; empty = the dataset's default model", "")
    data_root: str | None = _field("folder holding file-based datasets (CIFAR, Fashion-MNIST, Higgs)")
    val_fraction: float = _field("fraction of the training set held out for validation: its last images in "
                                 "stored order (the paper's 0.1: CIFAR trains on the first 45,000)", 0.1)
    # sparsity
    density: float = _field("fraction of active weights over all sparsified tensors, in (0, 1]", 0.1)
    init: str = _field("layer-wise density distribution", "erk")
    erk_power: float = _field("power applied to the raw ER/ERK ratio", 1.0)
    criterion: str = _field("pruning criterion", "magnitude")
    criterion_params: Mapping[str, Any] = _field("criterion hyper-parameters, e.g. gamma for mest", factory=dict)
    growth: str = _field("growth rule", "random")
    schedule: str = _field("drop-fraction schedule", "cosine")
    drop_fraction: float = _field("initial drop fraction p_0", 0.5)
    eta_min: float = _field("final drop fraction of the cosine and linear schedules", 0.005)
    update_period: int = _field("optimizer steps between topology updates (the paper: 800 on CIFAR-10)", 100)
    stop_fraction: float = _field("no topology update after this fraction of training", 1.0)
    scope: str = _field("local (layer-wise) or global pruning", "local")
    static: bool = _field("the static sparse baseline: the first mask is kept to the end (no topology update)", False)
    update_order: str = _field("where the topology update runs: before_step (update, step, mask), after_step "
                               "(step, mask, update) or paper (after_step for magnitude, set, random; "
                               "before_step for the rest, as the paper's code)", "paper")
    grown_momentum: str = _field("optimizer state of a newly grown weight: keep what it gathered while inactive "
                                 "(the paper's code) or zero (RigL): SGD's momentum, Adam's two moments", "keep")
    # optimisation (the paper's defaults)
    epochs: int = _field("training epochs", 20)
    batch_size: int = _field("minibatch size", 128)
    optimizer: str = _field("sgd (the paper's), adam or adamw", "sgd")
    lr: float = _field("learning rate", 0.01)
    momentum: float = _field("SGD momentum (sgd only)", 0.9)
    nesterov: bool = _field("Nesterov momentum (sgd only)", True)
    betas: tuple[float, ...] = _field("Adam's moment decay rates beta1 beta2 (adam, adamw)", (0.9, 0.999))
    eps: float = _field("Adam's denominator term, > 0 (adam, adamw)", 1e-8)
    weight_decay: float = _field("weight decay: L2 added to the gradient (sgd, adam), decoupled (adamw)", 5e-4)
    lr_milestones: tuple[float, ...] = _field("fractions of the epochs at which lr *= lr_gamma", (0.5, 0.75))
    lr_gamma: float = _field("learning-rate decay factor at each milestone", 0.1)
    seed: int = _field("seed of initialisation, masks, data order and every random draw", 0)
    # execution
    device: str = _field("auto (CUDA when visible), cpu, cuda or cuda:N", "auto")
    eval_batch_size: int = _field("batch size of evaluation", 1024)
    jaccard_every: int = _field("every N epochs, record the Jaccard overlap of what each criterion would "
                                "remove from the current state (0 = never)", 0)
    num_workers: int = _field("DataLoader worker processes reading a data set given as torch Datasets (0: "
                              "the training process reads); data sets in memory ignore it", 0)
    # added last, so the columns of the trials table keep their order
    sparsify_also: tuple[str, ...] = _field("parameters to sparsify besides Linear, Conv and attention weights: "
                                            "globs over parameter names or <module class>.<attribute> "
                                            "(e.g. Embedding.weight)", ())
    keep_dense: tuple[str, ...] = _field("parameters left dense, as globs like sparsify_also's (e.g. 'head.*'); "
                                         "they win over every other rule", ())

    def __post_init__(self):
        # The registries load torch: imported here, so reading the fields and ids of configs does not
        from .criteria import CRITERIA, check_params
        from .data import DATASETS
        from .density import DENSITY, check_density
        from .growth import GROWTH
        from .models import MODELS
        from .schedules import SCHEDULES

        canon = lambda reg, key: object.__setattr__(self, key, _name(reg, key, getattr(self, key)))  # noqa: E731
        for reg, key in ((DATASETS, "dataset"), (DENSITY, "init"), (CRITERIA, "criterion"),
                         (GROWTH, "growth"), (SCHEDULES, "schedule")):
            canon(reg, key)
        if self.model:
            canon(MODELS, "model")
        else:
            object.__setattr__(self, "model", DATASETS.get(self.dataset).default_model)
        object.__setattr__(self, "density", check_density(_number_text(self.density), "density"))
        object.__setattr__(self, "criterion_params",
                           check_params(self.criterion, dict(self.criterion_params), "criterion_params"))
        if not isinstance(self.lr_milestones, (list, tuple)):
            raise ConfigError(f"lr_milestones: got {_short(self.lr_milestones)}; "
                              "expected a list of fractions in (0, 1)")
        object.__setattr__(self, "lr_milestones", tuple(self.lr_milestones))
        for key in _CHOICE_FIELDS:
            value = getattr(self, key)
            value = [value] if isinstance(value, str) else value
            if not isinstance(value, (list, tuple)) or not all(isinstance(v, str) and v for v in value):
                raise ConfigError(f"{key}: got {_short(value)}; expected a list of patterns, e.g. ['head.*', "
                                  "'Embedding.weight']")
            object.__setattr__(self, key, tuple(value))
        if isinstance(self.optimizer, str):
            object.__setattr__(self, "optimizer", self.optimizer.lower())
        choices_of = {"scope": SCOPES, "update_order": UPDATE_ORDERS, "grown_momentum": GROWN_MOMENTUM,
                      "optimizer": OPTIMIZERS}
        for key, choices in choices_of.items():
            if getattr(self, key) not in choices:
                raise ConfigError(f"{key}: got {getattr(self, key)!r}; expected one of {', '.join(choices)}")
        _check(self, "val_fraction", float, 0, 1)
        if self.val_fraction == 1:
            raise ConfigError("val_fraction: got 1.0; expected a finite number >= 0 and < 1 (nothing would be left to "
                              "train on)")
        _check(self, "drop_fraction", float, 0, 1)
        _check(self, "eta_min", float, 0, 1)
        _check(self, "stop_fraction", float, 0, 1)
        _check(self, "erk_power", float, 0, None)
        _check(self, "update_period", int, 1, None)
        _check(self, "epochs", int, 1, None)
        _check(self, "batch_size", int, 1, None)
        _check(self, "eval_batch_size", int, 1, None)
        _check(self, "jaccard_every", int, 0, None)
        _check(self, "num_workers", int, 0, None)
        _check(self, "lr", float, 0, None, open_low=True)
        _check(self, "momentum", float, 0, 1)
        _check(self, "weight_decay", float, 0, None)
        _check(self, "eps", float, 0, None, open_low=True)  # 0 would divide 0 by 0 at a weight never trained
        betas = [_number_text(b) for b in self.betas] if isinstance(self.betas, (list, tuple)) else self.betas
        if not isinstance(betas, list) or len(betas) != 2 or not all(
                isinstance(b, (int, float)) and not isinstance(b, bool) and 0 <= b < 1 for b in betas):
            raise ConfigError(f"betas: got {_short(betas)}; expected two numbers in [0, 1), e.g. [0.9, 0.999]")
        object.__setattr__(self, "betas", tuple(float(b) for b in betas))
        _check(self, "lr_gamma", float, 0, None, open_low=True)
        _check(self, "seed", int, 0, 2**63 - 1)
        for key in ("static", "nesterov"):
            if not isinstance(getattr(self, key), bool):
                raise ConfigError(f"{key}: got {getattr(self, key)!r}; expected true or false")
        for m in self.lr_milestones:
            if isinstance(m, bool) or not isinstance(m, (int, float)) or not 0 < m < 1:
                raise ConfigError(f"lr_milestones: got {_short(self.lr_milestones)}; expected a list of fractions "
                                  "in (0, 1)")
        if not isinstance(self.device, str) or not re.fullmatch(r"auto|cpu|cuda(:\d+)?", self.device):
            raise ConfigError(f"device: got {_short(self.device)}; expected auto, cpu, cuda or cuda:N")

    @classmethod
    def from_dict(cls, values: Mapping[str, Any]) -> "TrainConfig":
        known = [f.name for f in dataclasses.fields(cls)]
        for key in values:
            if key not in known:
                raise ConfigError(f"unknown config key {key!r}{did_you_mean(key, known)} "
                                  f"(valid keys: {', '.join(sorted(known))})")
        return cls(**values)

    def to_dict(self) -> dict[str, Any]:
        d = dataclasses.asdict(self)
        d["criterion_params"] = dict(self.criterion_params)
        d["lr_milestones"] = list(self.lr_milestones)
        d["betas"] = list(self.betas)
        for key in _CHOICE_FIELDS:
            d[key] = list(getattr(self, key))
        return d

    def identity(self) -> dict[str, Any]:
        """What determines the result: every field except :data:`RUN_ONLY_FIELDS`, those the run's
        kind or optimizer never reads (:data:`UNUSED_BY_KIND`, :data:`UNUSED_BY_OPTIMIZER`) and added
        fields at their old value (:data:`ADDED_FIELDS`)."""
        unused = set(RUN_ONLY_FIELDS) | self.unread
        return {k: v for k, v in self.to_dict().items()
                if k not in unused and not (k in ADDED_FIELDS and getattr(self, k) == ADDED_FIELDS[k])}

    @property
    def unread(self) -> set[str]:
        """The fields this config's run never reads: by its kind (a baseline's topology) and its optimizer."""
        return {*UNUSED_BY_KIND[self.kind], *UNUSED_BY_OPTIMIZER[self.optimizer]}

    @property
    def kind(self) -> str:
        """``dense`` (density 1), ``static`` or ``dst``: see :data:`KINDS`."""
        return "dense" if self.density == 1.0 else "static" if self.static else "dst"

    @property
    def is_dense(self) -> bool:
        return self.density == 1.0


def _short(value: Any) -> str:
    """``repr`` of a bad value, cut short: an error never echoes megabytes of input."""
    text = repr(value)
    return text if len(text) <= 80 else text[:80] + "…"


def _name(registry: Registry, key: str, value: Any) -> str:
    if not isinstance(value, str):
        raise ConfigError(f"{key}: got {value!r}; expected one of {', '.join(registry.names())}")
    try:
        return registry.canonical(value)
    except ConfigError as e:
        raise ConfigError(f"{key}: {e}") from None


_NUMBER = re.compile(r"[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?")


def _number_text(value: Any) -> Any:
    """YAML 1.1 reads 5e-2 (no dot) as a string: the number the user meant; anything else as it is."""
    return float(value) if isinstance(value, str) and _NUMBER.fullmatch(value.strip()) else value


def _check(cfg: TrainConfig, key: str, kind: type, low: float | None, high: float | None,
           open_low: bool = False) -> None:
    value = getattr(cfg, key)
    if kind is float:
        value = _number_text(value)
        object.__setattr__(cfg, key, value)
    ok_type = (isinstance(value, int) if kind is int else isinstance(value, (int, float))) \
        and not isinstance(value, bool) and math.isfinite(value)
    below = low is not None and ok_type and (value <= low if open_low else value < low)
    above = high is not None and ok_type and value > high
    if not ok_type or below or above:
        lo = "" if low is None else (f"> {low}" if open_low else f">= {low}")
        hi = "" if high is None else f"<= {high}"
        want = " and ".join(x for x in (lo, hi) if x)
        what = "an integer" if kind is int else "a finite number"
        raise ConfigError(f"{key}: got {_short(value)}; expected {what} {want}".rstrip())
    if kind is float:
        object.__setattr__(cfg, key, float(value))
