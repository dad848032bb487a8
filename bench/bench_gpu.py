"""GPU packing and throughput: trials per hour per GPU at gpu: 1, 0.5, 0.25 and 0.125.

For MNIST-1D (the MLP) and mlp_cifar10 (on generated CIFAR-format files: throughput does not
depend on the pixels), a study of ``2 / gpu`` trials runs with ``resources: {gpu: F}``, so every
slot runs two trials. Reported from the trials table: trials per hour (trials over the span from
the first start to the last end), the most trials seen running at once (a ``gpu: 0.25`` study must
reach 4), and the devices the rows record.

    python bench/bench_gpu.py                      # on a machine with CUDA: writes docs/benchmarks.md
    python bench/bench_gpu.py --smoke --out X.md   # the same pipeline on the CPU, tiny (the tests run it)

``bench/gpu_check.sh`` runs this after the CUDA tests.
"""

from __future__ import annotations

import argparse
import pickle
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from report import table, write_section  # noqa: E402

from study.queries import most_at_once  # noqa: E402
from study.runner import plan, run  # noqa: E402
from study.spec import parse  # noqa: E402
from study.store import ParquetStore  # noqa: E402

FRACTIONS = (1.0, 0.5, 0.25, 0.125)
MODELS = {"mnist1d_mlp": {"dataset": "mnist1d", "epochs": 20},
          "mlp_cifar10": {"dataset": "cifar10", "model": "mlp_cifar10", "epochs": 2}}


def fake_cifar10(root: Path, per_batch: int = 10_000) -> Path:
    """CIFAR-10 "python version" files of random pixels: what mlp_cifar10 needs to be timed."""
    base = root / "cifar-10-batches-py"
    base.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    for name in [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]:
        n = per_batch if name != "test_batch" else per_batch // 5
        with open(base / name, "wb") as f:
            pickle.dump({b"data": rng.integers(0, 256, (n, 3072), dtype=np.uint8),
                         b"labels": rng.integers(0, 10, n).tolist()}, f)
    return root


def measure(model: str, fraction: float, storage: Path, data_root: Path | None, smoke: bool) -> dict:
    settings = dict(MODELS[model])
    n = 2 if smoke else max(2, round(2 / fraction))
    base = {"dataset": settings.pop("dataset"), **settings, "density": 0.1, "device": "cpu" if smoke else "cuda",
            "batch_size": 128, "val_fraction": 0.1}
    if smoke:
        base["epochs"] = 1
    if data_root is not None:
        base["data_root"] = str(data_root)
    name = f"{model}-gpu{fraction:g}".replace(".", "_")
    spec = parse({"name": name, "storage": str(storage), "base": base, "grid": {"seed": list(range(n))},
                  "resources": {"cpu": 1, "gpu": 0 if smoke else fraction}, "retries": 0})
    started = time.perf_counter()
    run(plan(spec), log=lambda line: None)
    wall = time.perf_counter() - started
    trials = ParquetStore(spec.study_dir).read("trials")
    span = (trials["ended_at"].max() - trials["started_at"].min()).total_seconds()
    return {"model": model, "gpu": fraction, "trials": len(trials), "completed": int((trials["status"] == "completed").sum()),
            "at_once": most_at_once(trials), "devices": ", ".join(sorted(set(trials["device_used"].dropna()))),
            "trial_s": float(trials["wall_seconds"].median()), "per_hour": 3600 * len(trials) / span, "wall_s": wall}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--smoke", action="store_true", help="tiny, on the CPU: checks the pipeline")
    parser.add_argument("--out", default="docs/benchmarks.md")
    args = parser.parse_args()
    fractions = (1.0,) if args.smoke else FRACTIONS
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        cifar = fake_cifar10(tmp / "data", per_batch=200 if args.smoke else 10_000)
        rows = [measure(model, f, tmp / "studies", cifar if model == "mlp_cifar10" else None, args.smoke)
                for model in MODELS for f in fractions]
    body = table(["model", "gpu per trial", "trials", "completed", "most at once", "devices", "median trial s",
                  "trials / hour"],
                 [[r["model"], f"{r['gpu']:g}", r["trials"], r["completed"], r["at_once"], r["devices"],
                   f"{r['trial_s']:.1f}", f"{r['per_hour']:.0f}"] for r in rows])
    note = ("Command: `python bench/bench_gpu.py`" + (" --smoke" if args.smoke else "") + ". A study of 2/gpu "
            "trials per setting (MNIST-1D MLP, 20 epochs; mlp_cifar10 on generated CIFAR-format data, 2 epochs); "
            "`most at once` must equal 1/gpu.")
    write_section(Path(args.out), "gpu-packing", "GPU packing and throughput", note + "\n\n" + "\n".join(body))
    print("\n".join(body))


if __name__ == "__main__":
    main()
