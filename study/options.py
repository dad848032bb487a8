"""What the ``dst-study`` command accepts: its argument parser, every command's options.

``train``'s options are generated from :class:`dst_core.TrainConfig`'s fields, so the CLI, the
config and its checks never disagree; they are built only for ``train`` (their registries load
torch), so that the other commands start fast.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import typing
from typing import Any

import dst_core
from dst_core import TrainConfig

from .comparison import CORRECTIONS, TESTS
from .export import TOOLS as EXPORT_TOOLS
from .plots import KINDS
from .render import FORMATS
from .store import TABLES

__all__ = ["parser"]


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
        elif isinstance(default, tuple):  # numbers (lr_milestones, betas) or patterns (keep_dense)
            strings = typing.get_args(typing.get_type_hints(TrainConfig)[f.name])[0] is str
            parser.add_argument(flag, type=str if strings else float, nargs="*", **kw)
        elif isinstance(default, (int, float)):
            parser.add_argument(flag, type=type(default), **kw)
        else:
            parser.add_argument(flag, **kw)


def _studies_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("study")
    p.add_argument("also", nargs="*", metavar="STUDY", help="more studies whose trials line up with the first "
                                                            "(e.g. the study of record and yours: a trial both ran "
                                                            "counts once)")


class _Destination(argparse.Action):
    """``--to TOOL TARGET``: the tool checked here, so a typo reads as argparse's other errors do."""

    def __call__(self, parser, namespace, values, option_string=None):
        if values[0] not in EXPORT_TOOLS:
            parser.error(f"argument --to: invalid tool {values[0]!r} (choose from {', '.join(EXPORT_TOOLS)})")
        setattr(namespace, self.dest, tuple(values))


def _plugin_option(p: argparse.ArgumentParser) -> None:
    p.add_argument("--plugin", action="append", default=[], metavar="MODULE",
                   help="import this plugin module first (repeatable); naming a module runs its code")


def parser(command: str | None = None) -> argparse.ArgumentParser:
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
    train.add_argument("--show-sparsity", action="store_true",
                       help="list what the run sparsifies (parameter, shape, density) and what it leaves dense")
    train.add_argument("--results", metavar="DIR", help="also write the trial into this study's result store")
    train.add_argument("--json", action="store_true",
                       help="end stdout with one JSON object of the final metrics")
    _plugin_option(train)

    v = sub.add_parser("validate", help="check a study spec without running anything")
    v.add_argument("spec")
    v.add_argument("--show-sparsity", action="store_true",
                   help="list what the trials sparsify (parameter, shape, density) and what they leave dense")
    _plugin_option(v)
    for name, help_ in (("run", "run the trials of a spec that have no result yet"),
                        ("resume", "finish a study after its driver died (runs its saved spec again)")):
        r = sub.add_parser(name, help=help_)
        r.add_argument("spec" if name == "run" else "study")
        _plugin_option(r)
        r.add_argument("--address", help="join this Ray cluster ('auto', HOST:PORT or ray://...); "
                                         "default: start a private local Ray")
        r.add_argument("--max-concurrent", type=int, help="at most N trials at once")
        r.add_argument("--num-cpus", type=float, help="CPUs of the local Ray (default: all)")
        r.add_argument("--num-gpus", type=float, help="GPUs of the local Ray (default: those visible)")
        r.add_argument("--retry-failed", action="store_true", help="run failed trials again too")
        r.add_argument("--rerun-outdated", action="store_true",
                       help="run trials of an older algorithm revision or older plugin code again too")
        r.add_argument("--dry-run", action="store_true", help="list what would run and what is done")
        r.add_argument("--verbose", action="store_true", help="show Ray's own log output")

    q = sub.add_parser("query", help="rows of a study's table, filtered")
    q.add_argument("study")
    q.add_argument("--table", choices=sorted(TABLES), default="trials")
    q.add_argument("--where", help="filter, e.g. \"criterion == 'snip' and density < 0.2\" (columns, literals, "
                                   "comparisons, in / not in lists, and / or / not, parentheses); history and "
                                   "jaccard rows by their trial's columns too (a column both tables have, such as "
                                   "density, is the table's own)")
    q.add_argument("--columns", nargs="+", help="columns to show, or 'all' (default: all in csv and json, a "
                                                "readable few in a table)")
    q.add_argument("--format", choices=FORMATS, default="table")

    c = sub.add_parser("compare", help="pivot a metric: rows x columns, mean ± std over seeds, best and ties "
                                       "marked; any other axis that varies splits it into one table per value")
    _studies_arguments(c)
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
    _studies_arguments(pl)
    pl.add_argument("--kind", required=True, choices=sorted(KINDS))
    pl.add_argument("--out", required=True, help="PNG file to write")
    pl.add_argument("--metric", help="a trials column (default as for compare)")
    pl.add_argument("--where", help="filter selecting the trials to plot (as for query)")

    rp = sub.add_parser("report", help="write a self-contained HTML report of a study (tables and figures)")
    _studies_arguments(rp)
    rp.add_argument("--out", required=True, help="folder for index.html and the figures")

    ex = sub.add_parser("export", help="write a study's trials into TensorBoard, MLflow or W&B, one run per trial "
                                       "(again: only new or changed trials)")
    ex.add_argument("study")
    ex.add_argument("--to", required=True, nargs=2, action=_Destination, metavar=("TOOL", "TARGET"),
                    help="tensorboard DIR | mlflow TRACKING_URI (e.g. sqlite:///mlflow.db) | wandb DIR (offline runs "
                         "under DIR/wandb, for `wandb sync`)")
    ex.add_argument("--follow", action="store_true",
                    help="keep exporting while the study's driver runs, and once more when it ends (Ctrl-C stops)")
    ex.add_argument("--every", type=float, default=10.0, metavar="SECONDS",
                    help="with --follow: seconds between two looks at the store (default 10)")

    st = sub.add_parser("status", help="counts of trials per status and the last errors")
    st.add_argument("study")
    cp = sub.add_parser("compact", help="merge a study's part files (the tables read the same)")
    cp.add_argument("study")
    ls = sub.add_parser("list", help="list registered criteria, growth rules, schedules, models and data sets")
    _plugin_option(ls)
    return parser
