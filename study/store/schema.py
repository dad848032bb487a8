"""The two tables of a study and their Arrow schemas (documented in ``results/README.md``).

* ``trials``: one row per trial: id, every :class:`dst_core.TrainConfig` field as its own typed
  column, status, final and best metrics, timing, host, device and versions (plugins' too).
* ``history``: one row per (trial, epoch) with the trainer's per-epoch metrics.
* ``jaccard``: one row per (trial, epoch, criterion pair) when the run recorded removal overlaps
  (``jaccard_every``): the Jaccard similarity of what the two criteria would remove.

Config and metric columns are derived from dataclasses (:class:`dst_core.TrainConfig`,
:class:`dst_core.summary.EpochMetrics` and :class:`dst_core.summary.Summary`), so a new field
becomes a column without editing this file. Older files that lack a column read it as null; a row
without ``algorithm_revision`` is of revision 1 (:func:`revision`).
"""

from __future__ import annotations

import dataclasses
import typing

import pyarrow as pa

if typing.TYPE_CHECKING:
    import pandas as pd

from dst_core.config import TrainConfig
from dst_core.summary import EpochMetrics, Summary

__all__ = ["CONFIG_COLUMNS", "HISTORY", "JACCARD", "METRICS", "SCHEMA_VERSION", "STATUSES", "SUMMARY_COLUMNS",
           "TABLES", "TRIALS", "revision", "revision_where"]

SCHEMA_VERSION = "1"
STATUSES = ("completed", "failed", "stopped")  # a trial has a row once it has ended (stopped: early, by ASHA)
UNRECORDED_REVISION = 1  # rows written before algorithm_revision was recorded


def revision(trials: pd.DataFrame) -> pd.Series:
    """The ``algorithm_revision`` of each row of a trials DataFrame, as integers: a row written
    before revisions were recorded (null) is of revision 1."""
    return trials["algorithm_revision"].fillna(UNRECORDED_REVISION).astype("int64")


def revision_where(number: int) -> str:
    """A ``--where`` filter (:mod:`study.filters`) for the trials of algorithm revision ``number``."""
    return f"algorithm_revision == {number}" + (" or algorithm_revision == None"
                                                  if number == UNRECORDED_REVISION else "")


def _arrow_type(annotation) -> pa.DataType:
    args = typing.get_args(annotation)
    if type(None) in args and len(args) == 2:  # X | None: a nullable X
        annotation = next(a for a in args if a is not type(None))
    if annotation is str:
        return pa.string()
    if annotation is bool:
        return pa.bool_()
    if annotation is int:
        return pa.int64()
    if annotation is float:
        return pa.float64()
    if typing.get_origin(annotation) is tuple:
        return pa.list_(pa.string() if typing.get_args(annotation)[0] is str else pa.float64())
    return pa.string()  # mappings (criterion_params) are stored as JSON text


def _columns(cls) -> dict[str, pa.DataType]:
    """One column per field of the dataclass ``cls``, in its order, typed from its annotations."""
    hints = typing.get_type_hints(cls)
    return {f.name: _arrow_type(hints[f.name]) for f in dataclasses.fields(cls)}


CONFIG_COLUMNS = _columns(TrainConfig)
METRICS = _columns(EpochMetrics)  # per-epoch metrics, in the trainer's order
SUMMARY_COLUMNS = _columns(Summary)  # final and best metrics of a trial
# in the trials table update_seconds has always followed wall_seconds: kept there, so the order
# of the columns (what a CSV of the table shows) does not move
_SUMMARY = {k: v for k, v in SUMMARY_COLUMNS.items() if k != "update_seconds"}

_TIME = pa.timestamp("us", tz="UTC")

TRIALS = pa.schema(
    [("trial_id", pa.string()), ("status", pa.string()), ("kind", pa.string())]
    + list(CONFIG_COLUMNS.items())
    + list(_SUMMARY.items())
    + [
        ("resumed_from", pa.int64()), ("wall_seconds", pa.float64()),
        ("update_seconds", SUMMARY_COLUMNS["update_seconds"]),
        ("host", pa.string()), ("device_used", pa.string()),
        ("dst_study_version", pa.string()), ("algorithm_revision", pa.int64()), ("torch_version", pa.string()),
        ("git_commit", pa.string()), ("git_dirty", pa.bool_()),
        # the plugins the trial used, as JSON text [{"module", "version", "sha256"}] (null: none)
        ("plugins", pa.string()),
        ("started_at", _TIME), ("ended_at", _TIME), ("error", pa.string()),
    ]
)

HISTORY = pa.schema([("trial_id", pa.string())] + list(METRICS.items()))

JACCARD = pa.schema([("trial_id", pa.string()), ("epoch", pa.int64()), ("criterion_a", pa.string()),
                     ("criterion_b", pa.string()), ("jaccard", pa.float64())])

TABLES = {"trials": TRIALS, "history": HISTORY, "jaccard": JACCARD}
