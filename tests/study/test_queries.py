import pandas as pd
import pytest

from study.queries import open_study, query
from study.store import ParquetStore, StoreError

from .test_store import _trial


def test_query_reads_where_columns_and_rejects_unknown(tmp_path):
    store = ParquetStore(str(tmp_path))
    for d in (0.05, 0.1, 0.2):
        for c in ("snip", "magnitude"):
            _trial(store, density=d, criterion=c)
    got = query(store, where="criterion == 'snip' and density < 0.2", columns=["density"])
    assert list(got.columns) == ["density"] and sorted(got["density"]) == [0.05, 0.1]
    with pytest.raises(StoreError, match="unknown column 'densty'; did you mean 'density'"):
        query(store, where="densty < 0.2")
    with pytest.raises(StoreError, match="unknown column.*'acc'"):
        query(store, columns=["acc"])
    with pytest.raises(StoreError, match="not a valid expression"):
        query(store, where="density <")
    hist = query(store, "history", where="epoch == 3 and test_accuracy > 0.5")
    assert len(hist) == 6


def test_history_is_filtered_by_its_trials_columns_too(tmp_path):
    store = ParquetStore(str(tmp_path))
    for d in (0.05, 0.1):
        for c in ("snip", "magnitude"):
            _trial(store, density=d, criterion=c, epochs=3)
    ids = set(query(store, where="criterion == 'snip'")["trial_id"])
    got = query(store, "history", where="criterion == 'snip' and epoch >= 2")
    assert list(got.columns) == list(store.read("history").columns)  # the history's columns, not the trials'
    assert set(got["trial_id"]) == ids and len(ids) == 2 and sorted(got["epoch"]) == [2, 2, 3, 3]
    with pytest.raises(StoreError, match="unknown column 'critrion'; did you mean 'criterion'"):
        query(store, "history", where="critrion == 'snip'")


def test_open_study_by_name_and_unknown(tmp_path, monkeypatch):
    monkeypatch.setenv("DST_STUDY_RESULTS", str(tmp_path))
    _trial(ParquetStore(str(tmp_path / "quick")))
    assert open_study("quick").path == str(tmp_path / "quick")
    with pytest.raises(StoreError, match="unknown study 'quik'.*studies there: quick"):
        open_study("quik")


@pytest.mark.parametrize("where", [
    "epoch == 3 and test_accuracy > 0.5", "epoch >= 2 or test_accuracy < 0.53", "epoch in [1, 3]",
    "2 <= epoch and not (test_accuracy > 0.55)", "epoch != 2", "epoch == 3 and trial_id != 'x'",
])
def test_history_filter_pushdown_gives_the_pandas_answer(tmp_path, where):
    from study.filters import _arrow_filter
    import ast
    store = ParquetStore(str(tmp_path))
    for d in (0.05, 0.1, 0.2):
        _trial(store, density=d, epochs=3)
    _trial(store, density=0.1, epochs=3, acc0=0.9)  # supersedes one trial: its old rows must stay out
    full = store.read("history").query(where).sort_values(["trial_id", "epoch"]).reset_index(drop=True)
    got = query(store, "history", where).sort_values(["trial_id", "epoch"]).reset_index(drop=True)
    pd.testing.assert_frame_equal(got, full)
    assert _arrow_filter(ast.parse("epoch != 2", mode="eval").body) is None  # left to pandas (NaN rows)


def test_studies_read_as_one_take_each_trials_rows_from_the_first_study_that_completed_it(tmp_path):
    from datetime import datetime, timezone

    from dst_core import TrainConfig
    from study.queries import Studies
    from study.trial import Trial, history_rows, trial_row

    def store(name, runs):
        s = ParquetStore(str(tmp_path / name))
        for criterion, status, accuracy in runs:
            trial = Trial.of(TrainConfig(criterion=criterion, density=0.1))
            history = [{"epoch": e, "step": e, "lr": 0.1, "train_loss": 1.0, "train_accuracy": 0.5, "test_loss": 1.0,
                        "test_accuracy": accuracy, "density": 0.1, "drop_fraction": 0.3, "itop_rate": 0.2,
                        "n_updates": 1, "update_seconds": 0.1, "epoch_seconds": 0.1} for e in (1, 2)]
            s.append([trial_row(trial, history, status=status, started_at=datetime.now(timezone.utc))],
                     history_rows(trial, history))
        return s

    # magnitude failed in the first study and completed in the second; snip completed in both, alike
    a = store("a", [("magnitude", "failed", 0.1), ("snip", "completed", 0.6)])
    b = store("b", [("magnitude", "completed", 0.5), ("snip", "completed", 0.6), ("set", "completed", 0.4)])
    studies = Studies([a, b])
    trials = studies.query("trials", columns=["criterion", "status", "final_test_accuracy"]).set_index("criterion")
    assert sorted(trials.index) == ["magnitude", "set", "snip"]
    assert trials.loc["magnitude", "status"] == "completed" and trials.loc["magnitude", "final_test_accuracy"] == 0.5
    history = studies.query("history", columns=["trial_id", "epoch", "test_accuracy"])
    assert len(history) == 3 * 2 and not history.duplicated(["trial_id", "epoch"]).any()
    assert sorted(history["test_accuracy"].unique()) == [0.4, 0.5, 0.6]  # not the failed run's 0.1
    assert studies.warnings == [f"trial {Trial.of(TrainConfig(criterion='magnitude', density=0.1)).id} is in "
                                f"{a.root} and {b.root} with different results; {b.root}'s is used"]
    assert len(Studies([a]).query("trials")) == 2 and Studies([a]).root == str(a.root)


def test_a_column_an_older_row_lacks_is_no_clash_between_studies(tmp_path):
    """A row written before a column existed (n_updates) holds null there: unknown, not different."""
    from datetime import datetime, timezone

    from dst_core import TrainConfig
    from study.queries import Studies
    from study.trial import Trial, trial_row

    trial = Trial.of(TrainConfig(static=True, density=0.1))
    history = [{"epoch": 1, "step": 1, "lr": 0.1, "train_loss": 1.0, "train_accuracy": 0.5, "test_loss": 1.0,
                "test_accuracy": 0.3, "density": 0.1, "drop_fraction": 0.0, "itop_rate": 0.1, "n_updates": 0,
                "update_seconds": 0.0, "epoch_seconds": 0.1}]
    stores = []
    for name, n_updates in (("old", None), ("new", 0), ("other", 2)):
        store = ParquetStore(str(tmp_path / name))
        row = trial_row(trial, history, status="completed", started_at=datetime.now(timezone.utc))
        store.append([{**row, "n_updates": n_updates}])
        stores.append(store)
    studies = Studies(stores[:2])
    assert len(studies.query("trials")) == 1 and studies.warnings == []
    studies = Studies(stores)
    studies.query("trials")
    assert len(studies.warnings) == 1 and "with different results" in studies.warnings[0]
