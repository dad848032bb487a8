"""The tables' columns come from dataclasses; their names and order do not move."""

import dataclasses
import re
from pathlib import Path

import pandas as pd
import pyarrow as pa

from dst_core.summary import METRICS, SUMMARY, EpochMetrics, Summary
from study.filters import parse
from study.store import HISTORY, STATUSES, SUMMARY_COLUMNS, TRIALS, revision, revision_where

README = Path(__file__).resolve().parents[2] / "results" / "README.md"


def test_history_columns_are_the_epoch_metrics_in_order():
    assert HISTORY.names == ["trial_id", *METRICS]
    types = {f.name: f.type for f in dataclasses.fields(EpochMetrics)}
    for name in METRICS:
        expected = pa.int64() if types[name].startswith("int") else pa.float64()
        assert HISTORY.field(name).type == expected, name


def test_trials_metric_columns_are_the_summary_in_their_old_order():
    # pinned: the order a CSV of the trials table shows; update_seconds has always followed wall_seconds
    names = TRIALS.names
    block = names[names.index("epochs_done"):names.index("host")]
    assert block == ["epochs_done", "final_test_accuracy", "test_accuracy_at_best_val", "best_val_accuracy",
                     "best_val_epoch", "final_val_accuracy", "best_test_accuracy", "best_epoch", "final_test_loss",
                     "final_train_accuracy", "final_train_loss", "final_density", "final_itop_rate",
                     "final_density_all", "n_updates",
                     "resumed_from", "wall_seconds", "update_seconds"]
    assert [n for n in block if n in SUMMARY] == list(SUMMARY)
    assert set(SUMMARY_COLUMNS) == {f.name for f in dataclasses.fields(Summary)}
    assert all(TRIALS.field(n).type == t for n, t in SUMMARY_COLUMNS.items())
    assert TRIALS.field("best_val_epoch").type == pa.int64()  # int | None is a nullable integer


def test_results_readme_documents_every_metric_column():
    text = README.read_text()
    trials, history = text.split("## `trials`")[1].split("## `history`")
    history = history.split("## `jaccard`")[0]
    for names, section in ((SUMMARY, trials), (METRICS, history)):
        documented = set(re.findall(r"`(\w+)`", section))
        assert set(names) - documented == set()
    statuses = re.search(r"\| `status` \| string \| (.*) \|", trials).group(1)
    assert set(re.findall(r"`(\w+)`", statuses)) == set(STATUSES)


def test_a_row_without_a_revision_is_revision_1():
    trials = pd.DataFrame({"algorithm_revision": pd.array([None, 2, 1], dtype="Int64")})
    assert revision(trials).tolist() == [1, 2, 1]
    for number, expected in ((1, [True, False, True]), (2, [False, True, False])):
        where = parse(revision_where(number), ["algorithm_revision"])
        assert where.mask(trials).tolist() == expected
