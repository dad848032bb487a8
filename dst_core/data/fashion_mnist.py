"""Fashion-MNIST (Xiao et al. 2017) from the original idx files, gzipped or not.

Looked for in ``<root>/fashion_mnist/``, ``<root>/FashionMNIST/raw/`` (torchvision's layout)
and ``<root>/`` itself. Pixels are scaled to [0, 1] and normalised with the usual mean/std.
"""

from __future__ import annotations

import gzip
from pathlib import Path

import numpy as np
import torch

from ..errors import DatasetNotFoundError
from . import DATASETS, DataBundle, not_found, require_root

__all__ = ["FILES", "MEAN", "STD", "load_fashion_mnist", "read_idx"]

FILES = {
    "train_x": "train-images-idx3-ubyte",
    "train_y": "train-labels-idx1-ubyte",
    "test_x": "t10k-images-idx3-ubyte",
    "test_y": "t10k-labels-idx1-ubyte",
}
MEAN, STD = 0.2860, 0.3530
_FOLDERS = ("fashion_mnist", "FashionMNIST/raw", ".")
_EXPECTED = (
    "{train-images-idx3-ubyte,train-labels-idx1-ubyte,t10k-images-idx3-ubyte,t10k-labels-idx1-ubyte}[.gz] "
    "in <root>/fashion_mnist/, <root>/FashionMNIST/raw/ or <root>/"
)
_HINT = (
    "Download the four .gz files from https://github.com/zalandoresearch/fashion-mnist "
    "(data/fashion) into <root>/fashion_mnist/"
)


def read_idx(path: Path) -> np.ndarray:
    """Read an idx file (big-endian header: 0, 0, dtype code 0x08 = uint8, ndim; then the sizes)."""
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "rb") as f:
        data = f.read()
    if len(data) < 4 or data[0] != 0 or data[1] != 0 or data[2] != 0x08:
        raise DatasetNotFoundError(
            f"dataset 'fashion_mnist': '{path}' is not a uint8 idx file: got header {data[:4]!r}; "
            f"expected 00 00 08 <ndim>; hint: re-download the file"
        )
    ndim = data[3]
    dims = tuple(int(d) for d in np.frombuffer(data, dtype=">u4", count=ndim, offset=4))
    body = np.frombuffer(data, dtype=np.uint8, offset=4 + 4 * ndim)
    if body.size != int(np.prod(dims)):
        raise DatasetNotFoundError(
            f"dataset 'fashion_mnist': '{path}' is truncated: got {body.size} values; "
            f"expected {int(np.prod(dims))} for shape {dims}; hint: re-download the file"
        )
    return body.reshape(dims)


def _find(base: Path, stem: str) -> Path | None:
    for name in (stem, stem + ".gz"):
        if (base / name).is_file():
            return base / name
    return None


@DATASETS.register(
    "fashion_mnist",
    needs_root=True,
    description="Fashion-MNIST idx files (<root>/fashion_mnist), 1x28x28, 10 classes",
    default_model="lenet5",
    input_shape=(1, 28, 28),
    num_classes=10,
    train_size=60000,
)
def load_fashion_mnist(root: Path | None) -> DataBundle:
    root = require_root("fashion_mnist", root, _EXPECTED, _HINT)
    for folder in _FOLDERS:
        paths = {k: _find(root / folder, stem) for k, stem in FILES.items()}
        if all(p is not None for p in paths.values()):
            break
    else:
        raise not_found("fashion_mnist", root, _EXPECTED, _HINT)

    def images(path: Path | None) -> torch.Tensor:
        x = read_idx(path).astype(np.float32) / 255.0  # type: ignore[arg-type]
        return torch.from_numpy((x - MEAN) / STD).reshape(-1, 1, 28, 28)

    def labels(path: Path | None) -> torch.Tensor:
        return torch.from_numpy(read_idx(path).astype(np.int64))  # type: ignore[arg-type]

    return DataBundle(
        name="fashion_mnist",
        train_x=images(paths["train_x"]),
        train_y=labels(paths["train_y"]),
        test_x=images(paths["test_x"]),
        test_y=labels(paths["test_y"]),
        num_classes=10,
    )
