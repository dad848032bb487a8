"""A study on S3 from start to end, against a real S3-compatible server (moto's) on 127.0.0.1: run, a
driver killed by SIGKILL, resume (in-flight trials continue from their checkpoints), --retry-failed,
compact, status, query and report. The endpoint and credentials reach the CLI, Ray's workers and this
process through the environment, as README says."""

import json
import os
import signal
import socket
import subprocess
import sys
import time

import pytest
import yaml

pytest.importorskip("ray")
pafs = pytest.importorskip("pyarrow.fs")

from dst_core import TrainConfig  # noqa: E402
from study.store import ParquetStore  # noqa: E402
from study.trial_id import trial_id  # noqa: E402

BASE = {"epochs": 5, "lr": 0.1, "batch_size": 32, "update_period": 10, "device": "cpu"}  # ~2 s a trial
BUCKET = "dst"


def _cli(*args):
    return [sys.executable, "-m", "study.cli", *args]


@pytest.fixture
def s3(tmp_path, monkeypatch):
    """moto's S3 server on a free port with a bucket; the environment that reaches it."""
    try:
        import moto.server  # noqa: F401
    except ImportError as e:
        pytest.skip(f"moto's S3 server is not installed (pip install 'moto[server]'): {e}")
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    log = open(tmp_path / "moto.log", "w")
    server = subprocess.Popen([sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
                              stdout=log, stderr=subprocess.STDOUT)
    env = {"AWS_ENDPOINT_URL": f"http://127.0.0.1:{port}", "AWS_ACCESS_KEY_ID": "testing",
           "AWS_SECRET_ACCESS_KEY": "testing", "AWS_DEFAULT_REGION": "us-east-1", "AWS_EC2_METADATA_DISABLED": "true"}
    try:
        deadline = time.time() + 30
        while True:
            try:
                pafs.S3FileSystem(endpoint_override=f"127.0.0.1:{port}", scheme="http", access_key="testing",
                                  secret_key="testing", region="us-east-1",
                                  allow_bucket_creation=True).create_dir(BUCKET)
                break
            except OSError as e:
                if server.poll() is not None or time.time() > deadline:
                    pytest.skip(f"moto's S3 server did not start on 127.0.0.1:{port}: {e}: "
                                f"{(tmp_path / 'moto.log').read_text()[-500:]}")
                time.sleep(0.2)
        for key, value in env.items():
            monkeypatch.setenv(key, value)
        yield dict(os.environ, RAY_USAGE_STATS_ENABLED="0", **env)
    finally:
        server.kill()
        server.wait()
        log.close()


def _stored(study):
    store = ParquetStore(study)
    return set(store.read("trials", ["trial_id"])["trial_id"]) if store.exists() else set()


def _checkpointed(study):
    """Trial ids with a checkpoint under the study's tune/ folder."""
    store = ParquetStore(study)
    infos = store.fs.get_file_info(pafs.FileSelector(f"{store.path}/tune", allow_not_found=True, recursive=True))
    return {i.path.split("/")[-3] for i in infos if i.path.endswith("/checkpoint.pt")}


@pytest.mark.slow
def test_a_study_on_s3_survives_a_killed_driver_and_a_failed_trial(tmp_path, s3):
    study = f"s3://{BUCKET}/pre/s3study"
    # one trial fails at epoch 2 whatever the attempt (until the fault file goes), after its
    # checkpoint of epoch 1: --retry-failed continues it from there
    fault = tmp_path / "fault.json"
    fault.write_text(json.dumps({"epoch": 2, "times": -1, "dir": str(tmp_path / "marks"),
                                 "match": {"criterion": "set", "density": 0.3}}))
    failing = trial_id(TrainConfig(criterion="set", density=0.3, **BASE))
    env = dict(s3, DST_STUDY_FAULT_FILE=str(fault))
    spec = tmp_path / "spec.yaml"
    spec.write_text(yaml.safe_dump({"name": "s3study", "storage": f"s3://{BUCKET}/pre", "base": BASE,
                                    "checkpoint_seconds": 0, "retries": 1, "max_concurrent": 2,
                                    "grid": {"criterion": ["magnitude", "set"], "density": [0.1, 0.3]}}))
    driver = subprocess.Popen(_cli("run", str(spec), "--num-cpus", "2"), stdout=subprocess.PIPE,
                              stderr=subprocess.STDOUT, text=True, env=env, start_new_session=True)
    try:
        deadline = time.time() + 240
        # mid-way: a trial stored, another (not the failing one) with a checkpoint and no row
        while not (_stored(study) and _checkpointed(study) - _stored(study) - {failing}):
            if time.time() > deadline or driver.poll() is not None:
                driver.kill()
                pytest.fail("the study never got going:\n" + driver.communicate()[0])
            time.sleep(0.2)
    finally:
        os.killpg(driver.pid, signal.SIGKILL)  # the driver and the Ray it started
        driver.wait()
    time.sleep(1)  # an upload the server had all of when its sender was killed still lands
    done, in_flight = _stored(study), _checkpointed(study) - _stored(study)

    status = subprocess.run(_cli("status", study), capture_output=True, text=True, env=env, timeout=120)
    assert status.returncode == 0, status.stdout + status.stderr
    assert status.stdout.count(", checkpoint at epoch ") == len(in_flight), status.stdout

    resumed = subprocess.run(_cli("resume", study, "--num-cpus", "2"), capture_output=True, text=True, env=env,
                             timeout=400)
    assert f"{len(done)} done, {4 - len(done)} to run ({len(in_flight)} from checkpoints)" in resumed.stdout, \
        resumed.stdout + resumed.stderr
    trials = ParquetStore(study).read("trials").set_index("trial_id")
    failed = list(trials.index[trials["status"] == "failed"])
    assert len(trials) == 4 and failed == [failing], trials[["status", "error"]]
    assert resumed.returncode == 1, resumed.stdout + resumed.stderr  # the study holds a failed trial
    assert "injected fault" in trials.loc[failing, "error"], trials.loc[failing, "error"]
    continued = list(in_flight - {failing})  # from their newest checkpoints
    assert continued and (trials.loc[continued, "resumed_from"] > 0).all(), trials["resumed_from"]

    fault.unlink()
    retried = subprocess.run(_cli("run", str(spec), "--retry-failed", "--num-cpus", "2"), capture_output=True,
                             text=True, env=env, timeout=400)
    assert retried.returncode == 0, retried.stdout + retried.stderr
    assert "3 done, 1 to run (1 from checkpoints)" in retried.stdout, retried.stdout
    trials = ParquetStore(study).read("trials").set_index("trial_id")
    assert set(trials["status"]) == {"completed"} and trials.loc[failing, "resumed_from"] > 0, trials
    history = ParquetStore(study).read("history")
    assert len(history) == 4 * 5 and not history.duplicated(["trial_id", "epoch"]).any()

    for args in (("compact", study), ("status", study), ("query", study, "--where", "density < 0.2"),
                 ("report", study, "--out", str(tmp_path / "report"))):
        out = subprocess.run(_cli(*args), capture_output=True, text=True, env=env, timeout=120)
        assert out.returncode == 0, f"{args}: {out.stdout}{out.stderr}"
        if args[0] == "status":
            assert f"{study}: 4 trials: 4 completed" in out.stdout, out.stdout
    assert len(ParquetStore(study).files("trials")) == 1
    assert (tmp_path / "report" / "index.html").is_file()


def test_a_query_string_in_storage_is_refused_in_one_line(tmp_path):
    spec = tmp_path / "spec.yaml"
    spec.write_text(yaml.safe_dump({"name": "q", "storage": "s3://b/pre?endpoint_override=127.0.0.1:9000&scheme=http",
                                    "base": BASE, "grid": {"density": [0.1]}}))
    for command in ("validate", "run"):
        done = subprocess.run(_cli(command, str(spec), *(["--dry-run"] if command == "run" else [])),
                              capture_output=True, text=True, timeout=120)
        assert done.returncode == 2, done.stdout + done.stderr
        assert "storage: " in done.stderr and "AWS_ENDPOINT_URL" in done.stderr, done.stderr
        assert "Traceback" not in done.stderr
