"""``dst-study export``: a study's trials into TensorBoard, MLflow or W&B, one run per trial.

The Parquet store stays the record; the tools are sinks fed from it, keyed by trial id, so exporting
again writes only the trials that are new or changed since (a trial is changed when a later row
replaced its row: see :mod:`.records`) and never duplicates a run. Exporting reads the study folder
only (no plugin is imported, nothing is written there). ``follow`` exports again every ``every``
seconds while a driver holds the study's lease (:mod:`study.lease`), and once more after it let go,
so a running study shows in the tool as its trials finish.

One module per tool; each imports its library, of the optional extra ``export`` (``pip install -e
'.[export]'``), only when that tool is asked for. A sink has ``where`` (what to tell the user), ``exported()`` (trial
id -> the stamp it holds), ``write(record)`` (replacing any earlier run of that trial) and ``close()``.
"""

from __future__ import annotations

import importlib
import time
from dataclasses import dataclass, field
from typing import Callable

from dst_core.errors import ConfigError

from ..lease import StudyLease
from ..store import ParquetStore
from .records import read_records, stamps, study_name

__all__ = ["EXTRA", "Exported", "TOOLS", "export"]

TOOLS = {"tensorboard": ("tensorboard", "TensorBoardSink"), "mlflow": ("mlflow", "MlflowSink"),
         "wandb": ("wandb", "WandbSink")}  # tool -> (its module here, its sink); each module imports its library
EXTRA = "pip install -e '.[export]'"  # in the dst-study checkout


@dataclass
class Exported:
    """What an export did: runs it added (a trial new to the tool) and updated (a trial whose row
    changed: a failed trial run again), and how many of the study's trials it left as the tool held them."""
    tool: str
    where: str
    trials: int = 0  # in the study, at the last pass
    added: int = 0
    updated: int = 0
    unchanged: int = 0
    followed: bool = False  # a driver ran the study while it was followed
    problems: list[str] = field(default_factory=list)  # unreadable files of the study skipped


def _sink(tool: str, target: str, study: str):
    if tool not in TOOLS:
        raise ConfigError(f"unknown export tool {tool!r} (choices: {', '.join(TOOLS)})")
    if tool == "mlflow" and ("://" not in target or target.startswith("file:")):
        raise ConfigError(f"--to mlflow {target}: give a tracking URI, e.g. sqlite:///mlflow.db (MLflow's plain "
                          "file store is deprecated) or a server's http://HOST:PORT")
    module, name = TOOLS[tool]
    try:
        module = importlib.import_module(f".{module}", __name__)
    except ImportError as e:
        if e.name is None or e.name.split(".")[0] not in ("tensorboard", "mlflow", "wandb"):
            raise
        raise ConfigError(f"exporting to {tool} needs the '{e.name.split('.')[0]}' package of the export extra: "
                          f"{EXTRA}") from None
    return getattr(module, name)(target, study)


def export(store: ParquetStore, tool: str, target: str, *, follow: bool = False, every: float = 10.0,
           log: Callable[[str], None] = print) -> Exported:
    """Export the trials of ``store`` to ``tool`` (one of :data:`TOOLS`) at ``target`` (a folder for
    tensorboard and wandb, a tracking URI for mlflow). With ``follow``, ``log`` is told what is followed,
    then gets a line per pass that wrote something."""
    if every <= 0:
        raise ConfigError(f"--every {every:g}: expected a number of seconds > 0")
    sink = _sink(tool, target, study_name(store))
    lease = StudyLease(store)
    try:
        held, written = sink.exported(), set()
        done = Exported(tool, sink.where)
        while True:
            driver = lease.holder() if follow else None  # asked before the pass: it then sees all the driver wrote
            if follow and not done.followed:
                log(f"following {store.root} while its driver runs (host {driver.get('host')}, pid "
                    f"{driver.get('pid')}), every {every:g}s; Ctrl-C stops" if driver
                    else f"no driver runs {store.root}: exported once")
            done.followed |= driver is not None
            now = stamps(store)
            changed = [tid for tid, stamp in now.items() if held.get(tid) != stamp]
            added = sum(tid not in held for tid in changed)
            for record in read_records(store, changed):
                sink.write(record)
                held[record.id] = record.stamp
            written.update(changed)
            done.trials, done.unchanged = len(now), len(now.keys() - written)
            done.added, done.updated = done.added + added, done.updated + len(changed) - added
            done.problems = sorted({*done.problems, *store.problems})
            if changed and follow:
                log(f"{time.strftime('%H:%M:%S')} exported {added} new and {len(changed) - added} changed trials "
                    f"({len(now)} in the study)")
            if driver is None:
                return done
            time.sleep(every)
    finally:
        sink.close()
