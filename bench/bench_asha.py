"""Early stopping for searches, measured: one search with and without ASHA.

Usage::

    python bench/bench_asha.py [--trials 24] [--epochs 30] [--out docs/benchmarks.md]

Both runs are the same Optuna search (same space, the same number of trials, the same sampler
seed) on MNIST-1D, run with ``dst-study run`` from a fresh folder, one trial at a time (so ASHA's
decisions, like the sampler's, do not depend on timing). ASHA (``search.scheduler: asha``) stops a
trial at a rung (grace period x reduction factor^k epochs) when its validation accuracy so far is
below the best 1/reduction_factor of the trials that reached that rung. Reported per run: the
trial-epochs trained (the work), the wall time of the whole command, how many trials ran to the end
and how many were stopped, and the best validation accuracy found with its config's test accuracy.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
import time
from datetime import datetime, timezone
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "bench"))
sys.path.insert(0, str(ROOT))
from report import cpu_clock, cpu_model, other_cores, table, write_section  # noqa: E402

SPACE = {"lr": {"loguniform": [0.001, 0.3]}, "density": {"loguniform": [0.02, 0.5]},
         "criterion": {"choice": ["magnitude", "snip", "set"]}}
ASHA = {"grace_period": 3, "reduction_factor": 3}


def _run(folder: Path, scheduler: str, trials: int, epochs: int, seed: int) -> dict:
    from study.store import ParquetStore

    search = {"space": SPACE, "n_trials": trials, "seed": seed, "scheduler": scheduler,
              **(ASHA if scheduler == "asha" else {})}
    spec = {"name": scheduler, "storage": str(folder), "max_concurrent": 1, "checkpoint_seconds": 1000,
            "base": {"dataset": "mnist1d", "epochs": epochs, "device": "cpu"}, "search": search}
    path = folder / f"{scheduler}.yaml"
    path.write_text(yaml.safe_dump(spec))
    started = time.perf_counter()
    subprocess.run([str(Path(sys.executable).parent / "dst-study"), "run", str(path)], check=True,
                   stdout=subprocess.DEVNULL)
    wall = time.perf_counter() - started
    rows = ParquetStore(str(folder / scheduler)).read("trials")
    best = rows[rows["status"] == "completed"].sort_values("best_val_accuracy").iloc[-1]
    return {"wall": wall, "epochs": int(rows["epochs_done"].sum()), "completed": int((rows["status"] == "completed").sum()),
            "stopped": int((rows["status"] == "stopped").sum()), "best_val": float(best["best_val_accuracy"]),
            "test": float(best["test_accuracy_at_best_val"]),
            "config": f"{best['criterion']}, density {best['density']:.3g}, lr {best['lr']:.3g}"}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--trials", type=int, default=24)
    parser.add_argument("--epochs", type=int, default=30)
    parser.add_argument("--seed", type=int, default=0, help="the sampler's seed (both runs)")
    parser.add_argument("--out", type=Path, help="write the section into this Markdown file")
    args = parser.parse_args()
    before = cpu_clock()
    with tempfile.TemporaryDirectory() as tmp:
        results = {s: _run(Path(tmp), s, args.trials, args.epochs, args.seed) for s in ("none", "asha")}
    busy = other_cores(before, cpu_clock())
    none, asha = results["none"], results["asha"]
    lines = [f"Command: `python bench/bench_asha.py --trials {args.trials} --epochs {args.epochs} --out docs/benchmarks.md`",
             "", f"- date: {datetime.now(timezone.utc):%Y-%m-%d %H:%M} UTC",
             f"- CPU: {cpu_model()}; other processes used {busy:.2f} cores on average during the run" if busy is not None
             else f"- CPU: {cpu_model()}",
             f"- one search, {args.trials} trials of MNIST-1D x {args.epochs} epochs, one at a time, sampler seed "
             f"{args.seed}; space: lr loguniform [0.001, 0.3], density loguniform [0.02, 0.5], criterion magnitude | snip "
             f"| set; metric best_val_accuracy; ASHA: grace period {ASHA['grace_period']}, reduction factor "
             f"{ASHA['reduction_factor']}, max epochs {args.epochs}", ""]
    lines += table(["scheduler", "trial-epochs", "wall s", "ran to the end", "stopped early", "best val accuracy",
                    "its test accuracy", "its config"],
                   [[name, str(r["epochs"]), f"{r['wall']:.1f}", str(r["completed"]), str(r["stopped"]),
                     f"{r['best_val']:.2%}", f"{r['test']:.2%}", r["config"]] for name, r in results.items()])
    lines += ["", f"ASHA trained {asha['epochs'] / none['epochs']:.0%} of the trial-epochs in "
                  f"{asha['wall'] / none['wall']:.0%} of the wall time (start-up included); its best validation "
                  f"accuracy is {100 * (asha['best_val'] - none['best_val']):+.1f} points from the full search's."]
    body = "\n".join(lines)
    print(body)
    if args.out:
        write_section(args.out, "bench_asha", "Early stopping of a search (bench/bench_asha.py)", body)


if __name__ == "__main__":
    main()
