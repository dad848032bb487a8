"""The ``dst-study`` command: each command parses (:mod:`study.options`), calls one function that
returns a value, and renders it (:mod:`study.render`).

    dst-study train [--dataset mnist1d] [--density 0.1] [--criterion snip] ... [--checkpoint-dir D]
                    [--results DIR] [--json]
    dst-study validate SPEC
    dst-study run SPEC [--dry-run] [--address auto|HOST:PORT] [--max-concurrent N] [--retry-failed]
    dst-study resume STUDY
    dst-study query STUDY [--table trials|history|jaccard] [--where EXPR] [--columns ...] [--format ...]
    dst-study compare STUDY [STUDY ...] [--metric M] [--rows criterion] [--cols density] [--where EXPR] [--alpha 0.05]
                      [--test auto|paired|welch] [--correction holm|none] [--reference ROW] [--pool AXIS]
    dst-study plot STUDY [STUDY ...] --kind density|update-period|curves|jaccard|search --out FILE.png [--where EXPR]
    dst-study report STUDY [STUDY ...] --out DIR
    dst-study export STUDY --to tensorboard DIR | mlflow TRACKING_URI | wandb DIR [--follow]
    dst-study status STUDY
    dst-study compact STUDY
    dst-study list                      # registered criteria, growth rules, schedules, models, data sets

STUDY is a study directory, a filesystem URI (``s3://bucket/study``) or the name of a study under
``$DST_STUDY_RESULTS`` (default ``./results``). The commands that read results import neither torch
nor Ray; Ctrl-C stops ``train`` between two batches (with ``--checkpoint-dir`` the same command
resumes it) and ``run`` as SIGTERM does (``dst-study resume`` continues).
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import sys
import time
import warnings
from pathlib import Path
from typing import Sequence

import dst_core
from dst_core import TrainConfig
from dst_core.errors import ConfigError, DstError

from .folder import SPEC, check_writable_dir
from .options import parser
from .queries import open_study, query
from .render import json_safe, print_comparison, print_frame
from .store import ParquetStore, StoreError, UnreadableFileWarning, WriteFailed

__all__ = ["main"]

_EXIT_FAILED, _EXIT_ERROR, _EXIT_INTERRUPTED = 1, 2, 130


def _train(args: argparse.Namespace) -> int:
    from .render import format_epoch, print_train_end, print_train_start
    from .trial import run_one

    from .plugins import load_plugins

    load_plugins(args.plugin)  # before the config is checked: it may name a plugin's components
    values = {k: v for k, v in vars(args).items()
              if k not in ("command", "checkpoint_dir", "json", "results", "plugin", "show_sparsity")}
    if "criterion_params" in values:
        values["criterion_params"] = dict(values["criterion_params"])
    config = TrainConfig.from_dict(values)
    log = sys.stderr if args.json else sys.stdout  # --json: stdout holds the JSON alone
    stop = {"requested": False}

    def on_sigint(signum, frame):  # first Ctrl-C: stop cleanly between batches; second: abort
        stop["requested"] = True
        signal.signal(signal.SIGINT, signal.default_int_handler)

    previous = signal.signal(signal.SIGINT, on_sigint)
    try:
        done = run_one(config, args.checkpoint_dir, args.results, should_stop=lambda: stop["requested"],
                       on_start=lambda run: print_train_start(run, args.checkpoint_dir, log, args.show_sparsity),
                       on_epoch=lambda m: print(format_epoch(m, config.epochs), file=log, flush=True))
    except dst_core.Interrupted as e:
        saved = f"checkpoint saved in {args.checkpoint_dir}; run the same command to resume" \
            if args.checkpoint_dir else "nothing saved (no --checkpoint-dir)"
        print(f"interrupted: {e}; {saved}", file=sys.stderr)
        return _EXIT_INTERRUPTED
    finally:
        signal.signal(signal.SIGINT, previous)
    print_train_end(done, log)
    if args.json:
        print(json.dumps(json_safe(done.summary)))
    return _EXIT_FAILED if done.store_error else 0


# The commands that read results start in well under a second: they import neither torch nor Ray, and
# the modules only running a study needs (the spec's validation, the runner) load in those commands.


def _validate(args: argparse.Namespace) -> int:
    from .spec import load
    from .trial import count_by_kind

    spec = load(args.spec, plugins=args.plugin)
    if spec.search is None:
        trials = spec.trials()
        what = f"{len(trials)} trials ({count_by_kind(trials)})"
    else:
        trials, what = [], f"an Optuna search of {spec.search.n_trials} trials"
    _warn_before_running(spec, trials)
    print(f"{args.spec}: valid: study {spec.name!r} with {what}, results in {spec.study_dir}")
    if args.show_sparsity:
        from .spec import sparsity_layouts

        for layout in sparsity_layouts(spec):
            print(layout)
    return 0


def _warn_before_running(spec, trials) -> None:
    """What would waste the trials' time, said by the driver: a trial's own warnings are raised in a
    Ray worker whose output nobody reads."""
    from .spec import oversubscribed
    from .trial import never_updating

    for line in never_updating(trials) + oversubscribed(spec):
        print(f"dst-study: warning: {line}", file=sys.stderr)


def _run(args: argparse.Namespace) -> int:
    """``run`` and ``resume``. SIGTERM (scancel, a time limit) stops them as Ctrl-C does, from the
    first moment: exit code 130 and how to continue, whatever was under way."""
    from .lease import LeaseLost
    from .signals import defer_sigterm, disarm, when_stuck

    before = defer_sigterm()
    forget = when_stuck(lambda: print(f"dst-study: stopped before the study ended; `{_continue(args)}` continues it",
                                      file=sys.stderr, flush=True))
    try:
        return _run_study(args)
    except LeaseLost as e:  # the other driver goes on with the study: nothing to continue here
        print(f"dst-study: stopped: {e}; this driver's running trials kept their checkpoints", file=sys.stderr)
        return _EXIT_INTERRUPTED
    except (KeyboardInterrupt, WriteFailed) as e:
        how = _continue(args)
        if isinstance(e, WriteFailed):  # a full disk: what is done is kept, the rest waits for space
            print(f"dst-study: error: {e}; the study stopped, what is done is kept: free space, then `{how}` "
                  "continues it", file=sys.stderr)
            return _EXIT_FAILED
        print(f"dst-study: stopped before the study ended; `{how}` continues it", file=sys.stderr)
        return _EXIT_INTERRUPTED
    finally:
        disarm()
        forget()
        if before is not None:
            signal.signal(signal.SIGTERM, before)


def _continue(args: argparse.Namespace) -> str:
    """The command that continues a stopped ``run`` or ``resume``."""
    folder = _study_dir_of(args)
    if folder is not None and ParquetStore(folder).folder.has(SPEC):
        return f"dst-study resume {folder}"
    return f"dst-study run {args.spec}" if args.command == "run" else f"dst-study resume {args.study}"


def _study_dir_of(args: argparse.Namespace) -> str | None:
    """The folder of the study ``run``/``resume`` names, or None where even that cannot be read."""
    try:
        if args.command == "resume":
            return open_study(args.study).root
        from .spec import load
        return load(args.spec).study_dir
    except (DstError, StoreError, OSError):
        return None


def _run_study(args: argparse.Namespace) -> int:
    from rich.console import Console

    from .render import print_closing, print_plan
    from .runner import load_study_spec, plan, run_study
    from .signals import stop_if_requested
    from .spec import load

    # resume: the folder is the study, wherever it was moved; its saved storage only says where it began
    spec = load(args.spec, plugins=args.plugin) if args.command == "run" else \
        load_study_spec(open_study(args.study).root, plugins=args.plugin)
    p = plan(spec, retry_failed=args.retry_failed, rerun_outdated=args.rerun_outdated)
    print_plan(p, dst_core.ALGORITHM_REVISION)
    _warn_before_running(spec, p.missing)
    stop_if_requested()  # a SIGTERM while the spec was read and checked
    if args.dry_run:
        for t in p.missing:
            print(f"  run  {t.id}  {t.label}" + (" (resumes from checkpoint)" if t.id in p.resume_from else ""))
        return 0
    done = run_study(p, address=args.address, max_concurrent=args.max_concurrent, num_cpus=args.num_cpus,
                     num_gpus=args.num_gpus, verbose=args.verbose, log=lambda line: print(line, flush=True),
                     console=Console())
    print_closing(spec, done.trials)
    if done.missing:  # stopped before the end
        print(f"dst-study: stopped with {done.missing} trials still to run; `dst-study resume {spec.study_dir}` "
              "continues the study", file=sys.stderr)
        return _EXIT_INTERRUPTED
    if done.failed:  # the closing line, also of a study whose every trial failed (it has no table above)
        again = f"run {args.spec}" if args.command == "run" else f"resume {spec.study_dir}"
        print(f"dst-study: {done.failed} of {len(done.trials)} trials failed; `dst-study status {spec.study_dir}` "
              f"shows their errors, `dst-study {again} --retry-failed` runs them again", file=sys.stderr)
        return _EXIT_FAILED
    _print_next(spec.study_dir)
    return _report_problems(done.problems)


def _print_next(study: str) -> None:
    """Where a finished study's results are and what reads them."""
    print(f"results in {study}; next: `dst-study status {study}`, `dst-study compare {study}`, "
          f"`dst-study report {study} --out report/`")


def _query(args: argparse.Namespace) -> int:
    from .render import print_query

    store = open_study(args.study)
    print_query(query(store, args.table, args.where, None if args.columns == ["all"] else args.columns), args.table,
                args.format, chosen=bool(args.columns))
    return _report_problems(store.problems)


def _compare(args: argparse.Namespace) -> int:
    from .comparison import columns_for, compare, default_metric

    studies = _studies(args)
    trials = studies.query("trials", args.where, columns_for(args.metric, args.rows, args.cols))
    _warn(studies)
    metric = args.metric or default_metric(trials)
    print_comparison(compare(trials, metric, args.rows, args.cols, alpha=args.alpha, test=args.test,
                             correction=args.correction, reference=args.reference, pool=args.pool), args.format)
    return _report_problems(studies.problems)


def _studies(args: argparse.Namespace):
    """The command's studies: STUDY [STUDY ...] read as one."""
    from .queries import Studies

    return Studies([open_study(s) for s in (args.study, *args.also)])


def _warn(studies) -> None:
    for warning in studies.warnings:
        print(f"dst-study: warning: {warning}", file=sys.stderr)


def _writable(path: str, what: str) -> None:
    try:
        check_writable_dir(path, what)
    except ValueError as e:
        raise ConfigError(str(e)) from None


def _plot(args: argparse.Namespace) -> int:
    from .comparison import default_metric, stopped_note
    from .plots import plot

    studies = _studies(args)
    _writable(str(Path(args.out).parent), "--out")
    statuses = studies.query("trials", columns=["status", "test_accuracy_at_best_val"])
    metric = args.metric or default_metric(statuses)
    print(f"wrote {plot(studies, args.kind, args.out, metric, args.where)}")
    for note in stopped_note(statuses):
        print(f"Note: {note}")
    _warn(studies)
    return _report_problems(studies.problems)


def _report(args: argparse.Namespace) -> int:
    from .report import write_report

    studies = _studies(args)
    _writable(args.out, "--out")
    print(f"wrote {write_report(studies, args.out)}")
    _warn(studies)
    return _report_problems(studies.problems)


def _export(args: argparse.Namespace) -> int:
    from .export import export

    tool, target = args.to
    try:
        store = open_study(args.study)
    except StoreError as e:  # started beside `run`, --follow may come first: it waits for the study
        if not args.follow or not str(e).startswith("unknown study"):
            raise
        print(f"dst-study: {e}; waiting for it to appear (--follow; Ctrl-C stops)", file=sys.stderr, flush=True)
        store = _study_when_it_appears(args.study, args.every)
    if tool != "mlflow":
        _writable(target, "--to " + tool)
    done = export(store, tool, target, follow=args.follow, every=args.every, log=lambda line: print(line, flush=True))
    print(f"{done.where}: {done.trials} trials, {done.added} added, {done.updated} updated, {done.unchanged} "
          "unchanged")
    return _report_problems(done.problems)


def _study_when_it_appears(study: str, every: float) -> ParquetStore:
    while True:
        time.sleep(every)
        try:
            return open_study(study)
        except StoreError:
            continue


def _status(args: argparse.Namespace) -> int:
    from .render import print_status
    from .standing import status

    s = status(args.study)
    print_status(s)
    return _report_problems(s.problems)


def _compact(args: argparse.Namespace) -> int:
    store = open_study(args.study)
    merged = store.compact()
    print(f"{store.root}: merged " + ", ".join(f"{n} {t} parts" for t, n in merged.items()))
    for path in store.quarantined:
        print(f"dst-study: warning: {path}: unreadable, moved aside, not merged (nothing was deleted)", file=sys.stderr)
    return 1 if store.quarantined else _report_problems(store.problems)


def _report_problems(problems: Sequence[str]) -> int:
    """Name the unreadable files that were skipped; the exit code says so too."""
    for problem in problems:
        print(f"dst-study: warning: skipped unreadable file {problem}", file=sys.stderr)
    return 1 if problems else 0


def _list(args: argparse.Namespace) -> int:
    from .render import print_registries

    if args.plugin:  # only those named here: a study folder's spec is never read
        from .plugins import load_plugins
        load_plugins(args.plugin)
    print_registries({"criteria": dst_core.CRITERIA, "growth": dst_core.GROWTH, "schedules": dst_core.SCHEDULES,
                      "init": dst_core.DENSITY, "models": dst_core.MODELS, "datasets": dst_core.DATASETS})
    return 0


_COMMANDS = {"train": _train, "validate": _validate, "run": _run, "resume": _run, "query": _query,
             "compare": _compare, "plot": _plot, "report": _report, "export": _export, "status": _status,
             "compact": _compact, "list": _list}


def main(argv: Sequence[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    args = parser(next((a for a in argv if not a.startswith("-")), None)).parse_args(argv)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", UnreadableFileWarning)  # _report_problems says it once
            return _COMMANDS[args.command](args)
    except KeyboardInterrupt:  # Ctrl-C outside the places that handle it (start-up, reading, writing)
        print("dst-study: interrupted", file=sys.stderr)
        return _EXIT_INTERRUPTED
    except dst_core.Diverged as e:  # not bad input: the run itself failed
        print(f"dst-study: error: {e}", file=sys.stderr)
        return _EXIT_FAILED
    except (DstError, StoreError) as e:
        print(f"dst-study: error: {e}", file=sys.stderr)
        return _EXIT_ERROR


def entry() -> None:
    """The ``dst-study`` process: :func:`main`, then an exit that skips the interpreter's teardown.

    Tearing down torch, Ray Tune and pandas module by module takes a second after a study (half a
    second after ``compare``), and everything was written, flushed and shut down by then. An
    unexpected exception still exits the normal way, with its traceback.
    """
    code = main()
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)


if __name__ == "__main__":
    entry()
