"""Speed of the Parquet result store on a large synthetic study.

(draft)
"""

from __future__ import annotations

import json
import os
import time
import uuid
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from study.store import ParquetStore
from study.store.schema import HISTORY, SCHEMA_VERSION, TRIALS

CRITERIA = ("magnitude", "mest", "random", "reciprocal_sensitivity", "sensitivity", "set", "snip")
GROWTHS = ("gradient", "random")
DENSITIES = (0.01, 0.02, 0.05, 0.1, 0.15, 0.2, 0.3, 0.4, 0.5, 0.7, 0.9)
CELLS = len(CRITERIA) * len(DENSITIES) * len(GROWTHS)  # 154 configurations, then seeds
EPOCHS, STEPS_PER_EPOCH, UPDATE_PERIOD = 100, 391, 800
CRITERION_OFFSET = {"magnitude": 0.0, "mest": 0.003, "random": -0.03, "reciprocal_sensitivity": -0.01,
                    "sensitivity": -0.006, "set": 0.0, "snip": -0.004}
GROWTH_OFFSET = {"gradient": 0.004, "random": 0.0}
FAILED_PERCENT = 3
ROW_GROUP = 1_000_000  # rows per Parquet row group of the compacted files
HOSTS = tuple(f"node-{i:02d}" for i in range(24))
COMMITS = tuple(f"{(0x9E3779B97F4A7C15 * (i + 1)) % 2**64:016x}{i:024x}" for i in range(6))
ERROR = ("Traceback (most recent call last):\n  File \"study/cli.py\", line 172, in _train\n"
         "    trainer.save_checkpoint(path)\nOSError: [Errno 28] No space left on device")
T0 = np.datetime64("2025-01-06T08:00:00", "us")


def _mix(i: np.ndarray) -> np.ndarray:
    """splitmix64 of the trial indices: a bijection, so distinct indices get distinct ids."""
    with np.errstate(over="ignore"):
        z = i.astype(np.uint64) + np.uint64(0x9E3779B97F4A7C15)
        z = (z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
        z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
        return z ^ (z >> np.uint64(31))


def trial_ids(index: np.ndarray) -> pa.Array:
    return pa.array([f"{x:016x}" for x in _mix(index).tolist()], pa.string())


def _curves(final: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """(trials, EPOCHS) test accuracies rising to ``final`` at the last epoch."""
    e = np.arange(1, EPOCHS + 1)
    lift = np.where(e > EPOCHS // 2, 0.03, 0.0) + np.where(e > 3 * EPOCHS // 4, 0.01, 0.0)
    curve = final[:, None] - 0.04 - (final[:, None] - 0.35) * np.exp(-e / 12.0) + lift
    curve += rng.normal(0, 0.006, curve.shape) * (1 - e / (EPOCHS + 20))
    curve[:, -1] = final
    return np.clip(curve, 0.0, 1.0)


def _config(index: np.ndarray):
    cell, seed = index % CELLS, index // CELLS
    crit = cell % len(CRITERIA)
    dens = (cell // len(CRITERIA)) % len(DENSITIES)
    grow = cell // (len(CRITERIA) * len(DENSITIES))
    return crit, dens, grow, seed


def _final_accuracy(crit, dens, grow, rng) -> np.ndarray:
    density = np.asarray(DENSITIES)[dens]
    base = 0.935 - 0.06 * np.log10(0.95 / density) ** 1.6
    base += np.asarray([CRITERION_OFFSET[c] for c in CRITERIA])[crit] + np.asarray([GROWTH_OFFSET[g] for g in GROWTHS])[grow]
    return np.clip(base + rng.normal(0, 0.004, len(crit)), 0.0, 1.0)


def synthetic(index: np.ndarray, rng: np.random.Generator, rerun: bool = False) -> tuple[pa.Table, pa.Table]:
    """The trials rows of the trials ``index`` (seed-major over the criterion x density x growth
    grid) and their history rows, every column filled. ``rerun``: all completed."""
    n = len(index)
    crit, dens, grow, seed = _config(index)
    ids = trial_ids(index)
    failed = np.zeros(n, bool) if rerun else (_mix(index + 2**40) % np.uint64(100)) < FAILED_PERCENT
    final = _final_accuracy(crit, dens, grow, rng)
    test_acc = _curves(final, rng)  # (n, EPOCHS)
    e = np.arange(1, EPOCHS + 1)
    density = np.asarray(DENSITIES)[dens]
    train_acc = np.clip(test_acc + 0.02 + 0.05 * e / EPOCHS + rng.normal(0, 0.003, test_acc.shape), 0, 1)
    test_loss = -np.log(np.clip(test_acc, 1e-3, 1)) * 1.3 + 0.05
    train_loss = -np.log(np.clip(train_acc, 1e-3, 1)) * 1.2
    itop = np.minimum(1.0, density[:, None] * (1 + 2.5 * (1 - np.exp(-e / 30.0))))
    drop = 0.5 * (0.005 / 0.5 + (1 - 0.005 / 0.5) * 0.5 * (1 + np.cos(np.pi * e / EPOCHS)))
    n_updates = ((e * STEPS_PER_EPOCH) // UPDATE_PERIOD - ((e - 1) * STEPS_PER_EPOCH) // UPDATE_PERIOD)
    update_s = n_updates[None, :] * rng.gamma(4.0, 0.02, (n, EPOCHS))
    epoch_s = 6.0 + rng.gamma(9.0, 0.05, (n, EPOCHS)) + update_s
    lr = np.where(e > 3 * EPOCHS // 4, 1e-4, np.where(e > EPOCHS // 2, 1e-3, 1e-2))
    best_epoch = test_acc.argmax(axis=1) + 1
    wall = epoch_s.sum(axis=1) + rng.gamma(4.0, 2.0, n)
    started = T0 + (rng.uniform(0, 30 * 86400, n) * 1e6).astype("timedelta64[us]")
    ended = started + (wall * 1e6).astype("timedelta64[us]")
    names = lambda options, k: pa.array(np.asarray(options, dtype=object)[k], pa.string())  # noqa: E731
    const = lambda value, typ: pa.array(np.full(n, value), typ)  # noqa: E731
    mest = np.asarray(CRITERIA)[crit] == "mest"
    columns = {
        "trial_id": ids,
        "status": pa.array(np.where(failed, "failed", "completed").astype(object), pa.string()),
        "dataset": names(["cifar10"], np.zeros(n, int)), "model": names(["resnet56"], np.zeros(n, int)),
        "data_root": names(["/data/cifar10"], np.zeros(n, int)), "density": pa.array(density),
        "init": names(["erk"], np.zeros(n, int)), "erk_power": const(1.0, pa.float64()),
        "criterion": names(CRITERIA, crit),
        "criterion_params": pa.array(np.where(mest, '{"gamma": 0.5}', "{}").astype(object), pa.string()),
        "growth": names(GROWTHS, grow), "schedule": names(["cosine"], np.zeros(n, int)),
        "drop_fraction": const(0.5, pa.float64()), "eta_min": const(0.005, pa.float64()),
        "update_period": const(UPDATE_PERIOD, pa.int64()), "stop_fraction": const(1.0, pa.float64()),
        "scope": names(["local"], np.zeros(n, int)), "epochs": const(EPOCHS, pa.int64()),
        "batch_size": const(128, pa.int64()), "lr": const(0.1, pa.float64()), "momentum": const(0.9, pa.float64()),
        "nesterov": const(True, pa.bool_()), "weight_decay": const(5e-4, pa.float64()),
        "lr_milestones": pa.ListArray.from_arrays(pa.array(np.arange(0, 2 * n + 1, 2, dtype=np.int32)),
                                                  pa.array(np.tile([0.5, 0.75], n))),
        "lr_gamma": const(0.1, pa.float64()), "seed": pa.array(seed.astype(np.int64)),
        "device": names(["auto"], np.zeros(n, int)), "eval_batch_size": const(1024, pa.int64()),
        "jaccard_every": const(0, pa.int64()), "epochs_done": const(EPOCHS, pa.int64()),
        "final_test_accuracy": pa.array(final), "best_test_accuracy": pa.array(test_acc.max(axis=1)),
        "best_epoch": pa.array(best_epoch.astype(np.int64)), "final_test_loss": pa.array(test_loss[:, -1]),
        "final_train_accuracy": pa.array(train_acc[:, -1]), "final_train_loss": pa.array(train_loss[:, -1]),
        "final_density": pa.array(density), "final_itop_rate": pa.array(itop[:, -1]),
        "wall_seconds": pa.array(wall), "update_seconds": pa.array(update_s.sum(axis=1)),
        "host": names(HOSTS, rng.integers(0, len(HOSTS), n)), "device_used": names(["cuda:0"], np.zeros(n, int)),
        "dst_study_version": names(["0.1.0"], np.zeros(n, int)), "torch_version": names(["2.13.0"], np.zeros(n, int)),
        "git_commit": names(COMMITS, np.minimum(index * len(COMMITS) // max(1, index.max() + 1), len(COMMITS) - 1)),
        "started_at": pa.array(started, TRIALS.field("started_at").type),
        "ended_at": pa.array(ended, TRIALS.field("ended_at").type),
        "error": pa.array(np.where(failed, ERROR, None), pa.string()),
    }
    trials = pa.table([columns[f.name] for f in TRIALS], schema=TRIALS)
    flat = lambda a: pa.array(np.broadcast_to(a, (n, EPOCHS)).reshape(-1))  # noqa: E731
    hist = {
        "trial_id": ids.take(pa.array(np.repeat(np.arange(n), EPOCHS))),
        "epoch": flat(e.astype(np.int64)), "step": flat((e * STEPS_PER_EPOCH).astype(np.int64)), "lr": flat(lr),
        "train_loss": flat(train_loss), "train_accuracy": flat(train_acc),
        "test_loss": flat(test_loss), "test_accuracy": flat(test_acc),
        "density": flat(density[:, None]), "drop_fraction": flat(drop), "itop_rate": flat(itop),
        "n_updates": flat(n_updates.astype(np.int64)), "update_seconds": flat(update_s), "epoch_seconds": flat(epoch_s),
    }
    return trials, pa.table([hist[f.name] for f in HISTORY], schema=HISTORY)


def _metadata(table: str) -> dict[str, str]:
    return {"dst_study_schema_version": SCHEMA_VERSION, "table": table}


def build(root: str | Path, n_trials: int, n_parts: int, n_reruns: int, seed: int = 0) -> dict[str, float]:
    """Write a compacted study of ``n_trials`` (+ EPOCHS history rows each) with pyarrow, then
    ``n_parts`` one-trial parts through ``ParquetStore.append``, ``n_reruns`` of them re-running a
    failed trial of the compacted file (so the readers' deduplication has work to do)."""
    root = Path(root)
    times = {}
    start = time.perf_counter()
    name = f"{time.time_ns() - 86_400 * 10**9:020d}-{uuid.uuid4().hex[:8]}-c.parquet"  # older than the parts
    chunk = ROW_GROUP // EPOCHS  # trials per history row group
    trial_tables = []
    (root / "history").mkdir(parents=True, exist_ok=True)
    (root / "trials").mkdir(parents=True, exist_ok=True)
    tmp = root / "history" / f".tmp-{name}"
    with pq.ParquetWriter(tmp, HISTORY.with_metadata(_metadata("history")), compression="zstd") as writer:
        for lo in range(0, n_trials, chunk):
            index = np.arange(lo, min(n_trials, lo + chunk))
            trials, history = synthetic(index, np.random.default_rng([seed, lo]))
            writer.write_table(history.replace_schema_metadata(_metadata("history")), row_group_size=ROW_GROUP)
            trial_tables.append(trials)
    tmp.rename(root / "history" / name)
    trials = pa.concat_tables(trial_tables).replace_schema_metadata(_metadata("trials"))
    tmp = root / "trials" / f".tmp-{name}"
    pq.write_table(trials, tmp, compression="zstd", row_group_size=ROW_GROUP)
    tmp.rename(root / "trials" / name)
    times["compacted files (pyarrow)"] = time.perf_counter() - start

    start = time.perf_counter()
    failed = np.flatnonzero(trials.column("status").to_numpy(zero_copy_only=False) == "failed")[:n_reruns]
    store = ParquetStore(str(root))
    for k in range(n_parts):
        rerun = k % max(1, n_parts // max(1, len(failed))) == 0 and k // max(1, n_parts // max(1, len(failed))) < len(failed)
        index = failed[k // max(1, n_parts // max(1, len(failed)))] if rerun else n_trials + k
        t, h = synthetic(np.array([index]), np.random.default_rng([seed, 10**9 + k]), rerun=rerun)
        store.append(t.to_pylist(), h.to_pylist())
    times[f"{n_parts} parts (ParquetStore.append)"] = time.perf_counter() - start
    return times
