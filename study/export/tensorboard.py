"""TensorBoard: one run folder per trial, ``DIR/<study>/<trial id>/``, written with TensorBoard's own
event-file writer (no TensorFlow, no torch).

A run holds the per-epoch metrics as scalars (step = epoch), the ``summary/*`` metrics at the last
epoch, and the params and tags as the HParams dashboard's hyperparameters (one session per trial).
An event file only grows, so a trial written again replaces its folder; ``exported.json`` in the
folder, written last, records which stamp it holds (a folder without one was cut short).
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

from tensorboard.compat.proto import event_pb2, summary_pb2
from tensorboard.plugins.hparams.summary_v2 import hparams_pb
from tensorboard.summary.writer.event_file_writer import EventFileWriter

from .records import TrialRecord

__all__ = ["TensorBoardSink"]

MARKER = "exported.json"


def _scalars(step: int, wall_time: float, values: dict[str, float]) -> event_pb2.Event:
    summary = summary_pb2.Summary(value=[summary_pb2.Summary.Value(tag=k, simple_value=v) for k, v in values.items()])
    return event_pb2.Event(step=step, wall_time=wall_time, summary=summary)


class TensorBoardSink:
    def __init__(self, target: str, study: str):
        self.root = Path(target) / study
        self.where = str(self.root)

    def exported(self) -> dict[str, str]:
        stamps = {}
        for marker in self.root.glob(f"*/{MARKER}"):
            try:
                stamps[marker.parent.name] = json.loads(marker.read_text())["stamp"]
            except (OSError, ValueError, KeyError):
                pass  # unreadable: written again
        return stamps

    def write(self, record: TrialRecord) -> None:
        folder = self.root / record.id
        shutil.rmtree(folder, ignore_errors=True)
        writer = EventFileWriter(str(folder), max_queue_size=len(record.epochs) + 2)
        wall_time = record.ended_at or 0.0
        hparams = {**record.params, **record.tags}
        writer.add_event(event_pb2.Event(step=0, wall_time=record.started_at or wall_time,
                                         summary=hparams_pb(hparams, trial_id=record.id,
                                                            start_time_secs=record.started_at)))
        for epoch, values in record.epochs:
            writer.add_event(_scalars(epoch, wall_time, values))
        writer.add_event(_scalars(record.last_epoch, wall_time, record.final))
        writer.close()
        tmp = folder / f".{MARKER}.tmp"
        tmp.write_text(json.dumps({"trial_id": record.id, "study": record.study, "stamp": record.stamp}))
        os.replace(tmp, folder / MARKER)

    def close(self) -> None:
        pass
