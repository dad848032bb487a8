import dataclasses

import pytest

from dst_core import summarise
from dst_core.summary import METRICS, SUMMARY, EpochMetrics, Summary


def _epoch(e, val, test):
    return {"epoch": e, "val_accuracy": val, "test_accuracy": test, "test_loss": 1.0 / e, "train_accuracy": 0.9,
            "train_loss": 0.1, "density": 0.1, "itop_rate": 0.2 + e / 100, "update_seconds": 0.5}


def test_reports_the_test_accuracy_of_the_first_best_validation_epoch():
    history = [_epoch(1, 0.5, 0.4), _epoch(2, 0.7, 0.6), _epoch(3, 0.7, 0.65), _epoch(4, 0.6, 0.7)]
    s = summarise(history)
    assert s["best_val_epoch"] == 2 and s["best_val_accuracy"] == 0.7  # ties: the first, as the paper's `>`
    assert s["test_accuracy_at_best_val"] == 0.6
    assert s["final_test_accuracy"] == 0.7 and s["final_val_accuracy"] == 0.6 and s["epochs_done"] == 4
    assert s["best_test_accuracy"] == 0.7 and s["best_epoch"] == 4
    assert s["update_seconds"] == pytest.approx(2.0) and s["final_itop_rate"] == pytest.approx(0.24)


def test_without_validation_split_the_selected_accuracy_is_none():
    s = summarise([_epoch(1, None, 0.4), _epoch(2, None, 0.5)])
    assert s["test_accuracy_at_best_val"] is None and s["best_val_epoch"] is None
    assert s["final_test_accuracy"] == 0.5
    assert summarise([]) == {"epochs_done": 0}


def test_a_summary_holds_every_field_of_summary_in_its_order():
    s = summarise([_epoch(1, 0.5, 0.4)])
    assert tuple(s) == SUMMARY == tuple(f.name for f in dataclasses.fields(Summary))
    assert s["n_updates"] == 0  # an epoch without the count: no update


def test_the_trainer_yields_exactly_the_epoch_metrics():
    from dst_core import TrainConfig, train

    runs = {"dst": dict(density=0.2, update_period=5, jaccard_every=1), "dense": dict(density=1.0, val_fraction=0.0)}
    for kind, settings in runs.items():
        (metrics,) = train(TrainConfig(epochs=1, batch_size=256, lr=0.1, device="cpu", **settings))
        assert [k for k in metrics if k != "jaccard"] == list(METRICS), kind
        assert ("jaccard" in metrics) == (kind == "dst")
        types = {f.name: f.type for f in dataclasses.fields(EpochMetrics)}
        for name in METRICS:  # each value of the type its field declares (None only where it allows)
            value = metrics[name]
            assert (value is None and "None" in types[name]) or type(value).__name__ in types[name], (kind, name)
    assert metrics["val_accuracy"] is None and metrics["density"] == 1.0  # the dense run, without validation
