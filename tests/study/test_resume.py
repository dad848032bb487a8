"""The driver stopped mid-study: SIGTERM ends it cleanly; after SIGKILL `dst-study resume` finishes
it, with nothing lost or duplicated."""

import os
import re
import signal
import subprocess
import sys
import time

import pandas as pd
import pyarrow.parquet as pq
import pytest
import torch
import yaml

from dst_core import TrainConfig, train
from study.store import ParquetStore

pytest.importorskip("ray")

BASE = {"epochs": 5, "lr": 0.1, "batch_size": 32, "update_period": 10, "device": "cpu"}  # ~2 s a trial


def _cli(*args):
    return [sys.executable, "-m", "study.cli", *args]


ENV = dict(os.environ, RAY_USAGE_STATS_ENABLED="0")


def _start_midway(tmp_path):
    """`dst-study run` of 4 trials, returned once a trial is stored and another, not stored, has a
    checkpoint: the study is mid-way."""
    spec = {"name": "k", "storage": str(tmp_path), "base": BASE, "checkpoint_seconds": 0,
            "grid": {"criterion": ["magnitude", "set"], "density": [0.1, 0.3]}, "max_concurrent": 2}
    path = tmp_path / "spec.yaml"
    path.write_text(yaml.safe_dump(spec))
    study = tmp_path / "k"
    driver = subprocess.Popen(_cli("run", str(path), "--num-cpus", "2"), stdout=subprocess.PIPE,
                              stderr=subprocess.STDOUT, text=True, env=ENV, start_new_session=True)
    deadline = time.time() + 240
    while time.time() < deadline:
        stored = set(ParquetStore(str(study)).read("trials", ["trial_id"])["trial_id"]) \
            if (study / "trials").exists() else set()
        in_flight = {c.parts[-3] for c in study.glob("tune/*/*/checkpoint_*/checkpoint.pt")} - stored
        if stored and in_flight:
            return driver, study
        time.sleep(0.05)
    driver.kill()
    pytest.fail("the study never got going:\n" + driver.communicate()[0])


@pytest.mark.slow
@pytest.mark.parametrize("whom", ["the driver", "its process group"])
def test_sigterm_stops_the_study_cleanly(tmp_path, whom):
    """SIGTERM to the driver alone, or to its whole process group (timeout, systemd, a shell's job
    control), which stops Ray's own processes too: exit 130 with the way to continue, the lease freed
    (test_sigkill_driver_then_resume shows a resume after a harder stop completing every trial once)."""
    driver, study = _start_midway(tmp_path)
    start = time.monotonic()
    if whom == "the driver":
        driver.send_signal(signal.SIGTERM)  # scancel of a batch script, a time limit: as Ctrl-C
    else:
        os.killpg(driver.pid, signal.SIGTERM)
    out, _ = driver.communicate(timeout=120)
    assert driver.returncode == 130, out
    assert time.monotonic() - start < 35, out  # not Ray's 60 s wait for a GCS that is gone
    assert re.search(r"(trials still to run|stopped before the study ended); `dst-study resume ", out), out
    assert not (study / "driver.lease").exists()
    raw = pd.concat([pq.read_table(f).to_pandas() for f in ParquetStore(str(study)).files("trials")])
    assert 1 <= len(raw) < 4 and raw["trial_id"].is_unique and set(raw["status"]) == {"completed"}
    assert (raw["epochs_done"] == 5).all(), "a trial stopped mid-way must not be stored as completed"


@pytest.mark.slow
@pytest.mark.parametrize("moment", ["checking the spec", "starting Ray"])
def test_sigterm_before_the_first_trial_stops_with_the_way_to_continue(tmp_path, moment):
    spec = {"name": "early", "storage": str(tmp_path), "base": BASE, "grid": {"density": [0.1, 0.3]}}
    path = tmp_path / "spec.yaml"
    path.write_text(yaml.safe_dump(spec))
    driver = subprocess.Popen(_cli("run", str(path), "--num-cpus", "1"), stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True, env=ENV, start_new_session=True)
    if moment == "checking the spec":
        time.sleep(1.5)  # importing torch, validating: the signal is noted and taken once that is done
    else:
        deadline = time.time() + 60  # the lease is taken just before Ray starts
        while not (tmp_path / "early" / "driver.lease").exists() and time.time() < deadline:
            time.sleep(0.05)
        time.sleep(0.5)
    driver.send_signal(signal.SIGTERM)
    out, err = driver.communicate(timeout=120)
    assert driver.returncode == 130, out + err
    continue_with = f"dst-study resume {tmp_path / 'early'}" if moment == "starting Ray" else "dst-study "
    assert "dst-study: stopped before the study ended; `" + continue_with in err, err
    assert err.count("\n") == 1, err  # one line, no traceback
    assert not (tmp_path / "early" / "trials").exists() and not (tmp_path / "early" / "driver.lease").exists()


@pytest.mark.slow
def test_sigkill_driver_then_resume(tmp_path):
    driver, study = _start_midway(tmp_path)
    os.killpg(driver.pid, signal.SIGKILL)  # the driver and the Ray it started: a lost login node
    driver.wait()
    before = len(ParquetStore(str(study)).files("trials"))
    assert 1 <= before < 4
    status = subprocess.run(_cli("status", str(study)), capture_output=True, text=True, env=ENV, timeout=120)
    # the in-flight trial may have checkpointed its last epoch before the kill: resume stores it as it is
    assert re.search(r"  missing \w+ \(.* seed 0, checkpoint at epoch [1-5]\)", status.stdout), status.stdout

    resumed = subprocess.run(_cli("resume", str(study), "--num-cpus", "2"), capture_output=True, text=True,
                             env=ENV, timeout=400)
    assert resumed.returncode == 0, resumed.stdout + resumed.stderr
    assert f"{before} done, {4 - before} to run" in resumed.stdout
    assert f"taking over {study} from a driver that is gone" in resumed.stdout

    raw = pd.concat([pq.read_table(f).to_pandas() for f in ParquetStore(str(study)).files("trials")])
    assert len(raw) == 4 and raw["trial_id"].is_unique and set(raw["status"]) == {"completed"}
    assert (raw["resumed_from"] > 0).any()  # at least one in-flight trial continued from its checkpoint
    history = ParquetStore(str(study)).read("history")
    assert len(history) == 4 * 5 and not history.duplicated(["trial_id", "epoch"]).any()
    # final metrics equal uninterrupted runs of the same configs (Ray workers run on one thread)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        for row in raw.itertuples():
            cfg = TrainConfig(criterion=row.criterion, density=row.density, **BASE)
            final = list(train(cfg))[-1]
            assert row.final_test_accuracy == final["test_accuracy"], row.trial_id
            assert row.final_train_loss == final["train_loss"], row.trial_id
    finally:
        torch.set_num_threads(threads)


@pytest.mark.slow
def test_one_driver_per_study(tmp_path):
    spec = {"name": "k", "storage": str(tmp_path), "base": dict(BASE, epochs=200), "grid": {"density": [0.1]},
            "checkpoint_seconds": 0}
    path = tmp_path / "spec.yaml"
    path.write_text(yaml.safe_dump(spec))
    first = subprocess.Popen(_cli("run", str(path), "--num-cpus", "1"), stdout=subprocess.PIPE,
                             stderr=subprocess.STDOUT, text=True, env=ENV, start_new_session=True)
    try:
        deadline = time.time() + 120
        while not (tmp_path / "k" / "driver.lease").exists() and time.time() < deadline:
            time.sleep(0.1)
        second = subprocess.run(_cli("run", str(path)), capture_output=True, text=True, env=ENV, timeout=120)
        assert second.returncode == 2, second.stdout + second.stderr
        assert "another driver runs this study (host " in second.stderr and f"pid {first.pid}, since " in second.stderr
        assert second.stderr.count("\n") == 1 and not (tmp_path / "k" / "trials").exists()
    finally:
        os.killpg(first.pid, signal.SIGKILL)
        first.wait()
    from study.lease import StudyLease
    said = []
    with StudyLease(ParquetStore(str(tmp_path / "k")), log=said.append):  # the holder is gone: taken over
        pass
    assert "from a driver that is gone (host " in said[0] and f"its process {first.pid} on this host is gone" in said[0]
