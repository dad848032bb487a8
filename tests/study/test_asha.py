"""Early stopping for searches: ASHA stops poor trials at its rungs; a stopped trial is stored as
``stopped`` with the epochs it trained, is not run again, and is left out of comparisons, which say so."""

import pytest

from study.cli import main
from study.runner import plan, run
from study.spec import SpecError, parse
from study.store import ParquetStore

ray = pytest.importorskip("ray")

BASE = {"epochs": 4, "batch_size": 256, "update_period": 5, "device": "cpu"}
# one trial at a time: ASHA's decisions then depend on the (seeded) metrics alone, not on timing
SEARCH = {"scheduler": "asha", "grace_period": 1, "reduction_factor": 2, "n_trials": 6, "seed": 1,
          "space": {"lr": {"loguniform": [1e-4, 0.3]}, "density": {"loguniform": [0.02, 0.5]}}}


def test_asha_stops_trials_early_and_they_are_stored_counted_and_left_out(tmp_path, capsys):
    spec = parse({"name": "a", "storage": str(tmp_path), "base": BASE, "search": SEARCH, "max_concurrent": 1,
                  "checkpoint_seconds": 1000})  # a checkpoint after the last epoch only: every epoch still reports
    lines = []
    run(plan(spec), log=lines.append)
    store = ParquetStore(str(tmp_path / "a"))
    trials, history = store.read("trials"), store.read("history")
    assert len(trials) == 6 and set(trials["status"]) == {"completed", "stopped"}, trials[["status", "error"]]
    stopped, completed = trials[trials["status"] == "stopped"], trials[trials["status"] == "completed"]
    assert (completed["epochs_done"] == 4).all()
    # ASHA's rungs at 1 and 2 epochs (grace 1, factor 2): a trial stops after one of them
    assert set(stopped["epochs_done"]) <= {1, 2} and len(stopped) >= 1
    epochs = history.groupby("trial_id")["epoch"].apply(sorted)
    assert all(epochs[t] == list(range(1, n + 1)) for t, n in zip(trials["trial_id"], trials["epochs_done"]))
    assert stopped["best_val_accuracy"].notna().all()
    # progress lines show the search's own (validation) metric, and when a trial was stopped
    assert sum("best_val_accuracy" in line and "stopped early at epoch" in line for line in lines) == len(stopped)

    assert len(plan(spec).finished) == 6  # resume runs nothing: a stopped trial has ended
    capsys.readouterr()
    assert main(["status", str(tmp_path / "a")]) == 0
    assert f"{len(stopped)} stopped" in capsys.readouterr().out
    assert main(["compare", str(tmp_path / "a"), "--metric", "best_val_accuracy", "--cols", "seed"]) == 0
    out = capsys.readouterr().out
    assert f"{len(stopped)} trial{'s' * (len(stopped) != 1)} stopped early by the search's scheduler" in out


def test_asha_needs_a_grace_period_shorter_than_the_trials():
    with pytest.raises(SpecError, match="search.grace_period: 4 epochs is not less than the trials' 4"):
        parse({"name": "a", "base": BASE, "search": {**SEARCH, "grace_period": 4}}, storage=False)
    with pytest.raises(SpecError, match="asha .* cannot search epochs"):
        parse({"name": "a", "base": BASE, "search": {**SEARCH, "space": {"epochs": {"int": [2, 8]}}}}, storage=False)
    with pytest.raises(SpecError, match="scheduler"):
        parse({"name": "a", "base": BASE, "search": {**SEARCH, "scheduler": "hyperband"}}, storage=False)
