"""Where results land: the Parquet store of a study (see ``results/README.md`` for the schema)."""

from .parquet import OutOfSpace, ParquetStore, StoreError, UnreadableFileWarning, WriteFailed, out_of_space, write_atomically
from .schema import CONFIG_COLUMNS, HISTORY, JACCARD, METRICS, SCHEMA_VERSION, STATUSES, TABLES, TRIALS

__all__ = ["CONFIG_COLUMNS", "HISTORY", "JACCARD", "METRICS", "OutOfSpace", "ParquetStore", "SCHEMA_VERSION",
           "STATUSES", "StoreError", "TABLES", "TRIALS", "UnreadableFileWarning", "WriteFailed", "out_of_space",
           "write_atomically"]
