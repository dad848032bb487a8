"""The two tables of a study and their Arrow schemas (documented in ``results/README.md``).

* ``trials``: one row per trial: id, every :class:`dst_core.TrainConfig` field as its own typed
  column, status, final and best metrics, timing, host, device and versions.
* ``history``: one row per (trial, epoch) with the trainer's per-epoch metrics.
* ``jaccard``: one row per (trial, epoch, criterion pair) when the run recorded removal overlaps
  (``jaccard_every``): the Jaccard similarity of what the two criteria would remove.

Config columns are derived from the dataclass, so a new config field becomes a column without
editing this file. Older files that lack a column read it as null.
"""

from __future__ import annotations

import dataclasses
import typing

import pyarrow as pa

from dst_core.config import TrainConfig
from dst_core.summary import METRICS as EPOCH_METRICS

__all__ = ["CONFIG_COLUMNS", "HISTORY", "JACCARD", "METRICS", "SCHEMA_VERSION", "STATUSES", "TABLES", "TRIALS"]

SCHEMA_VERSION = "1"
STATUSES = ("completed", "failed", "running")


def _arrow_type(annotation) -> pa.DataType:
    if annotation in (str, str | None):
        return pa.string()
    if annotation is bool:
        return pa.bool_()
    if annotation is int:
        return pa.int64()
    if annotation is float:
        return pa.float64()
    if typing.get_origin(annotation) is tuple:
        return pa.list_(pa.float64())
    return pa.string()  # mappings (criterion_params) are stored as JSON text


_HINTS = typing.get_type_hints(TrainConfig)
CONFIG_COLUMNS = {f.name: _arrow_type(_HINTS[f.name]) for f in dataclasses.fields(TrainConfig)}

# per-epoch metrics written by dst_core.Trainer, in its order: counts are integers, the rest floats
METRICS = {name: pa.int64() if name in ("epoch", "step", "n_updates") else pa.float64() for name in EPOCH_METRICS}

_TIME = pa.timestamp("us", tz="UTC")

TRIALS = pa.schema(
    [("trial_id", pa.string()), ("status", pa.string()), ("kind", pa.string())]
    + list(CONFIG_COLUMNS.items())
    + [
        ("epochs_done", pa.int64()),
        ("final_test_accuracy", pa.float64()), ("test_accuracy_at_best_val", pa.float64()),
        ("best_val_accuracy", pa.float64()), ("best_val_epoch", pa.int64()),
        ("final_val_accuracy", pa.float64()),
        ("best_test_accuracy", pa.float64()), ("best_epoch", pa.int64()), ("final_test_loss", pa.float64()),
        ("final_train_accuracy", pa.float64()), ("final_train_loss", pa.float64()),
        ("final_density", pa.float64()), ("final_itop_rate", pa.float64()),
        ("n_updates", pa.int64()),
        ("resumed_from", pa.int64()), ("wall_seconds", pa.float64()), ("update_seconds", pa.float64()),
        ("host", pa.string()), ("device_used", pa.string()),
        ("dst_study_version", pa.string()), ("algorithm_revision", pa.int64()), ("torch_version", pa.string()),
        ("git_commit", pa.string()), ("git_dirty", pa.bool_()),
        ("started_at", _TIME), ("ended_at", _TIME), ("error", pa.string()),
    ]
)

HISTORY = pa.schema([("trial_id", pa.string())] + list(METRICS.items()))

JACCARD = pa.schema([("trial_id", pa.string()), ("epoch", pa.int64()), ("criterion_a", pa.string()),
                     ("criterion_b", pa.string()), ("jaccard", pa.float64())])

TABLES = {"trials": TRIALS, "history": HISTORY, "jaccard": JACCARD}
