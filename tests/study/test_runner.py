"""Studies through Ray Tune: missing trials only, retries from checkpoints, failures, GPU packing.

One private local Ray (2 CPUs, 1 logical GPU) serves the module; the runner joins it. The
fault-injection file is named in the environment before Ray starts, so workers see it.
"""

import json
import logging
import os

import pandas as pd
import pyarrow.parquet as pq
import pytest

from dst_core import TrainConfig, Trainer
from study.queries import most_at_once
from study.runner import plan, run
from study.runners.ray_tune import FAULT_ENV
from study.spec import parse
from study.store import ParquetStore

ray = pytest.importorskip("ray")

BASE = {"epochs": 3, "lr": 0.1, "batch_size": 256, "update_period": 5, "device": "cpu"}


@pytest.fixture(scope="module")
def fault_file(tmp_path_factory):
    path = tmp_path_factory.mktemp("faults") / "fault.json"
    os.environ[FAULT_ENV] = str(path)
    os.environ["RAY_USAGE_STATS_ENABLED"] = "0"
    ray.init(address="local", num_cpus=2, num_gpus=1, include_dashboard=False, log_to_driver=False,
             logging_level=logging.ERROR)
    yield path
    ray.shutdown()
    del os.environ[FAULT_ENV]


def _spec(tmp_path, grid, **extra):
    return parse({"name": "s", "storage": str(tmp_path), "base": {**BASE, **extra.pop("base", {})},
                  "grid": grid, "checkpoint_seconds": 0, **extra})  # a checkpoint every epoch


def _raw_trials(study_dir):
    return pd.concat([pq.read_table(f).to_pandas() for f in ParquetStore(study_dir).files("trials")])


def test_grid_runs_once_then_only_what_is_missing(tmp_path, fault_file, monkeypatch, capsys):
    spec = _spec(tmp_path, {"criterion": ["magnitude", "snip"], "density": [0.1, 0.3]})
    lines = []
    run(plan(spec), log=lines.append)
    assert lines[0] == "Ray: 1 node, 2 CPUs, 1 GPUs"  # the module's Ray, as the driver sees it
    lines = lines[1:]
    assert len(lines) == 4 and lines[-1].startswith("[4/4 | 4 done, 0 running, 0 failed | ETA 0s] ")
    assert sorted(line.split("] ")[1].split(":")[0] for line in lines) == [
        f"{c}/random density {d} seed 0" for c in ("magnitude", "snip") for d in (0.1, 0.3)]
    trials = ParquetStore(spec.study_dir).read("trials")
    assert len(trials) == 4 and set(trials["status"]) == {"completed"}
    assert (trials["epochs_done"] == 3).all() and (trials["resumed_from"] == 0).all()
    assert len(ParquetStore(spec.study_dir).read("history")) == 4 * 3
    assert plan(spec).missing == []  # running the spec again runs nothing

    extended = _spec(tmp_path, {"criterion": ["magnitude", "snip"], "density": [0.1, 0.3, 0.5]})
    from study.runner import save_spec
    from study.cli import main
    save_spec(extended)  # as `dst-study run` does before it starts
    assert main(["status", spec.study_dir]) == 0
    out = capsys.readouterr().out
    assert "spec: 6 trials, 2 missing" in out
    assert sorted(line.split("(")[1] for line in out.splitlines() if line.startswith("  missing ")) == [
        "magnitude/random density 0.5 seed 0)", "snip/random density 0.5 seed 0)"]
    p = plan(extended)
    assert sorted(t.config.density for t in p.missing) == [0.5, 0.5] and len(p.finished) == 4
    monkeypatch.setattr("study.runner.COMPACT_ABOVE", 5)  # 6 parts after this run: compacted
    run(p, log=lambda line: None)
    raw = _raw_trials(spec.study_dir)
    assert len(raw) == 6 and raw["trial_id"].is_unique  # nothing duplicated, nothing re-run
    assert len(ParquetStore(spec.study_dir).files("trials")) == 1


def test_retry_resumes_from_checkpoint_and_failures_are_recorded(tmp_path, fault_file):
    marks = tmp_path / "marks"
    fault_file.write_text(json.dumps({"epoch": 2, "times": 1, "dir": str(marks), "match": {"density": 0.2}}))
    spec = _spec(tmp_path, {"density": [0.1, 0.2]}, retries=1)
    try:
        run(plan(spec), log=lambda line: None)
    finally:
        fault_file.unlink()
    trials = ParquetStore(spec.study_dir).read("trials").set_index("density")
    assert set(trials["status"]) == {"completed"}
    assert trials.loc[0.2, "resumed_from"] == 1  # the retry started from the epoch-1 checkpoint, not 0
    assert trials.loc[0.1, "resumed_from"] == 0
    # the resumed trial ends exactly where an uninterrupted run ends (Ray workers use one thread)
    import torch
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        t = Trainer(TrainConfig(density=0.2, **BASE))
        list(t.epochs())
    finally:
        torch.set_num_threads(threads)
    assert trials.loc[0.2, "final_test_accuracy"] == t.history[-1]["test_accuracy"]
    assert trials.loc[0.2, "final_train_loss"] == t.history[-1]["train_loss"]

    fault_file.write_text(json.dumps({"epoch": 1, "times": -1, "dir": str(marks), "match": {"density": 0.4}}))
    spec2 = _spec(tmp_path / "2", {"density": [0.3, 0.4]}, retries=1)
    try:
        run(plan(spec2), log=lambda line: None)
    finally:
        fault_file.unlink()
    trials = ParquetStore(spec2.study_dir).read("trials").set_index("density")
    assert trials.loc[0.3, "status"] == "completed"
    assert trials.loc[0.4, "status"] == "failed" and "injected fault at epoch 1" in trials.loc[0.4, "error"]
    assert len(list((marks).glob("*/*"))) >= 1 + 2  # one earlier fault + first attempt and one retry
    assert plan(spec2).missing == [] and len(plan(spec2, retry_failed=True).missing) == 1


def test_an_error_that_a_retry_would_raise_again_fails_the_trial_at_once(tmp_path, fault_file):
    marks = tmp_path / "marks"  # one file per attempt that met the fault
    fault_file.write_text(json.dumps({"epoch": 2, "times": -1, "dir": str(marks), "diverge": True,
                                      "match": {"density": 0.2}}))
    spec = _spec(tmp_path, {"density": [0.1, 0.2]}, retries=2)
    lines = []
    try:
        run(plan(spec), log=lines.append)
    finally:
        fault_file.unlink()
    trials = ParquetStore(spec.study_dir).read("trials").set_index("density")
    assert trials.loc[0.1, "status"] == "completed"
    row = trials.loc[0.2]
    assert row["status"] == "failed" and row["epochs_done"] == 1  # the last checkpoint Tune was given
    assert row["error"].count("Traceback") == 1 and \
        row["error"].strip().endswith("Diverged: injected fault at epoch 2 (attempt 1)")
    assert len(list(marks.glob("*/*"))) == 1  # one attempt: retries=2 was not spent on it
    assert any("FAILED: dst_core.errors.Diverged: injected fault at epoch 2 (attempt 1)" in line for line in lines)


def test_fractional_gpus_pack_four_trials(tmp_path, fault_file):
    import torch
    spec = _spec(tmp_path, {"seed": list(range(8))}, resources={"cpu": 0.25, "gpu": 0.25},
                 base={"epochs": 10, "batch_size": 32})  # long enough for all four to overlap
    run(plan(spec), log=lambda line: None)
    trials = ParquetStore(spec.study_dir).read("trials")
    assert len(trials) == 8 and set(trials["status"]) == {"completed"}
    expected = "cuda:0" if torch.cuda.is_available() else "cpu"
    assert set(trials["device_used"]) == {expected}
    # most trials running at one moment: 4 (1 logical GPU / 0.25), never more
    assert most_at_once(trials) == 4


def test_trial_whose_final_checkpoint_outlived_its_driver_is_stored(tmp_path, fault_file):
    # a driver died after the trial's last epoch was checkpointed but before its row was written
    spec = _spec(tmp_path, {"density": [0.2]})
    trial = spec.trials()[0]
    cfg = trial.config
    left = tmp_path / "s" / "tune" / "wave-0" / trial.id / "checkpoint_000002"
    uninterrupted = list(Trainer(cfg, checkpoint_dir=left).epochs())
    p = plan(spec)
    assert list(p.resume_from) == [trial.id]
    run(p, log=lambda line: None)
    row = ParquetStore(spec.study_dir).read("trials").iloc[0]
    assert row["status"] == "completed" and row["resumed_from"] == 3 and row["epochs_done"] == 3
    assert row["final_test_accuracy"] == uninterrupted[-1]["test_accuracy"]
    assert len(ParquetStore(spec.study_dir).read("history")) == 3


def test_optuna_search_writes_n_rows_and_a_resumed_search_continues(tmp_path, fault_file, capfd):
    import optuna
    search = {"mode": "max", "seed": 3,  # the default metric: best_val_accuracy
              "space": {"density": {"loguniform": [0.05, 0.5]}, "criterion": {"choice": ["magnitude", "snip"]}}}
    base = {"name": "o", "storage": str(tmp_path), "base": {**BASE, "epochs": 2}}
    first = {**base, "base": {**BASE, "epochs": 25}}  # long enough to overlap, however late a worker starts
    run(plan(parse({**first, "search": {**search, "n_trials": 2}})), log=lambda line: None)
    trials = ParquetStore(str(tmp_path / "o")).read("trials")
    assert len(trials) == 2
    # a search uses every slot (2 CPUs, 1 per trial): its trials ran at the same time
    assert trials["started_at"].max() < trials["ended_at"].min()
    bigger = parse({**base, "search": {**search, "n_trials": 4}})  # e.g. rerun after a kill, or extended
    assert len(plan(bigger).finished) == 2
    run(plan(bigger), log=lambda line: None)
    trials = ParquetStore(str(tmp_path / "o")).read("trials")
    assert len(trials) == 4 and set(trials["status"]) == {"completed"}  # N, not N + done
    # a sampled trial's id follows the documented rule (its config's hash), not Ray Tune's own id
    from study.trial_id import trial_id
    assert [row.trial_id for row in trials.itertuples()] == [
        trial_id(TrainConfig(**{**BASE, "epochs": int(row.epochs), "density": float(row.density),
                                "criterion": str(row.criterion)})) for row in trials.itertuples()]
    assert trials["density"].between(0.05, 0.5).all() and set(trials["criterion"]) <= {"magnitude", "snip"}
    study = optuna.load_study(study_name="o", storage=f"sqlite:///{tmp_path / 'o' / 'optuna.db'}")
    assert len(study.trials) == 4  # one Optuna study, continued
    # it optimised each trial's best validation accuracy, as the trials table holds it, not a test accuracy
    assert sorted(t.value for t in study.trials) == sorted(trials["best_val_accuracy"])
    assert sorted(t.value for t in study.trials) != sorted(trials["test_accuracy_at_best_val"])
    assert "study" not in capfd.readouterr().err  # Optuna's own log lines show only with --verbose


@pytest.mark.parametrize("stopped", [False, True])
def test_waves_run_in_turn_and_a_stopped_wave_ends_the_study(tmp_path, monkeypatch, stopped):
    """Waves of WAVE_SIZE trials run one after another; one that Tune stopped (Ctrl-C, SIGTERM:
    trials without a row) ends the study there. Tune is replaced by a stand-in that stores rows."""
    from study.runners import ray_tune
    from study.trial import trial_row, utc_now

    waves = []

    def fake_wave(configs, store, **kwargs):
        waves.append(len(configs))
        done = configs[:-1] if stopped else configs  # a stopped wave leaves its last trial unstored
        store.append([trial_row(t, [], status="failed", started_at=utc_now()) for t in done], [], [])

    monkeypatch.setattr("study.runner.WAVE_SIZE", 2)
    monkeypatch.setattr(ray_tune, "run_wave", fake_wave)
    monkeypatch.setattr(ray_tune, "start_ray", lambda *args: False)
    monkeypatch.setattr(ray_tune, "describe_cluster", lambda: "Ray: stand-in")
    spec = _spec(tmp_path, {"density": [0.1, 0.2, 0.3, 0.4, 0.5]})
    run(plan(spec), log=lambda line: None)
    assert waves == ([2] if stopped else [2, 2, 1])
    assert len(plan(spec).missing) == (4 if stopped else 0)


def test_resources_no_node_has_are_refused_not_waited_for(fault_file, tmp_path):
    from study.spec import SpecError
    spec = _spec(tmp_path, {"density": [0.1]}, resources={"cpu": 1000})
    with pytest.raises(SpecError, match=r"a trial asks for 1000 CPU and 0 GPU but no node of this Ray has that "
                                        r"\(nodes: 2 CPUs, 1 GPUs\)"):
        run(plan(spec), log=lambda line: None)
    assert ParquetStore(spec.study_dir).read("trials").empty


def test_a_failed_trial_is_one_line_without_verbose(fault_file, tmp_path, capfd):
    import yaml
    from study.cli import main
    spec = tmp_path / "spec.yaml"
    spec.write_text(yaml.safe_dump({"name": "s", "storage": str(tmp_path), "base": BASE, "grid": {"density": [0.1]},
                                    "retries": 0}))
    fault_file.write_text(json.dumps({"epoch": 1, "times": -1, "dir": str(tmp_path / "marks")}))
    try:
        assert main(["run", str(spec)]) == 1
    finally:
        fault_file.unlink()
    out, err = capfd.readouterr()
    assert "FAILED: RuntimeError: injected fault at epoch 1" in out
    assert "Traceback" not in out + err  # Tune's copy of the traceback shows only with --verbose
    # every trial failed, so there is no table: a closing line says so and how to run them again
    assert err.strip().splitlines()[-1] == (f"dst-study: 1 of 1 trials failed; `dst-study status {tmp_path}/s` shows "
                                            f"their errors, `dst-study run {spec} --retry-failed` runs them again")


def test_a_moved_study_resumes_in_its_folder(fault_file, tmp_path, monkeypatch, capsys):
    import shutil
    from study.cli import main
    from study.runner import save_spec
    spec = _spec(tmp_path / "first", {"density": [0.1, 0.2]})
    run(plan(_spec(tmp_path / "first", {"density": [0.1]})), log=lambda line: None)
    save_spec(spec)  # the spec grew by a density: one trial is missing
    moved = tmp_path / "elsewhere" / "renamed"
    moved.parent.mkdir()
    shutil.move(spec.study_dir, moved)
    monkeypatch.chdir(tmp_path / "elsewhere")
    assert main(["resume", str(moved)]) == 0
    out = capsys.readouterr().out
    assert f"1 done, 1 to run (0 from checkpoints) -> {moved}" in out
    assert sorted(ParquetStore(str(moved)).read("trials")["density"]) == [0.1, 0.2]
    assert not (tmp_path / "first" / "s").exists()  # no second copy of the study where it began


def test_status_and_query_of_a_study_with_only_its_saved_spec(fault_file, tmp_path, capsys):
    from study.cli import main
    from study.runner import save_spec
    spec = _spec(tmp_path, {"density": [0.1, 0.2]})
    save_spec(spec)  # what a driver killed before its first result leaves
    assert main(["status", spec.study_dir]) == 0
    assert "0 trials" in capsys.readouterr().out
    assert main(["query", spec.study_dir]) == 0


def test_trials_of_an_older_algorithm_revision_count_as_done_until_asked(tmp_path):
    from datetime import datetime, timezone
    from study.trial import trial_row
    spec = _spec(tmp_path, {"density": [0.1, 0.2]})
    first, second = spec.trials()
    store = ParquetStore(spec.study_dir)
    now = datetime.now(timezone.utc)
    old = trial_row(first, [], status="completed", started_at=now)
    old["algorithm_revision"] = None  # written before revisions were recorded: revision 1
    store.append([old, trial_row(second, [], status="completed", started_at=now)])
    p = plan(spec)
    assert p.missing == [] and len(p.finished) == 2 and p.outdated == {old["trial_id"]}
    again = plan(spec, rerun_outdated=True)
    assert [t.config.density for t in again.missing] == [0.1] and again.outdated == set()
