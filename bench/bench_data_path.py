"""Throughput of the trainer's two data paths on MNIST-1D: tensors in memory, and torch Datasets
read through a DataLoader (``dst_core.batches``).

Usage::

    python bench/bench_data_path.py [--epochs N] [--quick] [--out docs/benchmarks.md]

Each case is a fresh ``Trainer`` of the MNIST-1D MLP (the defaults: DST at density 0.1, batch 128,
3600 training, 400 validation and 1000 test examples) on the CPU with 2 torch threads:

1. **tensors**: the built-in ``mnist1d`` bundle, batched by indexing;
2. **TensorDataset**: the same tensors as map-style Datasets, so only the reading differs;
3. **memmap**: the same examples in ``.npy`` files read row by row through ``numpy.memmap`` (data
   that does not fit in memory: each ``__getitem__`` copies one row from the page cache).

The Dataset cases run with ``num_workers`` 0 and 2. Figures: **train** examples per second of epoch
wall time (an epoch's 3600 training examples over its ``epoch_seconds``, which include evaluating the
1400 others), median and best over epochs 2..N [10 / ``--quick`` 4]; the **first epoch**'s (workers
start then); **read only**: examples per second of a pass over the training split's batches without
a model (median of 5). The cases run one epoch (or pass) each in turn, so that other processes slow
them alike. Check: every case ends with weights bit-identical to the tensors case's.
Other processes slow every figure: the report gives the cores they used meanwhile.
"""

from __future__ import annotations

import argparse
import os
import platform
import shlex
import statistics
import sys
import tempfile
import time
from datetime import datetime, timezone
from pathlib import Path

from report import cpu_clock, cpu_model, other_cores, table, verdict, write_section

import numpy as np
import torch
from torch.utils.data import Dataset, TensorDataset

import dst_core
from dst_core.data import DataBundle, load_dataset
from dst_core.trainer import Trainer

CONFIG = dict(dataset="mnist1d", device="cpu", seed=0)


class Rows(Dataset):
    """Rows of a ``.npy`` file through a memory map, opened in the process that reads it."""

    def __init__(self, x_path: Path, y: np.ndarray):
        self.x_path, self.y, self._x = x_path, y, None

    def __len__(self) -> int:
        return len(self.y)

    def __getitem__(self, i: int):
        if self._x is None:
            self._x = np.load(self.x_path, mmap_mode="r")
        return torch.from_numpy(np.array(self._x[i])), int(self.y[i])


def register(folder: Path) -> dict[str, str]:
    """The MNIST-1D examples as a TensorDataset and as memmapped files: data set name per case."""
    base = load_dataset("mnist1d")
    for split, x in (("train", base.train_x), ("test", base.test_x)):
        np.save(folder / f"{split}.npy", x.numpy())
    bundles = {
        "TensorDataset": lambda: DataBundle("b", num_classes=10, train=TensorDataset(base.train_x, base.train_y),
                                            test=TensorDataset(base.test_x, base.test_y)),
        "memmap": lambda: DataBundle("b", num_classes=10, train=Rows(folder / "train.npy", base.train_y.numpy()),
                                     test=Rows(folder / "test.npy", base.test_y.numpy())),
    }
    names = {"tensors": "mnist1d"}
    for case, make in bundles.items():
        names[case] = f"bench_{case.lower()}"
        dst_core.register_dataset(names[case], needs_root=False, description=case, default_model="mnist1d_mlp",
                                  input_shape=base.input_shape, num_classes=10)(lambda root, make=make: make())
    return names


def read_pass(t: Trainer, order: torch.Tensor) -> float:
    """Examples per second of one pass over the training split's batches, without a model."""
    start = time.perf_counter()
    for _batch in t.train_set.batches(t.config.batch_size, lambda b: b, order):
        pass
    return len(order) / (time.perf_counter() - start)


def measure(names: dict[str, str], cases: list[tuple[str, int]], epochs: int) -> dict:
    """Every case's epochs, then read-only passes, in interleaved rounds (the first case of a round
    rotating), so a burst of other work slows all cases alike."""
    trainers = {c: Trainer(dict(CONFIG, dataset=names[c[0]], num_workers=c[1], epochs=epochs)) for c in cases}
    runs = {c: t.epochs() for c, t in trainers.items()}
    rates = {c: [] for c in cases}
    for r in range(epochs):
        for c in cases[r % len(cases):] + cases[:r % len(cases)]:
            rates[c].append(len(trainers[c].train_set) / next(runs[c])["epoch_seconds"])
    order = torch.randperm(len(trainers[cases[0]].train_set))
    reads = {c: [] for c in cases}
    for r in range(5):
        for c in cases[r % len(cases):] + cases[:r % len(cases)]:
            reads[c].append(read_pass(trainers[c], order))
    return {c: {"first": rates[c][0], "train": statistics.median(rates[c][1:]), "best": max(rates[c][1:]),
                "read": statistics.median(reads[c]), "weights": trainers[c].model.state_dict()} for c in cases}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--epochs", type=int, help="epochs per case (default 10; --quick 4)")
    parser.add_argument("--quick", action="store_true", help="4 epochs per case; figures are rough")
    parser.add_argument("--out", type=Path, help="Markdown file whose bench_data_path section is (re)written")
    args = parser.parse_args(argv)
    epochs = args.epochs or (4 if args.quick else 10)
    torch.set_num_threads(2)
    wall, clock = time.perf_counter(), cpu_clock()
    with tempfile.TemporaryDirectory() as tmp:
        names = register(Path(tmp))
        cases = [("tensors", 0)] + [(c, w) for c in ("TensorDataset", "memmap") for w in (0, 2)]
        results = measure(names, cases, epochs)
    for (case, workers), r in results.items():
        print(f"{case:>13} workers {workers}: train {r['train']:8.0f} ex/s (best {r['best']:8.0f}), first epoch "
              f"{r['first']:8.0f}, read only {r['read']:9.0f}", flush=True)
    busy = other_cores(clock, cpu_clock())
    ref = results["tensors", 0]
    same = all(all(torch.equal(v, r["weights"][k]) for k, v in ref["weights"].items()) for r in results.values())

    command = shlex.join(["python", *(sys.argv if argv is None else [sys.argv[0], *argv])])
    rows = [[case, "-" if case == "tensors" else str(w), f"{r['train']:,.0f}", f"{r['best']:,.0f}",
             f"{r['train'] / ref['train']:.2f}", f"{r['first']:,.0f}", f"{r['read']:,.0f}"]
            for (case, w), r in results.items()]
    body = "\n".join([
        f"Command: `{command}`", "",
        f"- date: {datetime.now(timezone.utc):%Y-%m-%d %H:%M UTC}; torch {torch.__version__}, Python "
        f"{platform.python_version()}, 2 torch threads; {cpu_model()} ({os.cpu_count()} logical cores); other "
        "processes used " + (f"{busy:.2f} cores on average during the run" if busy is not None else "n/a cores"),
        f"- MNIST-1D MLP, DST density 0.1, batch 128, {epochs} epochs per case; examples per second (ex/s) of "
        "3600 training examples per epoch, evaluation of 1400 included; total wall time "
        f"{time.perf_counter() - wall:.0f} s", "",
        *table(["data", "workers", "train ex/s (median)", "(best)", "median / tensors' median", "first epoch ex/s",
                "read only ex/s"], rows),
        "",
        f"Every case ends with the tensors case's weights, bit for bit: **{verdict(same)}**.", "",
        "An MNIST-1D example is 40 floats: in memory a batch is one gather; a Dataset costs a Python call "
        "per example, the collation and the seeded read per batch, and workers add the hand-off of every batch "
        "between processes on cores the two torch threads already use. Workers pay where `__getitem__` is "
        "expensive (decoding, disk) and cores are free.",
    ])
    print()
    print(body)
    if args.out:
        write_section(args.out, "bench_data_path", "Data paths: tensors and Datasets (bench/bench_data_path.py)", body)
        print(f"wrote {args.out}")
    return 0 if same else 1


if __name__ == "__main__":
    sys.exit(main())
