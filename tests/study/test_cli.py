import json
import os
import signal
import subprocess
import sys
import time

import pytest

from dst_core.summary import SUMMARY
from study.cli import main

QUICK = ["--epochs", "2", "--batch-size", "256", "--lr", "0.1", "--update-period", "5", "--device", "cpu"]
TIMING = ("epoch_seconds", "update_seconds")


def _final(stdout: str) -> dict:
    final = json.loads(stdout.strip().splitlines()[-1])
    return {k: v for k, v in final.items() if k not in TIMING}


def test_train_json_last_line(capsys):
    assert main(["train", *QUICK, "--density", "0.2", "--criterion", "SNIP", "--growth", "gradient", "--json"]) == 0
    out = capsys.readouterr()
    final = _final(out.out)
    assert final["epochs_done"] == 2 and final["final_density"] == pytest.approx(0.2, abs=1e-3)
    assert 0.0 <= final["final_test_accuracy"] <= 1.0 and final["config"]["criterion"] == "snip"
    # each value once, named as the trials table's columns: the summary and the config, nothing else
    assert list(json.loads(out.out.strip().splitlines()[-1])) == [*SUMMARY, "config"]
    assert "epoch 2/2" in out.err  # with --json the epoch lines go to stderr, stdout stays parseable


def test_train_prints_a_line_per_epoch(capsys):
    assert main(["train", *QUICK, "--criterion", "mest", "--criterion-param", "gamma=0.5"]) == 0
    out = capsys.readouterr().out
    assert [line.split()[1] for line in out.splitlines() if line.startswith("epoch ")] == ["1/2", "2/2"]
    assert "final: test accuracy" in out and "the best validation accuracy" in out


@pytest.mark.parametrize("args,message", [
    (["--density", "0"], "density: got 0.0; expected a float in (0, 1]"),
    (["--density", "1.5"], "density: got 1.5; expected a float in (0, 1]"),
    (["--criterion", "magnitdue"], "did you mean 'magnitude'?"),
    (["--model", "resnet"], "unknown model 'resnet'"),
    (["--dataset", "cifar10", "--data-root", "/nonexistent"], "cifar-10-batches-py"),
    (["--criterion-param", "gamma=2"], "criterion 'magnitude' takes no parameter 'gamma'"),
])
def test_bad_input_one_clear_message(capsys, args, message):
    assert main(["train", *QUICK, *args]) == 2
    err = capsys.readouterr().err
    assert err.startswith("dst-study: error: ") and message in err and err.count("\n") == 1


def test_checkpoint_from_another_config(tmp_path, capsys):
    assert main(["train", *QUICK, "--epochs", "1", "--checkpoint-dir", str(tmp_path)]) == 0
    assert main(["train", *QUICK, "--epochs", "1", "--density", "0.3", "--checkpoint-dir", str(tmp_path)]) == 2
    assert "written by a different config" in capsys.readouterr().err


def _cli(*args):
    return [sys.executable, "-m", "study.cli", "train", *args]


@pytest.mark.slow
def test_ctrl_c_then_rerun_equals_uninterrupted(tmp_path):
    # small batches make epochs long enough (~0.3 s) to interrupt one in the middle
    args = ["--epochs", "4", "--batch-size", "32", "--update-period", "50", "--criterion", "set",
            "--device", "cpu", "--json"]
    env = dict(os.environ, PYTHONUNBUFFERED="1")
    full = subprocess.run(_cli(*args), capture_output=True, text=True, env=env, check=True)
    ckpt = tmp_path / "ckpt"
    proc = subprocess.Popen(_cli(*args, "--checkpoint-dir", str(ckpt)), stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, env=env)
    while not (line := proc.stderr.readline()).startswith("epoch 2/"):  # epoch lines: stderr
        assert line, "the run ended before epoch 2"
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 130, err
    assert "interrupted" in err and (ckpt / "checkpoint.pt").exists()
    resumed = subprocess.run(_cli(*args, "--checkpoint-dir", str(ckpt)), capture_output=True, text=True,
                             env=env, check=True)
    assert "resumed from" in resumed.stderr
    assert _final(resumed.stdout) == _final(full.stdout)


def test_outputs_are_checked_before_training(tmp_path, capsys):
    blocker = tmp_path / "a-file"
    blocker.write_text("x")
    started = time.perf_counter()
    assert main(["train", *QUICK, "--epochs", "50", "--results", str(blocker)]) == 2
    assert main(["train", *QUICK, "--epochs", "50", "--checkpoint-dir", str(blocker / "sub")]) == 2
    assert time.perf_counter() - started < 5  # refused before 50 epochs of training
    err = capsys.readouterr().err
    assert f"{blocker}: is a file; results need a folder" in err
    assert "--checkpoint-dir" in err and "cannot write there" in err


def test_json_output_is_valid_json(capsys):
    assert main(["train", *QUICK, "--epochs", "1", "--val-fraction", "0", "--json"]) == 0
    text = capsys.readouterr().out.strip().splitlines()[-1]
    final = json.loads(text, parse_constant=lambda c: pytest.fail(f"{c} is not JSON"))
    assert final["test_accuracy_at_best_val"] is None and final["final_val_accuracy"] is None


def test_train_with_adam_and_its_betas(capsys):
    args = ["--epochs", "1", "--batch-size", "256", "--lr", "0.01", "--update-period", "5", "--device", "cpu"]
    assert main(["train", *args, "--optimizer", "adam", "--betas", "0.8", "0.99", "--eps", "1e-7", "--json"]) == 0
    config = _final(capsys.readouterr().out)["config"]
    assert config["optimizer"] == "adam" and config["betas"] == [0.8, 0.99] and config["eps"] == 1e-7
    assert main(["train", *args, "--optimizer", "rmsprop"]) == 2
    assert "optimizer: got 'rmsprop'; expected one of sgd, adam, adamw" in capsys.readouterr().err
