"""Read-only commands (help, query, compare, status, plot, report) load neither torch nor Ray, and
`status` tells the truth from a study's files alone."""

import json
import subprocess
import sys
from datetime import datetime, timezone
from pathlib import Path

import pytest

from dst_core import TrainConfig
from study.folder import LISTING, POSITION
from study.runner import listing, save_spec
from study.spec import parse
from study.store import ParquetStore
from study.trial import Trial, result_rows

ROOT = Path(__file__).resolve().parents[2]
T0 = datetime(2026, 1, 1, tzinfo=timezone.utc)


def _history(epochs: int, acc: float) -> list[dict]:
    return [{"epoch": e, "step": 10 * e, "lr": 0.1, "train_loss": 1.0, "train_accuracy": acc, "val_loss": 1.0,
             "val_accuracy": acc, "test_loss": 1.0, "test_accuracy": acc + e / 100, "density": 0.1,
             "drop_fraction": 0.3, "itop_rate": 0.2, "n_updates": 2, "update_seconds": 0.01, "epoch_seconds": 0.1}
            for e in range(1, epochs + 1)]


@pytest.fixture
def study(tmp_path):
    """A saved spec of 8 trials: 5 completed, 1 failed, 2 missing (one with a checkpoint at epoch 2)."""
    spec = parse({"name": "ro", "storage": str(tmp_path), "base": {"epochs": 3},
                  "grid": {"criterion": ["magnitude", "snip"], "density": [0.1, 0.3], "seed": [0, 1]}})
    save_spec(spec)
    trials = spec.trials()
    store = ParquetStore(spec.study_dir)
    for i, trial in enumerate(trials[:6]):
        status = "failed" if i == 5 else "completed"
        report = {"history": _history(3, 0.3 + i / 50), "epoch": 3, "device_used": "cpu", "attempt_seconds": 1.0}
        store.append(*result_rows(trial, report, status=status, started_at=T0, ended_at=T0,
                                  error="RuntimeError: boom" if status == "failed" else None))
    waiting = Path(spec.study_dir) / "tune" / "wave-1" / trials[6].id / "checkpoint_000001"
    waiting.mkdir(parents=True)
    (waiting / "checkpoint.pt").write_bytes(b"not read: the position beside it says where it stands")
    (waiting / POSITION).write_text(json.dumps({"epoch": 2, "algorithm_revision": 2}))
    return spec, trials


def _run(code: str) -> tuple[str, list[str]]:
    """Run ``code`` in a fresh interpreter; its output and the heavy modules it loaded."""
    probe = "\nimport sys; print('LOADED', sorted(m for m in ('torch', 'ray', 'optuna') if m in sys.modules))"
    out = subprocess.run([sys.executable, "-c", code + probe], capture_output=True, text=True, cwd=ROOT)
    assert out.returncode == 0, out.stderr
    text, _, loaded = out.stdout.rpartition("LOADED ")
    return text, eval(loaded)


def test_read_only_commands_load_neither_torch_nor_ray(study, tmp_path):
    spec, _ = study
    commands = [["query", spec.study_dir], ["compare", spec.study_dir], ["status", spec.study_dir],
                ["plot", spec.study_dir, "--kind", "density", "--out", str(tmp_path / "f.png")],
                ["report", spec.study_dir, "--out", str(tmp_path / "report")]]
    code = "from study.cli import main\n" + "\n".join(f"main({c!r})" for c in commands) + \
        "\ntry:\n    main(['--help'])\nexcept SystemExit:\n    pass"
    text, loaded = _run(code)
    assert loaded == []
    assert "spec: 8 trials, 2 missing (1 with checkpoints)" in text  # status ran, from the listing
    assert (tmp_path / "f.png").stat().st_size > 0 and (tmp_path / "report" / "index.html").exists()


def test_status_counts_and_names_what_is_missing_with_its_checkpoint_epoch(study):
    spec, trials = study
    text, loaded = _run(f"from study.cli import main\nmain(['status', {spec.study_dir!r}])")
    assert loaded == []
    assert "8 trials" not in text.splitlines()[0] and "6 trials: 5 completed, 1 failed" in text
    assert f"missing {trials[6].id} (snip/random density 0.3 seed 0, checkpoint at epoch 2)" in text
    assert f"missing {trials[7].id} (snip/random density 0.3 seed 1)" in text
    assert "failed " + trials[5].id in text and "RuntimeError: boom" in text


def test_the_listing_follows_its_spec_and_is_rebuilt_when_it_does_not_match(study):
    spec, trials = study
    store = ParquetStore(spec.study_dir)
    assert [i for i, _ in listing(store).trials] == [t.id for t in trials]
    # a listing of another spec (an older dst-study wrote none, a crash left a stale one) is not trusted
    path = Path(store.path) / LISTING
    path.write_text(json.dumps({"spec_sha256": "0" * 64, "total": 1, "trials": [["x", "y"]]}))
    assert listing(store).total == 8 and len(listing(store).trials) == 8
    path.unlink()
    assert listing(store).total == 8


def test_a_study_with_only_its_saved_spec_has_a_status(tmp_path):
    spec = parse({"name": "fresh", "storage": str(tmp_path), "base": {"epochs": 1}, "grid": {"seed": [0, 1]}})
    save_spec(spec)  # what a driver killed before its first result leaves
    text, loaded = _run(f"from study.cli import main\nmain(['status', {spec.study_dir!r}])")
    assert "0 trials" in text and "spec: 2 trials, 2 missing" in text and loaded == []


def test_the_trial_row_is_built_in_one_place_for_every_path(tmp_path):
    """`train --results`, the Tune store writer and the tests build rows with result_rows: a report's
    provenance lands in its row, and a failed trial keeps the epoch it reached."""
    config = TrainConfig(epochs=3)
    report = {"history": _history(3, 0.5), "epoch": 3, "device_used": "cuda:0", "host": "node-7",
              "attempt_seconds": 12.5, "resumed_from": 1, "torch_version": "9.9", "algorithm_revision": 2}
    (row,), history, jaccard = result_rows(Trial.of(config), report, status="completed", started_at=T0, ended_at=T0)
    assert (row["device_used"], row["host"], row["wall_seconds"], row["resumed_from"], row["torch_version"]) == \
        ("cuda:0", "node-7", 12.5, 1, "9.9")
    assert row["final_test_accuracy"] == pytest.approx(0.53) and len(history) == 3 and jaccard == []
    (failed,), history, _ = result_rows(Trial.of(config), {"epoch": 2}, status="failed", started_at=T0, error="x")
    assert failed["epochs_done"] == 2 and failed["status"] == "failed" and history == []


def test_a_checkpoint_cut_short_by_a_killed_driver_is_passed_over(tmp_path):
    """Tune copies a checkpoint file by file: the newest folder of a killed driver may lack its position
    file (and be incomplete); the previous, complete one is used. A study older than position files
    still finds its newest checkpoint."""

    store = ParquetStore(str(tmp_path / "s"))
    trial = tmp_path / "s" / "tune" / "wave-1" / "abc"
    for index, positioned in ((1, True), (2, False)):
        folder = trial / f"checkpoint_00000{index}"
        folder.mkdir(parents=True)
        (folder / "checkpoint.pt").write_bytes(b"x")
        if positioned:
            (folder / POSITION).write_text('{"epoch": 1}')
    assert store.folder.checkpoints({"abc"})["abc"].endswith("checkpoint_000001/checkpoint.pt")
    (trial / "checkpoint_000001" / POSITION).unlink()  # as an older study left them
    assert store.folder.checkpoints({"abc"})["abc"].endswith("checkpoint_000002/checkpoint.pt")


def test_an_unusable_checkpoint_of_an_earlier_driver_restarts_the_trial(tmp_path):
    from dst_core.errors import DstWarning
    from study.trial import TrialRun

    cut = tmp_path / "cut.pt"
    cut.write_bytes(b"PK\x03\x04 a zip cut short")
    with pytest.warns(DstWarning, match="unreadable.*the trial starts over"):
        run = TrialRun(Trial.of(TrainConfig(epochs=1, update_period=10, device="cpu")), tmp_path / "work",
                       resume_from=str(cut))
    assert run.trainer.resumed_from is None and run.trainer.epoch == 0
