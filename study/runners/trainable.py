"""The function each Ray Tune trial runs, in a worker process.

It is kept apart from the driver's side (:mod:`study.runners.ray_tune`) so that a worker imports
only what a trial needs: Ray Tune, which a worker loads anyway, and :mod:`study.trial` with
dst_core; never the result store, pandas' readers, the progress display or Optuna.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
import traceback
from pathlib import Path
from typing import Any

from ray import tune

from dst_core.errors import RETRY_FUTILE, Diverged

from ..trial import Trial, TrialRun

__all__ = ["FAILED", "FAULT_ENV", "trainable"]

# Test aid: the path of a JSON file {"epoch": E, "times": N (-1: always), "dir": D, "match": {...}}
# that makes matching trials raise after epoch E, N times each (markers in D count the attempts).
FAULT_ENV = "DST_STUDY_FAULT_FILE"
FAILED = "failed_for_good"  # a last report's key: the traceback of an error that a retry would raise again


def trainable(config: dict[str, Any], resume_from: dict[str, str] | None = None,
              checkpoint_seconds: float = 0.0, threads: int = 1, plugins: list[str] | None = None,
              every_epoch: bool = False, fail_fast: bool = False) -> None:
    """One trial under Tune: ``config["trial"]`` is a :class:`~study.trial.Trial` as it crosses Tune
    (a search's: its sampled config alone); ``resume_from`` maps trial ids to checkpoints that
    earlier waves left behind.

    Tune hears from the trial when a checkpoint was written (at most every ``checkpoint_seconds``,
    and after the last epoch, whose report carries the whole history): a report costs the worker
    and the driver milliseconds, which on MNIST-1D's 40 ms epochs would be a tenth of the trial.
    A retry (a raised error, a lost node) resumes from the last checkpoint Tune was given.

    torch runs ``threads`` threads (the trial's CPUs), set here rather than left to the
    ``OMP_NUM_THREADS`` Ray gives an actor: a worker that imported torch before (:func:`warm_up`)
    would otherwise keep a thread per core and oversubscribe the machine.

    ``every_epoch`` reports the epochs that do not checkpoint too (a search's early stopping
    compares trials at every epoch). ``plugins`` are imported first (Ray's runtime environment put them on the worker's path), so a
    config naming a plugin's component builds.

    ``fail_fast``: an error that a retry would raise again (:data:`dst_core.errors.RETRY_FUTILE`: a
    broken contract, a divergence, a configuration error) ends the trial with a last report under
    :data:`FAILED` (its traceback) instead of raising, so Tune does not retry it; the driver stores it
    as failed. A search's trials raise (its searcher and scheduler expect their metric in every report).
    """
    import torch

    from ..plugins import load_plugins

    torch.set_num_threads(threads)
    load_plugins(plugins or [], announce=False)
    trial = Trial.from_tune(config["trial"])
    work = Path(tempfile.mkdtemp(prefix="dst-trial-"))
    try:
        checkpoint = tune.get_checkpoint()
        if checkpoint is not None:  # a retry in this wave
            checkpoint.to_directory(str(work))
        earlier = None if checkpoint is not None else (resume_from or {}).get(trial.id)
        saved = 0  # the last epoch checkpointed: a failed trial's epochs_done
        try:
            run = TrialRun(trial, work, resume_from=earlier, checkpoint_seconds=checkpoint_seconds)
            saved = run.trainer.resumed_from or 0
            for report, checkpointed in run.reports():
                _maybe_fail(trial, report["epoch"])
                if checkpointed:
                    tune.report(report, checkpoint=tune.Checkpoint.from_directory(str(work)))
                    saved = report["epoch"]
                elif every_epoch:  # a scheduler compares trials at every epoch
                    tune.report(report)
        except RETRY_FUTILE:
            if not fail_fast:
                raise
            tune.report({"dst_trial_id": trial.id, "epoch": saved, FAILED: traceback.format_exc()})
    finally:
        shutil.rmtree(work, ignore_errors=True)


def _maybe_fail(trial: Trial, epoch: int) -> None:
    """Raise an injected fault when ``$DST_STUDY_FAULT_FILE`` names one; a no-op otherwise."""
    path = os.environ.get(FAULT_ENV)
    if not path or not os.path.exists(path):
        return
    with open(path) as f:
        fault = json.load(f)
    values = trial.config.to_dict()
    if fault["epoch"] != epoch or any(values.get(k) != v for k, v in fault.get("match", {}).items()):
        return
    marks = Path(fault["dir"]) / trial.id
    marks.mkdir(parents=True, exist_ok=True)
    done = len(list(marks.iterdir()))
    if fault["times"] < 0 or done < fault["times"]:
        (marks / f"{done}").touch()
        error = Diverged if fault.get("diverge") else RuntimeError  # one that a retry would meet again, or not
        raise error(f"injected fault at epoch {epoch} (attempt {done + 1})")


def warm_up() -> None:
    """Ray's ``worker_process_setup_hook``: a worker pays its one-time costs (Ray Tune's trainable
    wrapper, torch, and torch._dynamo, which an optimizer's first use imports: 4 s on one core) as
    it starts, while Ray and the driver are still starting, not in its first trial."""
    import ray.tune.trainable.function_trainable  # noqa: F401
    import torch._dynamo  # noqa: F401

    import dst_core.trainer  # noqa: F401
