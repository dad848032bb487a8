"""DST trials whose mask never changes (too few steps for one update period) are named before a
study runs, and under the comparison tables that hold them."""

import pytest
import yaml

from dst_core import DATASETS, TrainConfig, load_dataset
from dst_core.trainer import static_reason
from study.cli import main


def test_static_reason_counts_the_steps_by_hand():
    # MNIST-1D: 4000 examples, 10 % held out -> 3600, batches of 128 -> 29 steps an epoch
    assert static_reason(TrainConfig(epochs=2, update_period=100), 4000).startswith(
        "update_period 100 >= the 58 steps in which updates may happen (2 epochs x 29 steps, stop_fraction 1)")
    assert static_reason(TrainConfig(epochs=4, update_period=100), 4000) is None  # 116 steps: one update at 100
    assert "the 58 steps" in static_reason(TrainConfig(epochs=4, update_period=100, stop_fraction=0.5), 4000)
    assert static_reason(TrainConfig(epochs=4, update_period=100, batch_size=64), 4000) is None  # 57 steps an epoch
    assert static_reason(TrainConfig(epochs=4, drop_fraction=0.0, schedule="constant", update_period=10), 4000).startswith("drop_fraction 0")


@pytest.mark.parametrize("name", ["mnist1d", "digits"])
def test_a_registered_train_size_is_the_real_one(name):
    assert DATASETS.get(name).meta["train_size"] == len(load_dataset(name).train_y)


def _spec(tmp_path, epochs):
    path = tmp_path / f"e{epochs}.yaml"
    path.write_text(yaml.safe_dump({
        "name": f"e{epochs}", "storage": str(tmp_path), "base": {"epochs": epochs, "device": "cpu"},
        "grid": {"criterion": ["magnitude", "set"], "density": [0.1, 0.3]}, "include": [{"static": True}]}))
    return str(path)


@pytest.mark.parametrize("command", [["validate"], ["run", "--dry-run"]])
def test_validate_and_run_name_the_cells_that_never_update(tmp_path, capsys, command):
    assert main([command[0], _spec(tmp_path, 2), *command[1:]]) == 0
    err = capsys.readouterr().err
    assert err == ("dst-study: warning: 4 DST trials will never update the mask (magnitude/random density 0.1 seed "
                   "0, magnitude/random density 0.3 seed 0, set/random density 0.1 seed 0 and 1 more): update_period "
                   "100 >= the 58 steps in which updates may happen (2 epochs x 29 steps, stop_fraction 1): no "
                   "topology update will happen, the run is static\n")
    assert main([command[0], _spec(tmp_path, 4), *command[1:]]) == 0
    assert capsys.readouterr().err == ""


def test_compare_and_report_say_when_dst_rows_never_updated(tmp_path, capsys):
    quick = ["train", "--epochs", "1", "--batch-size", "256", "--density", "0.1", "--device", "cpu"]
    for criterion in ("magnitude", "set"):
        for period, study in ((1000, "static"), (5, "updating")):
            assert main([*quick, "--criterion", criterion, "--update-period", str(period),
                         "--results", str(tmp_path / study)]) == 0
    capsys.readouterr()
    assert main(["compare", str(tmp_path / "static")]) == 0
    out = capsys.readouterr().out
    assert "note: 2 of the 2 DST trials compared never updated their mask (n_updates 0)" in out, out
    assert main(["compare", str(tmp_path / "updating")]) == 0
    assert "never updated" not in capsys.readouterr().out
    assert main(["report", str(tmp_path / "static"), "--out", str(tmp_path / "report")]) == 0
    assert "2 of the 2 DST trials compared never updated their mask" in (tmp_path / "report" / "index.html").read_text()
