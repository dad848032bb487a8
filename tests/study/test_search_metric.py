"""A search selects on validation data: what trials report to Tune, and the ranking `run` ends with."""

import pandas as pd

from dst_core import TrainConfig
from dst_core.summary import summarise
from study import render
from study.spec import parse
from study.trial import Trial, TrialRun


def test_every_report_carries_the_running_best_validation_accuracy():
    run = TrialRun(Trial.of(TrainConfig(epochs=4, batch_size=256, lr=0.1, update_period=5, device="cpu")))
    reports = [report for report, _ in run.reports()]
    vals = [r["val_accuracy"] for r in reports]
    assert vals != sorted(vals)  # it drops at some epoch: the running best differs from the epoch's
    assert [r["best_val_accuracy"] for r in reports] == [max(vals[:i + 1]) for i in range(len(vals))]
    # the value Tune's searcher reads (the last report's) is the one the trials row holds
    assert reports[-1]["best_val_accuracy"] == summarise(run.trainer.history)["best_val_accuracy"]


def _ranked(monkeypatch, trials, **search):
    shown = []
    monkeypatch.setattr(render, "print_frame", lambda frame, **kw: shown.append((frame, kw["title"])))
    spec = parse({"name": "s", "base": {"epochs": 1},
                  "search": {"n_trials": 3, "space": {"density": {"uniform": [0.1, 0.5]}}, **search}}, storage=False)
    render.print_closing(spec, trials)
    (frame, title), = shown
    return frame, title


TRIALS = pd.DataFrame({
    "trial_id": ["a", "b", "c", "d"], "status": ["completed", "completed", "completed", "failed"],
    "density": [0.1, 0.2, 0.3, 0.4], "seed": [0, 0, 0, 0],
    "best_val_accuracy": [0.80, 0.90, 0.85, None], "test_accuracy_at_best_val": [0.95, 0.70, 0.75, None],
    "final_test_accuracy": [0.94, 0.72, 0.74, None]})


def test_the_closing_ranking_is_on_validation_with_test_accuracy_beside_it(monkeypatch):
    frame, title = _ranked(monkeypatch, TRIALS)
    # ranked by validation accuracy, not by the test accuracy shown beside it (that order would be a, c, b)
    assert list(frame["trial_id"]) == ["b", "c", "a"]
    assert list(frame.columns[:3]) == ["rank", "best_val_accuracy", "test_accuracy_at_best_val"]
    assert list(frame["test_accuracy_at_best_val"]) == [0.70, 0.75, 0.95]  # each trial's own
    assert "ranked on validation data" in title and "test_accuracy_at_best_val: each config's test accuracy, " \
                                                     "for reference only" in title


def test_without_a_validation_split_the_ranking_shows_the_last_epochs_test_accuracy(monkeypatch):
    trials = TRIALS.assign(best_val_accuracy=None, test_accuracy_at_best_val=None)
    frame, title = _ranked(monkeypatch, trials, metric="final_test_accuracy", select_on_test=True)
    assert list(frame["trial_id"]) == ["a", "c", "b"] and list(frame.columns[:2]) == ["rank", "final_test_accuracy"]
    assert list(frame.columns).count("final_test_accuracy") == 1  # the metric itself, not twice
    assert "ranked on the test set" in title and "optimistic" in title


def test_a_search_goes_on_only_with_the_objective_it_began_with(tmp_path):
    import pytest
    import yaml

    from study.runner import plan
    from study.spec import SpecError

    search = {"n_trials": 3, "space": {"density": {"uniform": [0.1, 0.5]}}}
    (tmp_path / "s").mkdir()
    saved = {"name": "s", "storage": str(tmp_path), "base": {"epochs": 1},
             "search": {**search, "metric": "final_test_accuracy", "mode": "max"}}  # what an older version saved
    (tmp_path / "s" / "spec.yaml").write_text(yaml.safe_dump(saved))
    spec = parse({"name": "s", "storage": str(tmp_path), "base": {"epochs": 1}, "search": search})
    with pytest.raises(SpecError, match=r"this study's search so far optimised final_test_accuracy \(max\).*give the "
                                        r"spec another name: to search on best_val_accuracy \(max\) as a new study"):
        plan(spec)
    saved["search"]["metric"] = "best_val_accuracy"
    (tmp_path / "s" / "spec.yaml").write_text(yaml.safe_dump(saved))
    assert plan(spec).spec is spec  # the same objective goes on
