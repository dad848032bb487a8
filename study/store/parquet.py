"""The Parquet result store of one study: ``<root>/{trials,history,jaccard}/*.parquet``.

Writes are append-only part files named ``<time_ns>-<random>.parquet``: written under a hidden
temporary name (ignored by readers) and renamed when complete, so a crash loses at most the file
being written and never corrupts one. Readers deduplicate by trial id: a ``completed`` row wins
over any other status, and among rows of the same rank the newest file wins; a trial's history
comes from the file that holds its winning row (history without a trial row in its file's name, an
append cut short, is no trial's). ``compact()`` merges the parts into one
file per table without changing what readers see. Unreadable files are reported by name and the
rest still loads; ``compact()`` moves them, untouched, to ``<root>/quarantine/`` and never deletes
what it did not merge. A part file whose schema is not the table's (no ``trial_id``, a column of
another type) counts as unreadable. ``root`` is a local directory or a pyarrow filesystem URI
(``s3://bucket/x``).
"""

from __future__ import annotations

import contextlib
import errno
import os
import time
import uuid
import warnings
from dataclasses import dataclass, field
from typing import Any, Iterable, Mapping, Sequence

import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.dataset as ds
import pyarrow.fs as pafs
import pyarrow.parquet as pq

from ..folder import QUARANTINE, SUPERSEDED, StudyFolder, write_atomically
from .schema import SCHEMA_VERSION, TABLES, UNRECORDED_REVISION

__all__ = ["OutOfSpace", "ParquetStore", "StoreError", "UnreadableFileWarning", "WriteFailed", "code_key",
           "out_of_space", "write_atomically"]

PER_TRIAL = ("history", "jaccard")  # tables whose rows are written with, and follow, a trial row


class StoreError(Exception):
    """A store that cannot be used at all (no such study, a wrong kind of file, ...)."""


class UnreadableFileWarning(UserWarning):
    """A part file could not be read; it was skipped and the rest loaded."""


class WriteFailed(StoreError):
    """A result or a file of the study could not be written: the study cannot go on."""


class OutOfSpace(WriteFailed):
    """The filesystem of a study is full (or over its quota): nothing more can be stored there."""

    def __init__(self, root: str, path: str | None = None, detail: str = ""):
        where = root if "://" in root else _mount_point(path or root)
        free = "" if "://" in root else f", {_free_bytes(where) // 1024} KiB free"
        super().__init__(f"no space left on {where} (the filesystem of {root}{free})" + (detail and f": {detail}"))


_FULL = (errno.ENOSPC, errno.EDQUOT)
_FULL_TEXT = tuple(os.strerror(e) for e in _FULL)  # how the errors read in a worker's traceback


def out_of_space(error: BaseException | str) -> bool:
    """Whether ``error`` (an exception, or a traceback's text) says that a filesystem is full."""
    if isinstance(error, str):
        return any(text in error for text in _FULL_TEXT)
    return isinstance(error, OSError) and (error.errno in _FULL or out_of_space(str(error)))


def _mount_point(path: str) -> str:
    path = os.path.abspath(path)
    while not os.path.exists(path):
        path = os.path.dirname(path)
    while path != os.path.dirname(path) and not os.path.ismount(path):
        path = os.path.dirname(path)
    return path


def _free_bytes(path: str) -> int:
    try:
        return os.statvfs(path).f_bavail * os.statvfs(path).f_frsize
    except OSError:
        return 0


@dataclass
class ParquetStore:
    root: str  # local directory or filesystem URI
    folder: StudyFolder = field(init=False, repr=False)  # the study folder the tables live in
    fs: pafs.FileSystem = field(init=False, repr=False)
    path: str = field(init=False)  # root inside fs
    problems: list[str] = field(init=False, default_factory=list)  # unreadable files of the last read
    quarantined: list[str] = field(init=False, default_factory=list)  # moved aside by the last compact()
    _versions_checked: set[str] = field(init=False, repr=False, default_factory=set)  # newest parts read for it

    def __post_init__(self):
        try:
            self.folder = StudyFolder(self.root)
        except ValueError as e:
            raise StoreError(str(e)) from None
        self.fs, self.path = self.folder.fs, self.folder.path

    # -- writing ---------------------------------------------------------------------------------
    def append(self, trials: Sequence[Mapping[str, Any]], history: Sequence[Mapping[str, Any]] = (),
               jaccard: Sequence[Mapping[str, Any]] = ()) -> str:
        """Write trial rows with their history and Jaccard rows as one part per table.

        Returns the part name. The trial rows are written last: they commit the batch.
        """
        return self._commit({table: _to_table(rows, TABLES[table]) for table, rows in
                             (("history", history), ("jaccard", jaccard), ("trials", trials)) if rows})

    def _commit(self, tables: Mapping[str, pa.Table]) -> str:
        """Write one part per table of ``tables``, the trials part last; returns the part name."""
        name = f"{time.time_ns():020d}-{uuid.uuid4().hex[:8]}.parquet"
        written = []
        try:
            for table in ("history", "jaccard", "trials"):
                if table in tables and tables[table].num_rows:
                    self._write(table, name, tables[table])
                    written.append(f"{self.path}/{table}/{name}")
        except BaseException:  # a batch without its trial rows would leave history rows of no trial
            for path in written:
                with contextlib.suppress(OSError):
                    self.fs.delete_file(path)
            raise
        return name

    def _write(self, table: str, name: str, data: pa.Table) -> None:
        directory = f"{self.path}/{table}"
        self.fs.create_dir(directory, recursive=True)
        data = data.replace_schema_metadata({"dst_study_schema_version": SCHEMA_VERSION, "table": table})
        write_atomically(self.fs, f"{directory}/{name}", lambda out: pq.write_table(data, out, compression="zstd"))

    def check_writable(self, create: bool = True) -> None:
        """Raise StoreError unless the study folder can be created and written: checked before any
        training, so a result is never computed only to find it has nowhere to go. ``create=False``
        (``validate``) leaves nothing behind: its probe goes to the nearest folder that exists."""
        try:
            folder = self.path
            while (kind := self.fs.get_file_info(folder).type) == pafs.FileType.NotFound and "/" in folder.strip("/"):
                folder = folder.rstrip("/").rsplit("/", 1)[0]
            if kind == pafs.FileType.File:
                raise StoreError(f"{self.root}: {'' if folder == self.path else folder + ' '}is a file; results need "
                                 "a folder")
            if create:
                self.fs.create_dir(self.path, recursive=True)
                folder = self.path
            probe = f"{folder}/.write-check-{uuid.uuid4().hex[:8]}"
            with self.fs.open_output_stream(probe) as out:
                out.write(b"")
            self.fs.delete_file(probe)
        except OSError as e:
            raise StoreError(f"{self.root}: cannot write results there ({getattr(e, 'strerror', None) or e})") from None

    # -- reading ---------------------------------------------------------------------------------
    def exists(self) -> bool:
        return self.fs.get_file_info(f"{self.path}/trials").type == pafs.FileType.Directory

    def files(self, table: str) -> list[str]:
        """Part files of ``table``, oldest first (names sort by time)."""
        selector = pafs.FileSelector(f"{self.path}/{table}", allow_not_found=True)
        infos = self.fs.get_file_info(selector)
        names = sorted(i.path for i in infos if i.type == pafs.FileType.File
                       and not os.path.basename(i.path).startswith((".", "_")))
        for path in names:
            if not path.endswith(".parquet"):
                raise StoreError(f"{path}: not a Parquet part file; the {table}/ folder of a study holds "
                                 f"only *.parquet files written by dst-study (move this file elsewhere)")
        return names

    def read(self, table: str, columns: Sequence[str] | None = None,
             filter: ds.Expression | None = None) -> pd.DataFrame:
        """The deduplicated table as a DataFrame; only ``columns`` are read (all when None)."""
        schema = TABLES[table]
        columns = list(columns or schema.names)
        unknown = [c for c in columns if c not in schema.names]
        if unknown:
            raise StoreError(f"unknown column(s) {', '.join(map(repr, unknown))} in table {table!r} "
                             f"(columns: {', '.join(schema.names)})")
        wanted = list(dict.fromkeys(["trial_id", *columns]))
        if table == "trials":
            data = self._scan(table, wanted if "status" in wanted else [*wanted, "status"], filter)
            frame = data.to_pandas(types_mapper=_pandas_type)
            if not frame["trial_id"].is_unique:
                frame = _winners(frame)
        else:
            frame = self._winning_rows(self._scan(table, wanted, filter)).to_pandas(types_mapper=_pandas_type)
        return frame[columns].reset_index(drop=True)

    def _winning_rows(self, data: pa.Table) -> pa.Table:
        """Keep each trial's per-trial rows from the part that holds its winning trial row."""
        # A part whose trial rows never landed (a driver killed mid-append, an append under way) is no
        # batch: its rows are no trial's, and that trial's next attempt writes them again
        committed = {os.path.basename(p) for p in self.files("trials")}
        stray = [p for p in pc.unique(data["__filename"]).to_pylist() if os.path.basename(p) not in committed]
        if stray:
            data = data.filter(pc.invert(pc.is_in(data["__filename"], pa.array(stray))))
        parts = self._scan("trials", ["trial_id", "status"], None).to_pandas()
        repeated = parts["trial_id"].duplicated(keep=False)
        if not repeated.any():
            return data  # every trial was written once, history with it: nothing to drop
        winner = _winners(parts[repeated]).set_index("trial_id")["__filename"]
        winner = winner.str.rsplit("/", n=1).str[-1]
        in_question = pc.is_in(data["trial_id"], pa.array(winner.index.to_numpy(dtype=str)))
        rows = data.filter(in_question).to_pandas()
        keep = rows["__filename"].str.rsplit("/", n=1).str[-1].to_numpy() == rows["trial_id"].map(winner).to_numpy()
        return pa.concat_tables([data.filter(pc.invert(in_question)), data.filter(in_question).filter(pa.array(keep))])

    def _scan(self, table: str, columns: list[str], filter: ds.Expression | None) -> pa.Table:
        self.problems = [p for p in self.problems if f"/{table}/" not in p]
        files = self.files(table)
        if files and files[-1] not in self._versions_checked:
            self._check_version(files[-1])
            self._versions_checked.add(files[-1])
        try:
            data = _dataset(files, self.fs, TABLES[table]).to_table(columns=columns + ["__filename"], filter=filter)
            if data["trial_id"].null_count == 0:  # a foreign file would bring rows without one
                return data
        except (pa.ArrowException, OSError):
            pass
        good = []  # something is wrong with a file: find it, name it, read the rest
        for path in files:
            try:
                if self._ours(path, table):
                    _dataset([path], self.fs, TABLES[table]).to_table(columns=["trial_id"])
                    good.append(path)
            except (pa.ArrowException, OSError) as e:
                self._skip(path, str(e))
        return _dataset(good, self.fs, TABLES[table]).to_table(columns=columns + ["__filename"], filter=filter)

    def _check_version(self, newest: str) -> None:
        """Refuse a store that a newer dst-study wrote to (its newest part says a schema version above
        ours): its columns may mean what this one cannot know. One footer read per newest part."""
        try:
            meta = pq.read_schema(newest, filesystem=self.fs).metadata or {}
        except (pa.ArrowException, OSError):
            return  # an unreadable part is named by the scan that follows
        version = meta.get(b"dst_study_schema_version", b"")
        if version.isdigit() and int(version) > int(SCHEMA_VERSION):
            raise StoreError(f"{self.root}: written by a newer dst-study ({newest.rsplit('/', 1)[-1]} has schema "
                             f"version {int(version)}; this one reads up to {SCHEMA_VERSION}); upgrade dst-study "
                             "(pip install -U dst-study) to read it")

    def _ours(self, path: str, table: str) -> bool:
        """Whether a part file's schema is one of ``table``'s: it has ``trial_id`` and no column of
        another type (older parts may lack columns, which read as null)."""
        schema = pq.read_schema(path, filesystem=self.fs)
        expected = TABLES[table]
        wrong = [f"{f.name} ({f.type})" for f in schema if f.name in expected.names and not pa.types.is_null(f.type)
                 and not f.type.equals(expected.field(f.name).type)]
        if "trial_id" in schema.names and not wrong:
            return True
        why = f"columns of another type: {', '.join(wrong[:5])}" if wrong else "no trial_id column"
        self._skip(path, f"not a dst-study {table} part file ({why})")
        return False

    def _skip(self, path: str, reason: str) -> None:
        self.problems.append(f"{path}: {reason}")
        warnings.warn(f"skipped unreadable file {path}: {reason}", UnreadableFileWarning, stacklevel=4)

    def trial_ids(self, status: str | None = None) -> set[str]:
        rows = self.read("trials", ["trial_id", "status"])  # unfiltered: the winning row decides
        return set(rows["trial_id"] if status is None else rows.loc[rows["status"] == status, "trial_id"])

    def keep_superseded(self, ids: Iterable[str]) -> dict[str, int]:
        """Copy what readers see now of the trials ``ids`` (their rows in every table) into
        ``superseded/<code>/``, before those trials run again: their new rows will win, and ``compact``
        drops rows that lose. ``<code>`` names the code that computed the rows (:func:`code_key`), so
        each folder is a store of one code version that ``dst-study query`` reads like any study.
        Trials a folder already holds are not copied again. Returns the trials copied per folder."""
        ids = sorted(set(ids))
        if not ids or not self.exists():
            return {}
        where = ds.field("trial_id").isin(pa.array(ids))
        trials = self._scan("trials", TABLES["trials"].names, where)
        winners = _winners(trials.select(["trial_id", "status", "__filename"]).to_pandas())
        trials = trials.take(pa.array(sorted(winners.index))).drop_columns(["__filename"])
        per_trial = {t: self._winning_rows(self._scan(t, TABLES[t].names, where)).drop_columns(["__filename"])
                     for t in PER_TRIAL}
        codes = [code_key(r, p) for r, p in zip(trials["algorithm_revision"].to_pylist(), trials["plugins"].to_pylist())]
        kept = {}
        for code in sorted(set(codes)):
            into = ParquetStore(self.folder.uri(self.folder.join(SUPERSEDED, code)))
            there = into.trial_ids() if into.exists() else set()
            chosen = [i for i, (c, t) in enumerate(zip(codes, trials["trial_id"].to_pylist())) if c == code and t not in there]
            if not chosen:
                continue
            rows = trials.take(pa.array(chosen))
            into._commit({"trials": rows, **{t: per_trial[t].filter(pc.is_in(per_trial[t]["trial_id"], rows["trial_id"]))
                                             for t in PER_TRIAL}})
            kept[into.root] = len(chosen)
        return kept

    # -- maintenance -----------------------------------------------------------------------------
    def compact(self) -> dict[str, int]:
        """Merge each table's parts into one file; returns the number of parts merged per table.

        The merged files are written (atomically, trials last) before any part is removed, and
        named after the newest part so that parts written meanwhile still sort after them: a crash
        at any point leaves a store that reads the same.
        """
        parts = {table: self.files(table) for table in (*PER_TRIAL, "trials")}
        if not parts["trials"] or all(len(p) <= 1 for p in parts.values()):  # no trial rows: no batch to merge
            return {table: 0 for table in parts}
        newest = os.path.basename(parts["trials"][-1])[:-len(".parquet")]
        name = f"{newest}-c.parquet"  # '-' sorts before '.': just below the newest part
        merged, unreadable = {}, []
        for table in parts:
            merged[table] = self.read(table)
            unreadable += [p.split(": ", 1)[0] for p in self.problems if f"/{table}/" in p]
        for table, frame in merged.items():
            self._write(table, name, pa.Table.from_pandas(frame, schema=TABLES[table], preserve_index=False))
        for path in unreadable:  # never deleted: what was not merged is moved aside, untouched
            target = f"{self.path}/{QUARANTINE}/{path[len(self.path) + 1:]}"
            self.fs.create_dir(target.rsplit("/", 1)[0], recursive=True)
            self.fs.move(path, target)
        self.quarantined = [f"{self.path}/{QUARANTINE}/{p[len(self.path) + 1:]}" for p in unreadable]
        committed = {os.path.basename(p) for p in parts["trials"]}  # a part without its trial rows stays
        for table in ("trials", *PER_TRIAL):  # trial parts first: their rows decide which history counts
            for path in parts[table]:
                if not path.endswith(f"/{name}") and path not in unreadable and os.path.basename(path) in committed:
                    self.fs.delete_file(path)
        return {table: len(p) for table, p in parts.items()}


def code_key(algorithm_revision: int | None, plugins: str | None) -> str:
    """The code version of a trials row, as a folder name: ``r2`` (algorithm revision 2, no plugin),
    ``r2-<sha256 of the row's plugins record, 12 hex digits>`` for a trial that used plugins."""
    import hashlib

    revision = UNRECORDED_REVISION if algorithm_revision is None else int(algorithm_revision)
    return f"r{revision}" + (f"-{hashlib.sha256(plugins.encode()).hexdigest()[:12]}" if plugins else "")


def _winners(rows: pd.DataFrame) -> pd.DataFrame:
    """One trial row per trial id: a completed row beats any other status, whatever order the parts
    were written in (a failed attempt of a second driver never shadows a finished result); among
    rows of the same rank, the newest part wins."""
    completed = (rows["status"] == "completed").fillna(False).to_numpy(dtype=bool)
    order = rows.assign(__completed=completed).sort_values(["__completed", "__filename"], kind="stable")
    return order.drop_duplicates("trial_id", keep="last").drop(columns="__completed")


def _dataset(files: list[str], fs: pafs.FileSystem, schema: pa.Schema) -> ds.Dataset:
    return ds.dataset(files, schema=schema, format="parquet", filesystem=fs)


def _to_table(rows: Iterable[Mapping[str, Any]], schema: pa.Schema) -> pa.Table:
    rows = list(rows)
    unknown = sorted({k for r in rows for k in r} - set(schema.names))
    if unknown:
        raise StoreError(f"row has unknown column(s) {unknown} (columns: {', '.join(schema.names)})")
    return pa.Table.from_pylist([{c: r.get(c) for c in schema.names} for r in rows], schema=schema)


def _pandas_type(arrow_type: pa.DataType):
    """Nullable pandas dtypes, so a missing integer stays an integer column."""
    return {pa.int64(): pd.Int64Dtype(), pa.bool_(): pd.BooleanDtype(), pa.string(): pd.StringDtype()}.get(arrow_type)
