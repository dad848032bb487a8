"""`run --rerun-outdated` after a plugin's source changed: the outdated trial trains again from epoch 0
(its final checkpoint, made by the old code, is never resumed), its new rows carry the new code's
hash, and the rows of the old code are kept in the study's ``superseded/`` folder.

The runs are real ``dst-study run`` processes, as a user edits a plugin between two of them."""

import hashlib
import json
import subprocess
import sys

import pytest
import yaml

from study.runner import plan
from study.spec import load
from study.store import ParquetStore
from study.store.parquet import code_key

pytestmark = pytest.mark.slow

PLUGIN = '''
import dst_core


@dst_core.register_criterion("mine", needs_grad=False, paper_order="after_step", description="a test's score")
def score(w, g, mask, generator=None):
    return {score}
'''
ENV_KEYS = ("PATH", "HOME", "DST_STUDY_CACHE", "LANG")


def _run(folder, *args):
    import os

    env = {k: os.environ[k] for k in ENV_KEYS if k in os.environ}
    env.update(RAY_USAGE_STATS_ENABLED="0", PYTHONPATH=os.pathsep.join(sys.path))
    return subprocess.run([sys.executable, "-m", "study.cli", "run", "spec.yaml", "--num-cpus", "2", *args],
                          cwd=folder, env=env, capture_output=True, text=True, timeout=300)


def _sha(path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_an_edited_plugin_is_trained_again_and_no_row_carries_code_that_did_not_compute_it(
        tmp_path, monkeypatch, forget_plugins):
    plugin = tmp_path / "mine_plug.py"
    plugin.write_text(PLUGIN.format(score="w.abs()"))  # magnitude, written again
    (tmp_path / "spec.yaml").write_text(yaml.safe_dump({
        "name": "r", "storage": str(tmp_path / "results"), "plugins": ["mine_plug"], "checkpoint_seconds": 0,
        "base": {"epochs": 3, "lr": 0.1, "batch_size": 256, "update_period": 5, "device": "cpu", "density": 0.2},
        "grid": {"criterion": ["mine", "magnitude"]}}))
    first = _run(tmp_path)
    assert first.returncode == 0, first.stderr
    study = ParquetStore(str(tmp_path / "results" / "r"))
    before = study.read("trials").set_index("criterion")
    history_before = study.read("history").set_index("trial_id")
    mine = before.loc["mine", "trial_id"]
    assert [e["sha256"] for e in json.loads(before.loc["mine", "plugins"])] == [_sha(plugin)]
    old_sha = _sha(plugin)

    plugin.write_text(PLUGIN.format(score="-w.abs()"))  # now it removes the largest weights
    second = _run(tmp_path, "--rerun-outdated")
    assert second.returncode == 0, second.stderr
    assert "1 trials of older code run again from epoch 0; the rows they have now are kept in" in second.stdout

    after = study.read("trials").set_index("criterion")
    row = after.loc["mine"]
    assert [e["sha256"] for e in json.loads(row["plugins"])] == [_sha(plugin)] != [old_sha]
    assert row["resumed_from"] == 0 and row["epochs_done"] == 3  # trained every epoch again
    history = study.read("history").set_index("trial_id")
    assert len(history.loc[mine]) == 3
    assert (history.loc[mine, "train_loss"].to_numpy() != history_before.loc[mine, "train_loss"].to_numpy()).all()
    # the built-in trial was not outdated: its row is the one the first run wrote
    assert after.loc["magnitude", "ended_at"] == before.loc["magnitude", "ended_at"]

    # the old code's rows are kept, whole, under the old code's name
    kept_store = ParquetStore(f"{study.root}/superseded/{code_key(2, before.loc['mine', 'plugins'])}")
    old = kept_store.read("trials")
    assert list(old["trial_id"]) == [mine] and old["plugins"].iloc[0] == before.loc["mine", "plugins"]
    kept_history = kept_store.read("history").set_index("epoch")["train_loss"]
    assert kept_history.to_numpy().tolist() == history_before.loc[mine, "train_loss"].to_numpy().tolist()

    # with the new code imported, nothing is outdated: asking again runs nothing
    monkeypatch.chdir(tmp_path)
    again = plan(load("spec.yaml", plugins=[]), rerun_outdated=True)
    assert not again.missing and not again.rerun and len(again.finished) == 2
