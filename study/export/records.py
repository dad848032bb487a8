"""A trial as the tracking tools take it: one :class:`TrialRecord` per trial, read from the store.

What a record holds, the same for every tool:

* ``params``: the trial's config fields (those its kind reads: a null field is left out; lists as
  JSON text, so every value is a bool, int, float or str);
* ``tags``: trial id, study, kind, status, criterion, growth, density, seed, algorithm revision;
* ``epochs``: the per-epoch history, ``(epoch, {metric: value})``; the tools' step is the epoch;
* ``final``: the trial's final and best metrics (the ``trials`` table's), named ``summary/<column>``:
  ``n_updates`` and ``update_seconds`` are per epoch in the history and totals in the summary.

A record's ``stamp`` (its status and end time) tells whether a tool holds the trial as stored: a
later row that replaced this one (a failed trial run again) has another stamp, so the trial is
written again; an unchanged trial is skipped. No metric carries a time of its own in the store:
every value is exported at the trial's end time.
"""

from __future__ import annotations

import json
import math
import os
from dataclasses import dataclass
from typing import Any, Iterable, Iterator

import pandas as pd
import pyarrow.dataset as ds

from ..store import CONFIG_COLUMNS, METRICS, SUMMARY_COLUMNS, ParquetStore, revision

__all__ = ["FINAL_PREFIX", "TrialRecord", "read_records", "stamps", "study_name"]

FINAL_PREFIX = "summary/"
_TAGGED = ("kind", "criterion", "growth", "density", "seed")  # config or row columns also given as tags
_HISTORY = [m for m in METRICS if m != "epoch"]  # the epoch is the step
Value = bool | int | float | str


@dataclass(frozen=True)
class TrialRecord:
    id: str
    study: str
    status: str  # completed or failed
    stamp: str  # status and end time: another once a later row replaces this one
    params: dict[str, Value]
    tags: dict[str, Value]
    epochs: tuple[tuple[int, dict[str, float]], ...]
    final: dict[str, float]
    started_at: float | None  # seconds since the epoch
    ended_at: float | None

    @property
    def last_epoch(self) -> int:
        return self.epochs[-1][0] if self.epochs else 0


def study_name(store: ParquetStore) -> str:
    """A study's name: its folder's (``<storage>/<name>/``)."""
    return os.path.basename(store.path.rstrip("/"))


def _stamp(status: Any, ended_at: Any) -> str:
    return f"{status}@{ended_at.isoformat() if isinstance(ended_at, pd.Timestamp) else ''}"


def stamps(store: ParquetStore) -> dict[str, str]:
    """Every trial's stamp, as stored now (one small read of the trials table)."""
    rows = store.read("trials", ["trial_id", "status", "ended_at"])
    return {tid: _stamp(s, e) for tid, s, e in zip(rows["trial_id"], rows["status"], rows["ended_at"])}


def _plain(value: Any) -> Value | None:
    """A value as the tools take it; None for a null (NaN included)."""
    if value is None or value is pd.NA or (isinstance(value, float) and math.isnan(value)):
        return None
    if hasattr(value, "tolist"):  # numpy scalars and arrays (list columns)
        value = value.tolist()
    return json.dumps(value) if isinstance(value, (list, tuple)) else value


def _seconds(t: Any) -> float | None:
    return t.timestamp() if isinstance(t, pd.Timestamp) else None


def read_records(store: ParquetStore, ids: Iterable[str]) -> Iterator[TrialRecord]:
    """The records of trials ``ids``, in the store's order; the history of those trials alone is read."""
    wanted = set(ids)
    if not wanted:
        return
    trials = store.read("trials")
    trials = trials[trials["trial_id"].isin(wanted)]
    history = store.read("history", filter=ds.field("trial_id").isin(sorted(wanted)))
    history = history.sort_values("epoch", kind="stable")
    values = history[_HISTORY].to_numpy(dtype="float64", na_value=math.nan).tolist()  # one conversion, not per cell
    epochs: dict[str, list[tuple[int, dict[str, float]]]] = {}
    for tid, epoch, row in zip(history["trial_id"], history["epoch"].tolist(), values):
        epochs.setdefault(tid, []).append((int(epoch), {k: v for k, v in zip(_HISTORY, row) if v == v}))  # NaN: none
    study = study_name(store)
    for row, rev in zip(trials.to_dict("records"), revision(trials)):
        tid = row["trial_id"]
        params = {k: v for k in CONFIG_COLUMNS if (v := _plain(row[k])) is not None}
        tags = {"trial_id": tid, "study": study, "status": row["status"],
                **{k: v for k in _TAGGED if (v := _plain(row[k])) is not None}, "algorithm_revision": int(rev)}
        final = {FINAL_PREFIX + k: float(v) for k in SUMMARY_COLUMNS if (v := _plain(row[k])) is not None}
        yield TrialRecord(tid, study, row["status"], _stamp(row["status"], row["ended_at"]), params, tags,
                          tuple(epochs.get(tid, ())), final, _seconds(row["started_at"]), _seconds(row["ended_at"]))
