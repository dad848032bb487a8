"""HIGGS (Baldi et al. 2014, UCI): 11 M collision events, 28 features, signal vs background.

Read from ``<root>/higgs.npz`` (arrays ``x_train, y_train, x_test, y_test``; the fast format)
or else the UCI file ``<root>/HIGGS.csv.gz`` / ``<root>/HIGGS.csv`` (label in the first column,
then 28 features). For the CSV the standard split is used: the LAST 500,000 rows are the test
set. The CSV is parsed in chunks into float32 (about 1.3 GB in memory for the full file; it takes
a while, so converting once to ``higgs.npz`` is worthwhile). Features are standardised with
training statistics; labels are 0/1 with ``num_classes = 2`` (the HIGGS MLP then has one logit).
"""

from __future__ import annotations

import gzip
import itertools
from pathlib import Path
from typing import IO

import numpy as np
import torch

from ..errors import DatasetNotFoundError
from . import DATASETS, DataBundle, not_found, require_root

__all__ = ["CHUNK_ROWS", "N_FEATURES", "TEST_ROWS", "load_higgs", "read_csv", "standardise_rows"]

TEST_ROWS = 500_000  # the standard split: last 500k rows are the test set
N_FEATURES = 28
CHUNK_ROWS = 250_000
_NPZ_KEYS = ("x_train", "y_train", "x_test", "y_test")
_EXPECTED = "<root>/higgs.npz (x_train, y_train, x_test, y_test) or <root>/HIGGS.csv.gz or <root>/HIGGS.csv"
_HINT = (
    "Download HIGGS.csv.gz from the UCI Machine Learning Repository "
    "(https://archive.ics.uci.edu/dataset/280/higgs) into <root>/ (no need to unpack it)"
)


def read_csv(path: Path) -> np.ndarray:
    """All rows of a UCI HIGGS csv (optionally gzipped) as float32 (N, 29), read chunk by chunk."""
    chunks: list[np.ndarray] = []
    f: IO[str]
    with (gzip.open(path, "rt") if path.suffix == ".gz" else open(path)) as f:
        while lines := list(itertools.islice(f, CHUNK_ROWS)):
            a = np.loadtxt(lines, delimiter=",", dtype=np.float32, ndmin=2)
            if a.shape[1] != N_FEATURES + 1:
                raise DatasetNotFoundError(
                    f"dataset 'higgs': '{path}' has {a.shape[1]} columns; expected {N_FEATURES + 1} "
                    f"(label, then {N_FEATURES} features); hint: use the UCI HIGGS.csv.gz unchanged"
                )
            chunks.append(a)
    if not chunks:
        return np.empty((0, N_FEATURES + 1), dtype=np.float32)
    return chunks[0] if len(chunks) == 1 else np.concatenate(chunks)


def standardise_rows(train: np.ndarray, test: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per-feature standardisation with train statistics, computed in row chunks.

    Chunking keeps the float64 temporaries small (np.std over 10.5 M x 28 would allocate
    gigabytes); results are float32.
    """
    n = len(train)
    total = np.zeros(train.shape[1], dtype=np.float64)
    for i in range(0, n, CHUNK_ROWS):
        total += train[i : i + CHUNK_ROWS].sum(axis=0, dtype=np.float64)
    mean = total / max(n, 1)
    sq = np.zeros_like(mean)
    for i in range(0, n, CHUNK_ROWS):
        sq += ((train[i : i + CHUNK_ROWS] - mean) ** 2).sum(axis=0)
    std = np.sqrt(sq / max(n, 1))
    std[std == 0] = 1.0
    m32, s32 = mean.astype(np.float32), std.astype(np.float32)
    return ((train - m32) / s32).astype(np.float32, copy=False), ((test - m32) / s32).astype(np.float32, copy=False)


def _from_npz(path: Path) -> tuple[np.ndarray, ...]:
    with np.load(path) as f:
        missing = [k for k in _NPZ_KEYS if k not in f.files]
        if missing:
            raise DatasetNotFoundError(
                f"dataset 'higgs': '{path}' lacks arrays {missing}: got {sorted(f.files)}; "
                f"expected {list(_NPZ_KEYS)}; hint: remove it to read HIGGS.csv.gz instead"
            )
        return tuple(f[k] for k in _NPZ_KEYS)


def _from_csv(path: Path, test_rows: int) -> tuple[np.ndarray, ...]:
    data = read_csv(path)
    if len(data) <= test_rows:
        raise DatasetNotFoundError(
            f"dataset 'higgs': '{path}' is too short: got {len(data)} rows; expected more than "
            f"{test_rows} (the last {test_rows} rows are the test set); hint: the file looks truncated, "
            f"re-download it"
        )
    train, test = data[:-test_rows], data[-test_rows:]
    return train[:, 1:], train[:, 0], test[:, 1:], test[:, 0]


@DATASETS.register(
    "higgs",
    needs_root=True,
    description="UCI HIGGS (<root>/HIGGS.csv.gz or higgs.npz): 28 features, 2 classes, last 500k rows test",
    default_model="mlp_higgs",
    input_shape=(28,),
    num_classes=2,
)
def load_higgs(root: Path | None) -> DataBundle:
    root = require_root("higgs", root, _EXPECTED, _HINT)
    if (root / "higgs.npz").is_file():
        x_tr, y_tr, x_te, y_te = _from_npz(root / "higgs.npz")
    else:
        csv = next((root / n for n in ("HIGGS.csv.gz", "HIGGS.csv") if (root / n).is_file()), None)
        if csv is None:
            raise not_found("higgs", root, _EXPECTED, _HINT)
        x_tr, y_tr, x_te, y_te = _from_csv(csv, TEST_ROWS)
    x_tr, x_te = standardise_rows(
        np.asarray(x_tr, dtype=np.float32).reshape(len(x_tr), -1),
        np.asarray(x_te, dtype=np.float32).reshape(len(x_te), -1),
    )
    return DataBundle(
        name="higgs",
        train_x=torch.from_numpy(x_tr),
        train_y=torch.from_numpy(np.asarray(y_tr).astype(np.int64)),
        test_x=torch.from_numpy(x_te),
        test_y=torch.from_numpy(np.asarray(y_te).astype(np.int64)),
        num_classes=2,
    )
