"""Where results land: the Parquet store of a study (see ``results/README.md`` for the schema)."""

from ..folder import write_atomically
from .parquet import OutOfSpace, ParquetStore, StoreError, UnreadableFileWarning, WriteFailed, out_of_space
from .schema import (CONFIG_COLUMNS, HISTORY, JACCARD, METRICS, SCHEMA_VERSION, STATUSES, SUMMARY_COLUMNS, TABLES,
                     TRIALS, revision, revision_where)

__all__ = ["CONFIG_COLUMNS", "HISTORY", "JACCARD", "METRICS", "OutOfSpace", "ParquetStore", "SCHEMA_VERSION",
           "STATUSES", "SUMMARY_COLUMNS", "StoreError", "TABLES", "TRIALS", "UnreadableFileWarning", "WriteFailed",
           "out_of_space", "revision", "revision_where", "write_atomically"]
