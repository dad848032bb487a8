"""What checking a user's component costs: a criterion's scores at each topology update, a model's
output at each training step (README, "The contracts, exactly").

Usage::

    python bench/bench_checks.py [--quick] [--out docs/benchmarks.md]

Setup: the paper's MLP-CIFAR10 (3072-1024-512-10) at density 0.1 under ERK, one batch of 128 random
images with random labels, 2 torch threads, on the CPU.

1. **Per update.** ``checked_scores`` (one ``isfinite`` pass, an ``any``, a shape compare) on the
   magnitude scores of every layer's active weights, as an update makes it, against one whole local
   ``TopologyUpdater.update`` (magnitude + random growth, the cheapest update, so the largest share).
2. **Per step.** ``output_problem`` on the batch's ``(128, 10)`` logits, against one training step
   (forward, backward, SGD step).

Each figure is the median over [7 / 3] blocks of timed repetitions.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from report import table, write_section

from dst_core import attach
from dst_core.criteria import CRITERIA, checked_scores
from dst_core.models import output_problem


def _median_seconds(fn, repeat: int, blocks: int) -> float:
    times = []
    for _ in range(blocks):
        start = time.perf_counter()
        for _ in range(repeat):
            fn()
        times.append((time.perf_counter() - start) / repeat)
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--out", type=Path)
    args = parser.parse_args()
    torch.set_num_threads(2)
    blocks = 3 if args.quick else 7
    torch.manual_seed(0)
    model = nn.Sequential(nn.Flatten(), nn.Linear(3072, 1024), nn.ReLU(), nn.Linear(1024, 512), nn.ReLU(),
                          nn.Linear(512, 10))
    optimizer = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9, nesterov=True, weight_decay=5e-4)
    sparse = attach(model, optimizer, total_steps=2 * 10**6, density=0.1, update_period=10**6)
    x, y = torch.randn(128, 3, 32, 32), torch.randint(0, 10, (128,))

    def step():
        optimizer.zero_grad()
        F.cross_entropy(model(x), y).backward()
        optimizer.step()
        sparse.step()

    for _ in range(3):
        step()
    magnitude = CRITERIA.get("magnitude").obj
    active = {n: p.detach().reshape(-1)[sparse.masks[n].reshape(-1)] for n, p in sparse.params.items()}
    scores = {n: magnitude(w, None, torch.ones_like(w, dtype=torch.bool)) for n, w in active.items()}

    def check_all():
        for n, s in scores.items():
            checked_scores("criterion 'magnitude'", s, active[n], None)

    logits = model(x).detach()
    check_update = _median_seconds(check_all, 50, blocks)
    update = _median_seconds(lambda: sparse.updater.update(1), 5, blocks)
    check_output = _median_seconds(lambda: output_problem(logits, 128, 10), 2000, blocks)
    train_step = _median_seconds(step, 10, blocks)
    n_active = sum(int(m.sum()) for _, m in sparse.masks.items())
    rows = [
        ["criterion scores, every layer (per update)", f"{check_update * 1e6:.0f} µs",
         f"{update * 1e3:.1f} ms (one local magnitude/random update)", f"{check_update / update:.2%}"],
        ["model output (per step)", f"{check_output * 1e6:.1f} µs", f"{train_step * 1e3:.1f} ms (one training step)",
         f"{check_output / train_step:.3%}"],
    ]
    body = "\n".join([
        "Command: `python bench/bench_checks.py --out docs/benchmarks.md`"
        + (" (`--quick`)" if args.quick else "") + f"; MLP-CIFAR10 at density 0.1 (ERK, {n_active:,} active "
        "weights), batch 128, 2 threads, CPU; medians over " + f"{blocks} blocks.",
        "",
        *table(["check", "cost", "against", "share"], rows),
        "",
        "The score check is one `isfinite` pass over each layer's active scores and a shape compare, "
        "the output check two comparisons on the logits' shape: neither is worth turning off.",
    ])
    print(body)
    if args.out:
        write_section(args.out, "bench_checks", "Checks of a user's component (bench/bench_checks.py)", body)


if __name__ == "__main__":
    sys.path.insert(0, str(Path(__file__).parent))
    main()
