"""Platform overhead of a study: a grid of 40 trials of about 3 s each on 2 CPUs through Ray Tune.

Usage::

    python bench/bench_study.py [--trials 40] [--epochs 25] [--out docs/benchmarks.md]

Measured: the study's wall time from ``run()`` to its return (Ray start and stop included), the
ideal wall time (the trials' own seconds, as each measured them inside its worker, summed and
divided by the 2 CPUs), their ratio (target <= 1.15), the overhead per trial, and the time from
``run()`` to the first trial's start. Each trial trains the MNIST-1D MLP on one thread (Ray gives a
1-CPU trial ``OMP_NUM_THREADS=1``), with enough epochs for about 3 s.
"""

from __future__ import annotations

import argparse
import logging
import os
import shlex
import sys
import tempfile
import time
from datetime import datetime, timezone
from pathlib import Path

os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")

import ray  # noqa: E402
import torch  # noqa: E402

from dst_core import Trainer  # noqa: E402

from study.runner import plan, run  # noqa: E402
from study.spec import parse  # noqa: E402
from study.store import ParquetStore  # noqa: E402
from report import cpu_model, table, verdict, write_section  # noqa: E402

MARK = "bench_study"


def _alone(configs) -> float:
    """Mean seconds of these trials run here, as a trial runs them but without the platform."""
    torch.set_num_threads(1)  # as Ray gives a 1-CPU trial
    for _ in Trainer(configs[0]).epochs():  # warm: a process's first optimizer step imports torch._dynamo
        break
    seconds = []
    for config in configs:
        clock = time.perf_counter()
        for _ in Trainer(config).epochs():
            pass
        seconds.append(time.perf_counter() - clock)
    return sum(seconds) / len(seconds)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=40)
    parser.add_argument("--epochs", type=int, default=25, help="epochs per trial (about 3 s at 25)")
    parser.add_argument("--out", help="Markdown file whose bench_study section to write")
    args = parser.parse_args()
    root = tempfile.mkdtemp(prefix="bench-study-")
    spec = parse({"name": "overhead", "storage": root,
                  "base": {"epochs": args.epochs, "lr": 0.1, "update_period": 50, "device": "cpu"},
                  "grid": {"seed": list(range(args.trials))}, "resources": {"cpu": 1}})
    clock = time.perf_counter()
    start = datetime.now(timezone.utc)
    ray.init(address="local", num_cpus=2, include_dashboard=False, log_to_driver=False,
             logging_level=logging.ERROR)
    try:
        run(plan(spec), log=lambda line: None)
    finally:
        ray.shutdown()
    wall = time.perf_counter() - clock
    trials = ParquetStore(spec.study_dir).read("trials")
    assert len(trials) == args.trials and set(trials["status"]) == {"completed"}
    busy = float(trials["wall_seconds"].sum())
    ideal = busy / 2
    first = (trials["started_at"].min() - start).total_seconds()
    # once the first trial runs: the last trial's end minus the first's start, against the ideal
    running = (trials["ended_at"].max() - trials["started_at"].min()).total_seconds()
    alone = _alone(spec.trials()[:3])
    lines = [
        f"Command: `python bench/bench_study.py {shlex.join(sys.argv[1:])}`",
        "",
        f"- date: {start:%Y-%m-%d %H:%M} UTC; {os.cpu_count()} cores ({cpu_model()}); Ray {ray.__version__}; "
        "a private local Ray with 2 CPUs, 1 CPU per trial, `reuse_actors=True`",
        f"- {args.trials} trials of the MNIST-1D MLP, {args.epochs} epochs each: "
        f"{busy / args.trials:.2f} s per trial on average (measured inside each trial)",
        "",
        *table(["figure", "value", "target"], [
            ["study wall time (Ray start and stop included)", f"{wall:.1f} s", ""],
            ["ideal: trial seconds / 2 CPUs", f"{ideal:.1f} s", ""],
            ["ratio", f"**{wall / ideal:.3f}**", f"<= 1.15: **{verdict(wall / ideal <= 1.15)}**"],
            ["overhead per trial: (2 x wall - trial seconds) / trials", f"{(2 * wall - busy) / args.trials:.2f} s", ""],
            ["time from `run()` to the first trial's start", f"{first:.1f} s", ""],
            ["ratio once the first trial runs: (last end - first start) / ideal", f"{running / ideal:.3f}", ""],
            ["the same trial alone (`dst_core.Trainer`, 1 thread, no checkpoints; mean of 3)", f"{alone:.2f} s", ""],
            ["inside each trial: Tune reports and a checkpoint every epoch", f"{busy / args.trials - alone:.2f} s", ""],
        ]),
        "",
        "Where the time goes: trials are measured from the entry of the trial function to its last report",
        "(loading data, building the model, training, per-epoch checkpoints). The rest is the platform:",
        "starting Ray, then starting a worker per CPU and importing torch and Ray Tune into it, about as",
        "much CPU as 3 trials on this 2-core machine, and stopping Ray at the end.",
    ]
    body = "\n".join(lines)
    print(body)
    if args.out:
        write_section(Path(args.out), MARK, "Study overhead (bench/bench_study.py)", body)
    return 0


if __name__ == "__main__":
    sys.exit(main())
