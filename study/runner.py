"""Running a study: what is missing, where its checkpoints are, and the waves that run it.

The result store, not Tune's experiment state, is the record of what is done. ``run`` computes the
trials of the spec whose ids have no row yet, finds the newest checkpoint any earlier wave left for
each (a driver killed mid-study), and launches them as Tune experiments of at most ``WAVE_SIZE``
trials. Running a spec again, resuming after a crash and extending a grid are the same operation.
"""

from __future__ import annotations

import os
import signal
import threading
import time
from dataclasses import dataclass, field
from typing import Callable

import pyarrow.fs as pafs
import yaml
from rich.console import Console

from dst_core import ALGORITHM_REVISION, TrainConfig
from dst_core import checkpoint as ckpt

from .lease import StudyLease
from .progress import Progress
from .spec import SpecError, StudySpec, parse
from .store import ParquetStore
from .trial_id import trial_id

__all__ = ["COMPACT_ABOVE", "Plan", "SPEC_FILE", "WAVE_SIZE", "load_study_spec", "plan", "run"]

WAVE_SIZE = 2000  # trials per Tune experiment (Tune's driver state grows with trial count)
COMPACT_ABOVE = 200  # part files; reads slow down with their number (docs/benchmarks.md)
SPEC_FILE = "spec.yaml"  # the spec a study was last run with, kept in the study folder for resume


@dataclass
class Plan:
    spec: StudySpec
    store: ParquetStore
    trials: list[TrainConfig]  # every trial of the spec
    done: dict[str, str]  # trial id -> status, for the spec's trials already in the store
    missing: list[TrainConfig]  # to run now
    resume_from: dict[str, str]  # trial id -> checkpoint left by an earlier wave
    outdated: set[str] = field(default_factory=set)  # done by an older algorithm revision


def plan(spec: StudySpec, retry_failed: bool = False, rerun_outdated: bool = False) -> Plan:
    """What runs: the spec's trials without a row (and failed ones with ``retry_failed``, those of
    an older algorithm revision with ``rerun_outdated``)."""
    store = ParquetStore(spec.study_dir)
    recorded = store.read("trials", ["trial_id", "status", "algorithm_revision"]) if store.exists() else None
    status = {} if recorded is None else dict(zip(recorded["trial_id"], recorded["status"]))
    old = set() if recorded is None else \
        set(recorded.loc[recorded["algorithm_revision"].fillna(1) < ALGORITHM_REVISION, "trial_id"])
    if spec.search is not None:  # the trials are sampled as the search goes: count them
        if "://" in spec.study_dir:
            raise SpecError(f"study {spec.name!r}: search: keeps its Optuna study in SQLite, so storage must "
                            f"be a directory, not {spec.storage!r}")
        return Plan(spec, store, [], status, [], {})
    trials = spec.trials()
    ids = [trial_id(c) for c in trials]  # each a hash of the config: computed once
    finished = {"completed"} if retry_failed else {"completed", "failed"}
    done = {i: status[i] for i in ids if status.get(i) in finished and not (rerun_outdated and i in old)}
    missing = [c for c, i in zip(trials, ids) if i not in done]
    return Plan(spec, store, trials, done, missing, _checkpoints(store, {i for i in ids if i not in done}),
                set(done) & old)


def _checkpoints(store: ParquetStore, ids: set[str]) -> dict[str, str]:
    """Newest checkpoint per trial id under ``<study>/tune/<wave>/<trial id>/checkpoint_*/``."""
    if not ids:
        return {}
    infos = store.fs.get_file_info(pafs.FileSelector(f"{store.path}/tune", allow_not_found=True, recursive=True))
    found: dict[str, str] = {}
    for info in sorted(infos, key=lambda i: i.path):  # waves and checkpoint indices sort by time
        parts = info.path.split("/")
        if info.type == pafs.FileType.File and parts[-1] == ckpt.FILENAME and len(parts) >= 3 \
                and parts[-3] in ids and parts[-2].startswith("checkpoint_"):
            found[parts[-3]] = info.path
    return found


def save_spec(spec: StudySpec) -> None:
    """Keep the spec in the study folder, written atomically (a temporary file, then a rename)."""
    store = ParquetStore(spec.study_dir)
    store.fs.create_dir(store.path, recursive=True)
    tmp = f"{store.path}/.{SPEC_FILE}.tmp-{os.getpid()}"
    with store.fs.open_output_stream(tmp) as out:
        out.write(yaml.safe_dump(spec.model_dump(mode="json", exclude_none=True), sort_keys=False).encode())
    store.fs.move(tmp, f"{store.path}/{SPEC_FILE}")


def load_study_spec(study_dir: str) -> StudySpec:
    """The spec saved in a study folder, with its results in that folder: the folder is the study,
    wherever it was moved or copied (the saved ``storage`` only says where it was created)."""
    store = ParquetStore(study_dir)
    path = f"{store.path}/{SPEC_FILE}"
    try:
        with store.fs.open_input_stream(path) as f:
            data = yaml.safe_load(f.read().decode())
    except OSError:
        raise SpecError(f"{study_dir}: no {SPEC_FILE}; this study was not started by 'dst-study run' "
                        "(run the spec itself to continue it)") from None
    return parse(data, path).at(study_dir)


def _forward_sigterm_to_sigint():
    """The SIGTERM handler this replaced, or None where signals cannot be set (not the main thread)."""
    if threading.current_thread() is not threading.main_thread():
        return None
    return signal.signal(signal.SIGTERM, lambda *_: os.kill(os.getpid(), signal.SIGINT))


def run(p: Plan, *, address: str | None = None, max_concurrent: int | None = None, num_cpus: float | None = None,
        num_gpus: float | None = None, verbose: bool = False, log: Callable[[str], None] = print,
        console: Console | None = None) -> None:
    """Run the missing trials of a plan in waves; every outcome lands in the store, which is
    compacted afterwards once it holds more than ``COMPACT_ABOVE`` parts.

    Progress goes to ``log`` as lines, or to a live bar when ``console`` is a terminal. One driver
    runs a study at a time (:class:`~study.lease.StudyLease`); another stops with StudyBusy.
    """
    p.store.check_writable()  # before Ray starts or any trial trains
    with StudyLease(p.store, log=log):
        _run(p, address=address, max_concurrent=max_concurrent, num_cpus=num_cpus, num_gpus=num_gpus,
             verbose=verbose, log=log, console=console)


def _run(p: Plan, *, address: str | None, max_concurrent: int | None, num_cpus: float | None,
         num_gpus: float | None, verbose: bool, log: Callable[[str], None], console: Console | None) -> None:
    save_spec(p.spec)
    to_search = p.spec.search.n_trials - len(p.done) if p.spec.search is not None else 0
    if not p.missing and to_search <= 0:
        return
    from .runners import ray_tune  # Ray loads only when something runs
    progress = Progress(len(p.missing) + max(to_search, 0), log, console, title=p.spec.name)
    started = ray_tune.start_ray(address, num_cpus, num_gpus, verbose)
    log(ray_tune.describe_cluster())
    unfit = ray_tune.unfit_resources(p.spec.resources.cpu, p.spec.resources.gpu)
    if unfit and address is None:  # a private local Ray never grows: Tune would wait forever
        progress.close()
        if started:
            ray_tune.stop_ray()
        raise SpecError(f"{unfit}; lower resources.cpu / resources.gpu, or run on a cluster that has such a node")
    if unfit:
        log(f"{unfit}; waiting for the cluster's autoscaler to add such a node")
    # SIGTERM (scancel, a time limit) stops the study as Ctrl-C does: Tune's SIGINT handler ends the
    # running trials, whose checkpoints stay for a resume. Set after Ray's start, which installs its own.
    sigterm = _forward_sigterm_to_sigint()
    try:
        # Tune takes URIs as they are; local folders must be absolute
        tune_dir = f"{p.spec.study_dir}/tune" if "://" in p.spec.study_dir else f"{p.store.path}/tune"
        if to_search > 0:
            ray_tune.run_search(
                p.spec.search, p.spec.base, p.store, n_trials=to_search, tune_dir=tune_dir,
                wave=f"search-{time.time_ns()}", optuna_db=f"{p.store.path}/optuna.db", study_name=p.spec.name, done=len(p.done),
                cpu=p.spec.resources.cpu, gpu=p.spec.resources.gpu, retries=p.spec.retries,
                max_concurrent=max_concurrent or p.spec.max_concurrent, progress=progress, axes=p.spec.axes)
        for start in range(0, len(p.missing), WAVE_SIZE):
            wave = p.missing[start:start + WAVE_SIZE]
            ray_tune.run_wave(
                wave, p.store, tune_dir=tune_dir, wave=f"wave-{time.time_ns()}",
                resume_from=p.resume_from, cpu=p.spec.resources.cpu, gpu=p.spec.resources.gpu,
                retries=p.spec.retries, max_concurrent=max_concurrent or p.spec.max_concurrent, progress=progress,
                axes=p.spec.axes)
            stored = set(p.store.read("trials", ["trial_id"])["trial_id"])
            if any(trial_id(c) not in stored for c in wave):
                break  # Tune stopped the wave (Ctrl-C, SIGTERM): so does the study
    finally:
        progress.close()
        if started:
            ray_tune.stop_ray()
        if sigterm is not None:
            signal.signal(signal.SIGTERM, sigterm)
    if len(p.store.files("trials")) > COMPACT_ABOVE:
        p.store.compact()
