"""Ray Tune adapter, the driver's side: fans a wave of trials out, retries them from checkpoints,
writes what they report to the store.

Each trial is :func:`~study.runners.trainable.trainable` (a plain Tune function around
:class:`study.trial.TrialRun`, in a module of its own so workers import little): it resumes from
Tune's checkpoint on a retry (a raised error, a lost node) or from a checkpoint an earlier wave left
(a killed driver), reports when it checkpoints (every epoch under a search's early stopping), and
sends its whole history with the last report. The driver's :class:`StoreWriter` callback writes
each finished, failed or early-stopped trial to the result store: one writer, as trials finish.
"""

from __future__ import annotations

import logging
import math
import os
import signal
from typing import Any, Sequence

import ray
from ray import tune
from ray.tune.schedulers import ASHAScheduler

from dst_core import TrainConfig

from ..plugins import shippable
from ..progress import Progress
from ..signals import request_stop, stop_reason, watch_ray
from ..store import OutOfSpace, ParquetStore, WriteFailed, out_of_space
from ..trial import Trial, result_rows, utc_now
from .trainable import FAILED, FAULT_ENV, trainable

__all__ = ["EarlyStopping", "FAULT_ENV", "StoreWriter", "describe_cluster", "run_search", "run_wave", "start_ray", "stop_ray",
           "trainable"]


class StoreWriter(tune.Callback):
    """Writes each trial to the store when it completes or finally fails, and tells ``progress``."""

    def __init__(self, store: ParquetStore, progress: Progress, axes: Sequence[str] = (),
                 scheduler: "EarlyStopping | None" = None, metric: str | None = None):
        self.store, self.progress, self.axes = store, progress, list(axes)
        self.metric = metric  # what a progress line shows: a search's own (validation) metric
        self.started: dict[str, Any] = {}
        self.checkpoints: dict[str, tune.Checkpoint] = {}  # trial -> its newest checkpoint
        # a scheduler that stops trials early: their epochs as reported, for the row of a stopped trial
        self.scheduler = scheduler
        self.epochs: dict[str, dict[int, dict[str, Any]]] = {}

    def on_trial_result(self, iteration, trials, trial, result, **info):
        if self.scheduler is not None:  # a retry reports again from its checkpoint: an epoch's last report counts
            self.epochs.setdefault(trial.trial_id, {})[int(result["epoch"])] = result

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
        report = trial.last_result or {}
        cell = Trial.from_tune(trial.config["trial"], self.axes, id=report.get("dst_trial_id"))
        if status == "completed" and "history" not in report:
            if self.scheduler is None or trial.trial_id not in self.scheduler.stopped:
                return  # stopped before its last epoch (Ctrl-C, SIGTERM): not done, its checkpoint stays
            status = "stopped"  # by the scheduler: its epochs so far are its result
            epochs = self.epochs.pop(trial.trial_id, {})
            report = {**report, "history": [epochs[e] for e in sorted(epochs)]}
        if status == "failed" and out_of_space(error or ""):
            # the trial's checkpoint could not be saved: the disk's fault, not the trial's. It is not
            # recorded as failed; the study stops and a resume continues it from its last checkpoint
            last = (error or "").strip().splitlines()[-1]
            request_stop(OutOfSpace(self.store.root, self.store.path, f"a trial could not save its checkpoint ({last})"))
            return
        started = self.started.get(trial.trial_id, utc_now())
        rows = result_rows(cell, report, status=status, started_at=started, ended_at=utc_now(), error=error)
        try:
            self.store.append(*rows)
        except Exception as e:  # a result that cannot be written is never silently dropped
            if out_of_space(e):  # nor recorded as a failure: the study stops, its checkpoint stays
                request_stop(OutOfSpace(self.store.root, self.store.path))
                return
            error = f"the trial finished but its result could not be stored: {type(e).__name__}: {e}"
            status = "failed"
            rows = result_rows(cell, {k: v for k, v in report.items() if k != "history"}, status=status,
                               started_at=started, ended_at=utc_now(), error=error)
            try:
                self.store.append(rows[0])
            except Exception as again:  # not even the failure can be recorded: the study cannot go on
                request_stop(OutOfSpace(self.store.root, self.store.path) if out_of_space(again) else
                             WriteFailed(f"{self.store.root}: results can no longer be written "
                                         f"({type(again).__name__}: {again})"))
                return
        row = rows[0][0]
        if status in ("completed", "stopped"):  # a search's metric, or the closing table's (the paper's number)
            metric = self.metric or ("final_test_accuracy" if row.get("test_accuracy_at_best_val") is None
                                     else "test_accuracy_at_best_val")
            value = row.get(metric)
            what = f"{metric} " + ("n/a" if value is None else f"{value:.2%}" if "accuracy" in metric else f"{value:.4g}")
            if status == "stopped":
                what += f", stopped early at epoch {row['epochs_done']}"
        else:
            what = "FAILED: " + (error or "").strip().splitlines()[-1]
        self.progress.finished(
            f"{cell.label}: {what} ({row['wall_seconds'] or 0:.1f}s)", failed=status == "failed",
            running=sum(t.status == "RUNNING" for t in trials if t is not trial), seconds=row["wall_seconds"])

    def on_trial_complete(self, iteration, trials, trial, **info):
        error = (trial.last_result or {}).get(FAILED)  # an error a retry would raise again: not retried
        self._finish(trials, trial, "failed" if error else "completed", error)

    def on_trial_error(self, iteration, trials, trial, **info):
        self._finish(trials, trial, "failed", _error_text(trial))


def _error_text(trial) -> str:
    """The trial's error log (every failed attempt); Tune writes it locally before syncing."""
    path = trial.error_file
    if path and os.path.exists(path):
        with open(path) as f:
            return f.read()
    return str(trial.get_error() or "unknown error")


def run_wave(trials: list[Trial], store: ParquetStore, *, tune_dir: str, wave: str,
             resume_from: dict[str, str], cpu: float, gpu: float, retries: int, checkpoint_seconds: float,
             max_concurrent: int | None, progress: Progress, axes: Sequence[str] = (),
             plugins: Sequence[str] = ()) -> None:
    """Run one Tune experiment over ``trials``; every outcome lands in ``store``. Each worker imports
    ``plugins`` (shipped by :func:`start_ray`) before it builds a trial's config."""
    trainable_ = tune.with_parameters(trainable, resume_from=resume_from, checkpoint_seconds=checkpoint_seconds,
                                      threads=_threads(cpu), plugins=list(plugins), fail_fast=True)
    tuner = tune.Tuner(
        tune.with_resources(trainable_, {"cpu": cpu, "gpu": gpu}),
        param_space={"trial": tune.grid_search([t.to_tune() for t in trials])},
        tune_config=tune.TuneConfig(max_concurrent_trials=max_concurrent, reuse_actors=True,
                                    trial_dirname_creator=_dirname),
        run_config=tune.RunConfig(
            name=wave, storage_path=tune_dir, verbose=0,
            failure_config=tune.FailureConfig(max_failures=retries),
            callbacks=[StoreWriter(store, progress, axes)]),
    )
    _fit(tuner)


def _fit(tuner: tune.Tuner) -> None:
    try:
        tuner.fit()
    except Exception:
        if stop_reason() is None:
            raise
        # the study stopped itself (a full disk, a lost lease): Tune's own files, read back as it
        # ends, may be cut short; the reason is what the driver reports


_DOMAINS = {"uniform": tune.uniform, "loguniform": tune.loguniform, "int": lambda lo, hi: tune.randint(lo, hi + 1),
            "choice": lambda *values: tune.choice(list(values))}


def run_search(search, base: dict[str, Any], store: ParquetStore, *, n_trials: int, tune_dir: str, wave: str,
               optuna_db: str, study_name: str, done: int, cpu: float, gpu: float, retries: int,
               checkpoint_seconds: float, max_concurrent: int | None, progress: Progress,
               axes: Sequence[str] = (), verbose: bool = False, plugins: Sequence[str] = ()) -> None:
    """``n_trials`` more trials of an Optuna search (``search`` is a SearchSpec).

    The Optuna study lives in ``optuna_db`` (SQLite) under ``study_name``, so a resumed search
    continues it, sampling with everything learnt so far. The sampler's seed moves on by the
    ``done`` trials: re-seeded as before, it would draw the configs it drew before.
    """
    import optuna
    from ray.tune.search.optuna import OptunaSearch

    # Optuna logs at INFO on stderr ("A new study created in RDB ..."): like Ray's, only with --verbose
    optuna.logging.set_verbosity(optuna.logging.INFO if verbose else optuna.logging.WARNING)
    space = {name: _DOMAINS[kind](*args) for name, domain in search.space.items() for kind, args in domain.items()}
    # Tune lets a searcher other than its grid have one trial pending at a time unless its concurrency
    # is capped, and a trial pends while its worker starts: uncapped, a search ran one trial at a time
    # on any number of CPUs. The cap is the trials that fit at once (or max_concurrent, if lower).
    concurrent = min(max_concurrent or math.inf, _slots(cpu, gpu))
    # the searcher reads the trial's last report: final_<m> is that epoch's <m>, best_val_accuracy its own key
    searcher = OptunaSearch(metric=search.metric.removeprefix("final_"), mode=search.mode, seed=search.seed + done,
                            study_name=study_name, storage=optuna.storages.RDBStorage(f"sqlite:///{optuna_db}"))
    # ASHA compares trials epoch by epoch (time_attr "epoch", up to the trials' epochs), so every
    # epoch is reported to Tune, not only those that checkpoint
    scheduler = None if search.scheduler == "none" else EarlyStopping(
        time_attr="epoch", metric=searcher.metric, mode=search.mode,
        max_t=base.get("epochs", TrainConfig.epochs), grace_period=search.grace_period,
        reduction_factor=search.reduction_factor)
    tuner = tune.Tuner(
        tune.with_resources(tune.with_parameters(trainable, checkpoint_seconds=checkpoint_seconds,
                                                 threads=_threads(cpu), plugins=list(plugins),
                                                 every_epoch=scheduler is not None),
                            {"cpu": cpu, "gpu": gpu}),
        param_space={"trial": {**base, **space}},  # a sampled config: the worker gives it its id
        tune_config=tune.TuneConfig(search_alg=searcher, scheduler=scheduler, num_samples=n_trials,
                                    max_concurrent_trials=concurrent, reuse_actors=True,
                                    trial_dirname_creator=_dirname),
        run_config=tune.RunConfig(
            name=wave, storage_path=tune_dir, verbose=0,
            failure_config=tune.FailureConfig(max_failures=retries),
            callbacks=[StoreWriter(store, progress, axes, scheduler, metric=search.metric)]),
    )
    _fit(tuner)


class EarlyStopping(ASHAScheduler):
    """Ray Tune's ASHA, remembering which trials it stopped: Tune ends those as it ends finished
    ones, and the store must tell a trial stopped early from one that ran all its epochs."""

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self.stopped: set[str] = set()

    def on_trial_result(self, tune_controller, trial, result):
        decision = super().on_trial_result(tune_controller, trial, result)
        if decision == self.STOP:
            self.stopped.add(trial.trial_id)
        return decision


def _slots(cpu: float, gpu: float) -> int:
    """How many trials of ``cpu`` CPUs and ``gpu`` GPUs the live nodes hold at once (at least one)."""
    fits = [min(r.get("CPU", 0) // cpu, r.get("GPU", 0) // gpu if gpu else math.inf)
            for r in (n["Resources"] for n in ray.nodes() if n["Alive"])]
    return max(1, int(sum(f for f in fits if f != math.inf)))


def _threads(cpu: float) -> int:
    """torch threads of a trial given ``cpu`` CPUs: one per whole CPU, at least one."""
    return max(1, int(cpu))


def _dirname(trial) -> str:
    """A grid's trial folders are named by trial id, so a later wave finds an earlier wave's
    checkpoints; a search's sampled trials never resume across waves and keep Tune's id."""
    return trial.config["trial"].get("trial_id") or trial.trial_id


def start_ray(address: str | None, num_cpus: float | None, num_gpus: float | None, verbose: bool,
              plugins: Sequence[str] = ()) -> bool:
    """Join ``address``, or start a private local Ray (never a bare ``ray.init()``, which may attach
    to someone else's cluster); True when this call started or joined one. The job's runtime
    environment ships the ``plugins`` (imported by the driver) to every worker on every node
    (``py_modules``): a plugin in the user's working directory needs no copying or installing."""
    os.environ.setdefault("RAY_AIR_NEW_OUTPUT", "0")
    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    # Tune's per-trial result.json / progress.csv / TensorBoard files: the store already holds every
    # epoch, and writing them cost the driver CPU that the trials beside it need
    os.environ.setdefault("TUNE_DISABLE_AUTO_CALLBACK_LOGGERS", "1")
    # A failed trial's traceback is in its row and its last line in the progress; Tune's own copy on
    # stderr (logged at ERROR by its controller) shows only with --verbose
    logging.getLogger("ray.tune").setLevel(logging.INFO if verbose else logging.CRITICAL)
    if not verbose:  # nor Ray's copy of the error of a trial that a stopped study never awaited
        os.environ.setdefault("RAY_IGNORE_UNHANDLED_ERRORS", "1")
    if ray.is_initialized():
        return False
    runtime_env: dict[str, Any] = {"worker_process_setup_hook": "study.runners.trainable.warm_up"}
    shipped = shippable(plugins)
    if shipped:
        runtime_env["py_modules"] = shipped
    kwargs = dict(include_dashboard=False, log_to_driver=verbose,
                  logging_level=logging.INFO if verbose else logging.ERROR, runtime_env=runtime_env)
    try:
        if address:
            ray.init(address=address, **kwargs)
        else:
            ray.init(address="local", num_cpus=num_cpus, num_gpus=num_gpus, **kwargs)
            watch_ray(_ray_gone)  # a SIGTERM to the process group stops it too: the driver then stops at once
    except BaseException as e:
        ray.shutdown()  # whatever part of Ray had started
        if isinstance(e, SystemExit) and e.code == signal.SIGTERM:  # Ray's own SIGTERM handler, mid-start
            raise KeyboardInterrupt from None
        raise
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


def _ray_gone() -> bool:
    """Whether the GCS or the raylet of the private Ray this driver started has exited (read from
    Ray's node internals: any surprise reads as alive, and the deadline's clock decides)."""
    try:
        from ray._private import ray_constants

        node = ray._private.worker._global_node
        kinds = (ray_constants.PROCESS_TYPE_GCS_SERVER, ray_constants.PROCESS_TYPE_RAYLET)
        return any(p.process.poll() is not None for kind in kinds for p in node.all_processes.get(kind, []))
    except Exception:
        return False


def stop_ray() -> None:
    watch_ray(None)  # its GCS is about to end on purpose
    ray.shutdown()
