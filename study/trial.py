"""The life of one trial, outside any scheduler: resume, train, report each epoch, build its rows.

:class:`TrialRun` trains a trial in a checkpoint folder (resuming from what it holds) and turns each
epoch into a *report*: a plain dict of JSON-able values (the epoch's metrics, where and how the
trial runs, and after the last epoch its whole history). :func:`result_rows` turns the last report
into the rows of the result store. The Ray Tune worker, the driver that stores what the workers
report, and ``dst-study train --results`` all go through these two, so a new result column is
added here once.

Importing this module loads neither torch nor Ray: read-only commands use its labels; the
trainer loads when a :class:`TrialRun` is made.
"""

from __future__ import annotations

import functools
import json
import os
import shutil
import socket
import subprocess
import time
import warnings
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Callable, Iterator, Mapping, Sequence

from dst_core import ALGORITHM_REVISION, TrainConfig, __version__
from dst_core.config import KINDS
from dst_core.errors import CheckpointMismatchError, DstWarning
from dst_core.summary import METRICS, summarise

from .folder import POSITION
from .trial_id import trial_id

__all__ = ["OneRun", "Rows", "Trial", "TrialRun", "count_by_kind", "git_commit", "git_dirty", "history_rows",
           "jaccard_rows", "never_updating", "result_rows", "run_one", "trial_label", "trial_row", "utc_now"]

Rows = tuple[list[dict[str, Any]], list[dict[str, Any]], list[dict[str, Any]]]  # trials, history, jaccard


def utc_now() -> datetime:
    return datetime.now(timezone.utc)


@dataclass(frozen=True)
class Trial:
    """One trial of a study as a value: its config, its id (a hash of the config's identity) and the
    label progress lines and listings give it. Made once, where a spec is expanded (or a search's
    worker receives a sampled config), and handed on as it is: to the planner, through Ray Tune
    (:meth:`to_tune`), to the worker, the store writer and the progress display. Nothing downstream
    derives an id from a config again."""

    id: str
    config: TrainConfig
    label: str

    @classmethod
    def of(cls, config: TrainConfig, axes: Sequence[str] = ()) -> "Trial":
        return cls(trial_id(config), config, trial_label(config, axes))

    @property
    def kind(self) -> str:
        return self.config.kind

    def to_tune(self) -> dict[str, Any]:
        """What crosses Ray Tune: plain, JSON-able values."""
        return {"trial_id": self.id, "label": self.label, "config": self.config.to_dict()}

    @classmethod
    def from_tune(cls, data: Mapping[str, Any], axes: Sequence[str] = (), id: str | None = None) -> "Trial":
        """Back from :meth:`to_tune`. A search's trial crosses Tune as its sampled config alone (flat,
        so the Optuna study's parameter names stay those older searches used) and gets its id here,
        once (or ``id``, when the worker's report already told it)."""
        if "trial_id" in data:
            return cls(data["trial_id"], TrainConfig.from_dict(data["config"]), data["label"])
        config = TrainConfig.from_dict(data)
        return cls(id or trial_id(config), config, trial_label(config, axes))


@dataclass
class OneRun:
    """What :func:`run_one` did: the trial, its history, its summary (named as the trials table's
    columns, with its config) and where its row went."""
    trial: Trial
    history: list[dict[str, Any]]
    summary: dict[str, Any]
    stored: str | None = None  # the study folder its rows were written to
    store_error: str | None = None  # why they could not be (the result is still here)


def run_one(config: TrainConfig, checkpoint_dir: str | None = None, results: str | None = None, *,
            should_stop: Callable[[], bool] | None = None, on_start: Callable[["TrialRun"], None] | None = None,
            on_epoch: Callable[[dict[str, Any]], None] | None = None) -> OneRun:
    """One trial outside any study (``dst-study train``): checkpointed to and resumed from
    ``checkpoint_dir``, its rows written into the study folder ``results`` too. Both outputs are
    checked before it trains. ``should_stop`` asked between batches stops it with its checkpoint saved
    (``dst_core.Interrupted``); ``on_start`` sees the run before its first epoch, ``on_epoch`` each
    epoch's report."""
    from dst_core.errors import ConfigError

    from .folder import check_writable_dir
    from .store import ParquetStore, StoreError

    if checkpoint_dir:
        try:
            check_writable_dir(checkpoint_dir, "--checkpoint-dir")
        except ValueError as e:
            raise ConfigError(str(e)) from None
    if results:
        ParquetStore(results).check_writable()
    started = utc_now()
    run = TrialRun(Trial.of(config), checkpoint_dir)
    if on_start:
        on_start(run)
    report: dict[str, Any] = {}
    for report, _ in run.reports(should_stop):
        if on_epoch:
            on_epoch(report)
    history = run.trainer.history
    out = OneRun(run.trial, history, {**summarise(history), "config": config.to_dict()})
    if results:
        try:
            ParquetStore(results).append(*result_rows(run.trial, report, status="completed", started_at=started,
                                                      ended_at=utc_now()))
            out.stored = results
        except (OSError, StoreError) as e:
            out.store_error = str(e)
    return out


class TrialRun:
    """One trial: its trainer, resumed from ``checkpoint_dir`` when that holds its checkpoint.

    ``resume_from`` is a checkpoint file (a path or a filesystem URI) to start from when
    ``checkpoint_dir`` has none (one that an earlier driver's wave left); ``checkpoint_seconds`` is
    the trainer's cadence of checkpoints.
    """

    def __init__(self, trial: Trial, checkpoint_dir: str | os.PathLike | None = None, *,
                 resume_from: str | None = None, checkpoint_seconds: float = 0.0):
        from dst_core import Trainer
        from dst_core import checkpoint as ckpt

        self.started = time.perf_counter()  # an attempt's seconds include loading data and the model
        self.trial = trial
        config = trial.config
        self.checkpoint_dir = None if checkpoint_dir is None else Path(checkpoint_dir)
        copied = bool(resume_from and self.checkpoint_dir and not (self.checkpoint_dir / ckpt.FILENAME).exists())
        if copied:
            self.checkpoint_dir.mkdir(parents=True, exist_ok=True)
            try:
                _copy(resume_from, self.checkpoint_dir / ckpt.FILENAME)
            except FileNotFoundError:  # gone since the driver listed it (another driver ran the trial on)
                warnings.warn(f"checkpoint {resume_from} is gone; the trial starts over", DstWarning, stacklevel=2)
                copied = False
        plugins = _plugins_used(config)
        self.plugin_sources = {p["module"]: p["sha256"] for p in plugins}  # a checkpoint of other code never resumes
        make = functools.partial(Trainer, config, checkpoint_dir=self.checkpoint_dir,
                                 checkpoint_seconds=checkpoint_seconds, plugin_sources=self.plugin_sources)
        try:
            self.trainer = make()
        except CheckpointMismatchError as e:
            if not copied:
                raise
            # an earlier driver's checkpoint that cannot be used (cut short when that driver died):
            # the trial starts over rather than fail
            warnings.warn(f"{e}; the trial starts over", DstWarning, stacklevel=2)
            (self.checkpoint_dir / ckpt.FILENAME).unlink()
            self.trainer = make()
        # "dst_trial_id": Ray Tune fills every report's "trial_id" with its own id (8 hex digits)
        self._provenance = {"dst_trial_id": trial.id, "device_used": str(self.trainer.device),
                            "host": socket.gethostname(), "resumed_from": self.trainer.resumed_from or 0,
                            "torch_version": _torch_version(), "dst_study_version": __version__,
                            "algorithm_revision": ALGORITHM_REVISION, "plugins": plugins}

    def reports(self, should_stop: Callable[[], bool] | None = None) -> Iterator[tuple[dict[str, Any], bool]]:
        """``(report, checkpointed)`` after each epoch trained; the last report carries the history.
        A trial whose checkpoint was final (a driver died before storing it) reports its end at once."""
        if self.trainer.done:
            yield self.report(self.trainer.history[-1]), True
            return
        for metrics in self.trainer.epochs(should_stop):
            if self.trainer.saved and self.checkpoint_dir is not None:
                _write_position(self.checkpoint_dir, self.trainer.epoch, self.trainer.checkpoint_path.name,
                                self.plugin_sources)
            yield self.report(metrics), self.trainer.saved

    def report(self, metrics: Mapping[str, Any]) -> dict[str, Any]:
        out = {**_jsonable(metrics), **self._provenance, "attempt_seconds": time.perf_counter() - self.started}
        # a search's default metric, as summarise writes it to the row: Tune's searcher reads it from the
        # last report. The whole history's, since a trial reports only the epochs it checkpoints.
        out["best_val_accuracy"] = max((m["val_accuracy"] for m in self.trainer.history
                                        if m.get("val_accuracy") is not None), default=None)
        if self.trainer.done:
            out["history"] = [_jsonable(m) for m in self.trainer.history]
        return out


def _plugins_used(config: TrainConfig) -> list[dict[str, Any]]:
    from .plugins import plugins_used  # the registries: only where a trial runs or its row is built

    return plugins_used(config)


def _torch_version() -> str | None:
    from importlib import metadata  # 10 ms: only where rows are built

    try:
        return metadata.version("torch")
    except metadata.PackageNotFoundError:
        return None


def _jsonable(metrics: Mapping[str, Any]) -> dict[str, Any]:
    """An epoch's metrics with the Jaccard overlaps as ``[a, b, value]`` lists (JSON has no tuple keys)."""
    out = {k: v for k, v in metrics.items() if k != "jaccard"}
    if "jaccard" in metrics:
        out["jaccard"] = [[a, b, v] for (a, b), v in metrics["jaccard"].items()]
    return out


def _copy(source: str, target: Path) -> None:
    """Copy a file given by path or by URI (``s3://…``: a study on an object store, read through
    pyarrow's filesystem for it, which takes endpoint and credentials from the environment)."""
    if "://" not in source:
        shutil.copyfile(source, target)
        return
    import pyarrow.fs as pafs  # only a trial resumed from an object store needs it

    fs, path = pafs.FileSystem.from_uri(source)
    with fs.open_input_stream(path) as src, open(target, "wb") as out:
        shutil.copyfileobj(src, out, 1 << 20)


def _write_position(folder: Path, epoch: int, checkpoint_file: str, plugin_sources: Mapping[str, str]) -> None:
    """The position, the code that made the checkpoint (the driver resumes no checkpoint of other
    plugin code) and the checkpoint's size: a copy of the folder cut short (a driver killed mid-copy,
    a full disk) is told from a whole one by the listing alone."""
    tmp = folder / f".{POSITION}.tmp"
    tmp.write_text(json.dumps({"epoch": epoch, "algorithm_revision": ALGORITHM_REVISION,
                               "plugin_sources": dict(plugin_sources),
                               "bytes": (folder / checkpoint_file).stat().st_size}))
    os.replace(tmp, folder / POSITION)


def result_rows(trial: Trial, report: Mapping[str, Any] | None, *, status: str, started_at: datetime,
                ended_at: datetime | None = None, error: str | None = None) -> Rows:
    """The store's rows for a trial from its last report (None or partial for one that failed early)."""
    report = report or {}
    history = [_from_json(m) for m in report.get("history", [])] if status in ("completed", "stopped") else []
    row = trial_row(trial, history, status=status, started_at=started_at, ended_at=ended_at, error=error,
                    report=report)
    if status == "failed" and report.get("epoch") is not None:
        row["epochs_done"] = int(report["epoch"])  # the last epoch it reported
    return [row], history_rows(trial, history), jaccard_rows(trial, history)


def _from_json(metrics: Mapping[str, Any]) -> dict[str, Any]:
    m = dict(metrics)
    if "jaccard" in m:
        m["jaccard"] = {(a, b): v for a, b, v in m["jaccard"]}
    return m


_LABELLED = ("criterion", "growth", "density", "seed", "static")  # always in a label, in its own words


def trial_label(config: TrainConfig, axes: Sequence[str] = ()) -> str:
    """The grid cell of a trial as progress lines and listings name it: its kind, criterion/growth,
    density and seed, then every other axis of ``axes`` (those the study varies) that it reads."""
    unused = config.unread
    extra = "".join(f" {a} {_show(getattr(config, a))}" for a in dict.fromkeys(axes)
                    if a not in _LABELLED and a not in unused and hasattr(config, a))
    if config.kind == "dense":
        return f"dense{extra} seed {config.seed}"
    method = "static" if config.kind == "static" else f"{config.criterion}/{config.growth}"
    return f"{method} density {config.density:g}{extra} seed {config.seed}"


def _show(value: Any) -> str:
    return f"{value:g}" if isinstance(value, float) else str(value)


def count_by_kind(trials: Sequence[Trial]) -> str:
    """``"550 DST, 55 static, 5 dense"``: how many trials of each kind (kinds with none left out)."""
    counts = {kind: sum(t.kind == kind for t in trials) for kind in KINDS}
    return ", ".join(f"{n} {'DST' if kind == 'dst' else kind}" for kind, n in counts.items() if n)


def never_updating(trials: Sequence[Trial]) -> list[str]:
    """One line per reason why DST trials of ``configs`` would never update their mask, naming their
    cells: said by the driver before anything runs, since the trainer's own warning is raised in a
    Ray worker whose output nobody reads. Data sets without a fixed ``train_size`` are not judged."""
    from dst_core import DATASETS
    from dst_core.trainer import static_reason

    groups: dict[str, list[Trial]] = {}
    for trial in trials:
        size = DATASETS.get(trial.config.dataset).meta.get("train_size") if trial.kind == "dst" else None
        reason = size and static_reason(trial.config, size)
        if reason:
            groups.setdefault(reason, []).append(trial)
    lines = []
    for reason, cells in groups.items():
        named = ", ".join(t.label for t in cells[:3]) + (f" and {len(cells) - 3} more" * (len(cells) > 3))
        lines.append(f"{len(cells)} DST trial{'s' * (len(cells) > 1)} will never update the mask ({named}): {reason}")
    return lines


@functools.cache
def git_commit() -> str | None:
    """The commit of the dst-study checkout this code runs from, when it is a git checkout."""
    try:
        out = subprocess.run(["git", "rev-parse", "HEAD"], cwd=Path(__file__).parent, capture_output=True,
                             text=True, timeout=5)
    except (OSError, subprocess.SubprocessError):
        return None
    return out.stdout.strip() or None if out.returncode == 0 else None


@functools.cache
def git_dirty() -> bool | None:
    """Whether that checkout's tracked files differ from ``git_commit`` (then the commit alone does not
    say what code ran); None outside a git checkout. Untracked files are left out: results and
    scratch files would mark every study's checkout dirty."""
    try:
        out = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=Path(__file__).parent,
                             capture_output=True, text=True, timeout=5)
    except (OSError, subprocess.SubprocessError):
        return None
    return bool(out.stdout.strip()) if out.returncode == 0 else None


def trial_row(trial: Trial, history: Sequence[dict[str, Any]], *, status: str, started_at: datetime,
              ended_at: datetime | None = None, error: str | None = None,
              report: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """One ``trials`` row: id, kind, flat config, status, final and best metrics, provenance (from
    ``report``: the host, device and versions that ran the trial). Config fields that the trial's
    kind or optimizer never reads are null, so a static baseline never reads as the criterion it was
    crossed with, nor an Adam trial as having a momentum."""
    report = report or {}
    config = trial.config
    row: dict[str, Any] = {"trial_id": trial.id, "status": status, "kind": config.kind}
    unused = config.unread
    for key, value in config.to_dict().items():
        row[key] = None if key in unused else json.dumps(value, sort_keys=True) if isinstance(value, dict) else value
    row.update(summarise(history))
    row.update(
        resumed_from=report.get("resumed_from"), wall_seconds=report.get("attempt_seconds"),
        host=report.get("host") or socket.gethostname(), device_used=report.get("device_used"),
        dst_study_version=report.get("dst_study_version", __version__),
        algorithm_revision=report.get("algorithm_revision", ALGORITHM_REVISION),
        torch_version=report.get("torch_version") or _torch_version(), git_commit=git_commit(),
        git_dirty=git_dirty(), started_at=started_at, ended_at=ended_at, error=error)
    # the plugins it used as the worker imported them (a failed trial without a report: as the driver did)
    used = report["plugins"] if "plugins" in report else _plugins_used(config)
    row["plugins"] = json.dumps(used, sort_keys=True) if used else None
    return row


def history_rows(trial: Trial, history: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    return [{"trial_id": trial.id, **{k: m.get(k) for k in METRICS}} for m in history]  # older runs lack some


def jaccard_rows(trial: Trial, history: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    """Long-form rows of the removal overlaps the run recorded (``jaccard_every``)."""
    return [{"trial_id": trial.id, "epoch": m["epoch"], "criterion_a": a, "criterion_b": b, "jaccard": v}
            for m in history if "jaccard" in m for (a, b), v in m["jaccard"].items()]
