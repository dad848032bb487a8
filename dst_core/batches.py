"""The trainer's batches, from a bundle of tensors or of Datasets; both give the same batches.

A split's ``batches(batch_size, seed_of, order, start)`` yields batches ``start``, ``start + 1``, ...
of an order of its examples (the trainer's seeded permutation when training, stored order when
evaluating), so a resumed epoch starts at the batch it stopped at; one pass at a time. Tensors go
to the device once and are batched by indexing there. Datasets (data that does not fit in memory)
are read by one DataLoader for all three splits, whose sampler yields exactly the index lists asked
for: a Dataset wrapping a bundle's tensors gives bit-identical training. Its ``num_workers`` worker
processes live as long as the trainer; batches are pinned for the copy when the device is CUDA.

Randomness inside a Dataset's ``__getitem__`` (torchvision's transforms draw from torch's global
generator) is seeded too: a batch is read with python's, NumPy's and torch's CPU generators seeded
by the seed the trainer gives that batch (a function of the run's seed and step), so it is the
same in any worker, with any number of workers and after a resume, and the training process's own
generators are left as they were.
"""

from __future__ import annotations

from typing import Any, Callable, Iterator, Sequence

import torch
from torch.utils.data import DataLoader, Dataset, default_collate

from . import rng
from .data import DataBundle

__all__ = ["DatasetSplit", "Split", "TensorSplit", "splits"]

Batch = tuple[torch.Tensor, torch.Tensor]
SeedOf = Callable[[int], int]  # batch number in the pass -> the seed its reads draw from


def _starts(n: int, batch_size: int, start: int) -> range:
    return range(start * batch_size, n, batch_size)


class TensorSplit:
    """Examples held as tensors on the device; they hold no randomness, so ``seed_of`` goes unused."""

    def __init__(self, x: torch.Tensor, y: torch.Tensor, device: torch.device):
        self.x, self.y = x.to(device), y.to(device)

    def __len__(self) -> int:
        return len(self.y)

    def batches(self, batch_size: int, seed_of: SeedOf, order: torch.Tensor | None = None,
                start: int = 0) -> Iterator[Batch]:
        if order is None:  # slices: no copy
            for i in _starts(len(self), batch_size, start):
                yield self.x[i:i + batch_size], self.y[i:i + batch_size]
            return
        order = order.to(self.x.device)
        for i in _starts(len(order), batch_size, start):
            idx = order[i:i + batch_size]
            yield self.x[idx], self.y[idx]


class _Reads(Dataset):
    """A bundle's Datasets as one whose item is a whole batch, ``(seed, source, indices)``."""

    def __init__(self, datasets: Sequence[Dataset]):
        self.datasets = datasets

    def __getitem__(self, batch: tuple[int, int, list[int]]) -> list[Any]:
        seed, source, indices = batch
        with rng.seeded(seed):
            return [self.datasets[source][i] for i in indices]


class _Reader:
    """One DataLoader over the bundle's Datasets; :meth:`read` runs it over a list of batches."""

    def __init__(self, datasets: Sequence[Dataset], device: torch.device, num_workers: int):
        self.device, self.plan = device, []
        self.loader = DataLoader(
            _Reads(datasets), sampler=self.plan, batch_size=None, collate_fn=default_collate,
            num_workers=num_workers, persistent_workers=num_workers > 0, pin_memory=device.type == "cuda",
            generator=torch.Generator().manual_seed(0))  # else it draws worker seeds from the global generator

    def read(self, plan: list[tuple[int, int, list[int]]]) -> Iterator[Batch]:
        self.plan[:] = plan  # the sampler: each pass iterates it afresh
        for x, y in self.loader:
            yield x.to(self.device, non_blocking=True), y.to(self.device, non_blocking=True)


class DatasetSplit:
    """Examples ``indices`` of the ``source``-th Dataset a reader reads."""

    def __init__(self, reader: _Reader, source: int, indices: range):
        self.reader, self.source, self.indices = reader, source, indices

    def __len__(self) -> int:
        return len(self.indices)

    def batches(self, batch_size: int, seed_of: SeedOf, order: torch.Tensor | None = None,
                start: int = 0) -> Iterator[Batch]:
        positions = range(len(self)) if order is None else order.tolist()
        plan = [(seed_of(i // batch_size), self.source, [self.indices[p] for p in positions[i:i + batch_size]])
                for i in _starts(len(positions), batch_size, start)]
        return self.reader.read(plan)


Split = TensorSplit | DatasetSplit


def splits(data: DataBundle, n_train: int, device: torch.device, num_workers: int) -> tuple[Split, Split, Split]:
    """Train (the first ``n_train`` training examples), validation (the rest) and test."""
    if data.train is None:
        x, y = data.train_x, data.train_y
        return (TensorSplit(x[:n_train], y[:n_train], device), TensorSplit(x[n_train:], y[n_train:], device),
                TensorSplit(data.test_x, data.test_y, device))
    reader = _Reader([data.train, data.test], device, num_workers)
    return (DatasetSplit(reader, 0, range(n_train)), DatasetSplit(reader, 0, range(n_train, data.train_size)),
            DatasetSplit(reader, 1, range(len(data.test))))
