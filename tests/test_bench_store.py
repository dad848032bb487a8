"""The result-store benchmark (bench/bench_store.py) at a tiny size: its study fills today's schema,
and its run measures and checks what it reports."""

import subprocess
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "bench"))

from bench_store import NONE_BY_DEFAULT, synthetic  # noqa: E402

from study.store import HISTORY, TRIALS  # noqa: E402


def test_the_synthetic_study_fills_every_column_of_todays_schema():
    trials, history = synthetic(np.arange(300), np.random.default_rng(0))
    assert trials.schema.equals(TRIALS) and history.schema.equals(HISTORY)
    empty = [c for t in (trials, history) for c in t.column_names if t.column(c).null_count == t.num_rows]
    assert set(empty) <= NONE_BY_DEFAULT  # a new column gets a value in the benchmark, not a silent null
    assert history.num_rows == 100 * trials.num_rows and len(set(trials.column("trial_id").to_pylist())) == 300


def test_a_smoke_run_reports_every_section_and_passes_its_checks(tmp_path):
    out = tmp_path / "benchmarks.md"
    done = subprocess.run([sys.executable, str(ROOT / "bench" / "bench_store.py"), "--smoke", "--out", str(out)],
                          capture_output=True, text=True, timeout=300, cwd=ROOT)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    text = out.read_text()
    for section in ("### Reads", "### `dst-study compact`", "### Appending one trial", "### The command as a new "
                    "process", "### Memory"):
        assert section in text
    assert "MISMATCH" not in text and text.count(": OK") == 4
    assert "filter pushed into the scan" in text and "without the scan filter" in text
