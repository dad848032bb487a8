"""`dst-study export`: one run per trial in TensorBoard, MLflow and W&B (offline), read back with each
tool's own reader; exporting again writes only new or changed trials; --follow exports while a driver
runs; export reads the study only. Nothing contacts a server: W&B is offline, MLflow a SQLite file."""

import json
import subprocess
import sys
import threading
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest

from study.cli import main
from study.export import export
from study.lease import StudyLease
from study.runner import save_spec
from study.spec import parse
from study.store import ParquetStore
from study.trial import result_rows

ROOT = Path(__file__).resolve().parents[2]
T0 = datetime(2026, 1, 1, tzinfo=timezone.utc)
EPOCHS = 3


def _needs(library: str) -> None:
    pytest.importorskip(library, reason="the export extra is not installed: pip install -e '.[export]'")


@pytest.fixture(autouse=True)
def _offline(monkeypatch, tmp_path):
    monkeypatch.setenv("WANDB_MODE", "offline")
    monkeypatch.setenv("WANDB_SILENT", "true")
    monkeypatch.setenv("WANDB_ERROR_REPORTING", "false")
    for name in ("WANDB_CONFIG_DIR", "WANDB_CACHE_DIR", "WANDB_DATA_DIR"):  # never the user's home
        monkeypatch.setenv(name, str(tmp_path / "wandb-home"))
    monkeypatch.setenv("MLFLOW_DISABLE_TELEMETRY", "true")


def _history(acc: float) -> list[dict]:
    return [{"epoch": e, "step": 10 * e, "lr": 0.1, "train_loss": 1.0 / e, "train_accuracy": acc, "val_loss": 1.0,
             "val_accuracy": acc, "test_loss": 1.0, "test_accuracy": acc + e / 100, "density": 0.1,
             "drop_fraction": 0.3, "itop_rate": 0.2, "n_updates": 2, "update_seconds": 0.01, "epoch_seconds": 0.1}
            for e in range(1, EPOCHS + 1)]


def _store(study, i: int, status: str, acc: float, minutes: int = 0) -> None:
    start = T0 + timedelta(minutes=i + minutes)
    report = {"history": _history(acc), "epoch": EPOCHS, "device_used": "cpu", "attempt_seconds": 1.0}
    ParquetStore(study.study_dir).append(*result_rows(study.trials()[i], report, status=status, started_at=start,
                                                      ended_at=start + timedelta(seconds=30),
                                                      error="RuntimeError: boom" if status == "failed" else None))


@pytest.fixture
def study(tmp_path):
    """A saved spec of 5 trials naming a plugin that records its import: 3 completed, 1 failed, 1 not
    yet run. Accuracies are 0.5, 0.6, ... by trial."""
    (tmp_path / "plug_export_marker.py").write_text(
        f"open({str(tmp_path / 'imported')!r}, 'w').write('yes')\n")
    spec = parse({"name": "ex", "storage": str(tmp_path / "results"), "base": {"epochs": EPOCHS},
                  "plugins": ["plug_export_marker"],
                  "grid": {"criterion": ["magnitude", "snip", "set", "mest", "sensitivity"], "density": [0.1],
                           "seed": [1]}})
    save_spec(spec)
    for i, status in enumerate(["completed", "completed", "completed", "failed"]):
        _store(spec, i, status, 0.5 + i / 10)
    return spec


# -- TensorBoard --------------------------------------------------------------------------------

def _tensorboard_run(folder: Path):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
    from tensorboard.plugins.hparams import plugin_data_pb2

    run = EventAccumulator(str(folder), size_guidance={"scalars": 0, "tensors": 0})
    run.Reload()
    start = plugin_data_pb2.HParamsPluginData.FromString(
        run.PluginTagToContent("hparams")["_hparams_/session_start_info"]).session_start_info
    hparams = {k: v.string_value or v.number_value or v.bool_value for k, v in start.hparams.items()}
    return run, start.group_name, hparams


def test_tensorboard_holds_a_run_per_trial_with_its_scalars_and_hparams(study, tmp_path):
    _needs("tensorboard")
    done = export(ParquetStore(study.study_dir), "tensorboard", str(tmp_path / "tb"))
    assert (done.trials, done.added, done.updated, done.unchanged) == (4, 4, 0, 0)
    runs = sorted(p.name for p in (tmp_path / "tb" / "ex").iterdir())
    assert runs == sorted(t.id for t in study.trials()[:4])
    trial = study.trials()[1]
    run, session, hparams = _tensorboard_run(tmp_path / "tb" / "ex" / trial.id)
    assert [(s.step, round(s.value, 6)) for s in run.Scalars("test_accuracy")] == [(1, 0.61), (2, 0.62), (3, 0.63)]
    assert [(s.step, round(s.value, 6)) for s in run.Scalars("summary/final_test_accuracy")] == [(3, 0.63)]
    assert {s.wall_time for s in run.Scalars("train_loss")} == {(T0 + timedelta(minutes=1, seconds=30)).timestamp()}
    assert session == trial.id
    assert hparams["criterion"] == trial.config.criterion and hparams["seed"] == trial.config.seed == 1
    assert hparams["density"] == pytest.approx(0.1) and hparams["lr_milestones"] == "[0.5, 0.75]"
    assert {hparams[k] for k in ("kind", "study", "status", "algorithm_revision")} == {"dst", "ex", "completed", 2}
    failed, _, hparams = _tensorboard_run(tmp_path / "tb" / "ex" / study.trials()[3].id)
    assert hparams["status"] == "failed" and failed.Tags()["scalars"] == ["summary/epochs_done"]


def test_exporting_again_writes_only_new_and_changed_trials(study, tmp_path, capsys):
    _needs("tensorboard")
    target = str(tmp_path / "tb")
    assert main(["export", study.study_dir, "--to", "tensorboard", target]) == 0
    assert main(["export", study.study_dir, "--to", "tensorboard", target]) == 0
    assert capsys.readouterr().out.splitlines()[-1] == f"{target}/ex: 4 trials, 0 added, 0 updated, 4 unchanged"
    _store(study, 3, "completed", 0.9, minutes=60)  # the failed trial, run again
    _store(study, 4, "completed", 0.8)  # a trial that finished since
    assert main(["export", study.study_dir, "--to", "tensorboard", target]) == 0
    assert capsys.readouterr().out.splitlines()[-1] == f"{target}/ex: 5 trials, 1 added, 1 updated, 3 unchanged"
    folders = sorted((tmp_path / "tb" / "ex").iterdir())
    assert [f.name for f in folders] == sorted(t.id for t in study.trials())
    assert all(len(list(f.glob("events.out.tfevents.*"))) == 1 for f in folders)  # replaced, never appended to
    run, _, hparams = _tensorboard_run(tmp_path / "tb" / "ex" / study.trials()[3].id)
    assert hparams["status"] == "completed" and [round(s.value, 6) for s in run.Scalars("test_accuracy")] == \
        [0.91, 0.92, 0.93]


def test_follow_exports_while_the_driver_runs_and_once_more_when_it_ends(study, tmp_path):
    _needs("tensorboard")
    store, lines = ParquetStore(study.study_dir), []
    lease = StudyLease(store, heartbeat=0.2)
    lease.acquire()
    result = {}
    follower = threading.Thread(target=lambda: result.update(done=export(
        store, "tensorboard", str(tmp_path / "tb"), follow=True, every=0.05, log=lines.append)))
    follower.start()
    marker = tmp_path / "tb" / "ex" / study.trials()[4].id / "exported.json"
    _store(study, 4, "completed", 0.8)
    deadline = time.monotonic() + 30
    while not marker.exists() and time.monotonic() < deadline:  # shows while the study runs
        time.sleep(0.05)
    assert marker.exists() and follower.is_alive()
    _store(study, 3, "completed", 0.9, minutes=60)  # written just before the driver lets go
    lease.release()
    follower.join(timeout=30)
    assert not follower.is_alive()
    done = result["done"]
    assert done.followed and (done.trials, done.added, done.updated, done.unchanged) == (5, 5, 1, 0)  # 3 ran again
    assert lines[0].startswith(f"following {store.root} while its driver runs (host ")
    assert json.loads((marker.parent.parent / study.trials()[3].id / "exported.json").read_text())["stamp"] \
        .startswith("completed@")
    # no driver: one pass, and it says so
    assert export(store, "tensorboard", str(tmp_path / "tb"), follow=True, log=lines.append).trials == 5
    assert lines[-1] == f"no driver runs {store.root}: exported once"


def test_follow_started_before_the_study_exists_waits_for_it(study, tmp_path):
    """`export --follow` started beside `run` may come first: it says it waits, then exports."""
    later = tmp_path / "results" / "later"
    follower = subprocess.Popen([sys.executable, "-m", "study.cli", "export", str(later), "--to", "tensorboard",
                                 str(tmp_path / "tb"), "--follow", "--every", "0.2"], stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE, text=True)
    try:
        time.sleep(3)
        assert follower.poll() is None  # waiting, not failed with "unknown study"
        spec = parse({"name": "later", "storage": str(tmp_path / "results"), "base": {"epochs": EPOCHS},
                      "grid": {"criterion": ["magnitude"], "density": [0.1], "seed": [1]}})
        _store(spec, 0, "completed", 0.5)
        out, err = follower.communicate(timeout=60)
    finally:
        follower.kill()
    assert follower.returncode == 0, err
    assert err.startswith(f"dst-study: unknown study {str(later)!r}") and "waiting for it to appear (--follow" in err
    assert out.rstrip().endswith(": 1 trials, 1 added, 0 updated, 0 unchanged")


def test_export_reads_the_study_only_and_loads_neither_plugins_nor_torch(study, tmp_path):
    _needs("tensorboard")
    before = sorted((p.relative_to(tmp_path), p.stat().st_mtime_ns) for p in Path(study.study_dir).rglob("*"))
    code = (f"import sys; sys.path.insert(0, {str(tmp_path)!r})\nfrom study.cli import main\n"
            f"assert main(['export', {study.study_dir!r}, '--to', 'tensorboard', {str(tmp_path / 'tb')!r}]) == 0\n"
            "print(sorted(m for m in ('torch', 'ray', 'plug_export_marker') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=tmp_path)
    assert out.returncode == 0, out.stderr
    assert out.stdout.splitlines()[-1] == "[]" and not (tmp_path / "imported").exists()
    assert sorted((p.relative_to(tmp_path), p.stat().st_mtime_ns) for p in Path(study.study_dir).rglob("*")) == before


# -- MLflow -------------------------------------------------------------------------------------

def test_mlflow_holds_one_run_per_trial_with_params_tags_and_metric_history(study, tmp_path):
    _needs("mlflow")
    from mlflow.entities import ViewType
    from mlflow.tracking import MlflowClient

    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    store = ParquetStore(study.study_dir)
    assert export(store, "mlflow", uri).added == 4
    _store(study, 3, "completed", 0.9, minutes=60)
    _store(study, 4, "completed", 0.8)
    again = export(store, "mlflow", uri)
    assert (again.added, again.updated, again.unchanged) == (1, 1, 3)
    assert export(store, "mlflow", uri).unchanged == 5

    client = MlflowClient(uri)
    experiment = client.get_experiment_by_name("ex")
    runs = client.search_runs([experiment.experiment_id])
    assert sorted(r.data.tags["trial_id"] for r in runs) == sorted(t.id for t in study.trials())  # one per trial
    trial = study.trials()[1]
    run = next(r for r in runs if r.info.run_name == trial.id)
    assert run.data.params["criterion"] == trial.config.criterion and run.data.params["seed"] == "1"
    assert run.data.params["lr_milestones"] == "[0.5, 0.75]" and "data_root" not in run.data.params  # null: left out
    assert {k: run.data.tags[k] for k in ("kind", "criterion", "growth", "density", "seed", "algorithm_revision",
                                          "study", "status")} == \
        {"kind": "dst", "criterion": trial.config.criterion, "growth": "random", "density": "0.1", "seed": "1",
         "algorithm_revision": "2", "study": "ex", "status": "completed"}
    history = client.get_metric_history(run.info.run_id, "test_accuracy")
    assert sorted((m.step, m.value) for m in history) == [(1, 0.61), (2, 0.62), (3, 0.63)]
    assert run.data.metrics["summary/final_test_accuracy"] == 0.63
    assert run.info.status == "FINISHED" and run.info.start_time == int((T0 + timedelta(minutes=1)).timestamp() * 1000)
    # the trial that failed and ran again: its new run replaced the failed one's
    rerun = next(r for r in runs if r.info.run_name == study.trials()[3].id)
    assert rerun.data.tags["status"] == "completed" and rerun.data.metrics["test_accuracy"] == pytest.approx(0.93)
    deleted = client.search_runs([experiment.experiment_id], run_view_type=ViewType.DELETED_ONLY)
    assert [(r.data.tags["trial_id"], r.data.tags["status"]) for r in deleted] == [(study.trials()[3].id, "failed")]


def test_mlflow_needs_a_tracking_uri_and_a_missing_library_names_the_extra(study, tmp_path, monkeypatch, capsys):
    assert main(["export", study.study_dir, "--to", "mlflow", str(tmp_path / "mlruns")]) == 2
    assert "give a tracking URI, e.g. sqlite:///mlflow.db" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main(["export", study.study_dir, "--to", "neptune", str(tmp_path)])
    assert "argument --to: invalid tool 'neptune' (choose from tensorboard, mlflow, wandb)" in capsys.readouterr().err
    monkeypatch.setitem(sys.modules, "wandb", None)  # as if not installed
    monkeypatch.delitem(sys.modules, "study.export.wandb", raising=False)
    assert main(["export", study.study_dir, "--to", "wandb", str(tmp_path / "wb")]) == 2
    assert capsys.readouterr().err == ("dst-study: error: exporting to wandb needs the 'wandb' package of the export "
                                       "extra: pip install -e '.[export]'\n")


# -- W&B ----------------------------------------------------------------------------------------

def _wandb_runs(folder: Path, trial: str = "*") -> dict[str, dict]:
    """Each offline run under ``folder`` (of ``trial``), as W&B's own reader of .wandb files (``wandb leet inspect``)
    gives it back: run id -> its config, tags, project, history by step, summary and exit code."""
    runs = {}
    for log in sorted(folder.glob(f"offline-run-*-{trial}/run-*.wandb")):
        out = subprocess.run([sys.executable, "-m", "wandb", "leet", "inspect", "--json", str(log)],
                             capture_output=True, text=True, check=True)
        records = [json.loads(line) for line in out.stdout.splitlines()]
        run = next(r["run"] for r in records if r["type"] == "run")
        assert run["run_id"] not in runs, f"two runs of {run['run_id']}"
        summary = {}
        for r in records:
            if r["type"] == "summary":
                summary.update(r["summary"].get("update", {}))
        runs[run["run_id"]] = {
            "config": run["config"]["update"], "tags": run["tags"], "project": run["project"],
            "history": {r["history"]["step"]["num"]: r["history"]["item"] for r in records if r["type"] == "history"},
            "summary": summary,
            "exit_code": next(r["exit"].get("exit_code", 0) for r in records if r["type"] == "exit")}
    return runs


def test_wandb_writes_one_offline_run_per_trial_for_a_later_sync(study, tmp_path):
    _needs("wandb")
    store, target = ParquetStore(study.study_dir), tmp_path / "wb"
    assert export(store, "wandb", str(target)).added == 4
    failed = study.trials()[3].id
    assert _wandb_runs(target / "wandb", failed)[failed]["exit_code"] == 1  # a failed trial's run failed
    _store(study, 3, "completed", 0.9, minutes=60)
    _store(study, 4, "completed", 0.8)
    again = export(store, "wandb", str(target))
    assert (again.added, again.updated, again.unchanged) == (1, 1, 3)
    assert export(store, "wandb", str(target)).unchanged == 5

    runs = _wandb_runs(target / "wandb")
    assert sorted(runs) == sorted(t.id for t in study.trials())  # one folder per trial: the replaced one is gone
    trial = study.trials()[1]
    run = runs[trial.id]
    assert run["project"] == "ex" and run["exit_code"] == 0
    assert run["config"]["criterion"] == trial.config.criterion and run["config"]["seed"] == 1
    assert {"kind:dst", "study:ex", "status:completed", "seed:1", "density:0.1", "algorithm_revision:2",
            f"criterion:{trial.config.criterion}", "growth:random"} <= set(run["tags"])
    assert {step: item["test_accuracy"] for step, item in run["history"].items()} == {1: 0.61, 2: 0.62, 3: 0.63}
    assert run["summary"]["summary/final_test_accuracy"] == 0.63 and run["summary"]["summary/epochs_done"] == 3
    assert runs[failed]["summary"]["summary/final_test_accuracy"] == pytest.approx(0.93)
    assert runs[failed]["exit_code"] == 0
    # W&B's own sync sees the same runs, one each, without contacting anything (--dry-run)
    out = subprocess.run([sys.executable, "-m", "wandb", "sync", "--dry-run", str(target / "wandb")],
                         capture_output=True, text=True)
    assert "Would sync 5 run(s)" in out.stdout + out.stderr
