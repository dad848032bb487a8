"""The Parquet result store of one study: ``<root>/{trials,history,jaccard}/*.parquet``.

Writes are append-only part files named ``<time_ns>-<random>.parquet``: written under a hidden
temporary name (ignored by readers) and renamed when complete, so a crash loses at most the file
being written and never corrupts one. Readers deduplicate by trial id, the newest file winning; a
trial's history comes from the newest file that holds it. ``compact()`` merges the parts into one
file per table without changing what readers see. Unreadable files are reported by name and the
rest still loads; ``compact()`` moves them, untouched, to ``<root>/quarantine/`` and never deletes
what it did not merge. A part file whose schema is not the table's (no ``trial_id``, a column of
another type) counts as unreadable. ``root`` is a local directory or a pyarrow filesystem URI
(``s3://bucket/x``).
"""

from __future__ import annotations

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

from .schema import SCHEMA_VERSION, TABLES

__all__ = ["ParquetStore", "StoreError", "UnreadableFileWarning"]

PER_TRIAL = ("history", "jaccard")  # tables whose rows are written with, and follow, a trial row
QUARANTINE = "quarantine"  # where compact() moves part files it could not read, untouched


class StoreError(Exception):
    """A store that cannot be used at all (no such study, a wrong kind of file, ...)."""


class UnreadableFileWarning(UserWarning):
    """A part file could not be read; it was skipped and the rest loaded."""


@dataclass
class ParquetStore:
    root: str  # local directory or filesystem URI
    fs: pafs.FileSystem = field(init=False, repr=False)
    path: str = field(init=False)  # root inside fs
    problems: list[str] = field(init=False, default_factory=list)  # unreadable files of the last read
    quarantined: list[str] = field(init=False, default_factory=list)  # moved aside by the last compact()

    def __post_init__(self):
        root = str(self.root)
        if "://" in root:
            self.fs, self.path = pafs.FileSystem.from_uri(root)
        else:
            self.fs, self.path = pafs.LocalFileSystem(), os.path.abspath(root)

    # -- writing ---------------------------------------------------------------------------------
    def append(self, trials: Sequence[Mapping[str, Any]], history: Sequence[Mapping[str, Any]] = (),
               jaccard: Sequence[Mapping[str, Any]] = ()) -> str:
        """Write trial rows with their history and Jaccard rows as one part per table.

        Returns the part name. The trial rows are written last: they commit the batch.
        """
        name = f"{time.time_ns():020d}-{uuid.uuid4().hex[:8]}.parquet"
        for table, rows in (("history", history), ("jaccard", jaccard), ("trials", trials)):
            if rows:
                self._write(table, name, _to_table(rows, TABLES[table]))
        return name

    def _write(self, table: str, name: str, data: pa.Table) -> None:
        directory = f"{self.path}/{table}"
        self.fs.create_dir(directory, recursive=True)
        tmp = f"{directory}/.tmp-{name}"
        data = data.replace_schema_metadata({"dst_study_schema_version": SCHEMA_VERSION, "table": table})
        with self.fs.open_output_stream(tmp) as out:
            pq.write_table(data, out, compression="zstd")
        self.fs.move(tmp, f"{directory}/{name}")

    def check_writable(self) -> None:
        """Raise StoreError unless the study folder can be created and written: checked before any
        training, so a result is never computed only to find it has nowhere to go."""
        try:
            if self.fs.get_file_info(self.path).type == pafs.FileType.File:
                raise StoreError(f"{self.root}: is a file; results need a folder")
            self.fs.create_dir(self.path, recursive=True)
            probe = f"{self.path}/.write-check-{uuid.uuid4().hex[:8]}"
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
        data = self._scan(table, list(dict.fromkeys(["trial_id", *columns])), filter)
        if table == "trials":
            frame = data.to_pandas(types_mapper=_pandas_type)
            if not frame["trial_id"].is_unique:  # newest part wins
                frame = frame.sort_values("__filename", kind="stable").drop_duplicates("trial_id", keep="last")
        else:
            frame = self._newest_rows(data).to_pandas(types_mapper=_pandas_type)
        return frame[columns].reset_index(drop=True)

    def _newest_rows(self, data: pa.Table) -> pa.Table:
        """Keep each trial's per-trial rows from the part that holds its newest trial row."""
        parts = self._scan("trials", ["trial_id"], None).to_pandas()
        repeated = parts["trial_id"].duplicated(keep=False)
        if not repeated.any():
            return data  # every trial was written once, history with it: nothing to drop
        winner = parts[repeated].drop_duplicates("trial_id", keep="last").set_index("trial_id")["__filename"]
        winner = winner.str.rsplit("/", n=1).str[-1]
        in_question = pc.is_in(data["trial_id"], pa.array(winner.index.to_numpy(dtype=str)))
        rows = data.filter(in_question).to_pandas()
        keep = rows["__filename"].str.rsplit("/", n=1).str[-1].to_numpy() == rows["trial_id"].map(winner).to_numpy()
        return pa.concat_tables([data.filter(pc.invert(in_question)), data.filter(in_question).filter(pa.array(keep))])

    def _scan(self, table: str, columns: list[str], filter: ds.Expression | None) -> pa.Table:
        self.problems = [p for p in self.problems if f"/{table}/" not in p]
        files = self.files(table)
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
        flt = None if status is None else ds.field("status") == status
        return set(self.read("trials", ["trial_id", "status"], flt)["trial_id"])

    # -- maintenance -----------------------------------------------------------------------------
    def compact(self) -> dict[str, int]:
        """Merge each table's parts into one file; returns the number of parts merged per table.

        The merged files are written (atomically, trials last) before any part is removed, and
        named after the newest part so that parts written meanwhile still sort after them: a crash
        at any point leaves a store that reads the same.
        """
        parts = {table: self.files(table) for table in (*PER_TRIAL, "trials")}
        if all(len(p) <= 1 for p in parts.values()):
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
        for table in ("trials", *PER_TRIAL):  # trial parts first: their rows decide which history counts
            for path in parts[table]:
                if not path.endswith(f"/{name}") and path not in unreadable:
                    self.fs.delete_file(path)
        return {table: len(p) for table, p in parts.items()}


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
