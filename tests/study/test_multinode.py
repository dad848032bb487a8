"""A worker node dies mid-trial: the trial continues from its checkpoint on another node."""

import logging
import threading
import time

import pytest

from study.runner import plan, run
from study.spec import parse
from study.store import ParquetStore

ray = pytest.importorskip("ray")


@pytest.mark.slow
def test_lost_node_trial_resumes_elsewhere(tmp_path):
    from ray.cluster_utils import Cluster

    cluster = Cluster(initialize_head=True, head_node_args={"num_cpus": 0, "include_dashboard": False})
    doomed = cluster.add_node(num_cpus=1)
    cluster.add_node(num_cpus=1)
    cluster.wait_for_nodes()
    ray.init(address=cluster.address, log_to_driver=False, logging_level=logging.ERROR)
    try:
        assert len([n for n in ray.nodes() if n["Alive"]]) == 3
        spec = parse({"name": "m", "storage": str(tmp_path), "retries": 2, "checkpoint_seconds": 0,
                      # long enough that the second worker's start-up lag cannot let one trial finish
                      # before the other reaches epoch 2
                      "base": {"epochs": 12, "lr": 0.1, "batch_size": 16, "update_period": 50, "device": "cpu"},
                      "grid": {"seed": [0, 1]}})
        study = tmp_path / "m"
        removed = threading.Event()

        def kill_a_node_mid_trial():
            deadline = time.time() + 180
            while time.time() < deadline:  # both trials running (one per worker), past epoch 2, so
                # the driver has surely registered their epoch-1 checkpoints
                trials = {c.parts[-3] for c in study.glob("tune/*/*/checkpoint_*/checkpoint.pt")
                          if c.parts[-2] != "checkpoint_000000"}
                if len(trials) == 2 and not (study / "trials").exists():
                    cluster.remove_node(doomed)
                    removed.set()
                    return
                time.sleep(0.05)

        killer = threading.Thread(target=kill_a_node_mid_trial, daemon=True)
        killer.start()
        run(plan(spec), log=lambda line: None)
        killer.join(5)
        assert removed.is_set(), "no moment with both trials running was seen"
        trials = ParquetStore(str(study)).read("trials")
        assert len(trials) == 2 and set(trials["status"]) == {"completed"}
        assert (trials["epochs_done"] == 12).all()
        assert (trials["resumed_from"] > 0).sum() == 1  # the trial of the lost node continued, not restarted
    finally:
        ray.shutdown()
        cluster.shutdown()
