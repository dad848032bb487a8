"""Running a study: what is missing, where its checkpoints are, and the waves that run it.

The result store, not Tune's experiment state, is the record of what is done. ``run`` computes the
trials of the spec whose ids have no row yet, finds the newest checkpoint any earlier wave left for
each (a driver killed mid-study), and launches them as Tune experiments of at most ``WAVE_SIZE``
trials. Running a spec again, resuming after a crash and extending a grid are the same operation.
"""

from __future__ import annotations

import hashlib
import json
import signal
import threading
import time
from dataclasses import dataclass, field
from typing import Callable

import yaml
from rich.console import Console

from dst_core import ALGORITHM_REVISION

from .lease import StudyLease
from .signals import (clear_stop_reason, disarm, request_stop, sigterm_as_ctrl_c, stop_if_requested,
                      stop_reason, when_stuck)
from .progress import Progress
from .spec import SpecError, StudySpec, from_yaml
from .folder import LISTING, SPEC
from .store import OutOfSpace, ParquetStore, out_of_space, revision
from .trial import Trial

__all__ = ["COMPACT_ABOVE", "Listing", "Plan", "StudyRun", "WAVE_SIZE", "listing", "run_study",
           "load_study_spec", "plan", "run"]

WAVE_SIZE = 2000  # trials per Tune experiment (Tune's driver state grows with trial count)
COMPACT_ABOVE = 200  # part files; reads slow down with their number (docs/benchmarks.md)


@dataclass
class Plan:
    spec: StudySpec
    store: ParquetStore
    trials: list[Trial]  # every trial of the spec (a search: none, its trials are sampled)
    finished: dict[str, str]  # trial id -> status of those that will not run: completed (failed too, unless retried)
    missing: list[Trial]  # to run now
    resume_from: dict[str, str]  # trial id -> checkpoint left by an earlier wave (a URI on an object store)
    outdated: set[str] = field(default_factory=set)  # finished by an older algorithm revision
    outdated_plugins: set[str] = field(default_factory=set)  # finished with a plugin's source other than now
    rerun: set[str] = field(default_factory=set)  # outdated ones that run again (their rows kept aside first)
    started_over: set[str] = field(default_factory=set)  # with a checkpoint made by other code: from epoch 0


def plan(spec: StudySpec, retry_failed: bool = False, rerun_outdated: bool = False) -> Plan:
    """What runs: the spec's trials without a row (and failed ones with ``retry_failed``, those of
    an older algorithm revision or of other plugin code than the plugins imported now with
    ``rerun_outdated``)."""
    from .plugins import loaded, outdated_plugins

    store = ParquetStore(spec.study_dir)
    recorded = store.read("trials", ["trial_id", "status", "algorithm_revision", "plugins"]) \
        if store.exists() else None
    status = {} if recorded is None else dict(zip(recorded["trial_id"], recorded["status"]))
    old = set() if recorded is None else \
        set(recorded.loc[revision(recorded) < ALGORITHM_REVISION, "trial_id"])
    current = loaded()
    old_plugins = set() if recorded is None or not current else \
        {i for i, p in zip(recorded["trial_id"], recorded["plugins"]) if outdated_plugins(p, current)}
    old |= old_plugins
    if spec.search is not None:  # the trials are sampled as the search goes: count them
        if "://" in spec.study_dir:
            raise SpecError(f"study {spec.name!r}: search: keeps its Optuna study in SQLite, so storage must "
                            f"be a directory, not {spec.storage!r}")
        _check_same_objective(spec, store)
        return Plan(spec, store, [], status, [], {})
    trials = spec.trials()
    final = {"completed"} if retry_failed else {"completed", "failed"}
    finished = {t.id: status[t.id] for t in trials
                if status.get(t.id) in final and not (rerun_outdated and t.id in old)}
    missing = [t for t in trials if t.id not in finished]
    found = store.folder.checkpoints({t.id for t in missing})
    other = _made_by_other_code(store, found, missing)
    return Plan(spec, store, trials, finished, missing,
                {i: store.folder.uri(path) for i, path in found.items() if i not in other},
                set(finished) & (old - old_plugins), set(finished) & old_plugins,
                {t.id for t in missing if t.id in old and status.get(t.id) in final}, other)


def _made_by_other_code(store: ParquetStore, checkpoints: dict[str, str], trials: list[Trial]) -> set[str]:
    """The trials whose checkpoint was made by another algorithm revision or other plugin sources than
    the trial would run now (as the position beside it records): never resumed, they start over. A
    position that records no plugin sources (an older dst-study's) is judged as made without plugins."""
    from .plugins import plugins_used

    other = set()
    for trial in trials:
        if trial.id not in checkpoints:
            continue
        sources = {p["module"]: p["sha256"] for p in plugins_used(trial.config)}
        position = store.folder.read_position(checkpoints[trial.id]) or {}
        if position.get("algorithm_revision", ALGORITHM_REVISION) != ALGORITHM_REVISION or \
                (position.get("plugin_sources") or {}) != sources:
            other.add(trial.id)
    return other


def _check_same_objective(spec: StudySpec, store: ParquetStore) -> None:
    """A search goes on only with the metric and mode it began with: the Optuna study holds the
    values it learnt from, and values of another metric would be mixed into them."""
    try:
        saved = yaml.safe_load(store.folder.read_text(SPEC) or "{}")
    except yaml.YAMLError:  # resume names a corrupt saved spec itself; run replaces it
        return
    saved = saved.get("search") if isinstance(saved, dict) else None
    if not isinstance(saved, dict):
        return
    was = (saved.get("metric", "final_test_accuracy"), saved.get("mode", "max"))  # older specs' defaults
    if was != (spec.search.metric, spec.search.mode):
        raise SpecError(f"search: this study's search so far optimised {was[0]} ({was[1]}), as {store.root}/{SPEC} "
                        f"says, and a search goes on only with the objective it began with; give the spec another "
                        f"name: to search on {spec.search.metric} ({spec.search.mode}) as a new study")


def save_spec(spec: StudySpec, trials: list[Trial] | None = None) -> None:
    """Keep the spec in the study folder with the listing of its trials (``trials``, default: the
    spec's own), each written atomically (a temporary file, then a rename); the listing first, and
    tied to the spec's text, so a reader never pairs one spec with another's listing."""
    store = ParquetStore(spec.study_dir)
    data = spec.model_dump(mode="json", exclude_none=True)
    if not data.get("plugins"):  # a study without plugins keeps the saved spec it always had
        data.pop("plugins", None)
    text = yaml.safe_dump(data, sort_keys=False)
    if spec.search is None:
        entries = [[t.id, t.label] for t in (spec.trials() if trials is None else trials)]
        data = {"spec_sha256": _sha256(text), "total": len(entries), "trials": entries}
    else:
        data = {"spec_sha256": _sha256(text), "total": spec.search.n_trials, "search": True}
    store.folder.write_text(LISTING, json.dumps(data))
    store.folder.write_text(SPEC, text)


def _sha256(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


@dataclass
class Listing:
    """The trials of a study's saved spec, as ``status`` shows them."""
    total: int  # the spec's trials (a search: its n_trials)
    trials: list[tuple[str, str]]  # (trial id, label) of a grid's trials, in the spec's order
    search: bool = False


def listing(store: ParquetStore) -> Listing | None:
    """The saved spec's trials, None for a study that has no saved spec. Read from the listing the
    driver wrote beside the spec when it is there and matches it (no torch, no spec expansion);
    otherwise computed from the spec (a study saved by an older dst-study)."""
    text = store.folder.read_text(SPEC)
    if text is None:
        return None
    try:
        data = json.loads(store.folder.read_text(LISTING) or "null")
    except ValueError:
        data = None
    if isinstance(data, dict) and data.get("spec_sha256") == _sha256(text):
        return Listing(data["total"], [tuple(t) for t in data.get("trials", [])], bool(data.get("search")))
    spec = load_study_spec(store.root)
    if spec.search is not None:
        return Listing(spec.search.n_trials, [], True)
    trials = spec.trials()
    return Listing(len(trials), [(t.id, t.label) for t in trials])


def load_study_spec(study_dir: str, plugins: list[str] | None = None) -> StudySpec:
    """The spec saved in a study folder, with its results in that folder: the folder is the study,
    wherever it was moved or copied (the saved ``storage`` only says where it was created).
    ``plugins`` as for :func:`study.spec.parse` (None: import none)."""
    folder = ParquetStore(study_dir).folder
    text = folder.read_text(SPEC)
    if text is None:
        raise SpecError(f"{study_dir}: no {SPEC}; this study was not started by 'dst-study run' "
                        "(run the spec itself to continue it)")
    return from_yaml(text, folder.join(SPEC), storage=False, plugins=plugins).at(study_dir)


@dataclass
class StudyRun:
    """What :func:`run_study` leaves: the study's trials as stored, and what is still to do."""
    plan: Plan
    trials: "pd.DataFrame"  # every row of the store (the plan's study), after the run
    missing: int  # trials still to run (the study was stopped); failed ones count as finished
    failed: int
    problems: list[str]  # unreadable files skipped


def run_study(p: Plan, **run_options) -> StudyRun:
    """:func:`run` a plan, then read back where the study stands (``run_options`` as for :func:`run`)."""
    from .queries import query

    run(p, **run_options)
    trials = query(p.store, "trials")
    left = plan(p.spec)
    missing = len(left.missing) if p.spec.search is None else max(p.spec.search.n_trials - len(left.finished), 0)
    return StudyRun(p, trials, missing, int((trials["status"] == "failed").sum()), list(p.store.problems))


def _restore(handler) -> None:
    if handler is not None:
        signal.signal(signal.SIGTERM, handler)


def run(p: Plan, *, address: str | None = None, max_concurrent: int | None = None, num_cpus: float | None = None,
        num_gpus: float | None = None, verbose: bool = False, log: Callable[[str], None] = print,
        console: Console | None = None) -> None:
    """Run the missing trials of a plan in waves; every outcome lands in the store, which is
    compacted afterwards once it holds more than ``COMPACT_ABOVE`` parts.

    Progress goes to ``log`` as lines, or to a live bar when ``console`` is a terminal. One driver
    runs a study at a time (:class:`~study.lease.StudyLease`); another stops with StudyBusy.
    """
    p.store.check_writable()  # before Ray starts or any trial trains
    clear_stop_reason()
    # a lost lease or a full disk stops the study as SIGTERM does (trials keep their checkpoints);
    # the reason is raised once everything has stopped
    lease = StudyLease(p.store, log=log, on_lost=request_stop)
    try:
        lease.claim()
        forget = when_stuck(lease.release)  # a driver stuck after a SIGTERM still frees its study
        try:
            _run(p, lease, address=address, max_concurrent=max_concurrent, num_cpus=num_cpus, num_gpus=num_gpus,
                 verbose=verbose, log=log, console=console)
        finally:
            disarm()  # everything has stopped: no deadline (a SIGTERM's) is left to pass
            lease.release()
            forget()
    except KeyboardInterrupt:
        if stop_reason() is not None:
            raise stop_reason() from None
        raise
    except OSError as e:  # the study's own files (spec, lease, compaction) on a full disk
        if out_of_space(e):
            raise OutOfSpace(p.store.root, p.store.path) from None
        raise
    if stop_reason() is not None:
        raise stop_reason()


def _run(p: Plan, lease: StudyLease, *, address: str | None, max_concurrent: int | None, num_cpus: float | None,
         num_gpus: float | None, verbose: bool, log: Callable[[str], None], console: Console | None) -> None:
    save_spec(p.spec, p.trials)  # at once: a study stopped from here on is resumed from its folder
    to_search = p.spec.search.n_trials - len(p.finished) if p.spec.search is not None else 0
    if not p.missing and to_search <= 0:
        lease.confirm()
        return
    from .runners import ray_tune  # Ray loads only when something runs
    progress = Progress(len(p.missing) + max(to_search, 0), log, console, title=p.spec.name)
    before = signal.getsignal(signal.SIGTERM) if threading.current_thread() is threading.main_thread() else None
    started = False
    try:
        stop_if_requested()  # a SIGTERM while the modules loaded
        # Ray starts while the lease settles (a rival that raced us has written by the time it is up)
        started = ray_tune.start_ray(address, num_cpus, num_gpus, verbose, p.spec.plugins)
        sigterm_as_ctrl_c()  # from here a SIGTERM stops at once (it replaces Ray's own handler)
        stop_if_requested()
        lease.confirm()
    except BaseException:
        progress.close()
        if started:
            ray_tune.stop_ray()
        _restore(before)
        raise
    save_spec(p.spec, p.trials)  # again: had a rival raced us to the lease, ours is the spec that stays
    log(ray_tune.describe_cluster())
    unfit = ray_tune.unfit_resources(p.spec.resources.cpu, p.spec.resources.gpu)
    if unfit and address is None:  # a private local Ray never grows: Tune would wait forever
        progress.close()
        if started:
            ray_tune.stop_ray()
        _restore(before)
        raise SpecError(f"{unfit}; lower resources.cpu / resources.gpu, or run on a cluster that has such a node")
    if unfit:
        log(f"{unfit}; waiting for the cluster's autoscaler to add such a node")
    try:
        for folder, n in p.store.keep_superseded(p.rerun).items():  # before their new rows win
            log(f"kept the rows of {n} trial{'s' * (n != 1)} of older code in {folder}")
        tune_dir = p.store.folder.tune_dir
        if to_search > 0:
            ray_tune.run_search(
                p.spec.search, p.spec.base, p.store, n_trials=to_search, tune_dir=tune_dir,
                wave=f"search-{time.time_ns()}", optuna_db=p.store.folder.optuna_db, study_name=p.spec.name, done=len(p.finished),
                cpu=p.spec.resources.cpu, gpu=p.spec.resources.gpu, retries=p.spec.retries,
                checkpoint_seconds=p.spec.checkpoint_seconds, max_concurrent=max_concurrent or p.spec.max_concurrent,
                progress=progress, axes=p.spec.axes, verbose=verbose, plugins=p.spec.plugins)
        for start in range(0, len(p.missing), WAVE_SIZE):
            wave = p.missing[start:start + WAVE_SIZE]
            ray_tune.run_wave(
                wave, p.store, tune_dir=tune_dir, wave=f"wave-{time.time_ns()}",
                resume_from=p.resume_from, cpu=p.spec.resources.cpu, gpu=p.spec.resources.gpu,
                retries=p.spec.retries, checkpoint_seconds=p.spec.checkpoint_seconds,
                max_concurrent=max_concurrent or p.spec.max_concurrent, progress=progress, axes=p.spec.axes,
                plugins=p.spec.plugins)
            stored = set(p.store.read("trials", ["trial_id"])["trial_id"])
            if any(t.id not in stored for t in wave):
                break  # Tune stopped the wave (Ctrl-C, SIGTERM): so does the study
    finally:
        progress.close()
        if started:
            ray_tune.stop_ray()
        _restore(before)
    if stop_reason() is None and len(p.store.files("trials")) > COMPACT_ABOVE:
        p.store.compact()
