"""dst_core: an exact, checkpointable Dynamic Sparse Training (DST) library for PyTorch.

Glossary (one word per concept, used everywhere):

density        fraction of active (unmasked) weights over all sparsified tensors, in (0, 1]
n_active       number of active weights of a layer: ``n_active(size, density)``
mask           boolean tensor, True = active; masked weights are exactly 0
init           layer-wise density distribution: uniform, er, erk
criterion      pruning (drop) score; higher = keep: magnitude, set, set_paper_code, mest, snip,
               sensitivity, reciprocal_sensitivity, random
growth         regrowth score; higher = grow first: random, gradient (RigL)
drop_fraction  fraction of a layer's active weights removed at an update (p_t)
schedule       drop fraction as a function of the step: constant, cosine, linear
update_period  optimizer steps between topology updates (Delta T)
scope          local (layer-wise) or global pruning
update_order   where the update sits in an iteration: before_step, after_step, paper
val_fraction   share of the training set held out for validation (the last examples)
ITOP rate      fraction of all sparsified weights that were ever active
plugin         a user's module registering components with register_criterion, register_growth,
               register_schedule, register_model, register_dataset (metadata checked at once)

Nothing here imports Ray, pandas or the ``study`` package: a run is ``train(config)``, or a loop of
one's own with ``sparse = attach(model, optimizer, total_steps=T, **settings)`` and ``sparse.step()``
after each ``optimizer.step()`` (:mod:`dst_core.sparse_training`). Importing
the package (its config, errors and summary) loads no torch; the rest loads on first use.
"""

import importlib
from typing import Any

from .config import ALGORITHM_REVISION, TrainConfig
from .errors import (CheckpointMismatchError, ConfigError, ContractError, DatasetNotFoundError, Diverged, DstError,
                     Interrupted, UnknownNameError)
from .summary import EpochMetrics, Summary, summarise

# The rest loads torch (~1.5 s): it is imported on first use, so reading results never pays for it
_LAZY = {
    "jaccard": "analytics", "removal_overlap": "analytics", "CRITERIA": "criteria", "select_prune": "criteria",
    "DATASETS": "data", "DataBundle": "data", "load_dataset": "data", "DENSITY": "density",
    "layer_counts": "density", "layer_densities": "density", "GROWTH": "growth", "select_grow": "growth",
    "MaskSet": "masks", "n_active": "masks", "select_top": "masks", "sparsifiable": "masks",
    "choose_params": "masks", "MODELS": "models",
    "build_model": "models", "SCHEDULES": "schedules", "UpdateSchedule": "schedules",
    "drop_schedule": "schedules", "SparseTraining": "sparse_training", "attach": "sparse_training",
    "TopologyUpdater": "topology", "drop_and_grow": "topology", "Trainer": "trainer", "train": "trainer",
}


def __getattr__(name: str) -> Any:
    if name not in _LAZY:
        raise AttributeError(f"module 'dst_core' has no attribute {name!r}")
    value = getattr(importlib.import_module(f".{_LAZY[name]}", __name__), name)
    globals()[name] = value
    return value


def _register(kind: str, module: str, registry: str):
    def register(name: str, **meta: Any):
        return getattr(importlib.import_module(f".{module}", __name__), registry).register(name, **meta)
    register.__name__ = register.__qualname__ = f"register_{kind}"
    register.__doc__ = (f"Decorator: register a {kind} under ``name`` with its metadata in {registry}, checked "
                        "at once (README, 'Plugins').")
    return register


# The public decorators of plugins (and of the built-ins' modules): each loads its registry on first use
register_criterion = _register("criterion", "criteria", "CRITERIA")  # score(w, g, mask, generator, **params)
register_growth = _register("growth", "growth", "GROWTH")  # score(w, g, mask, generator)
register_schedule = _register("schedule", "schedules", "SCHEDULES")  # a DropSchedule subclass
register_density = _register("density", "density", "DENSITY")  # raw(shape, power)
register_model = _register("model", "models", "MODELS")  # factory(input_shape, num_classes) -> nn.Module
register_dataset = _register("dataset", "data", "DATASETS")  # factory(root) -> DataBundle

__version__ = "0.1.0"

__all__ = [
    "ALGORITHM_REVISION", "CRITERIA", "DATASETS", "DENSITY", "GROWTH", "MODELS", "SCHEDULES",
    "CheckpointMismatchError", "ConfigError", "ContractError", "DataBundle", "DatasetNotFoundError", "Diverged",
    "DstError", "EpochMetrics", "Interrupted", "MaskSet", "SparseTraining", "Summary", "TopologyUpdater",
    "TrainConfig", "Trainer", "UnknownNameError", "UpdateSchedule", "attach", "build_model", "choose_params",
    "drop_and_grow", "drop_schedule", "jaccard", "layer_counts", "layer_densities", "load_dataset", "n_active",
    "register_criterion", "register_dataset", "register_density", "register_growth", "register_model",
    "register_schedule", "removal_overlap", "select_grow", "select_prune", "select_top", "sparsifiable",
    "summarise", "train",
]
