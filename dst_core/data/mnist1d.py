"""MNIST-1D (Greydanus 2020): the platform's default, fully offline dataset.

The data are *generated* with ``mnist1d.data.make_dataset(get_dataset_args())`` (defaults:
seed 42, 4000 train / 1000 test, length 40, 10 classes). ``get_dataset`` is never called: it
downloads. Generation takes a few seconds and reseeds numpy's and Python's global RNGs, so those
states are saved and restored around it, and the result is cached twice: as a ``.npz`` file under
``$DST_STUDY_CACHE`` (default ``~/.cache/dst-study``; written atomically via a temp file and
``os.replace`` so concurrent runs are safe) and in this process.
"""

from __future__ import annotations

import os
import random
import tempfile
import warnings
from pathlib import Path

import numpy as np
import torch

from . import DATASETS, DataBundle

__all__ = ["CACHE_FILE", "cache_dir", "clear_memory_cache", "generate", "load_mnist1d"]

CACHE_FILE = "mnist1d_v1_seed42.npz"  # bump the version if the generation arguments change
_KEYS = ("x", "y", "x_test", "y_test")
_MEMORY: dict[Path, dict[str, np.ndarray]] = {}


def cache_dir() -> Path:
    return Path(os.environ.get("DST_STUDY_CACHE", "~/.cache/dst-study")).expanduser()


def clear_memory_cache() -> None:
    """Forget the in-process copy (the file cache stays)."""
    _MEMORY.clear()


def generate() -> dict[str, np.ndarray]:
    """Generate the default MNIST-1D arrays without touching the global RNG states."""
    from mnist1d.data import get_dataset_args, make_dataset

    np_state, py_state = np.random.get_state(), random.getstate()
    try:
        d = make_dataset(get_dataset_args())
    finally:
        np.random.set_state(np_state)
        random.setstate(py_state)
    return {
        "x": np.asarray(d["x"], dtype=np.float32),
        "y": np.asarray(d["y"], dtype=np.int64),
        "x_test": np.asarray(d["x_test"], dtype=np.float32),
        "y_test": np.asarray(d["y_test"], dtype=np.int64),
    }


def _read(path: Path) -> dict[str, np.ndarray] | None:
    try:
        with np.load(path) as f:
            arrays = {k: f[k] for k in _KEYS}
    except (OSError, KeyError, ValueError, EOFError):
        return None  # missing or corrupt: regenerate
    return arrays


def _write(path: Path, arrays: dict[str, np.ndarray]) -> None:
    tmp = None
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=path.name, suffix=".tmp", dir=path.parent)
        with os.fdopen(fd, "wb") as f:
            np.savez(f, **arrays)
        os.replace(tmp, path)
    except OSError as e:  # a read-only cache only costs the regeneration time
        warnings.warn(f"mnist1d: cannot write cache file '{path}': {e}; continuing without it", stacklevel=3)
        if tmp is not None and os.path.exists(tmp):
            os.unlink(tmp)


def _arrays() -> dict[str, np.ndarray]:
    path = cache_dir() / CACHE_FILE
    arrays = _MEMORY.get(path)
    if arrays is None:
        arrays = _read(path)
        if arrays is None:
            arrays = generate()
            _write(path, arrays)
        _MEMORY[path] = arrays
    return arrays


@DATASETS.register(
    "mnist1d",
    needs_root=False,
    description="MNIST-1D: 4000/1000 signals of length 40, 10 classes (generated offline, cached)",
    default_model="mnist1d_mlp",
    input_shape=(40,),
    num_classes=10,
    train_size=4000,
)
def load_mnist1d(root: Path | None = None) -> DataBundle:
    """``root`` is ignored (the data are generated). Tensors are fresh copies on every call."""
    a = _arrays()
    return DataBundle(
        name="mnist1d",
        train_x=torch.tensor(a["x"], dtype=torch.float32),
        train_y=torch.tensor(a["y"], dtype=torch.int64),
        test_x=torch.tensor(a["x_test"], dtype=torch.float32),
        test_y=torch.tensor(a["y_test"], dtype=torch.int64),
        num_classes=10,
    )
