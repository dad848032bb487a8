"""Ray Tune adapter: fans a wave of trials out, retries them from checkpoints, reports to the store.

Each trial is :func:`trainable`, a plain Tune function that wraps :class:`dst_core.Trainer`: it
resumes from Tune's checkpoint on a retry (a raised error, a lost node) or from a checkpoint an
earlier wave left (a killed driver), reports every epoch with a checkpoint, and sends its whole
history with the last report. The driver's :class:`StoreWriter` callback writes each finished or
failed trial to the result store: one writer, as trials finish.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import socket
import tempfile
import time
from pathlib import Path
from typing import Any, Sequence

import ray
from ray import tune

from dst_core import TrainConfig, Trainer
from dst_core import checkpoint as ckpt

from ..progress import Progress
from ..store import ParquetStore
from ..trial import history_rows, jaccard_rows, trial_label, trial_row, utc_now
from ..trial_id import trial_id

__all__ = ["FAULT_ENV", "StoreWriter", "describe_cluster", "run_search", "run_wave", "start_ray", "stop_ray",
           "trainable"]

# Test aid: the path of a JSON file {"epoch": E, "times": N (-1: always), "dir": D, "match": {...}}
# that makes matching trials raise after epoch E, N times each (markers in D count the attempts).
FAULT_ENV = "DST_STUDY_FAULT_FILE"


def _maybe_fail(config: TrainConfig, epoch: int) -> None:
    """Raise an injected fault when ``$DST_STUDY_FAULT_FILE`` names one; a no-op otherwise."""
    path = os.environ.get(FAULT_ENV)
    if not path or not os.path.exists(path):
        return
    with open(path) as f:
        fault = json.load(f)
    values = config.to_dict()
    if fault["epoch"] != epoch or any(values.get(k) != v for k, v in fault.get("match", {}).items()):
        return
    marks = Path(fault["dir"]) / trial_id(config)
    marks.mkdir(parents=True, exist_ok=True)
    done = len(list(marks.iterdir()))
    if fault["times"] < 0 or done < fault["times"]:
        (marks / f"{done}").touch()
        raise RuntimeError(f"injected fault at epoch {epoch} (attempt {done + 1})")


def _jsonable(metrics: dict[str, Any]) -> dict[str, Any]:
    out = {k: v for k, v in metrics.items() if k != "jaccard"}
    if "jaccard" in metrics:
        out["jaccard"] = [[a, b, v] for (a, b), v in metrics["jaccard"].items()]
    return out


def trainable(config: dict[str, Any], resume_from: dict[str, str] | None = None) -> None:
    """One trial under Tune: ``config["trial"]`` is a TrainConfig dict; ``resume_from`` maps trial
    ids to checkpoints that earlier waves left behind."""
    started = time.perf_counter()  # the attempt's seconds include loading data and building the model
    cfg = TrainConfig.from_dict(config["trial"])
    work = Path(tempfile.mkdtemp(prefix="dst-trial-"))
    try:
        checkpoint = tune.get_checkpoint()
        if checkpoint is not None:  # a retry in this wave
            checkpoint.to_directory(str(work))
        elif resume_from and trial_id(cfg) in resume_from:  # left by an earlier wave whose driver died
            shutil.copy(resume_from[trial_id(cfg)], work / ckpt.FILENAME)
        trainer = Trainer(cfg, checkpoint_dir=work)

        def report(metrics: dict[str, Any]) -> None:
            out = _jsonable(metrics)
            out.update(trial_id=trial_id(cfg), device_used=str(trainer.device), host=socket.gethostname(),
                       resumed_from=trainer.resumed_from or 0, attempt_seconds=time.perf_counter() - started)
            if trainer.done:  # the last report carries the whole history
                out["history"] = [_jsonable(m) for m in trainer.history]
            tune.report(out, checkpoint=tune.Checkpoint.from_directory(str(work)))

        if trainer.done:  # the checkpoint was final: the driver died before storing the result
            report(trainer.history[-1])
        for metrics in trainer.epochs():
            _maybe_fail(cfg, metrics["epoch"])
            report(metrics)
    finally:
        shutil.rmtree(work, ignore_errors=True)


def _history(result: dict[str, Any]) -> list[dict[str, Any]]:
    history = []
    for m in result.get("history", []):
        m = dict(m)
        if "jaccard" in m:
            m["jaccard"] = {(a, b): v for a, b, v in m["jaccard"]}
        history.append(m)
    return history


class StoreWriter(tune.Callback):
    """Writes each trial to the store when it completes or finally fails, and tells ``progress``."""

    def __init__(self, store: ParquetStore, progress: Progress, axes: Sequence[str] = ()):
        self.store, self.progress, self.axes = store, progress, list(axes)
        self.started: dict[str, Any] = {}
        self.checkpoints: dict[str, tune.Checkpoint] = {}  # trial -> its newest checkpoint

    def on_step_end(self, iteration, trials, **info):
        self.progress.update(running=sum(t.status == "RUNNING" for t in trials))

    def on_trial_start(self, iteration, trials, trial, **info):
        self.started.setdefault(trial.trial_id, utc_now())

    def on_checkpoint(self, iteration, trials, trial, checkpoint, **info):
        # Each trial keeps its newest checkpoint only. Tune's CheckpointConfig(num_to_keep=1) would do
        # this too, but it also forces a save of the whole experiment state (every trial's metadata)
        # on every checkpoint: that is quadratic in the trials of a wave and cost more driver CPU
        # than everything else together. Tune's own restore is never used (the store is the record).
        previous = self.checkpoints.pop(trial.trial_id, None)
        if previous is not None and previous.path != checkpoint.path:
            previous.filesystem.delete_dir(previous.path)
        self.checkpoints[trial.trial_id] = checkpoint

    def _finish(self, trials, trial, status: str, error: str | None) -> None:
        cfg = TrainConfig.from_dict(trial.config["trial"])
        result = trial.last_result or {}
        if status == "completed" and "history" not in result:
            return  # stopped before its last epoch (Ctrl-C, SIGTERM): not done, its checkpoint stays
        history = _history(result) if status == "completed" else []
        row = trial_row(cfg, history, status=status, started_at=self.started.get(trial.trial_id, utc_now()),
                        ended_at=utc_now(), device_used=result.get("device_used"), error=error,
                        wall_seconds=result.get("attempt_seconds"), resumed_from=result.get("resumed_from"),
                        host=result.get("host"))
        if status == "failed":
            row["epochs_done"] = int(result.get("epoch", 0))
        try:
            self.store.append([row], history_rows(cfg, history), jaccard_rows(cfg, history))
        except Exception as e:  # a result that cannot be written is never silently dropped
            error = f"the trial finished but its result could not be stored: {type(e).__name__}: {e}"
            status, history = "failed", []
            row = trial_row(cfg, [], status=status, started_at=row["started_at"], ended_at=utc_now(),
                            device_used=row["device_used"], error=error, wall_seconds=row["wall_seconds"],
                            resumed_from=row["resumed_from"], host=row["host"])
            self.store.append([row])
        what = (f"test {row['final_test_accuracy']:.2%}" if status == "completed"
                else "FAILED: " + (error or "").strip().splitlines()[-1])
        self.progress.finished(
            f"{trial_label(cfg, self.axes)}: {what} ({row['wall_seconds'] or 0:.1f}s)", failed=status == "failed",
            running=sum(t.status == "RUNNING" for t in trials if t is not trial), seconds=row["wall_seconds"])

    def on_trial_complete(self, iteration, trials, trial, **info):
        self._finish(trials, trial, "completed", None)

    def on_trial_error(self, iteration, trials, trial, **info):
        self._finish(trials, trial, "failed", _error_text(trial))


def _error_text(trial) -> str:
    """The trial's error log (every failed attempt); Tune writes it locally before syncing."""
    path = trial.error_file
    if path and os.path.exists(path):
        with open(path) as f:
            return f.read()
    return str(trial.get_error() or "unknown error")


def run_wave(configs: list[TrainConfig], store: ParquetStore, *, tune_dir: str, wave: str,
             resume_from: dict[str, str], cpu: float, gpu: float, retries: int,
             max_concurrent: int | None, progress: Progress, axes: Sequence[str] = ()) -> None:
    """Run one Tune experiment over ``configs``; every outcome lands in ``store``."""
    trainable_ = tune.with_parameters(trainable, resume_from=resume_from)
    tuner = tune.Tuner(
        tune.with_resources(trainable_, {"cpu": cpu, "gpu": gpu}),
        param_space={"trial": tune.grid_search([c.to_dict() for c in configs])},
        tune_config=tune.TuneConfig(max_concurrent_trials=max_concurrent, reuse_actors=True,
                                    trial_dirname_creator=_dirname),
        run_config=tune.RunConfig(
            name=wave, storage_path=tune_dir, verbose=0,
            failure_config=tune.FailureConfig(max_failures=retries),
            callbacks=[StoreWriter(store, progress, axes)]),
    )
    tuner.fit()


_DOMAINS = {"uniform": tune.uniform, "loguniform": tune.loguniform, "int": lambda lo, hi: tune.randint(lo, hi + 1),
            "choice": lambda *values: tune.choice(list(values))}


def run_search(search, base: dict[str, Any], store: ParquetStore, *, n_trials: int, tune_dir: str, wave: str,
               optuna_db: str, study_name: str, done: int, cpu: float, gpu: float, retries: int,
               max_concurrent: int | None, progress: Progress, axes: Sequence[str] = ()) -> None:
    """``n_trials`` more trials of an Optuna search (``search`` is a SearchSpec).

    The Optuna study lives in ``optuna_db`` (SQLite) under ``study_name``, so a resumed search
    continues it, sampling with everything learnt so far. The sampler's seed moves on by the
    ``done`` trials: re-seeded as before, it would draw the configs it drew before.
    """
    import optuna
    from ray.tune.search.optuna import OptunaSearch

    space = {name: _DOMAINS[kind](*args) for name, domain in search.space.items() for kind, args in domain.items()}
    searcher = OptunaSearch(metric=search.metric.removeprefix("final_"), mode=search.mode, seed=search.seed + done,
                            study_name=study_name, storage=optuna.storages.RDBStorage(f"sqlite:///{optuna_db}"))
    tuner = tune.Tuner(
        tune.with_resources(trainable, {"cpu": cpu, "gpu": gpu}),
        param_space={"trial": {**base, **space}},
        tune_config=tune.TuneConfig(search_alg=searcher, num_samples=n_trials,
                                    max_concurrent_trials=max_concurrent, trial_dirname_creator=_dirname),
        run_config=tune.RunConfig(
            name=wave, storage_path=tune_dir, verbose=0,
            failure_config=tune.FailureConfig(max_failures=retries),
            callbacks=[StoreWriter(store, progress, axes)]),
    )
    tuner.fit()


def _dirname(trial) -> str:
    """Trial folders are named by trial id, so a later wave finds an earlier wave's checkpoints."""
    return trial_id(TrainConfig.from_dict(trial.config["trial"]))


def start_ray(address: str | None, num_cpus: float | None, num_gpus: float | None, verbose: bool) -> bool:
    """Join ``address``, or start a private local Ray (never a bare ``ray.init()``, which may attach
    to someone else's cluster); True when this call started or joined one."""
    os.environ.setdefault("RAY_AIR_NEW_OUTPUT", "0")
    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    # Tune's per-trial result.json / progress.csv / TensorBoard files: the store already holds every
    # epoch, and writing them cost the driver CPU that the trials beside it need
    os.environ.setdefault("TUNE_DISABLE_AUTO_CALLBACK_LOGGERS", "1")
    # A failed trial's traceback is in its row and its last line in the progress; Tune's own copy on
    # stderr (logged at ERROR by its controller) shows only with --verbose
    logging.getLogger("ray.tune").setLevel(logging.INFO if verbose else logging.CRITICAL)
    if ray.is_initialized():
        return False
    kwargs = dict(include_dashboard=False, log_to_driver=verbose,
                  logging_level=logging.INFO if verbose else logging.ERROR)
    if address:
        ray.init(address=address, **kwargs)
    else:
        ray.init(address="local", num_cpus=num_cpus, num_gpus=num_gpus, **kwargs)
    return True


def describe_cluster() -> str:
    """What the driver sees of the Ray it runs on: the live nodes and their CPUs and GPUs."""
    nodes = [n for n in ray.nodes() if n["Alive"]]
    cpus, gpus = (sum(n["Resources"].get(r, 0) for n in nodes) for r in ("CPU", "GPU"))
    return f"Ray: {len(nodes)} node{'s' if len(nodes) != 1 else ''}, {cpus:g} CPUs, {gpus:g} GPUs"


def unfit_resources(cpu: float, gpu: float) -> str | None:
    """Why no live node can run a trial asking for ``cpu`` CPUs and ``gpu`` GPUs, or None if one can."""
    nodes = [n["Resources"] for n in ray.nodes() if n["Alive"]]
    if any(r.get("CPU", 0) >= cpu and r.get("GPU", 0) >= gpu for r in nodes):
        return None
    have = "; ".join(f"{r.get('CPU', 0):g} CPUs, {r.get('GPU', 0):g} GPUs" for r in nodes) or "no node"
    return (f"resources: a trial asks for {cpu:g} CPU and {gpu:g} GPU but no node of this Ray has that "
            f"(nodes: {have})")


def stop_ray() -> None:
    ray.shutdown()
