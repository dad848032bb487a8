"""The measured effects behind docs/fidelity.md: MNIST-1D trials at the paper's settings.

Paper settings scaled to MNIST-1D: MLP 40-256-256-10, SGD lr 0.01, momentum 0.9, Nesterov, weight
decay 5e-4, batch 128, 100 epochs, lr x0.1 at 50% and 75%, ERK, p0 0.5 cosine, update period 100.
Each variant changes one thing against today's defaults; ``before`` runs the dst_core of another
checkout (``--before-src``, e.g. a ``git worktree`` of the commit before the fidelity fix).

    python bench/fidelity.py --before-src /tmp/dst-before --out bench/fidelity_runs.json

Trials run in a pool (one torch thread each); results are cached in ``--out`` (one JSON line per
trial), so a re-run only runs what is missing. The tables print as Markdown.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import statistics
import subprocess
import sys
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

PAPER = dict(dataset="mnist1d", model="mnist1d_mlp", epochs=100, batch_size=128, lr=0.01, momentum=0.9,
             nesterov=True, weight_decay=5e-4, init="erk", drop_fraction=0.5, schedule="cosine",
             update_period=100, device="cpu")
CELLS = [("reciprocal_sensitivity", "gradient", 0.05), ("reciprocal_sensitivity", "gradient", 0.5),
         ("magnitude", "random", 0.05), ("magnitude", "random", 0.5)]
SEEDS = (1, 2, 3)
# variant -> (overrides of today's defaults, cells); "before" runs the older checkout
VARIANTS = {
    "before": ({}, CELLS),
    "after": ({}, CELLS),
    "after, no validation split": ({"val_fraction": 0.0}, CELLS),
    "grown_momentum zero": ({"grown_momentum": "zero"}, CELLS),
    "update_order before_step": ({"update_order": "before_step"}, CELLS),
    "update_order after_step": ({"update_order": "after_step"}, CELLS),
    "set": ({}, [("set", "random", 0.05), ("set", "random", 0.5)]),
    "set_paper_code": ({}, [("set_paper_code", "random", 0.05), ("set_paper_code", "random", 0.5)]),
}

# Runs in a fresh interpreter so "before" can import another checkout's dst_core.
_TRIAL = r"""
import json, sys, torch
torch.set_num_threads(1)
import dst_core
from dst_core.trainer import Trainer
cfg = json.loads(sys.argv[1])
print("dst_core from", dst_core.__file__, file=sys.stderr)
t = Trainer(cfg)
history = list(t.epochs())
out = {"final_test_accuracy": history[-1]["test_accuracy"]}
if history[-1].get("val_accuracy") is not None:
    best = max(history, key=lambda m: m["val_accuracy"])
    out["test_accuracy_at_best_val"] = best["test_accuracy"]
if t.updater is not None and getattr(t, "update_order", None) == "after_step":
    # the paper's code also updates after the very last optimizer step; measure what that changes
    t.updater.update(t.step)
    out["after_last_step_update"] = t.evaluate()[1]
print(json.dumps(out))
"""


def _run(job: tuple[str, str, dict]) -> tuple[str, dict]:
    key, src, cfg = job
    env = dict(os.environ, PYTHONPATH=src, OMP_NUM_THREADS="1")
    # cwd too: ``python -c`` puts the working directory first on sys.path
    out = subprocess.run([sys.executable, "-c", _TRIAL, json.dumps(cfg)], env=env, cwd=src, capture_output=True,
                         text=True)
    if out.returncode:
        raise RuntimeError(f"{key} failed:\n{out.stderr}")
    return key, json.loads(out.stdout.strip().splitlines()[-1])


def _jobs(before_src: str, here: str) -> list[tuple[str, str, dict]]:
    jobs = []
    for variant, (overrides, cells) in VARIANTS.items():
        for criterion, growth, density in cells:
            for seed in SEEDS:
                cfg = dict(PAPER, criterion=criterion, growth=growth, density=density, seed=seed, **overrides)
                key = f"{variant}|{criterion}|{growth}|{density}|{seed}"
                jobs.append((key, before_src if variant == "before" else here, cfg))
    return jobs


def _mean_std(values: list[float]) -> str:
    if not values:
        return "–"
    sd = statistics.stdev(values) if len(values) > 1 else math.nan
    return f"{100 * statistics.mean(values):.1f} ± {100 * sd:.1f}"


def report(results: dict[str, dict]) -> str:
    lines = ["| variant | criterion + growth | density | final test acc. % | test acc. at best val. % |",
             "|---|---|---|---|---|"]
    for variant, (_, cells) in VARIANTS.items():
        for criterion, growth, density in cells:
            runs = [results[k] for k in (f"{variant}|{criterion}|{growth}|{density}|{s}" for s in SEEDS)
                    if k in results]
            final = [r["final_test_accuracy"] for r in runs]
            best = [r["test_accuracy_at_best_val"] for r in runs if "test_accuracy_at_best_val" in r]
            lines.append(f"| {variant} | {criterion} + {growth} | {density} | {_mean_std(final)} | "
                         f"{_mean_std(best)} |")
    extra = [(k, r) for k, r in results.items() if k.startswith("after|") and "after_last_step_update" in r]
    if extra:
        lines += ["", "| criterion + growth | density | final test acc. % | after one more update % |",
                  "|---|---|---|---|"]
        for criterion, growth, density in CELLS:
            runs = [r for k, r in extra if k.split("|")[1:4] == [criterion, growth, str(density)]]
            if runs:
                lines.append(f"| {criterion} + {growth} | {density} | "
                             f"{_mean_std([r['final_test_accuracy'] for r in runs])} | "
                             f"{_mean_std([r['after_last_step_update'] for r in runs])} |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--before-src", required=True, help="checkout whose dst_core is the 'before' variant")
    parser.add_argument("--out", default="bench/fidelity_runs.json")
    parser.add_argument("--workers", type=int, default=2)
    args = parser.parse_args()
    here = str(Path(__file__).resolve().parents[1])
    out = Path(args.out)
    results = {}
    if out.exists():
        results = {r["key"]: r for r in map(json.loads, out.read_text().splitlines())}
    todo = [j for j in _jobs(args.before_src, here) if j[0] not in results]
    print(f"{len(todo)} trials to run ({len(results)} cached)", file=sys.stderr)
    with ProcessPoolExecutor(args.workers) as pool, out.open("a") as f:
        for i, (key, result) in enumerate(pool.map(_run, todo), 1):
            results[key] = {"key": key, **result}
            f.write(json.dumps(results[key]) + "\n")
            f.flush()
            print(f"[{i}/{len(todo)}] {key}: {result}", file=sys.stderr)
    print(report(results))


if __name__ == "__main__":
    main()
