"""Weights & Biases, offline only: one run per trial (run id and name: its trial id; project: the
study), written under ``DIR/wandb/`` for a later ``wandb sync DIR/wandb``. Nothing is sent anywhere.

A run holds the params as its config, the tags as ``key:value`` tags, the per-epoch metrics (step =
epoch) and the ``summary/*`` metrics in its summary; a failed trial's run ends with exit code 1. A
trial written again gets a new run folder and its old one is deleted (sync it again if the old one
was synced). ``exported.json`` in a run folder names the study and trial it holds; the stamp is
added once the run is finished (a folder without one was cut short).
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

os.environ["WANDB_ERROR_REPORTING"] = "false"  # W&B reports its own errors to a server unless told not to

import wandb  # noqa: E402

from .records import TrialRecord  # noqa: E402

__all__ = ["WandbSink"]

MARKER = "exported.json"
_SETTINGS = dict(mode="offline", silent=True, console="off", save_code=False, disable_git=True,
                 x_disable_stats=True, x_disable_meta=True, x_disable_machine_info=True, x_save_requirements=False)


def _write_marker(folder: Path, record: TrialRecord, stamp: str | None) -> None:
    tmp = folder / f".{MARKER}.tmp"
    tmp.write_text(json.dumps({"trial_id": record.id, "study": record.study, "stamp": stamp}))
    os.replace(tmp, folder / MARKER)


class WandbSink:
    def __init__(self, target: str, study: str):
        self.dir, self.study = Path(target), study
        self.dir.mkdir(parents=True, exist_ok=True)
        self.where = str(self.dir / "wandb")
        self.settings = wandb.Settings(**_SETTINGS)
        self._folders: dict[str, list[Path]] = {}  # trial id -> its run folders (a cut-short one among them)

    def exported(self) -> dict[str, str]:
        stamps = {}
        for marker in (self.dir / "wandb").glob(f"offline-run-*/{MARKER}"):
            try:
                held = json.loads(marker.read_text())
            except (OSError, ValueError):
                continue
            if held.get("study") == self.study:
                self._folders.setdefault(held["trial_id"], []).append(marker.parent)
                if held.get("stamp"):
                    stamps[held["trial_id"]] = held["stamp"]
        return stamps

    def write(self, record: TrialRecord) -> None:
        run = wandb.init(dir=self.dir, project=record.study, id=record.id, name=record.id, config=record.params,
                         tags=[f"{k}:{v}" for k, v in record.tags.items() if k != "trial_id"],
                         reinit="create_new", settings=self.settings)
        folder = Path(run.settings.sync_dir)
        _write_marker(folder, record, None)
        for epoch, values in record.epochs:
            run.log(values, step=epoch)
        run.summary.update(record.final)
        run.finish(exit_code=0 if record.status == "completed" else 1)
        _write_marker(folder, record, record.stamp)
        for old in self._folders.pop(record.id, []):
            if old != folder:
                shutil.rmtree(old, ignore_errors=True)
        self._folders[record.id] = [folder]

    def close(self) -> None:
        wandb.teardown()  # stops W&B's service process
