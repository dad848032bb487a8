"""A study is its folder: the one place that knows the folder's layout and reads and writes its
small files, on a local path or any pyarrow filesystem (``s3://bucket/prefix/study``) alike.

The layout (:data:`LAYOUT`; ``results/README.md`` shows the same, and a test holds them together):

    <study>/
      trials/ history/ jaccard/               the result tables (study.store.ParquetStore)
      spec.yaml                               the spec the study last ran with
      trials.json                             that spec's trial ids and labels
      driver.lease                            the running driver's lease (study.lease)
      tune/<wave>/<trial id>/checkpoint_*/    a trial's newest checkpoint and its position.json
      optuna.db                               a search's Optuna study
      quarantine/                             part files compact could not read, untouched
      superseded/<code>/                      rows of trials since re-run by other code, as a study of their own

Paths inside a folder are its filesystem's (``bucket/…`` on S3, absolute on a local disk);
:meth:`StudyFolder.uri` turns one into what another process (a Ray worker) opens.
"""

from __future__ import annotations

import contextlib
import json
import os
import uuid
from typing import Any, BinaryIO, Callable

import pyarrow.fs as pafs

__all__ = ["LAYOUT", "StudyFolder", "check_writable_dir", "uri_problem", "write_atomically"]

TABLES = ("trials", "history", "jaccard")
SPEC, LISTING, LEASE, TUNE, OPTUNA, QUARANTINE, SUPERSEDED = \
    "spec.yaml", "trials.json", "driver.lease", "tune", "optuna.db", "quarantine", "superseded"
POSITION = "position.json"  # beside each checkpoint in tune/

LAYOUT = {  # what each entry of a study folder holds
    **{f"{t}/": f"the {t} table's Parquet part files" for t in TABLES},
    SPEC: "the spec the study last ran with", LISTING: "that spec's trial ids and labels",
    LEASE: "the running driver's host, pid and heartbeat", f"{TUNE}/": "checkpoints, each with its " + POSITION,
    OPTUNA: "a search's Optuna study", f"{QUARANTINE}/": "part files compact could not read",
    f"{SUPERSEDED}/": "rows of trials since re-run by other code, one study-shaped folder per code version",
}


def uri_problem(root: str) -> str | None:
    """Why a URI cannot hold a study, or None. A study's folders and files are the URI with paths
    appended, and Ray Tune's storage and the workers get such URIs too: a query string
    (``?endpoint_override=…``) would end up mid-path. The environment reaches every process instead."""
    if "://" in root and "?" in root:
        return ("a query string ('?...') in a storage URI is not supported: give s3://bucket/prefix, and the "
                "endpoint and credentials in the environment of every node (AWS_ENDPOINT_URL, AWS_ACCESS_KEY_ID, "
                "AWS_SECRET_ACCESS_KEY, AWS_DEFAULT_REGION; see README)")
    return None


def write_atomically(fs: pafs.FileSystem, path: str, write: Callable[[BinaryIO], Any]) -> None:
    """Write ``path`` under a hidden temporary name beside it (readers skip hidden names), then rename
    it into place: a reader sees the whole file or none. A write that fails (a full disk) removes its
    temporary file and raises."""
    folder, name = path.rsplit("/", 1)
    tmp = f"{folder}/.{name}.tmp-{uuid.uuid4().hex[:8]}"
    try:
        with fs.open_output_stream(tmp) as out:
            write(out)
        fs.move(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            fs.delete_file(tmp)
        raise


class StudyFolder:
    """The folder of one study: ``root`` is a local path or a filesystem URI. Raises ValueError for a
    root no study can live at (:func:`uri_problem`)."""

    def __init__(self, root: str | os.PathLike):
        self.root = str(root)
        if uri_problem(self.root):
            raise ValueError(f"{self.root}: {uri_problem(self.root)}")
        if "://" in self.root:
            self.fs, self.path = pafs.FileSystem.from_uri(self.root)
        else:
            self.fs, self.path = pafs.LocalFileSystem(), os.path.abspath(self.root)
        self.path = self.path.rstrip("/")

    def __repr__(self) -> str:
        return f"StudyFolder({self.root!r})"

    @property
    def remote(self) -> bool:
        return "://" in self.root

    def join(self, *parts: str) -> str:
        """A path inside the folder, in its filesystem's terms."""
        return "/".join([self.path, *parts])

    def uri(self, path: str) -> str:
        """``path`` (inside the folder's filesystem) as another process opens it: a URI for a remote
        folder (its filesystem lists paths without the scheme), the path itself for a local one."""
        return f"{self.root.rstrip('/')}{path[len(self.path):]}" if self.remote else path

    @property
    def tune_dir(self) -> str:
        """Where Ray Tune keeps checkpoints: a URI as given, or an absolute local path."""
        return self.uri(self.join(TUNE))

    @property
    def optuna_db(self) -> str:
        return self.join(OPTUNA)

    def read_text(self, name: str) -> str | None:
        """A small file's text, None when it is missing or unreadable."""
        try:
            with self.fs.open_input_stream(self.join(name)) as f:
                return f.read().decode()
        except (OSError, UnicodeDecodeError):
            return None

    def write_text(self, name: str, text: str) -> None:
        """A small file, written atomically (readers see the old text or the new one)."""
        self.fs.create_dir(self.path, recursive=True)
        write_atomically(self.fs, self.join(name), lambda out: out.write(text.encode()))

    def has(self, name: str) -> bool:
        try:
            return self.fs.get_file_info(self.join(name.rstrip("/"))).type != pafs.FileType.NotFound
        except OSError:
            return False

    def is_study(self) -> bool:
        """A study folder holds its tables, or at least the spec `run` saved before the first result."""
        return self.has("trials/") or self.has(SPEC)

    def read_position(self, checkpoint_file: str) -> dict[str, Any] | None:
        """The position written beside a checkpoint in ``tune/``, None when there is none (an older
        study) or it cannot be read."""
        try:
            with self.fs.open_input_stream(f"{checkpoint_file.rpartition('/')[0]}/{POSITION}") as f:
                return json.loads(f.read())
        except (OSError, ValueError):
            return None

    def checkpoints(self, ids: set[str]) -> dict[str, str]:
        """Newest usable checkpoint per trial id under ``tune/<wave>/<trial id>/checkpoint_*/``.

        Tune copies a checkpoint into its folder file by file, so a driver killed mid-copy or a full
        disk leaves a newest folder that is cut short beside the previous, whole one. A folder is
        usable when its position file reads and its checkpoint has the size the position gives
        (positions written before they recorded it: any non-empty checkpoint); a study older than
        position files has none anywhere, and then its newest non-empty checkpoint is taken."""
        from dst_core.checkpoint import FILENAME

        if not ids:
            return {}
        infos = self.fs.get_file_info(pafs.FileSelector(self.join(TUNE), allow_not_found=True, recursive=True))
        sizes = {i.path: i.size for i in infos if i.type == pafs.FileType.File}
        folders: dict[str, list[str]] = {}
        for path in sorted(sizes):  # waves and checkpoint indices sort by time
            parts = path.split("/")
            if parts[-1] == FILENAME and len(parts) >= 3 and parts[-3] in ids and parts[-2].startswith("checkpoint_"):
                folders.setdefault(parts[-3], []).append(path)
        found = {}
        for tid, paths in folders.items():
            positioned = [p for p in paths if f"{p.rpartition('/')[0]}/{POSITION}" in sizes]
            for path in reversed(positioned or paths):
                position = self.read_position(path) if positioned else {}
                if sizes[path] and position is not None and position.get("bytes", sizes[path]) == sizes[path]:
                    found[tid] = path
                    break
        return found


def check_writable_dir(path: str | os.PathLike, what: str) -> None:
    """Raise ValueError unless local folder ``path`` is, or can be made, a folder this process can
    write: outputs are checked before anything is computed for them."""
    import tempfile
    from pathlib import Path

    folder = Path(path)
    try:
        if folder.exists() and not folder.is_dir():
            raise ValueError(f"{what} {str(path)!r}: is a file; expected a folder")
        folder.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryFile(dir=folder):
            pass
    except OSError as e:
        raise ValueError(f"{what} {str(path)!r}: cannot write there ({e.strerror or e})") from None
