"""Speed of the Parquet result store (``study/store/parquet.py``) on a large synthetic study.

Usage::

    python bench/bench_store.py [--quick] [--dir DIR [--reuse]] [--repeat N] [--out docs/benchmarks.md]

Requirement: on a study of 100,000 trials and 10 million history rows, ``compare`` (criterion x
density pivot over seeds) answers in under 1 s and ``query`` with a filter in under 2 s, reading
only the columns it needs; appending one trial stays O(1) as the study grows.

1. **Study.** 100,000 trials [``--quick``: 10,000] = seeds x (7 criteria x 11 densities x 2
   growths), every ``TRIALS`` column filled (accuracies from a density/criterion model plus noise,
   3 % ``failed``, 5 % resumed; a column added to the schema after this script is left null and
   the report names it), and 100 history epochs each (10 M rows [1 M]), written with pyarrow as a
   compacted study is (``trials/<name>-c.parquet``, ``history/<name>-c.parquet``, the store's
   schema metadata, zstd, row groups of 1 M rows); then 50 one-trial parts through
   ``ParquetStore.append``, a study still running: 40 new trials and 10 re-runs of failed trials of
   the compacted file, so readers must deduplicate. Written in a child process (its time and
   memory are reported apart and are not targets).
2. **Reads**, each with a fresh ``ParquetStore``, one untimed warm-up then ``--repeat`` [5] timed
   runs (median and minimum), warm page cache:

   - ``dst-study compare STUDY`` in this process (``study.cli.main``, the table rendered to a
     buffer): whatever columns the CLI asks for;
   - ``compare`` on ``store.read("trials", [5 columns])``, and on every column
     (``query(store, "trials", None)``, for reference);
   - ``query`` on trials: ``criterion == 'snip' and density < 0.2``, 3 columns;
   - ``query`` on history: ``epoch == 100 and test_accuracy > 0.9``, 2 columns.

   The columns each call reads are recorded (by wrapping ``ParquetStore._scan``) and reported with
   their compressed size on disk. Results are checked: seeds over all cells = completed trials, the
   CLI's table = the every-column ``compare``'s, history hits = trials whose final accuracy > 0.9
   (true only if the superseded history rows of re-run trials were dropped).
3. **Where the time goes**: the steps of ``ParquetStore.read`` + ``query`` (+ ``compare``) replayed
   one by one with the store's own helpers (listing, Arrow scan, ``to_pandas``, deduplication,
   pandas ``query``, ``compare``, rendering); each replay's result is checked equal to the real
   call's, so a change of the store that the replay no longer mirrors is reported.
4. **Measured alternatives** for the history query (not what the code does today; each result
   checked equal): its filter pushed into the Arrow scan (``store.read(..., filter=)``, an
   expression written by hand here), a leaner deduplication (one mask, one filter, ``__filename``
   dropped first), and both.
5. **Appending one trial** (1 trial row + 100 history rows, one ``ParquetStore.append``), each
   append timed: an empty study and two copies (hard links) of the study, one filled up to 500
   parts first, appended to in turn [30 / 15 rounds, the order rotating]. O(1) passes when the
   median at 500 parts is within 1.5 x the empty study's. Reads at 500+ parts are timed too, for
   information (they list and open every part: what ``dst-study compact`` is for).
6. ``dst-study compare STUDY`` as a new process [3 runs / 1], and the imports it pays for.
7. Peak RSS (``VmHWM``) of a fresh process running each read once, and this one's (``getrusage``).

Other processes slow every figure: the report gives the cores they used during the measurements
(``/proc/stat`` minus this process and its children) and flags more than 0.1.
"""

from __future__ import annotations

import argparse
import contextlib
import gc
import io
import json
import multiprocessing
import os
import platform
import resource
import shlex
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from dataclasses import asdict, dataclass
from datetime import datetime, timezone
from pathlib import Path

from report import cpu_clock, cpu_model, other_cores, table, verdict, write_section

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.dataset as ds
import pyarrow.parquet as pq

from study.comparison import compare, default_metric
from study.filters import parse as parse_filter
from study.queries import query
from study.render import print_comparison
from study.store import TABLES, ParquetStore
from study.store.parquet import _dataset, _pandas_type
from study.store.schema import HISTORY, SCHEMA_VERSION, TRIALS

TARGET_COMPARE_S, TARGET_QUERY_S, TARGET_APPEND_GROWTH = 1.0, 2.0, 1.5
BUSY_CORES = 0.1
COMPARE_COLUMNS = ["trial_id", "status", "criterion", "density", "final_test_accuracy"]
TRIALS_WHERE, TRIALS_COLUMNS = "criterion == 'snip' and density < 0.2", ["trial_id", "density", "final_test_accuracy"]
HISTORY_WHERE, HISTORY_COLUMNS = "epoch == 100 and test_accuracy > 0.9", ["trial_id", "test_accuracy"]
HISTORY_FILTER = "(ds.field('epoch') == 100) & (ds.field('test_accuracy') > 0.9)"  # HISTORY_WHERE by hand


@dataclass(frozen=True)
class Settings:
    trials: int  # in the compacted file
    parts: int  # one-trial parts appended after it
    reruns: int  # of those parts, re-runs of failed trials of the compacted file
    repeat: int  # timed runs per read
    append_reps: int  # timed appends per study size
    big_parts: int  # part count of the largest append scenario
    cli_reps: int  # runs of `dst-study compare` as a process


FULL = Settings(trials=100_000, parts=50, reruns=10, repeat=5, append_reps=30, big_parts=500, cli_reps=3)
QUICK = Settings(trials=10_000, parts=50, reruns=10, repeat=5, append_reps=15, big_parts=500, cli_reps=1)


# ---- the synthetic study ----------------------------------------------------------------------

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
        "resumed_from": pa.array(np.where(rng.random(n) < 0.05, rng.integers(10, 90, n), 0)),  # 5 % resumed
        "wall_seconds": pa.array(wall), "update_seconds": pa.array(update_s.sum(axis=1)),
        "host": names(HOSTS, rng.integers(0, len(HOSTS), n)), "device_used": names(["cuda:0"], np.zeros(n, int)),
        "dst_study_version": names(["0.1.0"], np.zeros(n, int)), "torch_version": names(["2.13.0"], np.zeros(n, int)),
        "git_commit": names(COMMITS, np.minimum(index * len(COMMITS) // max(1, index.max() + 1), len(COMMITS) - 1)),
        "started_at": pa.array(started, TRIALS.field("started_at").type),
        "ended_at": pa.array(ended, TRIALS.field("ended_at").type),
        "error": pa.array(np.where(failed, ERROR, None), pa.string()),
    }
    # a column added to the schema after this script was written is left null (and reported)
    trials = pa.table([columns.get(f.name, pa.nulls(n, f.type)) for f in TRIALS], schema=TRIALS)
    flat = lambda a: pa.array(np.broadcast_to(a, (n, EPOCHS)).reshape(-1))  # noqa: E731
    hist = {
        "trial_id": ids.take(pa.array(np.repeat(np.arange(n), EPOCHS))),
        "epoch": flat(e.astype(np.int64)), "step": flat((e * STEPS_PER_EPOCH).astype(np.int64)), "lr": flat(lr),
        "train_loss": flat(train_loss), "train_accuracy": flat(train_acc),
        "test_loss": flat(test_loss), "test_accuracy": flat(test_acc),
        "density": flat(density[:, None]), "drop_fraction": flat(drop), "itop_rate": flat(itop),
        "n_updates": flat(n_updates.astype(np.int64)), "update_seconds": flat(update_s), "epoch_seconds": flat(epoch_s),
    }
    return trials, pa.table([hist.get(f.name, pa.nulls(n * EPOCHS, f.type)) for f in HISTORY], schema=HISTORY)


def _metadata(table: str) -> dict[str, str]:
    return {"dst_study_schema_version": SCHEMA_VERSION, "table": table}


def build(root: Path, s: Settings, seed: int = 0) -> dict:
    """Write the study (see the module docstring); returns timings, sizes and expected answers."""
    info: dict = {"seconds": {}}
    start = time.perf_counter()
    name = f"{time.time_ns() - 86_400 * 10**9:020d}-{uuid.uuid4().hex[:8]}-c.parquet"  # sorts before the parts
    chunk = ROW_GROUP // EPOCHS  # trials per history row group
    trial_tables = []
    for table in ("trials", "history"):
        (root / table).mkdir(parents=True, exist_ok=True)
    tmp = root / "history" / f".tmp-{name}"
    with pq.ParquetWriter(tmp, HISTORY.with_metadata(_metadata("history")), compression="zstd") as writer:
        for lo in range(0, s.trials, chunk):
            trials, history = synthetic(np.arange(lo, min(s.trials, lo + chunk)), np.random.default_rng([seed, lo]))
            writer.write_table(history.replace_schema_metadata(_metadata("history")), row_group_size=ROW_GROUP)
            trial_tables.append(trials)
            if lo == 0:  # columns this script does not know, left null
                info["null columns"] = [f"{name_}.{c}" for name_, t in (("trials", trials), ("history", history))
                                        for c in t.column_names if t.column(c).null_count == t.num_rows]
            del history
    tmp.rename(root / "history" / name)
    trials = pa.concat_tables(trial_tables).replace_schema_metadata(_metadata("trials"))
    tmp = root / "trials" / f".tmp-{name}"
    pq.write_table(trials, tmp, compression="zstd", row_group_size=ROW_GROUP)
    tmp.rename(root / "trials" / name)
    info["seconds"]["compacted files (pyarrow, vectorised)"] = time.perf_counter() - start

    # the expected answers, kept up to date through the appends below
    latest = pd.DataFrame({c: trials.column(c).to_numpy(zero_copy_only=False)
                           for c in ("trial_id", "status", "final_test_accuracy")}).set_index("trial_id")
    start = time.perf_counter()
    failed = np.flatnonzero(trials.column("status").to_numpy(zero_copy_only=False) == "failed")[:s.reruns]
    rerun_at = {int(j * s.parts / len(failed)): int(i) for j, i in enumerate(failed)} if len(failed) else {}
    store = ParquetStore(str(root))
    for k in range(s.parts):
        index = rerun_at.get(k, s.trials + k)
        t, h = synthetic(np.array([index]), np.random.default_rng([seed, 10**9 + k]), rerun=k in rerun_at)
        store.append(t.to_pylist(), h.to_pylist())
        row = t.to_pylist()[0]
        latest.loc[row["trial_id"], ["status", "final_test_accuracy"]] = [row["status"], row["final_test_accuracy"]]
    info["seconds"][f"{s.parts} parts (ParquetStore.append)"] = time.perf_counter() - start
    completed = latest[latest["status"] == "completed"]
    info["expected"] = {"trials": len(latest), "completed": len(completed),
                        "history hits": int((latest["final_test_accuracy"] > 0.9).sum()),
                        "reruns": len(rerun_at)}
    info["history rows"] = s.trials * EPOCHS + s.parts * EPOCHS
    return info


def _build_child(root: str, s: dict, queue) -> None:
    info = build(Path(root), Settings(**s))
    info["peak rss MB"] = vm_hwm_mb()
    queue.put(info)


def build_in_child(root: Path, s: Settings) -> dict:
    """``build`` in a fresh process, so that its memory does not count as the readers'."""
    ctx = multiprocessing.get_context("spawn")
    queue = ctx.Queue()
    child = ctx.Process(target=_build_child, args=(str(root), asdict(s), queue))
    child.start()
    return _result(child, queue, "building the study")


def _result(child, queue, what: str):
    """The child's answer; an error (not a hang) when it died without one."""
    while True:
        try:
            out = queue.get(timeout=1)
            break
        except Exception:  # queue.Empty
            if not child.is_alive():
                raise SystemExit(f"{what} failed in a child process (exit code {child.exitcode}); see above")
    child.join()
    return out


def disk_bytes(root: Path) -> dict[str, dict[str, int]]:
    """Compressed bytes on disk per table and top-level column, over every part file."""
    out: dict[str, dict[str, int]] = {}
    for table in ("trials", "history"):
        sizes = out.setdefault(table, {})
        for path in sorted((root / table).glob("*.parquet")):
            meta = pq.read_metadata(path)
            for g in range(meta.num_row_groups):
                rg = meta.row_group(g)
                for c in range(rg.num_columns):
                    col = rg.column(c)
                    top = col.path_in_schema.split(".")[0]
                    sizes[top] = sizes.get(top, 0) + col.total_compressed_size
    return out


# ---- the operations -------------------------------------------------------------------------

def op_compare_cli(root: str) -> str:
    """What ``dst-study compare STUDY`` does, in this process: ``study.cli.main``, table to a buffer."""
    from study.cli import main as cli_main  # imported here: the other reads need not pay for it
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        code = cli_main(["compare", root])
    if code:
        raise RuntimeError(f"dst-study compare exited with {code}")
    return out.getvalue()


def op_compare_all_columns(root: str):
    """``compare`` over every trials column, ``query(store, "trials", None)``, with the CLI's default
    metric: what ``dst-study compare`` computes (it splits tables by any other axis that varies)."""
    trials = query(ParquetStore(root), "trials", None)
    return compare(trials, default_metric(trials))


def op_compare_projected(root: str):
    return compare(ParquetStore(root).read("trials", COMPARE_COLUMNS))


def op_query_trials(root: str):
    return query(ParquetStore(root), "trials", TRIALS_WHERE, TRIALS_COLUMNS)


def op_query_history(root: str):
    return query(ParquetStore(root), "history", HISTORY_WHERE, HISTORY_COLUMNS)


def op_history_pushdown(root: str):
    """Alternative: the history query with its filter also given to the Arrow scan."""
    cols = list(dict.fromkeys([*HISTORY_COLUMNS, *sorted(_names_in(HISTORY_WHERE, "history"))]))
    frame = ParquetStore(root).read("history", cols, filter=eval(HISTORY_FILTER))
    return frame.query(HISTORY_WHERE)[HISTORY_COLUMNS].reset_index(drop=True)


def lean_newest_rows(store: ParquetStore, data: pa.Table) -> pa.Table:
    """Alternative to ``ParquetStore._newest_rows``: one keep-mask and one filter, after dropping
    ``__filename`` (today: two filters + a concat of every row, ``__filename`` included, and
    ``__filename`` goes on through ``to_pandas``). Rows keep their scan order."""
    parts = store._scan("trials", ["trial_id"], None).to_pandas()
    repeated = parts["trial_id"].duplicated(keep=False)
    if not repeated.any():
        return data.drop_columns(["__filename"])
    winner = parts[repeated].drop_duplicates("trial_id", keep="last").set_index("trial_id")["__filename"]
    winner = winner.str.rsplit("/", n=1).str[-1]
    in_question = pc.is_in(data["trial_id"], pa.array(winner.index.to_numpy(dtype=str)))
    index = np.flatnonzero(in_question.to_numpy(zero_copy_only=False))
    rows = data.select(["trial_id", "__filename"]).take(pa.array(index)).to_pandas()
    won = rows["__filename"].str.rsplit("/", n=1).str[-1].to_numpy() == rows["trial_id"].map(winner).to_numpy()
    keep = np.ones(data.num_rows, bool)
    keep[index[~won]] = False
    return data.drop_columns(["__filename"]).filter(pa.array(keep))


def lean_history(store: ParquetStore, columns: list[str], flt: ds.Expression | None) -> pd.DataFrame:
    """``store.read("history", columns, flt)`` with ``lean_newest_rows``."""
    data = store._scan("history", list(dict.fromkeys(["trial_id", *columns])), flt)
    return lean_newest_rows(store, data).to_pandas(types_mapper=_pandas_type)[columns].reset_index(drop=True)


def op_history_lean(root: str):
    cols = list(dict.fromkeys([*HISTORY_COLUMNS, *sorted(_names_in(HISTORY_WHERE, "history"))]))
    frame = lean_history(ParquetStore(root), cols, None)
    return frame.query(HISTORY_WHERE)[HISTORY_COLUMNS].reset_index(drop=True)


def op_history_lean_pushdown(root: str):
    cols = list(dict.fromkeys([*HISTORY_COLUMNS, *sorted(_names_in(HISTORY_WHERE, "history"))]))
    frame = lean_history(ParquetStore(root), cols, eval(HISTORY_FILTER))
    return frame.query(HISTORY_WHERE)[HISTORY_COLUMNS].reset_index(drop=True)


OPS = {
    "compare_cli": op_compare_cli, "compare_projected": op_compare_projected,
    "compare_all_columns": op_compare_all_columns,
    "query_trials": op_query_trials, "query_history": op_query_history,
    "history_pushdown": op_history_pushdown, "history_lean": op_history_lean,
    "history_lean_pushdown": op_history_lean_pushdown,
}


def reads_of(fn, root: str) -> tuple[list[tuple[str, list[str]]], list[tuple[str, list[str]]]]:
    """What one call of ``fn`` asks of the store: ``ParquetStore.read`` calls (table, columns) and
    the Arrow scans they make (table, columns), recorded by wrapping the two methods."""
    reads, scans = [], []
    read, scan = ParquetStore.read, ParquetStore._scan

    def spy_read(self, table, columns=None, filter=None):
        reads.append((table, list(columns or TABLES[table].names)))
        return read(self, table, columns, filter)

    def spy_scan(self, table, columns, filter):
        scans.append((table, list(columns)))
        return scan(self, table, columns, filter)

    ParquetStore.read, ParquetStore._scan = spy_read, spy_scan
    try:
        fn(root)
    finally:
        ParquetStore.read, ParquetStore._scan = read, scan
    return reads, scans


def timed(fn, root: str, repeat: int, warmup: int = 1) -> tuple[list[float], object]:
    """Seconds of ``repeat`` calls after ``warmup`` untimed ones, and the last result."""
    out = None
    for _ in range(warmup):
        out = fn(root)
    seconds = []
    for _ in range(repeat):
        out = None
        gc.collect()
        start = time.perf_counter()
        out = fn(root)
        seconds.append(time.perf_counter() - start)
    return seconds, out


def same(a: pd.DataFrame, b: pd.DataFrame) -> bool:
    """Equal frames, row order aside."""
    if list(a.columns) != list(b.columns) or len(a) != len(b):
        return False
    key = list(a.columns)
    a = a.sort_values(key).reset_index(drop=True)
    b = b.sort_values(key).reset_index(drop=True)
    return a.astype(object).equals(b.astype(object))


# ---- where the time goes --------------------------------------------------------------------

class Steps:
    """Seconds per named step over several replays."""

    def __init__(self):
        self.samples: dict[str, list[float]] = {}

    @contextlib.contextmanager
    def __call__(self, label: str):
        start = time.perf_counter()
        yield
        self.samples.setdefault(label, []).append(time.perf_counter() - start)

    def medians(self) -> dict[str, float]:
        return {label: statistics.median(v) for label, v in self.samples.items()}


def _names_in(where: str, table: str) -> set[str]:
    """The columns a --where filter reads."""
    return set(parse_filter(where, TABLES[table].names).names)


def replay(root: str, table: str, where: str | None, columns: list[str] | None, then: str | None, steps: Steps):
    """``query`` step by step as ``ParquetStore.read`` does it, each step timed; ``then``:
    "compare" also pivots, "cli" also renders the table as ``dst-study compare`` does."""
    with steps("total (replayed)"):
        store = ParquetStore(root)
        wanted = list(columns or TABLES[table].names)
        used = _names_in(where, table) if where else set()
        cols = list(dict.fromkeys([*wanted, *sorted(used)]))
        scan_cols = list(dict.fromkeys(["trial_id", *cols]))
        with steps("list part files (`store.files`)"):
            store.files(table)
        with steps(f"Parquet -> Arrow: {len(scan_cols)} columns + `__filename` (`_scan`, lists again)"):
            data = store._scan(table, scan_cols, None)
        if table == "trials":
            with steps("Arrow -> pandas (`to_pandas`, `__filename` included)"):
                frame = data.to_pandas(types_mapper=_pandas_type)
            with steps("dedupe: `is_unique`, sort + `drop_duplicates` when not"):
                if not frame["trial_id"].is_unique:
                    frame = frame.sort_values("__filename", kind="stable").drop_duplicates("trial_id", keep="last")
        else:  # _newest_rows, step by step
            with steps("dedupe: re-read trials (`trial_id`, `__filename`)"):
                parts = store._scan("trials", ["trial_id"], None).to_pandas()
            with steps("dedupe: repeated ids, winning files"):
                rep = parts["trial_id"].duplicated(keep=False)
                winner = parts[rep].drop_duplicates("trial_id", keep="last").set_index("trial_id")["__filename"]
                winner = winner.str.rsplit("/", n=1).str[-1]
            if rep.any():
                with steps("dedupe: `is_in` + filters + `concat_tables` over all rows"):
                    in_q = pc.is_in(data["trial_id"], pa.array(winner.index.to_numpy(dtype=str)))
                    rows = data.filter(in_q).to_pandas()
                    keep = (rows["__filename"].str.rsplit("/", n=1).str[-1].to_numpy()
                            == rows["trial_id"].map(winner).to_numpy())
                    data = pa.concat_tables([data.filter(pc.invert(in_q)), data.filter(in_q).filter(pa.array(keep))])
            with steps("Arrow -> pandas (`to_pandas`, `__filename` included)"):
                frame = data.to_pandas(types_mapper=_pandas_type)
        with steps("select columns (`frame[columns]`)"):
            frame = frame[cols].reset_index(drop=True)
        if where:
            with steps("pandas `frame.query(where)`"):
                frame = frame.query(where)
        frame = frame[wanted].reset_index(drop=True)
        if then:
            with steps("`compare` (groupby, pivot)"):
                frame = compare(frame)
        if then == "cli":
            with steps("render the table (`print_comparison`)"):
                buffer = io.StringIO()
                print_comparison(frame, "table", buffer)
                frame = buffer.getvalue()
    # what-ifs on the same data, outside the total
    with steps("(what-if) same scan without `__filename`"):
        _dataset(store.files(table), store.fs, TABLES[table]).to_table(columns=scan_cols)
    with steps("(what-if) `to_pandas` without `__filename`"):
        data.drop_columns(["__filename"]).to_pandas(types_mapper=_pandas_type)
    return frame


# ---- appends --------------------------------------------------------------------------------

def link_study(src: Path, dst: Path) -> None:
    """A copy of a study made of hard links (a plain copy where links fail)."""
    for table in ("trials", "history"):
        (dst / table).mkdir(parents=True, exist_ok=True)
        for path in (src / table).glob("*.parquet"):
            try:
                os.link(path, dst / table / path.name)
            except OSError:
                shutil.copy2(path, dst / table / path.name)


def append_rows(n: int, start_index: int) -> list[tuple[list[dict], list[dict]]]:
    """``n`` new trials (1 trial row + 100 history rows each) as ``append`` takes them."""
    out = []
    for k in range(n):
        t, h = synthetic(np.array([start_index + k]), np.random.default_rng([7, k]))
        out.append((t.to_pylist(), h.to_pylist()))
    return out


def time_appends(root: Path, batches) -> list[float]:
    store = ParquetStore(str(root))
    seconds = []
    gc.collect()
    for trials, history in batches:
        start = time.perf_counter()
        store.append(trials, history)
        seconds.append(time.perf_counter() - start)
    return seconds


# ---- the command as a process, and memory ---------------------------------------------------

def process_seconds(args: list[str], reps: int) -> list[float]:
    seconds = []
    for _ in range(reps):
        start = time.perf_counter()
        subprocess.run(args, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        seconds.append(time.perf_counter() - start)
    return seconds


def vm_hwm_mb() -> float:
    """Peak RSS of this process (``VmHWM``): unlike ``getrusage``'s ``ru_maxrss``, which a spawned
    child inherits from its parent, it starts afresh in a new program."""
    with contextlib.suppress(OSError, ValueError):
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _peak_child(name: str, root: str, queue) -> None:
    import study.cli  # noqa: F401  (its imports are not the read's)
    base = vm_hwm_mb()
    OPS[name](root)
    queue.put((base, vm_hwm_mb()))


def peak_rss(name: str, root: str) -> tuple[float, float]:
    """(MB after imports, peak MB) of a fresh process running ``OPS[name]`` once."""
    ctx = multiprocessing.get_context("spawn")
    queue = ctx.Queue()
    child = ctx.Process(target=_peak_child, args=(name, root, queue))
    child.start()
    return _result(child, queue, f"measuring the memory of {name}")








# ---- report ---------------------------------------------------------------------------------





def mb(n: float) -> str:
    return f"{n / 1e6:.1f}"




def s_(seconds: float) -> str:
    return f"{seconds:.3f}"


def ms_(seconds: float) -> str:
    return f"{seconds * 1e3:.2f}"


LABELS = {
    "compare_cli": "`dst-study compare STUDY` (in-process `study.cli.main`, table rendered to a buffer)",
    "compare_projected": f"`compare` on `store.read(\"trials\", {COMPARE_COLUMNS})`",
    "compare_all_columns": "`compare` on every column: `query(store, \"trials\", None)` (reference)",
    "query_trials": f"`query` trials `{TRIALS_WHERE}`, {len(TRIALS_COLUMNS)} columns",
    "query_history": f"`query` history `{HISTORY_WHERE}`, {len(HISTORY_COLUMNS)} columns",
    "history_pushdown": f"history query, filter pushed into the scan: `store.read(\"history\", cols, "
                        f"filter={HISTORY_FILTER})`, then the pandas `query`",
    "history_lean": "history query, deduplication with one mask and one filter, `__filename` dropped before "
                    "(not through `to_pandas`)",
    "history_lean_pushdown": "history query, both: that deduplication + the filter pushed into the scan",
}
TARGETS = {"compare_cli": TARGET_COMPARE_S, "compare_projected": TARGET_COMPARE_S,
           "compare_all_columns": TARGET_COMPARE_S, "query_trials": TARGET_QUERY_S, "query_history": TARGET_QUERY_S}


def scanned(scans: list[tuple[str, list[str]]], disk: dict[str, dict[str, int]]) -> str:
    """The Arrow scans of a call: columns and their compressed bytes on disk against the table's."""
    out = []
    for table, cols in scans:
        names = [c for c in cols if c in TABLES[table].names]
        out.append(f"{table} {len(names)}/{len(TABLES[table].names)} cols "
                   f"({mb(sum(disk[table].get(c, 0) for c in names))} of {mb(sum(disk[table].values()))} MB)")
    return " + ".join(out)


def report(header: list[str], busy: float | None, s: Settings, info: dict, disk: dict, reads: dict, scans: dict,
           checks: list[str], steps: dict[str, dict[str, float]], alternatives: dict, appends: dict,
           reads_big: dict, processes: dict, peaks: dict, own_peak: float) -> str:
    med = statistics.median
    lines = [*header, ""]
    if busy is not None and busy > BUSY_CORES:
        lines += [f"**Warning:** other processes kept {busy:.2f} cores busy on average during the measurements; "
                  "on 2 cores the figures below are slower than on an idle machine. Re-run on an idle machine.", ""]

    lines += ["### Reads (warm page cache, a fresh `ParquetStore` each run)", "",
              f"Median and minimum of {s.repeat} runs after one warm-up. *Scans* are the Arrow scans the call made "
              "(recorded by wrapping `ParquetStore._scan`): columns read of the table's, and their compressed size "
              "on disk.", ""]
    lines += table(["operation", "median s", "min s", "target", "verdict", "rows out", "scans"],
                   [[LABELS[k], s_(med(v)), s_(min(v)), f"< {TARGETS[k]:g} s", verdict(med(v) < TARGETS[k]),
                     f"{n:,}", scanned(scans[k], disk)] for k, (v, n) in reads.items()])
    lines += ["", "Checks: " + "; ".join(checks) + ".", ""]

    lines += ["### Where the time goes", "",
              f"The steps of `query` / `ParquetStore.read` (+ `compare`) replayed one by one with the store's own "
              f"helpers, median of {s.repeat} replays, ms; each replay's result is checked equal to the real call's. "
              "`(what-if)` rows are not part of the total.", ""]
    for name, med_steps in steps.items():
        total = med_steps["total (replayed)"]
        rows = [[label, ms_(v), "" if label.startswith("(what-if)") else f"{100 * v / total:.0f} %"]
                for label, v in med_steps.items()]
        lines += [f"**{LABELS[name]}**", ""] + table(["step", "ms", "share"], rows) + [""]

    lines += ["### Measured alternatives (not what the code does today)", "",
              "The history query done otherwise; each result checked equal to `query`'s (rows in any order).", ""]
    lines += table(["alternative", "median s", "min s", f"< {TARGET_QUERY_S:g} s", "same result"],
                   [[LABELS[k], s_(med(v)), s_(min(v)), verdict(med(v) < TARGET_QUERY_S), "yes" if ok else "NO"]
                    for k, (v, ok) in alternatives.items()])
    lines += [""]

    base = med(appends["empty study"][1])
    lines += ["### Appending one trial (1 trial row + 100 history rows, one `ParquetStore.append`)", "",
              f"The first three rows: {s.append_reps} appends to each study, interleaved (the order rotating). "
              "The rows in brackets: the appends that filled one copy of the study up to "
              f"{s.big_parts} parts, in thirds.", ""]
    lines += table(["study", "parts before", "appends", "median ms", "min ms", "max ms", "median / empty study"],
                   [[k, f"{p:,}", str(len(v)), ms_(med(v)), ms_(min(v)), ms_(max(v)), f"{med(v) / base:.2f}"]
                    for k, (p, v) in appends.items()])
    worst = med(appends[f"compacted + {s.big_parts} parts"][1]) / base  # interleaved with the empty study
    lines += ["", f"- O(1): median at {s.big_parts} parts (beside {info['trials']:,} compacted trials) = {worst:.2f} x "
              f"the empty study's (target <= {TARGET_APPEND_GROWTH:g}): **{verdict(worst <= TARGET_APPEND_GROWTH)}**",
              "- `append` writes one new file per table under a temporary name and renames it; it neither lists "
              "nor reads the existing parts, so its cost does not depend on the study's size.", ""]
    runs = len(next(iter(reads_big.values())))
    lines += [f"Reads after those appends ({s.big_parts + s.append_reps:,} parts; median of {runs} runs; for "
              "information: reads list and open every part, so they slow down as parts pile up until "
              "`dst-study compact` merges them):", ""]
    lines += table(["operation", f"{s.parts} parts: median s", f"{s.big_parts + s.append_reps} parts: median s"],
                   [[LABELS[k], s_(med(reads[k][0])), s_(med(v))] for k, v in reads_big.items()])
    lines += [""]

    cli = processes["dst-study compare STUDY"]
    lines += ["### The command as a new process", "",
              f"Wall time of a new Python process (median of {s.cli_reps}), and of the imports it pays for.", ""]
    lines += table(["process", "median s", "min s"],
                   [["`python -m study.cli compare STUDY` (output to /dev/null)" if k == "dst-study compare STUDY"
                     else f"`python -c \"{k}\"`", s_(med(v)), s_(min(v))] for k, v in processes.items()])
    lines += ["", f"- end to end, start-up included, against the {TARGET_COMPARE_S:g} s target: "
              f"**{verdict(med(cli) < TARGET_COMPARE_S)}** (the requirement's figure is the in-process one above; "
              "start-up is reported so that it is not missed)", ""]

    lines += ["### Memory", "", "Peak RSS (`VmHWM`) of a fresh process running the read once, MB (imports first: "
              "`study.cli`, and torch through `study.store`).", ""]
    lines += table(["read", "after imports", "peak", "added by the read"],
                   [[LABELS[k], f"{a:.0f}", f"{b:.0f}", f"{b - a:.0f}"] for k, (a, b) in peaks.items()])
    lines += ["", f"- this benchmark process (`getrusage`): peak RSS {own_peak:.0f} MB; the process that generated the "
              f"study: {info['peak rss MB']:.0f} MB", ""]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="10,000 trials / 1 M history rows (about a minute)")
    parser.add_argument("--dir", type=Path, help="build the study in DIR/study and keep it (default: a temporary "
                                                 "directory, removed at the end)")
    parser.add_argument("--reuse", action="store_true", help="with --dir: reuse the study this script built there "
                                                             "with the same settings and schema")
    parser.add_argument("--repeat", type=int, help="timed runs per read (default 5)")
    parser.add_argument("--out", type=Path, help="Markdown file whose bench_store section is (re)written")
    args = parser.parse_args(argv)
    s = QUICK if args.quick else FULL
    if args.repeat:
        s = Settings(**{**asdict(s), "repeat": max(1, args.repeat)})
    wall = time.perf_counter()
    say = lambda msg: print(f"{time.perf_counter() - wall:5.0f} s {msg}", flush=True)  # noqa: E731
    med = statistics.median

    with contextlib.ExitStack() as stack:
        if args.dir:
            work = args.dir.resolve()
            work.mkdir(parents=True, exist_ok=True)
        else:
            work = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="bench_store-")))
        root, r = work / "study", str(work / "study")
        marker = work / "bench_store.json"
        key = {**{k: v for k, v in asdict(s).items() if k in ("trials", "parts", "reruns")},
               "schema": [str(TABLES[t]) for t in ("trials", "history")]}
        if args.reuse and marker.exists() and json.loads(marker.read_text()).get("settings") == key:
            info = json.loads(marker.read_text())["info"]
            say(f"[1/7] reusing the study in {root}")
        else:
            for path in (root, work / "scratch", marker):
                shutil.rmtree(path, ignore_errors=True) if path.is_dir() else path.unlink(missing_ok=True)
            say(f"[1/7] building {s.trials:,} trials + {s.trials * EPOCHS:,} history rows, then {s.parts} parts, "
                f"in {root} ...")
            info = build_in_child(root, s)
            marker.write_text(json.dumps({"settings": key, "info": info}))
        info["trials"] = s.trials
        for label, sec in info["seconds"].items():
            print(f"      {label}: {sec:.1f} s", flush=True)
        if info["null columns"]:
            print(f"      left null (new to this benchmark): {', '.join(info['null columns'])}", flush=True)
        shutil.rmtree(work / "scratch", ignore_errors=True)
        disk = disk_bytes(root)
        n_files = {t: len(list((root / t).glob("*.parquet"))) for t in ("trials", "history")}
        clock = cpu_clock()

        say(f"[2/7] reads, {s.repeat} runs each ...")
        names = ("compare_cli", "compare_projected", "compare_all_columns", "query_trials", "query_history")
        recorded = {name: reads_of(OPS[name], r) for name in names}
        scans = {name: rec[1] for name, rec in recorded.items()}
        reads, outs = {}, {}
        for name in names:
            seconds, outs[name] = timed(OPS[name], r, s.repeat)
            reads[name] = seconds
            say(f"      {name:>20}: median {s_(med(seconds))} s, min {s_(min(seconds))} s; scans: "
                f"{scanned(scans[name], disk)}")
        exp = info["expected"]
        projected, every = outs["compare_projected"], outs["compare_all_columns"]
        buffer = io.StringIO()
        print_comparison(every, "table", buffer)
        cells = int(projected.cells["n"].sum())
        checks = [
            f"seeds over all `compare` cells {cells:,} = completed trials {exp['completed']:,}: "
            + ("OK" if cells == exp["completed"] else "MISMATCH"),
            "`dst-study compare` table = every-column `compare`'s: "
            + ("OK" if outs["compare_cli"] == buffer.getvalue() else "MISMATCH"),
            f"history hits {len(outs['query_history']):,} = trials whose final accuracy > 0.9 "
            f"{exp['history hits']:,}: " + ("OK" if len(outs["query_history"]) == exp["history hits"] else "MISMATCH"),
        ]
        for c in checks:
            print(f"      check: {c}", flush=True)
        rows_out = {"compare_cli": len(projected.cells), "compare_projected": len(projected.cells),
                    "compare_all_columns": len(every.cells)}
        reads = {k: (v, rows_out[k] if k in rows_out else len(outs[k])) for k, v in reads.items()}

        say("[3/7] where the time goes ...")
        cli_reads = recorded["compare_cli"][0]
        plans = {"compare_cli": ("trials", None, cli_reads[0][1] if cli_reads else None, "cli"),
                 "compare_all_columns": ("trials", None, None, "compare"),
                 "query_trials": ("trials", TRIALS_WHERE, TRIALS_COLUMNS, None),
                 "query_history": ("history", HISTORY_WHERE, HISTORY_COLUMNS, None)}
        steps = {}
        for name, plan in plans.items():
            st = Steps()
            for _ in range(s.repeat):
                gc.collect()
                out = replay(r, *plan, st)
            real = outs[name]
            if plan[3] == "compare":
                ok = out.cells.equals(real.cells)
            else:
                ok = out == real if plan[3] == "cli" else same(out, real)
            if not ok:
                print(f"      warning: the replay of {name} no longer gives the real result; its steps are stale",
                      flush=True)
                checks.append(f"the replay of {name} differs from the real call: its breakdown is stale")
            steps[name] = st.medians()

        say("[4/7] alternatives ...")
        alternatives = {}
        for name in ("history_pushdown", "history_lean", "history_lean_pushdown"):
            seconds, out = timed(OPS[name], r, s.repeat)
            alternatives[name] = (seconds, same(out, outs["query_history"]))
            say(f"      {name:>22}: median {s_(med(seconds))} s, same result: {alternatives[name][1]}")
        del outs

        say("[5/7] appends ...")
        scratch = work / "scratch"
        parts, n = n_files["trials"] - 1, s.append_reps
        dirs = {"empty study": scratch / "empty", f"compacted + {parts} parts": scratch / "mid",
                f"compacted + {s.big_parts} parts": scratch / "big"}
        link_study(root, dirs[f"compacted + {parts} parts"])
        link_study(root, dirs[f"compacted + {s.big_parts} parts"])
        fill = append_rows(max(0, s.big_parts - parts), 2 * 10**8)
        fill_times = time_appends(dirs[f"compacted + {s.big_parts} parts"], fill)  # parts -> big_parts
        appends = {k: (p, []) for k, p in zip(dirs, (0, parts, s.big_parts))}
        batches = append_rows(len(dirs) * n, 10**8)
        stores = {k: ParquetStore(str(d)) for k, d in dirs.items()}
        gc.collect()
        for i in range(n):  # interleaved, the order rotating, so that a busy spell hits every study alike
            order = list(dirs)[i % len(dirs):] + list(dirs)[:i % len(dirs)]
            for j, k in enumerate(order):
                trials, history = batches[i * len(dirs) + j]
                start = time.perf_counter()
                stores[k].append(trials, history)
                appends[k][1].append(time.perf_counter() - start)
        lo = parts
        for third in (np.array_split(np.asarray(fill_times), 3) if len(fill_times) >= 3 else []):
            appends[f"(filling up one study: {lo} -> {lo + len(third)} parts)"] = (lo, third.tolist())
            lo += len(third)
        for k, (p, v) in appends.items():
            say(f"      {k:>48}: median {ms_(med(v))} ms over {len(v)} appends")
        big = dirs[f"compacted + {s.big_parts} parts"]
        reads_big = {name: timed(OPS[name], str(big), min(3, s.repeat))[0]
                     for name in ("compare_cli", "query_trials", "query_history")}
        shutil.rmtree(scratch, ignore_errors=True)

        say("[6/7] the command as a process ...")
        py = sys.executable
        processes = {"dst-study compare STUDY": process_seconds([py, "-m", "study.cli", "compare", r], s.cli_reps)}
        for code in ("pass", "import pandas, pyarrow.dataset, pyarrow.parquet", "import torch", "import study.store",
                     "import study.cli"):
            processes[code] = process_seconds([py, "-c", code], s.cli_reps)
        for k, v in processes.items():
            say(f"      {k:>50}: median {s_(med(v))} s")

        say("[7/7] memory ...")
        peaks = {name: peak_rss(name, r) for name in OPS}
        busy = other_cores(clock, cpu_clock())
        own_peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024

        command = shlex.join(["python", *(sys.argv if argv is None else [sys.argv[0], *argv])])
        sizes = {t: sum(p.stat().st_size for p in (root / t).glob("*.parquet")) for t in ("trials", "history")}
        header = [
            f"Command: `{command}`", "",
            f"- date: {datetime.now(timezone.utc):%Y-%m-%d %H:%M UTC}",
            f"- CPU: {cpu_model()} ({os.cpu_count()} logical cores), "
            f"{os.sysconf('SC_PAGE_SIZE') * os.sysconf('SC_PHYS_PAGES') / 2**30:.0f} GiB RAM; other processes used "
            + (f"{busy:.2f} cores on average during the measurements" if busy is not None else "n/a cores"),
            f"- Python {platform.python_version()}, pyarrow {pa.__version__}, pandas {pd.__version__}, "
            f"numpy {np.__version__}",
            f"- study: {s.trials:,} trials in one compacted file + {s.parts} one-trial parts ({exp['reruns']} re-runs "
            f"of failed trials) = {exp['trials']:,} trials ({exp['completed']:,} completed); "
            f"{info['history rows']:,} history rows; {n_files['trials']} files per table; on disk: trials "
            f"{mb(sizes['trials'])} MB, history {mb(sizes['history'])} MB (zstd, row groups of {ROW_GROUP:,} rows)"
            + (f"; left null: {', '.join(info['null columns'])}" if info["null columns"] else ""),
            "- generation (not a target): " + ", ".join(f"{k} {v:.1f} s" for k, v in info["seconds"].items()),
            f"- settings: {'quick' if args.quick else 'full'}; total wall time {time.perf_counter() - wall:.0f} s",
        ]
        body = report(header, busy, s, info, disk, reads, scans, checks, steps, alternatives, appends, reads_big,
                      processes, peaks, own_peak)
    print()
    print(body)
    if args.out:
        write_section(args.out, "bench_store", "Result store at scale (bench/bench_store.py)", body)
        print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
