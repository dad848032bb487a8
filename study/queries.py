"""Questions asked of a study's tables, answered as pandas DataFrames.

* :func:`open_study` resolves a study directory, URI, or name under the results root.
* :func:`query` filters a table with a ``--where`` filter (:mod:`study.filters`), reading only the
  columns it needs.
* :class:`Studies` reads several studies as one (``compare``, ``plot`` and ``report`` take several).

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

__all__ = ["default_root", "most_at_once", "open_study", "query", "Studies", "table_columns"]

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
    # history and jaccard rows are filtered by their trial's columns too (criterion == 'mine')
    types = dict(zip(TABLES["trials"].names, TABLES["trials"].types)) if table != "trials" else {}
    types.update(zip(names, TABLES[table].types))
    condition = filters.parse(where, list(types), types=types) if where else None
    used = sorted(condition.names) if condition else []
    of_trial = [c for c in used if c not in names]
    pushed = condition.arrow() if condition and table != "trials" and not of_trial else None
    frame = store.read(table, list(dict.fromkeys([*wanted, *[c for c in used if c in names]])), pushed)
    if of_trial:
        trials = store.read("trials", ["trial_id", *of_trial]).set_index("trial_id")
        frame = frame.assign(**{c: frame["trial_id"].map(trials[c]) for c in of_trial})
    if condition:
        frame = frame[condition.mask(frame)]
    return frame[wanted].reset_index(drop=True)


class Studies:
    """One or more studies read as one, for ``compare``, ``plot`` and ``report``: a trial is its id (a
    hash of its config), so a trial that several studies ran counts once, with the trial, history and
    Jaccard rows of the first study that completed it. A new study thus lines up with a committed one without
    re-running what they share; a trial held with different results is named in :attr:`warnings`."""

    def __init__(self, stores: Sequence[ParquetStore]):
        self.stores = list(stores)
        self.warnings: list[str] = []
        self._owner: dict[str, int] | None = None  # trial id -> index of the first store holding it

    @property
    def root(self) -> str:
        return " + ".join(str(s.root) for s in self.stores)

    @property
    def problems(self) -> list[str]:
        return [p for s in self.stores for p in s.problems]

    def query(self, table: str = "trials", where: str | None = None,
              columns: Sequence[str] | None = None) -> pd.DataFrame:
        """:func:`query` over every study, each trial's rows from the first study that holds it."""
        if len(self.stores) == 1:
            return query(self.stores[0], table, where, columns)
        wanted = list(columns or TABLES[table].names)
        read = list(dict.fromkeys(["trial_id", *wanted]))
        if table == "trials":
            read += [c for c in SUMMARY_COLUMNS if c not in read and not c.endswith("_seconds")]  # timings vary
        frames = [query(store, table, where, read).assign(__study=i) for i, store in enumerate(self.stores)]
        frame = pd.concat(frames, ignore_index=True)
        if table == "trials":
            self._warn_of_clashes(frame)
        owner = self.owners()
        frame = frame[frame["__study"] == frame["trial_id"].map(owner)]
        return frame[wanted].reset_index(drop=True)

    def owners(self) -> dict[str, int]:
        """Trial id -> the study whose rows are used: the first that completed it, else the first."""
        if self._owner is None:
            first: dict[str, int] = {}
            completed: dict[str, int] = {}
            for i, store in enumerate(self.stores):
                trials = query(store, "trials", columns=["trial_id", "status"])
                for tid, status in zip(trials["trial_id"], trials["status"]):
                    first.setdefault(tid, i)
                    if status == "completed":
                        completed.setdefault(tid, i)
            self._owner = {**first, **completed}
        return self._owner

    def _warn_of_clashes(self, frame: pd.DataFrame) -> None:
        results = [c for c in SUMMARY_COLUMNS if c in frame and not c.endswith("_seconds")]
        owner = self.owners()
        for tid, rows in frame[frame["trial_id"].duplicated(keep=False)].groupby("trial_id", sort=True):
            # a column one row lacks (written before it existed: n_updates) is unknown there, not different
            if any(rows[c].dropna().astype("float64").nunique() > 1 for c in results):
                where = " and ".join(str(self.stores[i].root) for i in rows["__study"])
                warning = f"trial {tid} is in {where} with different results; {self.stores[owner[tid]].root}'s is used"
                if warning not in self.warnings:
                    self.warnings.append(warning)


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
