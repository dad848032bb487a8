"""MLflow: one experiment per study (named as the study), one run per trial (named by its trial id,
tagged ``trial_id``), through the tracking URI the user names (``sqlite:///mlflow.db``: MLflow's
plain file store is deprecated).

A run holds the params, the tags, the per-epoch metrics (step = epoch) and the ``summary/*`` metrics
at the last epoch; it starts and ends when the trial did, FINISHED or FAILED as the trial. A metric's
history only grows, so a trial written again replaces its run (the old one is deleted). The tag
``dst_study.stamp``, set once everything else is logged, records which stamp a run holds; a run
without it was cut short and is replaced.
"""

from __future__ import annotations

import os
import time

os.environ["MLFLOW_DISABLE_TELEMETRY"] = "true"  # nothing leaves this machine but what the user's URI names

from mlflow.entities import Metric, Param  # noqa: E402
from mlflow.exceptions import MlflowException  # noqa: E402
from mlflow.tracking import MlflowClient  # noqa: E402

from dst_core.errors import ConfigError  # noqa: E402

from .records import TrialRecord  # noqa: E402

__all__ = ["MlflowSink"]

STAMP = "dst_study.stamp"


def _ms(seconds: float | None) -> int:
    return int(1000 * (seconds if seconds is not None else time.time()))


class MlflowSink:
    def __init__(self, target: str, study: str):
        try:
            self.client = MlflowClient(tracking_uri=target)
            experiment = self.client.get_experiment_by_name(study)
            self.experiment = experiment.experiment_id if experiment else self.client.create_experiment(study)
        except MlflowException as e:  # a scheme MLflow has no store for, a server that does not answer
            first = str(e.message).strip().split(". ")[0].strip()
            raise ConfigError(f"--to mlflow {target}: MLflow cannot use it ({first}); give a tracking URI such as "
                              "sqlite:///mlflow.db or a server's http://HOST:PORT") from None
        self.where = f"{target}, experiment {study!r}"
        self._runs: dict[str, list[str]] = {}  # trial id -> its runs (a cut-short one among them)

    def exported(self) -> dict[str, str]:
        stamps, token = {}, None
        while True:
            page = self.client.search_runs([self.experiment], max_results=1000, page_token=token)
            for run in page:
                tid = run.data.tags.get("trial_id")
                if tid is not None:
                    self._runs.setdefault(tid, []).append(run.info.run_id)
                    if STAMP in run.data.tags:
                        stamps[tid] = run.data.tags[STAMP]
            token = page.token
            if not token:
                return stamps

    def write(self, record: TrialRecord) -> None:
        for old in self._runs.pop(record.id, []):
            self.client.delete_run(old)
        run = self.client.create_run(self.experiment, start_time=_ms(record.started_at), run_name=record.id,
                                     tags={k: str(v) for k, v in record.tags.items()}).info.run_id
        ended = _ms(record.ended_at)
        metrics = [Metric(k, v, ended, epoch) for epoch, values in record.epochs for k, v in values.items()]
        metrics += [Metric(k, v, ended, record.last_epoch) for k, v in record.final.items()]
        self.client.log_batch(run, metrics=metrics, params=[Param(k, str(v)) for k, v in record.params.items()])
        self.client.set_tag(run, STAMP, record.stamp)
        self.client.set_terminated(run, "FINISHED" if record.status == "completed" else "FAILED", end_time=ended)
        self._runs[record.id] = [run]

    def close(self) -> None:
        pass
