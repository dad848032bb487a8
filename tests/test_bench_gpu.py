"""The CPU side of the GPU checks: the packing benchmark's pipeline runs and reports (tiny, on the CPU)."""

import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "bench"))


def test_most_at_once_counts_overlapping_trials():
    from bench_gpu import most_at_once
    t = pd.to_datetime
    trials = pd.DataFrame({"started_at": t(["2026-01-01 00:00", "2026-01-01 00:01", "2026-01-01 00:05"]),
                           "ended_at": t(["2026-01-01 00:02", "2026-01-01 00:03", "2026-01-01 00:06"])})
    assert most_at_once(trials) == 2


@pytest.mark.slow
def test_gpu_benchmark_pipeline_on_the_cpu(tmp_path):
    out = tmp_path / "bench.md"
    done = subprocess.run([sys.executable, str(ROOT / "bench" / "bench_gpu.py"), "--smoke", "--out", str(out)],
                          capture_output=True, text=True, timeout=300, cwd=ROOT)
    assert done.returncode == 0, done.stdout + done.stderr
    text = out.read_text()
    assert "GPU packing and throughput" in text
    assert "| mnist1d_mlp | 1" in text and "| mlp_cifar10 | 1" in text and "| cpu " in text
    assert (ROOT / "bench" / "gpu_check.sh").stat().st_mode & 0o111
