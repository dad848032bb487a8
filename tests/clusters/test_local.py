"""A Ray cluster started by hand, as clusters/local/README.md says: `ray start --head`, a second raylet
joined with `ray start --address`, a study run through `dst-study run --address`, and the worker
raylet killed mid-study. Its trial continues from its checkpoint on the head; nothing is lost.

Both raylets run on this host with ports of their own; only the processes started here are stopped
(by process group), never with `ray stop`, which stops every Ray of the user.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest
import yaml

from study.store import ParquetStore

BIN = Path(sys.executable).parent
# One auth mode for every process: Ray turns token auth on for a head that finds ~/.ray/auth_token
# but not for a raylet joining it (clusters/local/README.md says how to use tokens across hosts).
ENV = {**os.environ, "RAY_AUTH_MODE": "disabled", "RAY_USAGE_STATS_ENABLED": "0"}


def _free_ports(n: int) -> list[int]:
    sockets = [socket.socket() for _ in range(n)]
    try:
        for s in sockets:
            s.bind(("127.0.0.1", 0))
        return [s.getsockname()[1] for s in sockets]
    finally:
        for s in sockets:
            s.close()


def _node_ports() -> list[str]:
    """Every port a raylet opens, distinct from the other raylet's (both run on this host)."""
    names = ["node-manager-port", "object-manager-port", "dashboard-agent-listen-port",
             "dashboard-agent-grpc-port", "runtime-env-agent-port", "metrics-export-port"]
    # worker processes bind ports the OS picks (0), so the two raylets cannot hand out the same one
    return [f"--{name}={port}" for name, port in zip(names, _free_ports(len(names)))] + [
        "--min-worker-port=0", "--max-worker-port=0"]


def _start(args: list[str], log: Path) -> subprocess.Popen:
    # its own session, so the whole node (raylet, workers) can be killed as one process group
    return subprocess.Popen([str(BIN / "ray"), "start", "--num-cpus=1", "--num-gpus=0", "--block",
                             "--disable-usage-stats", *args, *_node_ports()],
                            env=ENV, stdout=log.open("w"), stderr=subprocess.STDOUT, start_new_session=True)


def _kill(node: subprocess.Popen, sig: int) -> None:
    try:
        os.killpg(node.pid, sig)
    except ProcessLookupError:
        pass


def _wait_for_nodes(address: str, n: int, nodes: list[subprocess.Popen], logs: Path, timeout: float = 90) -> None:
    time.sleep(2)
    for node in nodes:
        assert node.poll() is None, "a raylet did not start:\n" + "\n".join(
            f.read_text()[-2000:] for f in logs.glob("*.log"))
    probe = (f"import ray, time\nray.init(address={address!r}, logging_level='ERROR')\n"
             f"t = time.time()\nwhile sum(x['Alive'] for x in ray.nodes()) < {n} and time.time() - t < {timeout}:\n"
             "    time.sleep(0.5)\nprint(sum(x['Alive'] for x in ray.nodes()))\n")
    out = subprocess.run([sys.executable, "-c", probe], env=ENV, capture_output=True, text=True, timeout=timeout + 60)
    assert out.stdout.strip().endswith(str(n)), out.stdout + out.stderr


@pytest.fixture
def ray_cluster(tmp_path):
    """A head and a worker raylet, 1 CPU each; yields (address, worker process)."""
    port, dashboard_port = _free_ports(2)
    temp = tempfile.mkdtemp(prefix="ray", dir="/tmp")  # short: Ray's socket paths have a length limit
    head = _start(["--head", f"--port={port}", f"--dashboard-port={dashboard_port}", "--include-dashboard=false", f"--temp-dir={temp}"],
                  tmp_path / "head.log")
    nodes = [head]
    try:
        address = f"127.0.0.1:{port}"
        nodes.append(_start([f"--address={address}"], tmp_path / "worker.log"))
        _wait_for_nodes(address, 2, nodes, tmp_path)
        yield address, nodes[1]
    finally:
        for node in nodes:
            _kill(node, signal.SIGTERM)
        for node in nodes:
            try:
                node.wait(timeout=30)
            except subprocess.TimeoutExpired:
                _kill(node, signal.SIGKILL)


def _running_with_checkpoint(study_dir: Path) -> set[str]:
    """Trials still running that have a checkpoint the driver has taken in, the one a retry resumes from.

    A worker writes its checkpoints ahead of the driver, which lags on a loaded machine; the driver
    deletes a trial's previous checkpoint when it takes in the next (``StoreWriter.on_checkpoint``).
    So a trial whose first checkpoint is gone while a later one exists has one the driver knows; it
    is still running while the store has no row for it."""
    found = set()
    for trial in study_dir.glob("tune/*/*/"):
        names = sorted(p.name for p in trial.glob("checkpoint_*"))
        if names and names[0] != "checkpoint_000000":
            found.add(trial.name)
    store = ParquetStore(str(study_dir))
    return found - set(store.read("trials", ["trial_id"])["trial_id"]) if found and store.exists() else found


def test_study_survives_a_lost_worker_raylet(ray_cluster, tmp_path):
    address, worker = ray_cluster
    spec = {"name": "by-hand", "storage": str(tmp_path / "results"),
            "base": {"dataset": "mnist1d", "model": "mnist1d_mlp", "epochs": 40, "lr": 0.1, "device": "cpu",
                     "batch_size": 32},  # trials of ~8 s: both nodes are busy at once
            "grid": {"density": [0.1, 0.3], "seed": [0, 1]}, "resources": {"cpu": 1}, "retries": 2,
            "checkpoint_seconds": 0}
    (tmp_path / "spec.yaml").write_text(yaml.safe_dump(spec))
    study_dir = tmp_path / "results" / "by-hand"
    driver = subprocess.Popen([str(BIN / "dst-study"), "run", str(tmp_path / "spec.yaml"), "--address", address],
                              env=ENV, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        deadline = time.time() + 120
        while len(_running_with_checkpoint(study_dir)) < 2 and driver.poll() is None and time.time() < deadline:
            time.sleep(0.2)  # a trial runs on each node, with a checkpoint the driver has taken in
        assert driver.poll() is None and time.time() < deadline, "no time when both nodes ran a trial"
        _kill(worker, signal.SIGKILL)  # the node is lost: its raylet and its trial's worker die at once
        out, _ = driver.communicate(timeout=300)
    finally:
        if driver.poll() is None:
            driver.kill()
    assert driver.returncode == 0, out
    assert "Ray: 2 nodes, 2 CPUs, 0 GPUs" in out  # the driver joined the cluster started by hand
    trials = ParquetStore(str(study_dir)).read("trials")
    assert len(trials) == 4 and trials["trial_id"].is_unique, out
    assert set(trials["status"]) == {"completed"} and (trials["epochs_done"] == 40).all()
    assert (trials["resumed_from"] >= 1).any(), ("the lost node's trial should continue from its checkpoint",
                                                 trials[["resumed_from", "started_at", "ended_at"]], out)
    assert len(ParquetStore(str(study_dir)).read("history")) == 4 * 40  # no epoch lost or doubled
