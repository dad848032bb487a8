"""CIFAR-10 / CIFAR-100 from the official "python version" pickles (no download, no torchvision).

Images are scaled to [0, 1] and normalised per channel with the paper code's mean/std. Training
batches get the standard augmentation (random 32x32 crop of the image padded by 4 pixels, random
horizontal flip), vectorised over the batch and drawn only from the trainer's generator. As in the
paper's code, CIFAR-10 pads by reflection and CIFAR-100 with black. The validation split (the last
``val_fraction`` of the training images: 45,000 train and 5,000 validate at the paper's 0.1) is
made by the trainer.
"""

from __future__ import annotations

import pickle
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ..errors import DatasetNotFoundError
from . import DATASETS, DataBundle, not_found, require_root

__all__ = [
    "CIFAR10_MEAN",
    "CIFAR10_STD",
    "CIFAR100_MEAN",
    "CIFAR100_STD",
    "CropFlip",
    "load_cifar10",
    "load_cifar100",
]

CIFAR10_MEAN = (0.4914, 0.4822, 0.4465)
CIFAR10_STD = (0.2023, 0.1994, 0.2010)  # the paper code's values (not the exact per-channel std)
CIFAR100_MEAN = (0.5071, 0.4865, 0.4409)
CIFAR100_STD = (0.2673, 0.2564, 0.2762)

_SOURCE = "from https://www.cs.toronto.edu/~kriz/cifar.html"


@dataclass(frozen=True)
class CropFlip:
    """Random crop with ``pad``-pixel padding + random horizontal flip, for a (B, C, H, W) batch.

    ``fill`` pads with a constant per channel: black in pixel space is ``-mean/std`` after
    normalisation, the same images ``RandomCrop(32, padding=4)`` before ``Normalize`` gives.
    ``fill=None`` pads by reflection (reflection commutes with the per-channel normalisation).
    Random numbers come only from ``generator`` (offsets, then flips), so a seed fixes the result.
    """

    fill: tuple[float, ...] | None
    pad: int = 4

    def __call__(self, x: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        b, c, h, w = x.shape
        p = self.pad
        dev = generator.device
        dy = torch.randint(0, 2 * p + 1, (b,), generator=generator, device=dev).to(x.device)
        dx = torch.randint(0, 2 * p + 1, (b,), generator=generator, device=dev).to(x.device)
        flip = (torch.rand(b, generator=generator, device=dev) < 0.5).to(x.device)

        if self.fill is None:
            padded = torch.nn.functional.pad(x, (p, p, p, p), mode="reflect")
        else:
            fill = torch.tensor(self.fill, dtype=x.dtype, device=x.device).view(1, c, 1, 1)
            padded = fill.expand(b, c, h + 2 * p, w + 2 * p).clone()
            padded[:, :, p : p + h, p : p + w] = x

        rows = dy[:, None] + torch.arange(h, device=x.device)  # (B, H)
        cols = torch.arange(w, device=x.device).expand(b, w)
        cols = torch.where(flip[:, None], cols.flip(1), cols) + dx[:, None]  # (B, W)
        out = padded.gather(2, rows[:, None, :, None].expand(b, c, h, w + 2 * p))
        return out.gather(3, cols[:, None, None, :].expand(b, c, h, w))


class _CifarUnpickler(pickle.Unpickler):
    """Accepts only what the CIFAR pickles hold (dicts, lists, bytes, numbers and NumPy arrays), so a
    planted file in a data folder cannot run code."""

    _ALLOWED = {("numpy", "ndarray"), ("numpy", "dtype"), ("numpy.core.multiarray", "_reconstruct"),
                ("numpy._core.multiarray", "_reconstruct")}

    def find_class(self, module: str, name: str) -> Any:
        if (module, name) in self._ALLOWED:
            return super().find_class(module, name)
        raise pickle.UnpicklingError(f"{module}.{name} is not part of the CIFAR format")


def _unpickle(path: Path) -> dict[Any, Any]:
    try:
        with open(path, "rb") as f:
            data = _CifarUnpickler(f, encoding="bytes").load()
    except (pickle.UnpicklingError, EOFError, ValueError, TypeError) as e:
        raise DatasetNotFoundError(f"{path}: not a CIFAR \"python version\" pickle ({e}); replace it with the "
                                   f"file from the official archive {_SOURCE}") from None
    if not isinstance(data, dict):
        raise DatasetNotFoundError(f"{path}: not a CIFAR \"python version\" pickle (a {type(data).__name__}, "
                                   f"not a dict); replace it with the file from the official archive {_SOURCE}")
    return data


def _field(d: dict[Any, Any], key: str) -> Any:
    """Official pickles use bytes keys; accept str keys too."""
    return d[key.encode()] if key.encode() in d else d[key]


def _images(arrays: list[np.ndarray], mean: tuple[float, ...], std: tuple[float, ...]) -> torch.Tensor:
    x = np.concatenate(arrays).reshape(-1, 3, 32, 32).astype(np.float32) / 255.0
    x -= np.asarray(mean, dtype=np.float32).reshape(1, 3, 1, 1)
    x /= np.asarray(std, dtype=np.float32).reshape(1, 3, 1, 1)
    return torch.from_numpy(x)


def _bundle(
    name: str, root: Path | None, folder: str, train: list[str], test: str, label_key: str,
    num_classes: int, mean: tuple[float, ...], std: tuple[float, ...], expected: str, hint: str,
    reflect: bool,
) -> DataBundle:
    base = require_root(name, root, expected, hint) / folder
    if not all((base / f).is_file() for f in [*train, test]):
        raise not_found(name, root, expected, hint)

    def load(files: list[str]) -> tuple[torch.Tensor, torch.Tensor]:
        dicts = [_unpickle(base / f) for f in files]
        x = _images([np.asarray(_field(d, "data"), dtype=np.uint8) for d in dicts], mean, std)
        y = torch.from_numpy(np.concatenate([np.asarray(_field(d, label_key), dtype=np.int64) for d in dicts]))
        return x, y

    train_x, train_y = load(train)
    test_x, test_y = load([test])
    return DataBundle(
        name=name, train_x=train_x, train_y=train_y, test_x=test_x, test_y=test_y,
        num_classes=num_classes,
        augment=CropFlip(fill=None if reflect else tuple(-m / s for m, s in zip(mean, std))),
    )


@DATASETS.register(
    "cifar10",
    needs_root=True,
    description="CIFAR-10 (python pickles in <root>/cifar-10-batches-py), 3x32x32, crop (reflect pad) + flip",
    default_model="mlp_cifar10",
    input_shape=(3, 32, 32),
    num_classes=10,
    train_size=50000,
)
def load_cifar10(root: Path | None) -> DataBundle:
    return _bundle(
        "cifar10", root, "cifar-10-batches-py", [f"data_batch_{i}" for i in range(1, 6)], "test_batch",
        "labels", 10, CIFAR10_MEAN, CIFAR10_STD, reflect=True,
        expected="<root>/cifar-10-batches-py/{data_batch_1..5,test_batch}",
        hint=f"Download 'CIFAR-10 python version' (cifar-10-python.tar.gz) {_SOURCE} and extract it into "
        f"'{root if root is not None else '<root>'}'",
    )


@DATASETS.register(
    "cifar100",
    needs_root=True,
    description="CIFAR-100 fine labels (python pickles in <root>/cifar-100-python), 3x32x32, crop+flip",
    default_model="mlp_cifar10",
    input_shape=(3, 32, 32),
    num_classes=100,
    train_size=50000,
)
def load_cifar100(root: Path | None) -> DataBundle:
    return _bundle(
        "cifar100", root, "cifar-100-python", ["train"], "test", "fine_labels", 100,
        CIFAR100_MEAN, CIFAR100_STD, reflect=False,
        expected="<root>/cifar-100-python/{train,test}",
        hint=f"Download 'CIFAR-100 python version' (cifar-100-python.tar.gz) {_SOURCE} and extract it into "
        f"'{root if root is not None else '<root>'}'",
    )
