"""The ``dst-study`` command.

    dst-study train [--dataset mnist1d] [--density 0.1] [--criterion snip] ... [--checkpoint-dir D]
                    [--results DIR] [--json]
    dst-study validate SPEC
    dst-study run SPEC [--dry-run] [--address auto|HOST:PORT] [--max-concurrent N] [--retry-failed]
    dst-study resume STUDY
    dst-study query STUDY [--table trials|history|jaccard] [--where EXPR] [--columns ...] [--format ...]
    dst-study compare STUDY [--metric M] [--rows criterion] [--cols density] [--where EXPR] [--alpha 0.05]
                      [--test auto|paired|welch] [--correction holm|none] [--reference ROW] [--pool AXIS]
    dst-study plot STUDY --kind density|update-period|curves|jaccard|search --out FILE.png [--where EXPR]
    dst-study report STUDY --out DIR
    dst-study status STUDY
    dst-study compact STUDY
    dst-study list                      # registered criteria, growth rules, schedules, models, data sets

STUDY is a study directory, a filesystem URI (``s3://bucket/study``) or the name of a study under
``$DST_STUDY_RESULTS`` (default ``./results``).

``train`` options are generated from :class:`dst_core.TrainConfig`'s fields, so the CLI, the
config and its checks never disagree. Ctrl-C stops ``train`` between two batches; with
``--checkpoint-dir`` the position is saved and the same command resumes it.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import math
import os
import signal
import sys
import tempfile
import warnings
from pathlib import Path
from typing import Any, Sequence

from rich.console import Console

import dst_core
from dst_core import TrainConfig
from dst_core import checkpoint as ckpt
from dst_core.errors import DstError
from dst_core.summary import EpochMetrics, summarise

from .plots import KINDS, plot
from .comparison import CORRECTIONS, TESTS, columns_for, compare, default_axes, default_metric, ranking
from .queries import open_study, query, table_columns
from .render import FORMATS, print_comparison, print_frame
from .store import STATUSES, TABLES, ParquetStore, StoreError, UnreadableFileWarning, WriteFailed
from .trial import Trial, TrialRun, count_by_kind, never_updating, read_position, result_rows, utc_now

__all__ = ["main"]

_EXIT_FAILED, _EXIT_ERROR, _EXIT_INTERRUPTED = 1, 2, 130


def _key_value(text: str) -> tuple[str, Any]:
    key, sep, value = text.partition("=")
    if not sep or not key:
        raise argparse.ArgumentTypeError(f"expected KEY=VALUE, got {text!r}")
    try:
        return key, json.loads(value)
    except json.JSONDecodeError:
        return key, value


def _add_config_options(parser: argparse.ArgumentParser) -> None:
    # the registry behind each name-valued field, for the choices listed in --help (they load torch)
    registries = {"dataset": dst_core.DATASETS, "model": dst_core.MODELS, "init": dst_core.DENSITY,
                  "criterion": dst_core.CRITERIA, "growth": dst_core.GROWTH, "schedule": dst_core.SCHEDULES}
    for f in dataclasses.fields(TrainConfig):
        flag = "--" + f.name.replace("_", "-")
        help_ = f.metadata.get("help", "")
        if f.name in registries:
            help_ += f" ({', '.join(registries[f.name].names())})"
        default = f.default if f.default is not dataclasses.MISSING else None
        if default not in (None, "", dataclasses.MISSING) and f.name != "criterion_params":
            help_ += f" [default: {default}]"
        kw: dict[str, Any] = {"dest": f.name, "default": argparse.SUPPRESS, "help": help_}
        if f.name == "criterion_params":
            parser.add_argument("--criterion-param", action="append", type=_key_value, metavar="KEY=VALUE",
                                dest="criterion_params", default=argparse.SUPPRESS, help=help_)
        elif isinstance(default, bool):
            parser.add_argument(flag, action=argparse.BooleanOptionalAction, **kw)
        elif isinstance(default, tuple):
            parser.add_argument(flag, type=float, nargs="*", **kw)
        elif isinstance(default, (int, float)):
            parser.add_argument(flag, type=type(default), **kw)
        else:
            parser.add_argument(flag, **kw)


def _parser(command: str | None = None) -> argparse.ArgumentParser:
    """The parser; ``train``'s options, generated from the config and its registries (which load
    torch), are added only when ``command`` is ``train``: the other commands start fast."""
    parser = argparse.ArgumentParser(
        prog="dst-study", description="Studies of Dynamic Sparse Training.",
        epilog="exit codes: 0 ok; 1 failed trials, unreadable files, a result that could not be stored, a "
               "diverged run; 2 bad input (one line: 'dst-study: error: ...'); 130 stopped (Ctrl-C, SIGTERM)")
    parser.add_argument("--version", action="version", version=f"dst-study {dst_core.__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    train = sub.add_parser("train", help="train one run and print a line per epoch")
    if command == "train":
        _add_config_options(train)
    train.add_argument("--checkpoint-dir", help="checkpoint every epoch here; run again to resume")
    train.add_argument("--results", metavar="DIR", help="also write the trial into this study's result store")
    train.add_argument("--json", action="store_true",
                       help="end stdout with one JSON object of the final metrics")

    v = sub.add_parser("validate", help="check a study spec without running anything")
    v.add_argument("spec")
    for name, help_ in (("run", "run the trials of a spec that have no result yet"),
                        ("resume", "finish a study after its driver died (runs its saved spec again)")):
        r = sub.add_parser(name, help=help_)
        r.add_argument("spec" if name == "run" else "study")
        r.add_argument("--address", help="join this Ray cluster ('auto', HOST:PORT or ray://...); "
                                         "default: start a private local Ray")
        r.add_argument("--max-concurrent", type=int, help="at most N trials at once")
        r.add_argument("--num-cpus", type=float, help="CPUs of the local Ray (default: all)")
        r.add_argument("--num-gpus", type=float, help="GPUs of the local Ray (default: those visible)")
        r.add_argument("--retry-failed", action="store_true", help="run failed trials again too")
        r.add_argument("--rerun-outdated", action="store_true",
                       help="run trials of an older algorithm revision again too")
        r.add_argument("--dry-run", action="store_true", help="list what would run and what is done")
        r.add_argument("--verbose", action="store_true", help="show Ray's own log output")

    q = sub.add_parser("query", help="rows of a study's table, filtered")
    q.add_argument("study")
    q.add_argument("--table", choices=sorted(TABLES), default="trials")
    q.add_argument("--where", help="filter, e.g. \"criterion == 'snip' and density < 0.2\" (columns, literals, "
                                   "comparisons, in / not in lists, and / or / not, parentheses)")
    q.add_argument("--columns", nargs="+", help="columns to show, or 'all' (default: all in csv and json, a "
                                                "readable few in a table)")
    q.add_argument("--format", choices=FORMATS, default="table")

    c = sub.add_parser("compare", help="pivot a metric: rows x columns, mean ± std over seeds, best and ties "
                                       "marked; any other axis that varies splits it into one table per value")
    c.add_argument("study")
    c.add_argument("--metric", help="a trials column (default: test_accuracy_at_best_val, the paper's number, "
                                    "when every trial has it, else final_test_accuracy)")
    c.add_argument("--rows", default="criterion")
    c.add_argument("--cols", default="density")
    c.add_argument("--where", help="filter selecting the trials to compare (as for query)")
    c.add_argument("--alpha", type=float, default=0.05,
                   help="significance level of the tests against the best row or the reference (default 0.05)")
    c.add_argument("--test", choices=TESTS, default="auto",
                   help="auto (default): a paired t-test on the seed-wise differences where two cells ran the same "
                        "seeds, Welch's t-test otherwise; paired or welch force one")
    c.add_argument("--correction", choices=CORRECTIONS, default="holm",
                   help="holm (default): Holm's correction over each column's comparisons; none")
    c.add_argument("--reference", metavar="ROW",
                   help="compare every row with this row (e.g. magnitude, static) instead of with the best; "
                        "the table shows the differences with their 95 %% CI")
    c.add_argument("--pool", metavar="AXIS",
                   help="pool the cells along AXIS (e.g. density) into one answer per row: the mean of the "
                        "cells' seed-paired differences, with its CI and p (narrow the cells with --where)")
    c.add_argument("--format", choices=FORMATS, default="table")

    pl = sub.add_parser("plot", help="draw a figure of the study as PNG")
    pl.add_argument("study")
    pl.add_argument("--kind", required=True, choices=sorted(KINDS))
    pl.add_argument("--out", required=True, help="PNG file to write")
    pl.add_argument("--metric", help="a trials column (default as for compare)")
    pl.add_argument("--where", help="filter selecting the trials to plot (as for query)")

    rp = sub.add_parser("report", help="write a self-contained HTML report of a study (tables and figures)")
    rp.add_argument("study")
    rp.add_argument("--out", required=True, help="folder for index.html and the figures")

    st = sub.add_parser("status", help="counts of trials per status and the last errors")
    st.add_argument("study")
    cp = sub.add_parser("compact", help="merge a study's part files (the tables read the same)")
    cp.add_argument("study")
    sub.add_parser("list", help="list registered criteria, growth rules, schedules, models and data sets")
    return parser


def _format_epoch(m: dict[str, Any], epochs: int) -> str:
    """The epoch line: the metrics :class:`EpochMetrics` marks as shown, in its order (None left out)."""
    shown = [f.metadata["shown"].format(m[f.name]) for f in dataclasses.fields(EpochMetrics)
             if f.metadata["shown"] and m.get(f.name) is not None]
    return f"epoch {m['epoch']:>{len(str(epochs))}}/{epochs}  " + "  ".join(shown)


def _final(history: list[dict[str, Any]], config: TrainConfig) -> dict[str, Any]:
    """What ``train --json`` prints: the run's summary, named as the trials table's columns, and its config."""
    return {**summarise(history), "config": config.to_dict()}


def _writable_dir(path: str, what: str) -> None:
    """Raise DstError unless ``path`` is, or can be made, a folder this process can write."""
    folder = Path(path)
    try:
        if folder.exists() and not folder.is_dir():
            raise DstError(f"{what} {path!r}: is a file; expected a folder")
        folder.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryFile(dir=folder):
            pass
    except OSError as e:
        raise DstError(f"{what} {path!r}: cannot write there ({e.strerror or e})") from None


def _train(args: argparse.Namespace) -> int:
    values = {k: v for k, v in vars(args).items() if k not in ("command", "checkpoint_dir", "json", "results")}
    if "criterion_params" in values:
        values["criterion_params"] = dict(values["criterion_params"])
    config = TrainConfig.from_dict(values)
    if args.checkpoint_dir:  # every output is checked before training, not after it
        _writable_dir(args.checkpoint_dir, "--checkpoint-dir")
    if args.results:
        ParquetStore(args.results).check_writable()
    started = utc_now()
    trial = Trial.of(config)
    run = TrialRun(trial, args.checkpoint_dir)
    trainer = run.trainer
    log = sys.stderr if args.json else sys.stdout
    print(f"training {config.model} on {config.dataset} ({trainer.device}): density {config.density}, "
          f"{config.init}, {config.criterion}/{config.growth}, {config.schedule} drop {config.drop_fraction}, "
          f"update every {config.update_period} steps, {config.epochs} epochs, seed {config.seed}", file=log)
    if trainer.resumed_from is not None:
        where = f"epoch {trainer.epoch}" + (f", batch {trainer.batch}" if trainer.batch else "")
        print(f"resumed from {args.checkpoint_dir} at {where}", file=log)
    stop = {"requested": False}

    def on_sigint(signum, frame):  # first Ctrl-C: stop cleanly between batches; second: abort
        stop["requested"] = True
        signal.signal(signal.SIGINT, signal.default_int_handler)

    previous = signal.signal(signal.SIGINT, on_sigint)
    report: dict[str, Any] = {}
    try:
        for report, _ in run.reports(should_stop=lambda: stop["requested"]):
            print(_format_epoch(report, config.epochs), file=log, flush=True)
    except dst_core.Interrupted as e:
        saved = f"checkpoint saved in {args.checkpoint_dir}; run the same command to resume" \
            if args.checkpoint_dir else "nothing saved (no --checkpoint-dir)"
        print(f"interrupted: {e}; {saved}", file=sys.stderr)
        return _EXIT_INTERRUPTED
    finally:
        signal.signal(signal.SIGINT, previous)
    code = 0
    if args.results:
        rows = result_rows(trial, report, status="completed", started_at=started, ended_at=utc_now())
        try:
            ParquetStore(args.results).append(*rows)
            print(f"trial {rows[0][0]['trial_id']} written to {args.results}", file=log)
        except (OSError, StoreError) as e:  # the result is still printed below
            print(f"dst-study: error: the result could not be written to {args.results}: {e}", file=sys.stderr)
            code = _EXIT_FAILED
    final = _final(trainer.history, config)
    selected = final["test_accuracy_at_best_val"]
    at_best_val = "" if selected is None else \
        f" ({selected:.2%} at epoch {final['best_val_epoch']}, the best validation accuracy)"
    print(f"final: test accuracy {final['final_test_accuracy']:.2%}{at_best_val}, "
          f"density {final['final_density']:.4f}, ITOP {final['final_itop_rate']:.3f}", file=log)
    if args.json:
        print(json.dumps(_json_safe(final)))
    return code


def _json_safe(value: Any) -> Any:
    """JSON has no NaN or Infinity: they become null."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: _json_safe(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_json_safe(v) for v in value]
    return value


# The commands that read results start in well under a second: they import neither torch nor Ray, and
# the modules only running a study needs (the spec's validation, the runner) load in those commands.


def _validate(args: argparse.Namespace) -> int:
    from .spec import load as load_spec
    spec = load_spec(args.spec)
    if spec.search is None:
        trials = spec.trials()
        what = f"{len(trials)} trials ({count_by_kind(trials)})"
        _warn_never_updating(trials)
    else:
        what = f"an Optuna search of {spec.search.n_trials} trials"
    print(f"{args.spec}: valid: study {spec.name!r} with {what}, results in {spec.study_dir}")
    return 0


def _warn_never_updating(trials) -> None:
    for line in never_updating(trials):
        print(f"dst-study: warning: {line}", file=sys.stderr)


def _run(args: argparse.Namespace) -> int:
    """``run`` and ``resume``. SIGTERM (scancel, a time limit) stops them as Ctrl-C does, from the
    first moment: exit code 130 and how to continue, whatever was under way."""
    from .runner import SPEC_FILE
    from .signals import defer_sigterm

    from .lease import LeaseLost
    before = defer_sigterm()
    try:
        return _run_study(args)
    except LeaseLost as e:  # the other driver goes on with the study: nothing to continue here
        print(f"dst-study: stopped: {e}; this driver's running trials kept their checkpoints", file=sys.stderr)
        return _EXIT_INTERRUPTED
    except (KeyboardInterrupt, WriteFailed) as e:
        folder = _study_dir_of(args)
        store = None if folder is None else ParquetStore(folder)
        try:
            saved = store is not None and store.fs.get_file_info(f"{store.path}/{SPEC_FILE}").is_file
        except OSError:
            saved = False
        target = f"run {args.spec}" if args.command == "run" else f"resume {args.study}"
        how = f"dst-study resume {folder}" if saved else f"dst-study {target}"
        if isinstance(e, WriteFailed):  # a full disk: what is done is kept, the rest waits for space
            print(f"dst-study: error: {e}; the study stopped, what is done is kept: free space, then `{how}` "
                  "continues it", file=sys.stderr)
            return _EXIT_FAILED
        print(f"dst-study: stopped before the study ended; `{how}` continues it", file=sys.stderr)
        return _EXIT_INTERRUPTED
    finally:
        if before is not None:
            signal.signal(signal.SIGTERM, before)


def _study_dir_of(args: argparse.Namespace) -> str | None:
    """The folder of the study ``run``/``resume`` names, or None where even that cannot be read."""
    try:
        if args.command == "resume":
            return open_study(args.study).root
        from .spec import load as load_spec
        return load_spec(args.spec).study_dir
    except (DstError, StoreError, OSError):
        return None


def _run_study(args: argparse.Namespace) -> int:
    from .runner import load_study_spec, plan
    from .signals import stop_if_requested
    from .runner import run as run_study
    from .spec import load as load_spec
    if args.command == "run":
        spec = load_spec(args.spec)
    else:  # the folder is the study, wherever it was moved: its saved storage only says where it began
        store = open_study(args.study)
        spec = load_study_spec(store.root)
    p = plan(spec, retry_failed=args.retry_failed, rerun_outdated=args.rerun_outdated)
    if spec.search is not None:
        print(f"study {spec.name!r}: Optuna search of {spec.search.n_trials} trials, {len(p.finished)} done, "
              f"{max(spec.search.n_trials - len(p.finished), 0)} to run -> {spec.study_dir}")
    else:
        print(f"study {spec.name!r}: {len(p.trials)} trials ({count_by_kind(p.trials)}), {len(p.finished)} done, "
              f"{len(p.missing)} to run ({len(p.resume_from)} from checkpoints) -> {spec.study_dir}")
        if p.outdated:
            print(f"  {len(p.outdated)} of the done trials ran an older algorithm revision than this dst-study's "
                  f"({dst_core.ALGORITHM_REVISION}): they count as done; --rerun-outdated runs them again")
        _warn_never_updating(p.missing)
    stop_if_requested()  # a SIGTERM while the spec was read and checked
    if args.dry_run:
        for c in p.missing:
            where = " (resumes from checkpoint)" if c.id in p.resume_from else ""
            print(f"  run  {c.id}  {c.label}{where}")
        return 0
    run_study(p, address=args.address, max_concurrent=args.max_concurrent, num_cpus=args.num_cpus,
              num_gpus=args.num_gpus, verbose=args.verbose, log=lambda line: print(line, flush=True),
              console=Console())
    store = open_study(spec.study_dir)
    trials = query(store, "trials")
    _closing_table(spec, trials)
    left = plan(spec)  # failed trials count as finished here
    missing = len(left.missing) if spec.search is None else max(spec.search.n_trials - len(left.finished), 0)
    if missing:  # stopped before the end
        print(f"dst-study: stopped with {missing} trials still to run; `dst-study resume {spec.study_dir}` "
              "continues the study", file=sys.stderr)
        return _EXIT_INTERRUPTED
    failed = int((trials["status"] == "failed").sum())
    if failed:  # the closing line, also of a study whose every trial failed (it has no table above)
        again = f"run {args.spec}" if args.command == "run" else f"resume {spec.study_dir}"
        print(f"dst-study: {failed} of {len(trials)} trials failed; `dst-study status {spec.study_dir}` shows their "
              f"errors, `dst-study {again} --retry-failed` runs them again", file=sys.stderr)
        return _EXIT_FAILED
    return _report_problems(store)


def _closing_table(spec, trials) -> None:
    """What `run` ends with: the comparison along the spec's axes, or a search's trials ranked by its
    metric with each config's test accuracy beside it (read once per config, never used to rank)."""
    done = trials[trials["status"] == "completed"]
    if done.empty:
        return
    if spec.search is not None:
        metric = spec.search.metric
        table = ranking(done, metric, list(spec.search.space), spec.search.mode == "max")
        test = "final_test_accuracy" if done["test_accuracy_at_best_val"].isna().all() else "test_accuracy_at_best_val"
        title = (f"{metric}: the search's trials ranked on the test set (select_on_test: their test accuracies are "
                 "optimistic), best first" if "test" in metric else
                 f"{metric}: the search's trials ranked on validation data, best first")
        if test != metric:
            table.insert(list(table.columns).index(metric) + 1, test,
                         table["trial_id"].map(done.set_index("trial_id")[test]))
            title += f"; {test}: each config's test accuracy, for reference only"
        print_frame(table, title=title)
        return
    print_comparison(compare(done, default_metric(done), *default_axes(done)))


def _query(args: argparse.Namespace) -> int:
    store = open_study(args.study)
    frame = query(store, args.table, args.where, None if args.columns == ["all"] else args.columns)
    if args.format == "table" and not args.columns:  # every column would squeeze each to nothing
        shown = table_columns(args.table, frame)
        print_frame(frame[shown], args.format)
        if len(shown) < len(frame.columns):
            sys.stdout.flush()
            print(f"{len(shown)} of {len(frame.columns)} columns shown; --columns all shows every one, --columns NAME "
                  "... chooses (--format csv and json hold them all)", file=sys.stderr)
    else:
        print_frame(frame, args.format)
    return _report_problems(store)


def _compare(args: argparse.Namespace) -> int:
    store = open_study(args.study)
    trials = query(store, "trials", args.where, columns_for(args.metric, args.rows, args.cols))
    metric = args.metric or default_metric(trials)
    print_comparison(compare(trials, metric, args.rows, args.cols, alpha=args.alpha, test=args.test,
                             correction=args.correction, reference=args.reference, pool=args.pool), args.format)
    return _report_problems(store)


def _plot(args: argparse.Namespace) -> int:
    store = open_study(args.study)
    _writable_dir(str(Path(args.out).parent), "--out")
    metric = args.metric or default_metric(query(store, "trials", columns=["status", "test_accuracy_at_best_val"]))
    print(f"wrote {plot(store, args.kind, args.out, metric, args.where)}")
    return _report_problems(store)


def _report(args: argparse.Namespace) -> int:
    from .report import write_report
    store = open_study(args.study)
    _writable_dir(args.out, "--out")
    print(f"wrote {write_report(store, args.out)}")
    return _report_problems(store)


def _checkpoint_at(store: ParquetStore, path: str) -> str:
    """Where a trial's checkpoint would resume it: "checkpoint at epoch 3" (or why it would not). Read
    from the position written beside it; a checkpoint of an older dst-study is loaded (torch)."""
    position = read_position(path, store.fs.open_input_stream)
    if position is None:
        try:
            position = ckpt.load(path)["position"]
        except (DstError, KeyError, OSError) as e:  # named whole: a path cut in two helps nobody
            return f"an unusable checkpoint: {str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__}"
    return f"checkpoint at epoch {position['epoch']}" + (f", batch {position['batch']}" if position.get("batch") else "")


_SHOW_MISSING = 10  # missing trials `status` names; `resume --dry-run` lists all


def _status(args: argparse.Namespace) -> int:
    from .runner import checkpoints, listing
    store = open_study(args.study)
    trials = query(store, columns=["trial_id", "status", "criterion", "density", "seed", "ended_at", "error",
                                   "algorithm_revision"])
    counts = trials["status"].value_counts()
    print(f"{store.root}: {len(trials)} trials: " + ", ".join(f"{counts.get(s, 0)} {s}" for s in STATUSES))
    revisions = trials["algorithm_revision"].fillna(1).astype(int).value_counts().sort_index()
    if len(revisions) > 1 or (len(revisions) and revisions.index[0] != dst_core.ALGORITHM_REVISION):
        print("  per algorithm revision (this dst-study's: "
              f"{dst_core.ALGORITHM_REVISION}): " + ", ".join(f"{r}: {n}" for r, n in revisions.items()))
    spec = listing(store)
    if spec is not None:  # started by `dst-study run`
        finished = set(trials.loc[trials["status"].isin(["completed", "failed"]), "trial_id"])
        missing = [(i, label) for i, label in spec.trials if i not in finished]
        n_missing = max(spec.total - len(finished), 0) if spec.search else len(missing)
        found = checkpoints(store, {i for i, _ in missing})
        print(f"  spec: {spec.total} trials, {n_missing} missing" + (f" ({len(found)} with checkpoints)"
                                                                  if found else "")
              + (f"; `dst-study resume {store.root}` finishes it" if n_missing else ""))
        for i, label in missing[:_SHOW_MISSING]:
            where = f", {_checkpoint_at(store, found[i])}" if i in found else ""
            print(f"  missing {i} ({label}{where})")
        if len(missing) > _SHOW_MISSING:
            print(f"  ... and {len(missing) - _SHOW_MISSING} more (`dst-study resume {store.root} --dry-run` lists all)")
    failed = trials[trials["status"] == "failed"].sort_values("ended_at").tail(5)
    for row in failed.itertuples():
        first_line = str(row.error).strip().splitlines()[-1] if isinstance(row.error, str) else ""
        print(f"  failed {row.trial_id} ({row.criterion}, density {row.density:g}, seed {row.seed}): {first_line}")
    return _report_problems(store)


def _compact(args: argparse.Namespace) -> int:
    store = open_study(args.study)
    merged = store.compact()
    print(f"{store.root}: merged " + ", ".join(f"{n} {t} parts" for t, n in merged.items()))
    for path in store.quarantined:
        print(f"dst-study: warning: {path}: unreadable, moved aside, not merged (nothing was deleted)",
              file=sys.stderr)
    if store.quarantined:
        return 1
    return _report_problems(store)


def _report_problems(store: ParquetStore) -> int:
    """Name the unreadable files that were skipped; the exit code says so too."""
    for problem in store.problems:
        print(f"dst-study: warning: skipped unreadable file {problem}", file=sys.stderr)
    return 1 if store.problems else 0


def _list(args: argparse.Namespace) -> int:
    for title, registry in (("criteria", dst_core.CRITERIA), ("growth", dst_core.GROWTH),
                            ("schedules", dst_core.SCHEDULES), ("init", dst_core.DENSITY),
                            ("models", dst_core.MODELS), ("datasets", dst_core.DATASETS)):
        print(f"{title}:")
        for entry in registry:
            extra = "  (needs gradient)" if entry.meta.get("needs_grad") else ""
            print(f"  {entry.name:<24}{entry.meta.get('description', '')}{extra}")
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    command = next((a for a in argv if not a.startswith("-")), None)
    args = _parser(command).parse_args(argv)
    commands = {"train": _train, "validate": _validate, "run": _run, "resume": _run, "query": _query,
                "compare": _compare, "plot": _plot, "report": _report, "status": _status, "compact": _compact,
                "list": _list}
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", UnreadableFileWarning)  # _report_problems says it once
            return commands[args.command](args)
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
