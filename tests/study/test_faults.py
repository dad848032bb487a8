"""Faults that used to lose results or end in tracebacks: a lease lost to a second driver, a full disk."""

import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time

import pandas as pd
import pyarrow.parquet as pq
import pytest
import yaml

from study.folder import LEASE
from study.store import ParquetStore

pytest.importorskip("ray")

BASE = {"lr": 0.1, "batch_size": 32, "update_period": 10, "device": "cpu"}
ENV = dict(os.environ, RAY_USAGE_STATS_ENABLED="0")


def _cli(*args):
    return [sys.executable, "-m", "study.cli", *args]


def _spec(tmp_path, name, storage, **fields):
    path = tmp_path / f"{name}.yaml"
    path.write_text(yaml.safe_dump({"name": name, "storage": str(storage), "checkpoint_seconds": 0, **fields}))
    return path


def _wait(predicate, what, timeout=240, driver=None):
    deadline = time.time() + timeout
    while time.time() < deadline:
        if predicate():
            return
        time.sleep(0.1)
    if driver is not None:
        driver.kill()
        what += ":\n" + driver.communicate()[0]
    pytest.fail(f"timed out waiting for {what}")


def _raw_trials(study):
    return pd.concat([pq.read_table(f).to_pandas() for f in ParquetStore(str(study)).files("trials")])


@pytest.mark.slow
def test_a_driver_that_loses_its_lease_stops_and_no_completed_result_is_lost(tmp_path):
    """The lease is deleted while a study runs and a second driver starts on the same spec: the
    first stops (exit 130, one line naming the second), the second finishes, nothing is failed."""
    spec = _spec(tmp_path, "two", tmp_path, base=dict(BASE, epochs=60), max_concurrent=2,
                 grid={"criterion": ["magnitude", "set"], "density": [0.1, 0.2, 0.3]})
    study = tmp_path / "two"
    first = subprocess.Popen(_cli("run", str(spec), "--num-cpus", "2"), stdout=subprocess.PIPE,
                             stderr=subprocess.PIPE, text=True, env=ENV, start_new_session=True)
    second = None
    try:
        def heartbeat():
            try:
                return json.loads((study / LEASE).read_text())["heartbeat"]
            except (OSError, ValueError):
                return None
        _wait(lambda: heartbeat() is not None, "the lease", driver=first)
        claimed = heartbeat()
        _wait(lambda: heartbeat() not in (None, claimed), "a heartbeat", driver=first)
        # just after a beat: the second driver claims the lease well before the first beats again
        (study / LEASE).unlink()
        done_before = set(_raw_trials(study)["trial_id"]) if (study / "trials").exists() else set()
        second = subprocess.Popen(_cli("run", str(spec), "--num-cpus", "2"), stdout=subprocess.PIPE,
                                  stderr=subprocess.PIPE, text=True, env=ENV, start_new_session=True)
        out, err = first.communicate(timeout=240)
        assert first.returncode == 130, out + err
        assert re.fullmatch(rf"dst-study: stopped: another driver took over {study} \(host .*, pid {second.pid}, "
                            r"since .*\); this driver's running trials kept their checkpoints\n", err), err
        out2, err2 = second.communicate(timeout=400)
        assert second.returncode == 0, out2 + err2
    finally:
        for driver in (first, second):
            if driver is not None and driver.poll() is None:
                os.killpg(driver.pid, signal.SIGKILL)
                driver.wait()
    trials = ParquetStore(str(study)).read("trials")
    assert len(trials) == 6 and set(trials["status"]) == {"completed"}, trials[["trial_id", "status", "error"]]
    assert done_before <= set(trials["trial_id"])
    assert not (study / LEASE).exists()


def _mount_tmpfs(folder, size):
    if os.geteuid() != 0 or shutil.which("mount") is None:
        pytest.skip("a small tmpfs is mounted to fill a disk: needs root and mount(8)")
    folder.mkdir(exist_ok=True)
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(folder)],
                          capture_output=True, text=True)
    if done.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {done.stderr.strip()}")


@pytest.mark.slow
def test_a_full_disk_stops_the_study_in_one_line_and_resume_finishes_it(tmp_path):
    disk = tmp_path / "disk"
    _mount_tmpfs(disk, "2m")  # room for the spec and two or three 0.7 MB checkpoints
    try:
        spec = _spec(tmp_path, "full", disk, base=dict(BASE, epochs=5), retries=0,
                     grid={"criterion": ["magnitude", "set", "snip"], "density": [0.1, 0.3]})
        study = disk / "full"
        run = subprocess.run(_cli("run", str(spec), "--num-cpus", "2"), capture_output=True, text=True, env=ENV,
                             timeout=400)
        assert run.returncode == 1, run.stdout + run.stderr
        assert "Traceback" not in run.stdout + run.stderr, run.stdout + run.stderr
        assert re.fullmatch(rf"dst-study: error: no space left on {disk} \(the filesystem of {study}, \d+ KiB free\)"
                            rf".*; the study stopped, what is done is kept: free space, then `dst-study resume "
                            rf"{study}` continues it\n", run.stderr), run.stderr
        leftovers = [p for p in study.rglob("*") if ".tmp" in p.name]
        assert leftovers == [], leftovers

        status = subprocess.run(_cli("status", str(study)), capture_output=True, text=True, env=ENV, timeout=120)
        assert status.returncode == 0 and "STUDY" not in status.stdout, status.stdout + status.stderr
        assert f"`dst-study resume {study}` finishes it" in status.stdout, status.stdout
        claimed = {m[0]: int(m[1]) for m in re.findall(r"missing (\w+) \(.*, checkpoint at epoch (\d+)\)",
                                                       status.stdout)}
        assert "unusable" not in status.stdout, status.stdout
        done = set(_raw_trials(study)["trial_id"]) if (study / "trials").exists() else set()

        subprocess.run(["mount", "-o", "remount,size=64m", str(disk)], check=True)
        resumed = subprocess.run(_cli("resume", str(study), "--num-cpus", "2"), capture_output=True, text=True,
                                 env=ENV, timeout=400)
        assert resumed.returncode == 0, resumed.stdout + resumed.stderr
        assert f"{len(done)} done, {6 - len(done)} to run ({len(claimed)} from checkpoints)" in resumed.stdout
        raw = _raw_trials(study)
        assert len(raw) == 6 and raw["trial_id"].is_unique and set(raw["status"]) == {"completed"}
        resumed_from = dict(zip(raw["trial_id"], raw["resumed_from"]))
        assert {i: resumed_from[i] for i in claimed} == claimed  # each from the epoch status named
        assert all(resumed_from[i] == 0 for i in set(resumed_from) - set(claimed) - done)
    finally:
        subprocess.run(["umount", "-l", str(disk)], capture_output=True)
