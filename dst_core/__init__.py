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

Nothing here imports Ray, pandas or the ``study`` package: a run is ``train(config)``.
"""

from .analytics import jaccard, removal_overlap
from .config import TrainConfig
from .criteria import CRITERIA, select_prune
from .data import DATASETS, DataBundle, load_dataset
from .density import DENSITY, layer_counts, layer_densities
from .errors import CheckpointMismatchError, ConfigError, DatasetNotFoundError, DstError, UnknownNameError
from .growth import GROWTH, select_grow
from .masks import MaskSet, n_active, select_top, sparsifiable
from .models import MODELS, build_model
from .schedules import SCHEDULES, UpdateSchedule, drop_schedule
from .topology import TopologyUpdater, drop_and_grow
from .config import ALGORITHM_REVISION
from .summary import summarise
from .trainer import Diverged, Interrupted, Trainer, train

__version__ = "0.1.0"

__all__ = [
    "ALGORITHM_REVISION", "CRITERIA", "DATASETS", "DENSITY", "GROWTH", "MODELS", "SCHEDULES",
    "CheckpointMismatchError", "ConfigError", "DataBundle", "DatasetNotFoundError", "Diverged", "DstError",
    "Interrupted", "MaskSet", "TopologyUpdater", "TrainConfig", "Trainer", "UnknownNameError",
    "UpdateSchedule", "build_model", "drop_and_grow", "drop_schedule", "jaccard", "layer_counts",
    "layer_densities", "load_dataset", "n_active", "removal_overlap", "select_grow", "select_prune",
    "select_top", "sparsifiable", "summarise", "train",
]
