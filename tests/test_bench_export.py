"""The export benchmark (bench/bench_export.py) on a two-trial study: it times the command twice and
writes its section."""

import subprocess
import sys
from datetime import datetime, timezone
from pathlib import Path

import pytest

from study.spec import parse
from study.store import ParquetStore
from study.trial import result_rows

ROOT = Path(__file__).resolve().parents[1]
T0 = datetime(2026, 1, 1, tzinfo=timezone.utc)


def test_a_run_on_a_small_study_writes_its_section(tmp_path):
    pytest.importorskip("tensorboard", reason="the export extra is not installed: pip install -e '.[export]'")
    spec = parse({"name": "small", "storage": str(tmp_path), "base": {"epochs": 1}, "grid": {"seed": [0, 1]}})
    history = [{"epoch": 1, "step": 1, "lr": 0.1, "train_loss": 1.0, "train_accuracy": 0.5, "val_loss": 1.0,
                "val_accuracy": 0.5, "test_loss": 1.0, "test_accuracy": 0.5, "density": 0.1, "drop_fraction": 0.3,
                "itop_rate": 0.2, "n_updates": 2, "update_seconds": 0.01, "epoch_seconds": 0.1}]
    for trial in spec.trials():
        ParquetStore(spec.study_dir).append(*result_rows(trial, {"history": history}, status="completed",
                                                         started_at=T0, ended_at=T0))
    out = tmp_path / "benchmarks.md"
    done = subprocess.run([sys.executable, str(ROOT / "bench" / "bench_export.py"), "--study", spec.study_dir,
                           "--tools", "tensorboard", "--out", str(out)], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    text = out.read_text()
    assert "## Export to tracking tools (bench/bench_export.py)" in text and "; 2 trials, 2 epochs (" in text
    row = next(line for line in text.splitlines() if line.startswith("| `tensorboard`"))
    assert len(row.split("|")) == 8  # tool, seconds, per trial, CPU, size, again
