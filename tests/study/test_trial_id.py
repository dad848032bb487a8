"""Trial ids are content addresses that must not move: a moved id re-runs a study's trials."""

import pytest

from dst_core import TrainConfig
from dst_core.config import ADDED_FIELDS
from study.trial_id import trial_id


def test_pinned_ids_of_fixed_configs():
    # Golden values. If this fails, a change altered the identity of existing trials: every study
    # would re-run. Give a new field its old behaviour's value in ADDED_FIELDS instead.
    assert trial_id(TrainConfig(density=0.1, seed=1)) == "2312cf557b41c160"
    assert trial_id(TrainConfig(density=0.1, static=True, seed=1)) == "b061b2d0a05ae6c6"
    assert trial_id(TrainConfig(density=1.0, seed=1)) == "03ea064aa3d347ac"


def test_added_fields_at_their_old_value_stay_out_of_the_identity():
    for key, old in ADDED_FIELDS.items():
        assert key not in TrainConfig(density=0.1).identity() and getattr(TrainConfig(), key) == old
    assert "static" in TrainConfig(density=0.1, static=True).identity()


def test_run_only_fields_and_name_spellings_do_not_change_the_id():
    a = TrainConfig(density=0.1, criterion="SNIP", device="cpu", eval_batch_size=7, jaccard_every=3, num_workers=2)
    assert trial_id(a) == trial_id(TrainConfig(density=0.1, criterion="snip"))


def test_a_result_part_written_by_an_earlier_version_still_reads(tmp_path):
    """tests/data/store_rev2 was written at algorithm revision 2 (dst-study 0.1.0): a later schema
    must read it (missing columns as null), and its trial must keep its id."""
    import shutil
    from pathlib import Path
    from study.comparison import compare
    from study.store import ParquetStore
    data = Path(__file__).resolve().parents[1] / "data" / "store_rev2"
    shutil.copytree(data, tmp_path / "s")
    store = ParquetStore(str(tmp_path / "s"))
    trials, history = store.read("trials"), store.read("history")
    assert store.problems == [] and len(trials) == 1 and len(history) == 2
    row = trials.iloc[0]
    config = TrainConfig(density=0.1, criterion="snip", growth="gradient", seed=3, epochs=2)
    assert row["trial_id"] == trial_id(config) == "4d231b8dc59bddab"
    assert row["test_accuracy_at_best_val"] == 0.36 and row["algorithm_revision"] == 2 and row["kind"] == "dst"
    assert compare(trials).cells["n"].tolist() == [1]


COMMITTED_CHECKPOINT = TrainConfig(density=0.1, criterion="snip", growth="gradient", seed=3, epochs=2,
                                   update_period=20, device="cpu")


def test_a_checkpoint_written_by_an_earlier_version_still_resumes(tmp_path):
    """tests/data/checkpoint_rev2 holds the checkpoint after epoch 1 (one topology update done) of
    COMMITTED_CHECKPOINT, written in checkpoint format 2 at algorithm revision 2 (dst-study 0.1.0).
    It must load and resume, and resuming it must give the run an uninterrupted one gives."""
    import shutil
    from pathlib import Path

    from dst_core import Trainer, checkpoint

    data = Path(__file__).resolve().parents[1] / "data" / "checkpoint_rev2"
    shutil.copytree(data, tmp_path / "c")
    assert checkpoint.load(tmp_path / "c" / checkpoint.FILENAME)["format"] == 2
    resumed = Trainer(COMMITTED_CHECKPOINT, checkpoint_dir=tmp_path / "c")
    assert resumed.resumed_from == 1
    list(resumed.epochs())
    fresh = Trainer(COMMITTED_CHECKPOINT)
    list(fresh.epochs())
    for got, want in zip(resumed.history, fresh.history):  # equal but for the clock (and a newer torch's rounding)
        assert got["epoch"] == want["epoch"] and got["step"] == want["step"]
        assert abs(got["train_loss"] - want["train_loss"]) < 1e-4 and abs(got["test_accuracy"] - want["test_accuracy"]) < 0.01


def test_a_checkpoint_from_before_a_field_existed_resumes_once_the_field_is_added(tmp_path, monkeypatch):
    """A field added later (here, as if lr_gamma were new) is missing from older checkpoints' identity;
    at its old value it stays out of the new identity too, so the checkpoint still resumes."""
    import shutil
    from pathlib import Path

    import torch

    from dst_core import Trainer, checkpoint
    from dst_core.errors import CheckpointMismatchError

    data = Path(__file__).resolve().parents[1] / "data" / "checkpoint_rev2"
    shutil.copytree(data, tmp_path / "c")
    path = tmp_path / "c" / checkpoint.FILENAME
    state = checkpoint.load(path)
    del state["config"]["lr_gamma"]  # written before the field existed
    torch.save(state, path)
    with pytest.raises(CheckpointMismatchError, match="lr_gamma"):  # without ADDED_FIELDS: refused
        Trainer(COMMITTED_CHECKPOINT, checkpoint_dir=tmp_path / "c")
    monkeypatch.setitem(ADDED_FIELDS, "lr_gamma", 0.1)
    assert Trainer(COMMITTED_CHECKPOINT, checkpoint_dir=tmp_path / "c").resumed_from == 1


def test_an_optimizer_s_id_ignores_the_hyper_parameters_it_never_reads():
    sgd = TrainConfig(density=0.1, seed=1)
    assert trial_id(TrainConfig(density=0.1, seed=1, optimizer="sgd", betas=(0.5, 0.5), eps=1e-3)) == trial_id(sgd)
    adam = TrainConfig(density=0.1, seed=1, optimizer="adam")
    assert trial_id(adam) != trial_id(sgd) and trial_id(adam) != trial_id(TrainConfig(density=0.1, seed=1,
                                                                                      optimizer="adamw"))
    assert trial_id(TrainConfig(density=0.1, seed=1, optimizer="Adam", momentum=0.5, nesterov=False)) == trial_id(adam)
    assert trial_id(TrainConfig(density=0.1, seed=1, optimizer="adam", betas=[0.8, 0.999])) != trial_id(adam)
    assert trial_id(TrainConfig(density=1.0, seed=1, optimizer="adam")) != trial_id(TrainConfig(density=1.0, seed=1))
