"""Datasets, looked up by name: each built-in loads fully into memory as normalised tensors; a plugin's
may instead give torch Datasets, read as the trainer goes (:class:`DataBundle`).

Each module below registers ``factory(root) -> DataBundle`` in :data:`DATASETS` with meta

* ``needs_root`` -- whether the data must be read from a local folder (nothing ever downloads);
* ``description`` -- one line for CLI help;
* ``default_model`` -- the model name used when a config names none;
* ``input_shape``, ``num_classes`` -- what the loader yields, known without loading anything (a
  spec's model is checked against them before a study starts);
* ``train_size`` (optional) -- training examples, when the data set always has that many, so a
  study can tell before it starts which DST trials would never update their mask.

The small shared helpers (root checks, the "not found" message, standardisation) live here,
above the imports, so every dataset words its errors the same way.
"""

from __future__ import annotations

import os
from dataclasses import KW_ONLY, dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np
import torch
from torch.utils.data import Dataset, IterableDataset

from ..errors import ConfigError, DatasetNotFoundError
from ..registry import Meta, Registry

__all__ = [
    "DATASETS",
    "DataBundle",
    "Augment",
    "check_dataset",
    "load_dataset",
    "not_found",
    "require_root",
    "standardise",
]

Augment = Callable[[torch.Tensor, torch.Generator], torch.Tensor]


@dataclass(frozen=True, eq=False)  # eq=False: tensors have no truth value; bundles compare by identity
class DataBundle:
    """A dataset: whole in memory as tensors (``train_x`` ... ``test_y``) or, for data that does not
    fit, as two map-style torch Datasets (``train``, ``test``) whose item ``i`` is ``(x, y)``: x a
    float32 tensor of the input shape, y an int class index. The trainer batches both alike
    (:mod:`dst_core.batches`). Treat tensors as read-only (they may be shared)."""

    name: str
    train_x: torch.Tensor | None = None  # float32, (N, *input_shape), already normalised
    train_y: torch.Tensor | None = None  # int64 class indices, (N,)
    test_x: torch.Tensor | None = None
    test_y: torch.Tensor | None = None
    _: KW_ONLY
    num_classes: int
    train: Dataset | None = None
    test: Dataset | None = None
    # Per training batch (e.g. CIFAR crop + flip); draws ONLY from the given generator so runs
    # are reproducible. None for data without augmentation.
    augment: Augment | None = None
    input_shape: tuple[int, ...] = field(init=False)

    def __post_init__(self) -> None:
        tensors = (self.train_x, self.train_y, self.test_x, self.test_y)
        if all(t is not None for t in tensors) and self.train is None and self.test is None:
            shapes = [_check_tensors(self.name, *split) for split in (("train", *tensors[:2]), ("test", *tensors[2:]))]
        elif all(t is None for t in tensors) and self.train is not None and self.test is not None:
            shapes = [_check_dataset(self.name, split, d) for split, d in (("train", self.train), ("test", self.test))]
        else:
            raise ConfigError(f"DataBundle {self.name!r}: got {_given(self)}; expected either train_x, train_y, "
                              "test_x and test_y (tensors) or train and test (Datasets)")
        if shapes[0] != shapes[1]:
            raise ConfigError(f"DataBundle {self.name!r}: train and test inputs differ: got {shapes[0]} and "
                              f"{shapes[1]}; expected the same input shape")
        object.__setattr__(self, "input_shape", shapes[0])

    @property
    def train_size(self) -> int:
        """Training examples, before the validation split."""
        return len(self.train_y) if self.train is None else len(self.train)


def _given(b: DataBundle) -> str:
    names = [k for k in ("train_x", "train_y", "test_x", "test_y", "train", "test") if getattr(b, k) is not None]
    return ", ".join(names) or "no data"


def _check_tensors(name: str, split: str, x: torch.Tensor, y: torch.Tensor) -> tuple[int, ...]:
    if x.dtype != torch.float32 or y.dtype != torch.int64 or y.dim() != 1 or x.shape[0] != y.shape[0]:
        raise ConfigError(f"DataBundle {name!r}: bad {split} split: got x {tuple(x.shape)} {x.dtype}, "
                          f"y {tuple(y.shape)} {y.dtype}; expected float32 x (N, ...) and int64 y (N,)")
    return tuple(x.shape[1:])


def _check_dataset(name: str, split: str, dataset: Dataset) -> tuple[int, ...]:
    """Its first item, as a sample of all: reading them all is what a Dataset is there to avoid."""
    if isinstance(dataset, IterableDataset) or not hasattr(dataset, "__getitem__") or not hasattr(dataset, "__len__"):
        raise ConfigError(f"DataBundle {name!r}: bad {split} split: got a {type(dataset).__name__}; expected a "
                          "map-style Dataset (__getitem__ and __len__: the trainer reads examples in its own order)")
    if len(dataset) == 0:
        raise ConfigError(f"DataBundle {name!r}: bad {split} split: got an empty Dataset; expected examples")
    item = dataset[0]
    x, y = item if isinstance(item, (tuple, list)) and len(item) == 2 else (None, None)
    int_y = isinstance(y, (int, np.integer)) and not isinstance(y, bool) or (
        torch.is_tensor(y) and y.dim() == 0 and y.dtype == torch.int64)
    if not (torch.is_tensor(x) and x.dtype == torch.float32) or not int_y:
        got = (f"x {type(x).__name__} {getattr(x, 'dtype', '')}, y {type(y).__name__} {getattr(y, 'dtype', '')}"
               if x is not None else f"a {type(item).__name__}")
        raise ConfigError(f"DataBundle {name!r}: bad {split} split: item 0 is {got}; expected (x, y) with x a "
                          "float32 tensor and y an int class index (or an int64 tensor of one)")
    return tuple(x.shape)


DATASETS: Registry[Callable[[Path | None], DataBundle]] = Registry(
    "dataset",
    Meta(required={"needs_root": bool, "description": str, "default_model": str, "input_shape": tuple,
                   "num_classes": int},
         optional={"train_size": int}),
    arity=1, signature="factory(root) -> DataBundle")


def check_dataset(name: str, root: str | os.PathLike[str] | None = None) -> None:
    """Cheap check before a study starts: a file-based dataset's folder must exist.

    A missing folder raises the loader's own :class:`DatasetNotFoundError` (every loader checks
    its folder before reading anything); the files inside are checked when a trial loads them.
    """
    entry = DATASETS.get(name)
    path = None if root is None else Path(root).expanduser()
    if entry.meta.get("needs_root") and (path is None or not path.is_dir()):
        entry.obj(path)  # raises DatasetNotFoundError with the exact files expected


def load_dataset(name: str, root: str | os.PathLike[str] | None = None) -> DataBundle:
    """Load the registered dataset ``name``; ``root`` is the data folder of file-based datasets."""
    entry = DATASETS.get(name)  # UnknownNameError with the choices
    path = None if root is None else Path(root).expanduser()
    return entry.obj(path)


def not_found(dataset: str, root: Path | None, expected: str, hint: str) -> DatasetNotFoundError:
    """The one error for missing data: dataset, exact files looked for, folder, where to get them."""
    if root is None:
        where = "no data folder was given (root is None); pass the folder that contains it as root"
    else:
        where = f"not found under '{root}'"
    return DatasetNotFoundError(f"dataset {dataset!r}: expected {expected}; {where}. {hint}")


def require_root(dataset: str, root: Path | None, expected: str, hint: str) -> Path:
    """``root`` as a Path, or the not-found error when it is None or not a folder."""
    if root is None or not root.is_dir():
        raise not_found(dataset, root, expected, hint)
    return root


def standardise(train: np.ndarray, test: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per-feature ``(x - mean) / std`` with TRAIN statistics (constant features: std 1), float32."""
    mean = train.mean(axis=0, dtype=np.float64)
    std = train.std(axis=0, dtype=np.float64)
    std[std == 0] = 1.0
    def apply(a: np.ndarray) -> np.ndarray:
        return ((a - mean) / std).astype(np.float32)
    return apply(train), apply(test)


# Explicit imports (one per module) so that every dataset registers; tests check none is missing.
from . import mnist1d  # noqa: E402,F401
from . import digits  # noqa: E402,F401
from . import cifar  # noqa: E402,F401
from . import fashion_mnist  # noqa: E402,F401
from . import higgs  # noqa: E402,F401
