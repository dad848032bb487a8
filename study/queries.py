"""Questions asked of a study's tables, answered as pandas DataFrames.

* :func:`open_study` resolves a study directory, URI, or name under the results root.
* :func:`query` filters a table with a ``--where`` filter (:mod:`study.filters`), reading only the
  columns it needs.

Comparison tables are built from these frames by :mod:`study.comparison`.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Sequence

import pandas as pd

from . import filters
from .folder import SPEC, StudyFolder
from .comparison import default_metric, varying_axes
from .store import SUMMARY_COLUMNS, TABLES, ParquetStore, StoreError

__all__ = ["default_root", "most_at_once", "open_study", "query", "query_trials", "table_columns"]

# what a terminal table of history shows unless asked: its 16 columns squeeze one to nothing
_HISTORY_SHOWN = ["trial_id", "epoch", "train_loss", "val_accuracy", "test_accuracy", "density"]


def default_root() -> Path:
    """Where studies land unless told otherwise: ``$DST_STUDY_RESULTS`` or ``./results``."""
    return Path(os.environ.get("DST_STUDY_RESULTS", "results"))


def open_study(study: str) -> ParquetStore:
    """A study directory, a filesystem URI, or the name of a study under :func:`default_root`."""
    if "://" in study:
        return ParquetStore(study)
    for candidate in (Path(study), default_root() / study):
        if StudyFolder(candidate).is_study():
            return ParquetStore(str(candidate))
    root = default_root()
    known = sorted(p.name for p in root.iterdir() if StudyFolder(p).is_study()) if root.is_dir() else []
    raise StoreError(f"unknown study {study!r}: no {study}/trials/ or {study}/{SPEC} here or under "
                     f"{str(root)!r} (studies there: {', '.join(known) or 'none'})")


def query(store: ParquetStore, table: str = "trials", where: str | None = None,
          columns: Sequence[str] | None = None) -> pd.DataFrame:
    """Rows of ``table`` matching the filter ``where`` (e.g. ``"criterion == 'snip' and density <
    0.2"``; the language of :mod:`study.filters`), with ``columns`` (all when None).

    For ``history`` and ``jaccard`` the simple comparisons of ``where`` also filter the Parquet
    scan (10 M history rows: 1.3 s -> 0.4 s); not for ``trials``, where a superseded row of a
    trial must be read to be dropped.
    """
    names = TABLES[table].names
    wanted = list(columns or names)
    unknown = sorted(set(wanted) - set(names))
    if unknown:
        raise StoreError(f"unknown column(s) {', '.join(map(repr, unknown))} in table {table!r} "
                         f"(columns: {', '.join(names)})")
    condition = filters.parse(where, names, types=dict(zip(names, TABLES[table].types))) if where else None
    used = sorted(condition.names) if condition else []
    pushed = condition.arrow() if condition and table != "trials" else None
    frame = store.read(table, list(dict.fromkeys([*wanted, *used])), pushed)
    if condition:
        frame = frame[condition.mask(frame)]
    return frame[wanted].reset_index(drop=True)


def query_trials(stores: Sequence[ParquetStore], where: str | None = None,
                 columns: Sequence[str] | None = None) -> tuple[pd.DataFrame, list[str]]:
    """The trials of several studies as one table, and a warning per trial id that two studies hold
    with different results. A trial is its id (a hash of its config): one both studies ran counts
    once (the first study's row), so a new study lines up with a committed one without re-running
    what they share."""
    frames = [query(store, "trials", where, columns).assign(__study=store.root) for store in stores]
    frame = pd.concat(frames, ignore_index=True) if len(frames) > 1 else frames[0]
    warnings = []
    if len(stores) > 1 and "trial_id" in frame:
        results = [c for c in SUMMARY_COLUMNS if c in frame and not c.endswith("_seconds")]  # timings vary
        for tid, rows in frame[frame["trial_id"].duplicated(keep=False)].groupby("trial_id", sort=True):
            if results and len(rows[results].astype("float64").drop_duplicates()) > 1:
                warnings.append(f"trial {tid} is in {' and '.join(rows['__study'])} with different results; the "
                                f"first one's row is used")
        frame = frame.drop_duplicates("trial_id", keep="first") if len(stores) > 1 else frame
    return frame.drop(columns="__study").reset_index(drop=True), warnings


def table_columns(table: str, frame: pd.DataFrame) -> list[str]:
    """The columns of ``frame`` (read from ``table``) that a terminal table shows by default: for
    trials the id, status and kind, the config axes its DST trials vary, the seed and the metric
    ``compare`` ranks; for history a few per-epoch metrics; jaccard's five all."""
    if table == "trials":
        return ["trial_id", "status", "kind", *varying_axes(frame), "seed", default_metric(frame)]
    return _HISTORY_SHOWN if table == "history" else list(frame.columns)


def most_at_once(trials: pd.DataFrame) -> int:
    """The most trials whose [``started_at``, ``ended_at``] intervals overlap at one moment: how many
    slots a study really used (an end and a start at the same instant do not overlap)."""
    events = sorted([(t, 1) for t in trials["started_at"]] + [(t, -1) for t in trials["ended_at"]],
                    key=lambda e: (e[0], e[1]))
    running = most = 0
    for _, step in events:
        running += step
        most = max(most, running)
    return most
