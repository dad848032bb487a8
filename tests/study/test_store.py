import os
from datetime import datetime, timezone

import pandas as pd
import pyarrow.dataset as ds
import pytest

from dst_core import TrainConfig
from study.store import ParquetStore, StoreError, UnreadableFileWarning
from study.trial import Trial, history_rows, trial_row
from study.trial_id import trial_id

T0 = datetime(2026, 1, 1, tzinfo=timezone.utc)


def _history(epochs, acc0=0.5):
    return [{"epoch": e, "step": 10 * e, "lr": 0.1, "train_loss": 1.0 / e, "train_accuracy": acc0 + 0.01 * e,
             "test_loss": 1.1 / e, "test_accuracy": acc0 + 0.02 * e - (0.03 if e == epochs else 0), "density": 0.1,
             "drop_fraction": 0.3, "itop_rate": 0.1 + 0.01 * e, "n_updates": 2, "update_seconds": 0.01,
             "epoch_seconds": 0.5} for e in range(1, epochs + 1)]


def _trial(store, density=0.1, criterion="magnitude", seed=0, epochs=3, acc0=0.5, status="completed"):
    cfg = TrainConfig(density=density, criterion=criterion, seed=seed, epochs=epochs)
    hist = _history(epochs, acc0)
    trial = Trial.of(cfg)
    store.append([trial_row(trial, hist, status=status, started_at=T0, ended_at=T0,
                            report={"device_used": "cpu", "attempt_seconds": 1.5})], history_rows(trial, hist))
    return cfg


def test_round_trip_preserves_values_and_types(tmp_path):
    store = ParquetStore(str(tmp_path))
    cfg = _trial(store, criterion="mest")
    trials = store.read("trials")
    assert len(trials) == 1
    row = trials.iloc[0]
    assert row["trial_id"] == trial_id(cfg) and row["status"] == "completed"
    assert row["density"] == 0.1 and row["criterion"] == "mest" and row["seed"] == 0 and row["nesterov"]
    assert list(row["lr_milestones"]) == [0.5, 0.75] and row["criterion_params"] == "{}"
    assert row["epochs_done"] == 3 and row["best_epoch"] == 2
    assert row["final_test_accuracy"] == pytest.approx(0.53) and row["best_test_accuracy"] == pytest.approx(0.54)
    assert row["started_at"] == pd.Timestamp(T0) and pd.isna(row["error"])
    assert trials["seed"].dtype == pd.Int64Dtype() and trials["density"].dtype == "float64"
    assert trials["criterion"].dtype == pd.StringDtype()
    history = store.read("history")
    assert history["epoch"].tolist() == [1, 2, 3]
    assert history["test_accuracy"].tolist() == pytest.approx([0.52, 0.54, 0.53])


def test_latest_row_wins_and_history_follows_it(tmp_path):
    store = ParquetStore(str(tmp_path))
    cfg = _trial(store, status="failed", epochs=2)
    _trial(store, density=0.2)
    _trial(store, status="completed", epochs=2, acc0=0.7)  # the same trial again, newer
    trials = store.read("trials").set_index("trial_id")
    assert len(trials) == 2 and trials.loc[trial_id(cfg), "status"] == "completed"
    history = store.read("history")
    mine = history[history["trial_id"] == trial_id(cfg)]
    assert mine["test_accuracy"].tolist() == pytest.approx([0.72, 0.71])  # only the newer attempt
    assert len(history) == 2 + 3


@pytest.mark.parametrize("failed_first", [True, False])
def test_a_completed_row_is_never_shadowed_by_another_status(tmp_path, failed_first):
    """Two drivers on one study (a lost lease): one completes a trial, the other records it failed.
    Whatever order the parts arrive in, the completed row and its history win, also after compact."""
    store = ParquetStore(str(tmp_path))
    cfg = TrainConfig(density=0.1, epochs=3)
    attempts = [("failed", _history(1, 0.2)), ("completed", _history(3, 0.6))]
    for status, hist in attempts if failed_first else attempts[::-1]:
        store.append([trial_row(Trial.of(cfg), hist, status=status, started_at=T0)], history_rows(Trial.of(cfg), hist))
    for _ in range(2):
        trials = store.read("trials")
        assert trials["status"].tolist() == ["completed"] and trials["epochs_done"].tolist() == [3]
        assert store.trial_ids("failed") == set() and store.trial_ids("completed") == {trial_id(cfg)}
        assert store.read("history")["test_accuracy"].tolist() == pytest.approx([0.62, 0.64, 0.63])
        store.compact()


def test_compaction_keeps_the_logical_table(tmp_path):
    store = ParquetStore(str(tmp_path))
    for seed in range(5):
        _trial(store, seed=seed)
    _trial(store, seed=0, acc0=0.9)  # duplicate: newest wins
    before_t, before_h = store.read("trials"), store.read("history")
    assert store.compact() == {"history": 6, "jaccard": 0, "trials": 6}
    assert len(store.files("trials")) == 1 and len(store.files("history")) == 1
    after_t, after_h = store.read("trials"), store.read("history")
    key = ["trial_id"]
    pd.testing.assert_frame_equal(before_t.sort_values(key).reset_index(drop=True),
                                  after_t.sort_values(key).reset_index(drop=True))
    pd.testing.assert_frame_equal(before_h.sort_values(["trial_id", "epoch"]).reset_index(drop=True),
                                  after_h.sort_values(["trial_id", "epoch"]).reset_index(drop=True))
    _trial(store, seed=7)  # appending after compaction still works
    assert len(store.read("trials")) == 6


def test_crash_leftovers_lose_only_that_file(tmp_path):
    store = ParquetStore(str(tmp_path))
    _trial(store, seed=0)
    _trial(store, seed=1)
    # a writer killed mid-write leaves its hidden temporary file: readers ignore it
    (tmp_path / "trials" / ".tmp-00000000000000000009-dead.parquet").write_bytes(b"PAR1 half a file")
    assert len(store.read("trials")) == 2 and store.problems == []
    # a truncated part (e.g. copied by hand, or a disk fault) is reported by name; the rest loads
    good = store.files("trials")[0]
    bad = tmp_path / "trials" / "99999999999999999999-trunc.parquet"
    bad.write_bytes(open(good, "rb").read()[:100])
    with pytest.warns(UnreadableFileWarning, match="99999999999999999999-trunc.parquet"):
        trials = store.read("trials")
    assert len(trials) == 2 and "99999999999999999999-trunc.parquet" in store.problems[0]


def test_history_of_an_append_cut_short_belongs_to_no_trial(tmp_path):
    """A driver killed between the history and the trial part of one append (a wide window on S3),
    then the trial stored again: its history is read once, and compact keeps the stray part."""
    store = ParquetStore(str(tmp_path))
    cfg = _trial(store, seed=0)
    stray = tmp_path / "history" / "00000000000000000001-dead.parquet"
    stray.write_bytes((tmp_path / "history" / os.path.basename(store.files("trials")[0])).read_bytes())
    _trial(store, seed=1)
    assert len(store.read("history")) == 2 * 3
    store.compact()
    assert len(store.read("history")) == 2 * 3 and stray.exists()
    assert list(store.read("history", filter=ds.field("trial_id") == trial_id(cfg))["epoch"]) == [1, 2, 3]


def test_filters_columns_and_errors(tmp_path):
    store = ParquetStore(str(tmp_path))
    for d in (0.05, 0.1, 0.2):
        _trial(store, density=d, criterion="snip")
    got = store.read("trials", ["density", "criterion"], ds.field("density") < 0.15)
    assert list(got.columns) == ["density", "criterion"] and sorted(got["density"]) == [0.05, 0.1]
    with pytest.raises(StoreError, match="unknown column.*'densty'.*columns: trial_id, status"):
        store.read("trials", ["densty"])
    (tmp_path / "trials" / "notes.txt").write_text("hello")
    with pytest.raises(StoreError, match="notes.txt: not a Parquet part file"):
        store.read("trials")


def test_empty_store_reads_empty_frames(tmp_path):
    store = ParquetStore(str(tmp_path / "nothing"))
    assert not store.exists()
    assert store.read("trials").empty and store.read("history").empty


def test_file_metadata_has_schema_version(tmp_path):
    import pyarrow.parquet as pq
    store = ParquetStore(str(tmp_path))
    _trial(store)
    meta = pq.read_schema(store.files("trials")[0]).metadata
    assert meta[b"dst_study_schema_version"] == b"1" and meta[b"table"] == b"trials"


def test_a_foreign_part_file_is_named_and_skipped(tmp_path):
    import pyarrow as pa
    import pyarrow.parquet as pq
    store = ParquetStore(str(tmp_path))
    _trial(store, seed=0)
    pq.write_table(pa.table({"x": [1, 2, 3]}), tmp_path / "trials" / "99999999999999999990-other.parquet")
    pq.write_table(pa.table({"trial_id": ["a"], "density": ["high"]}),
                   tmp_path / "trials" / "99999999999999999991-typed.parquet")
    with pytest.warns(UnreadableFileWarning):
        trials = store.read("trials")
    assert len(trials) == 1 and trials["trial_id"].notna().all()  # no phantom trials
    assert any("other.parquet: not a dst-study trials part file (no trial_id column)" in p for p in store.problems)
    assert any("typed.parquet: not a dst-study trials part file (columns of another type: density (string))" in p
               for p in store.problems)


def test_compact_moves_unreadable_parts_aside_and_deletes_nothing_it_did_not_merge(tmp_path):
    store = ParquetStore(str(tmp_path))
    for seed in range(3):
        _trial(store, seed=seed)
    bad = tmp_path / "trials" / "99999999999999999999-trunc.parquet"
    bad.write_bytes(open(store.files("trials")[0], "rb").read()[:100])
    content = bad.read_bytes()
    with pytest.warns(UnreadableFileWarning):
        store.compact()
    assert not bad.exists() and (tmp_path / "quarantine" / "trials" / bad.name).read_bytes() == content
    assert store.quarantined == [f"{tmp_path}/quarantine/trials/{bad.name}"]
    assert len(store.read("trials")) == 3 and store.problems == [] and len(store.files("trials")) == 1


def test_results_of_two_algorithm_revisions_are_not_pooled(tmp_path):
    from study.comparison import compare
    store = ParquetStore(str(tmp_path))
    for seed in (0, 1):
        _trial(store, seed=seed)
    trials = store.read("trials")
    assert list(trials["algorithm_revision"]) == [2, 2]
    old = trials.assign(algorithm_revision=pd.array([None, 2], dtype="Int64"))  # a row of revision 1
    with pytest.raises(StoreError, match="algorithm revisions 1, 2, whose results are not comparable; narrow "
                                         "them with --where 'algorithm_revision == 2'"):
        compare(old)
    assert len(compare(old[old["algorithm_revision"] == 2]).cells) == 1


def test_a_store_a_newer_dst_study_wrote_to_is_refused_by_name(tmp_path, monkeypatch):
    store = ParquetStore(str(tmp_path))
    _trial(store, density=0.1)
    import study.store.parquet as parquet
    monkeypatch.setattr(parquet, "SCHEMA_VERSION", "2")  # as a later dst-study writes
    _trial(store, density=0.2)
    monkeypatch.undo()
    with pytest.raises(StoreError, match=r"written by a newer dst-study \(\S+\.parquet has schema version 2; this one "
                                         r"reads up to 1\); upgrade dst-study"):
        store.read("trials")
