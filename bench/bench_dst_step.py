"""Cost of dynamic sparse training on the paper's MLP-CIFAR10 (3072-1024-512-10), on the CPU.

Usage::

    python bench/bench_dst_step.py [--quick] [--threads N] [--out docs/benchmarks.md]

Setup: one batch of 128 random images with random labels, reused for every step; 2 torch threads;
SGD lr 0.01, momentum 0.9, Nesterov, weight decay 5e-4; sparse runs at density 0.1 with ERK masks
built exactly as ``Trainer.__init__`` builds them. Repetitions as [full run / ``--quick``].

1. **Training step.** Dense = ``zero_grad``, forward, cross-entropy, backward, ``optimizer.step()``;
   sparse adds what ``Trainer._train_step`` does on every step: ``updater.maybe_update(step)``
   (never due here) and ``masks.apply_(params)``. Both run on one model, so only that difference
   is timed. After a warm-up [20 / 2 steps each], dense and sparse run in interleaved blocks [15 / 3 rounds of 20 / 5 steps], the order alternating every
   round. Reported: median and minimum per-step time over the blocks; ratios sparse/dense of the
   medians (checked against the target), of the minima, and the median per-round ratio.
2. **Topology update.** ``TopologyUpdater.update`` for every criterion x growth x scope [all /
   global scope only for magnitude and random], drop fraction 0.5, on one shared sparse run in
   mid-training (updates keep the density, so each leaves a valid state for the next). Each
   repetition: forward + backward, the timed update, the optimizer step and ``apply_``. Reported:
   median of the timed updates after the warm-up [1 + 7 / 0 + 1], also in dense steps.
3. **Breakdown** of one local update of the largest layer (magnitude+gradient, random+random): the
   library calls the updater makes for it, each timed: active indices
   (``mask.reshape(-1).nonzero()``), gathering active weights/gradients, ``prune_active`` (drop
   scores + selection on the active entries), the new mask, ``grow_indices`` (growth scores +
   selection), the weight/momentum reset by index, ``MaskSet.set`` (ITOP packing). The new mask
   is checked equal to ``plan_update``'s.
4. **Mask memory** per sparsified weight: boolean masks, and the bit-packed ITOP record.

Targets: sparse step <= 1.05 x dense; each update <= 2 dense steps; masks <= 1 byte/weight.

Run it on an idle machine: with two OpenMP threads on two cores any other busy process makes every
parallel region wait (steps were seen to get 10x slower). The report gives the cores other
processes used during the run (``/proc/stat`` minus our ``getrusage``) and flags more than 0.1.
"""

from __future__ import annotations

import argparse
import contextlib
import gc
import os
import platform
import shlex
import statistics
import sys
import time
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

from report import cpu_clock, cpu_model, other_cores, table, verdict, write_section

import torch
import torch.nn.functional as F
from torch import nn

from dst_core.criteria import CRITERIA, prune_active
from dst_core.density import layer_counts
from dst_core.growth import GROWTH, grow_indices
from dst_core.masks import MaskSet, sparsifiable
from dst_core.models import build_model
from dst_core.schedules import UpdateSchedule, drop_schedule
from dst_core.topology import TopologyUpdater, derive_generator, n_drop, plan_update
from dst_core.sparse_training import _MASK_INIT  # the mask-init stream id Trainer uses

MODEL, INPUT_SHAPE, NUM_CLASSES, BATCH = "mlp_cifar10", (3, 32, 32), 10, 128
DENSITY, INIT, ERK_POWER, DROP_FRACTION, SEED = 0.1, "erk", 1.0, 0.5, 0
LR, MOMENTUM, WEIGHT_DECAY = 0.01, 0.9, 5e-4
TARGET_STEP_RATIO, TARGET_UPDATE_STEPS, TARGET_MASK_BYTES = 1.05, 2.0, 1.0
QUICK_GLOBAL = ("magnitude", "random")  # criteria whose global scope --quick measures
BREAKDOWN_CASES = (("magnitude", "gradient"), ("random", "random"))
BUSY_CORES = 0.1  # other processes' average CPU use (cores) above which a run is flagged


@dataclass(frozen=True)
class Settings:
    warmup: int  # steps of each kind before timing
    rounds: int  # interleaved dense/sparse rounds
    block: int  # steps per block
    update_warmup: int  # untimed updates (and breakdown repetitions) before the timed ones
    update_reps: int  # timed updates per criterion x growth x scope
    breakdown_reps: int
    all_global: bool  # global scope for every criterion (else only QUICK_GLOBAL)


FULL = Settings(warmup=20, rounds=15, block=20, update_warmup=1, update_reps=7, breakdown_reps=7,
                all_global=True)
QUICK = Settings(warmup=2, rounds=3, block=5, update_warmup=0, update_reps=1, breakdown_reps=1,
                 all_global=False)


# ---- setup and the training step ------------------------------------------------------------

@dataclass
class Run:
    """One model with its optimizer and, when sparse, its masks and updater."""

    model: nn.Module
    optimizer: torch.optim.Optimizer
    params: dict[str, nn.Parameter]
    x: torch.Tensor  # the one minibatch every step uses
    y: torch.Tensor
    masks: MaskSet | None = None
    updater: TopologyUpdater | None = None
    step: int = 0  # optimizer steps taken


def make_run(sparse: bool) -> Run:
    """A model as ``Trainer.__init__`` builds it (same seeding, same mask construction)."""
    torch.manual_seed(SEED)
    model = build_model(MODEL, INPUT_SHAPE, NUM_CLASSES)
    optimizer = torch.optim.SGD(model.parameters(), lr=LR, momentum=MOMENTUM, nesterov=True,
                                weight_decay=WEIGHT_DECAY)
    gen = torch.Generator().manual_seed(SEED + 1)
    x = torch.randn(BATCH, *INPUT_SHAPE, generator=gen)
    run = Run(model, optimizer, sparsifiable(model), x, torch.randint(0, NUM_CLASSES, (BATCH,), generator=gen))
    if sparse:
        counts = layer_counts({n: tuple(p.shape) for n, p in run.params.items()}, DENSITY, INIT, ERK_POWER)
        run.masks = MaskSet.from_counts(run.params, counts, derive_generator(SEED, 0, _MASK_INIT))
        run.masks.apply_(run.params)
        run.updater = new_updater(run, "magnitude", "random", "local")
    return run


def new_updater(run: Run, criterion: str, growth: str, scope: str) -> TopologyUpdater:
    """An updater on ``run``'s parameters, masks and optimizer that is never due by itself."""
    return TopologyUpdater(run.params, run.masks, run.optimizer, criterion, growth,
                           drop_schedule("constant", DROP_FRACTION, 10**9), UpdateSchedule(10**9, 10**9),
                           scope, SEED)


def forward_backward(run: Run) -> None:
    run.optimizer.zero_grad(set_to_none=True)
    F.cross_entropy(run.model(run.x), run.y).backward()


def finish_step(run: Run, sparse: bool = True) -> None:
    run.optimizer.step()
    if sparse and run.masks is not None:
        run.masks.apply_(run.params)
    run.step += 1


def train_step(run: Run, sparse: bool = True) -> None:
    """What ``Trainer._train_step`` does without an update; ``sparse=False``: a plain dense step."""
    forward_backward(run)
    if sparse and run.updater is not None:
        run.updater.maybe_update(run.step)  # never due: only the schedule check
    finish_step(run, sparse)


# ---- measurements -----------------------------------------------------------------------------

@contextlib.contextmanager
def no_gc():
    gc.collect()
    gc.disable()
    try:
        yield
    finally:
        gc.enable()


def measure_steps(s: Settings) -> tuple[list[float], list[float]]:
    """Seconds per step of the dense and the sparse blocks, interleaved.

    Both run on the same model and optimizer, so the difference is only what sparse training adds
    (the schedule check and ``masks.apply_``), not where two models happen to lie in memory: two
    separate but identical dense models were seen to differ by 5 % and more on this machine.
    """
    run = make_run(True)
    for _ in range(s.warmup):
        train_step(run, sparse=False)
        train_step(run, sparse=True)
    times: dict[str, list[float]] = {"dense": [], "sparse": []}
    with no_gc():
        for r in range(s.rounds):
            for kind in ("dense", "sparse") if r % 2 == 0 else ("sparse", "dense"):
                start = time.perf_counter()
                for _ in range(s.block):
                    train_step(run, sparse=kind == "sparse")
                times[kind].append((time.perf_counter() - start) / s.block)
    return times["dense"], times["sparse"]


def update_cases(s: Settings) -> list[tuple[str, str, str]]:
    return [(c, g, scope) for scope in ("local", "global") for c in CRITERIA.names()
            if scope == "local" or s.all_global or c in QUICK_GLOBAL for g in GROWTH.names()]


def measure_update(run: Run, criterion: str, growth: str, scope: str, s: Settings) -> list[float]:
    """Seconds of the timed ``updater.update`` calls on ``run``, a sparse run in mid-training."""
    updater = new_updater(run, criterion, growth, scope)
    seconds = []
    for _ in range(s.update_warmup + s.update_reps):
        forward_backward(run)  # gradients of this minibatch, before the optimizer step
        with no_gc():
            start = time.perf_counter()
            updater.update(run.step)
            seconds.append(time.perf_counter() - start)
        finish_step(run)
    return seconds[s.update_warmup:]


def put(t: torch.Tensor, index: torch.Tensor, value) -> None:
    t.view(-1)[index] = value


def measure_breakdown(run: Run, criterion: str, growth: str, s: Settings) -> dict[str, float]:
    """Median seconds per library call of one local update of the largest layer.

    The calls and arguments are those of ``select_removals`` / ``plan_update`` /
    ``TopologyUpdater.update`` for that layer; the new mask is checked equal to ``plan_update``'s.
    """
    names = list(run.params)
    name = max(names, key=lambda n: run.params[n].numel())
    i, param = names.index(name), run.params[name]
    needs_grad = CRITERIA.get(criterion).needs_grad
    samples: dict[str, list[float]] = {}

    def section(label, fn):
        start = time.perf_counter()
        out = fn()
        samples.setdefault(label, []).append(time.perf_counter() - start)
        return out

    def cleared(mask, removed):
        new = mask.clone()
        put(new, removed, False)
        return new

    def reset(w, removed, grown):  # as in TopologyUpdater.update
        put(w, removed, 0)
        put(w, grown, 0)
        for value in run.optimizer.state.get(param, {}).values():
            if isinstance(value, torch.Tensor) and value.shape == w.shape:
                put(value, grown, 0)

    for _ in range(s.update_warmup + s.breakdown_reps):
        forward_backward(run)
        w, g, mask = param.detach(), param.grad, run.masks[name]
        expected = plan_update({n: p.detach() for n, p in run.params.items()},
                               {n: p.grad for n, p in run.params.items()}, run.masks.masks, DROP_FRACTION,
                               criterion=criterion, growth=growth, seed=SEED, step=run.step)[name][0]
        gen_drop, gen_grow = derive_generator(SEED, run.step, i), derive_generator(SEED, run.step, len(names) + i)
        with no_gc():
            start = time.perf_counter()
            active = section("active indices: `mask.reshape(-1).nonzero()`",
                             lambda: mask.reshape(-1).nonzero().squeeze(1))
            w_a, g_a = section("gather active weights (+ grads)", lambda: (
                w.reshape(-1)[active], g.reshape(-1)[active] if needs_grad else None))
            k = n_drop(active.numel(), DROP_FRACTION)
            removed = section("drop: `prune_active` (scores + selection)",
                              lambda: active[prune_active(criterion, w_a, g_a, k, gen_drop)])
            new = section("new mask: clone, clear removed", lambda: cleared(mask, removed))
            grown = section("grow: `grow_indices` (scores + selection)",
                            lambda: grow_indices(growth, w, g, new, removed.numel(), gen_grow))
            section("new mask: set grown", lambda: put(new, grown, True))
            section("reset weights + momentum by index", lambda: reset(w, removed, grown))
            section("`MaskSet.set` (ITOP packing)", lambda: run.masks.set(name, new))
            samples.setdefault("= sum (largest layer)", []).append(time.perf_counter() - start)
        assert torch.equal(new, expected), "breakdown diverged from dst_core.topology.plan_update"
        finish_step(run)
    return {label: statistics.median(v[s.update_warmup:]) for label, v in samples.items()}






# ---- report -----------------------------------------------------------------------------------





def ms(seconds: float) -> str:
    return f"{seconds * 1e3:.2f}"




def report(header: list[str], busy: float | None, s: Settings, dense: list[float], sparse: list[float],
           updates: dict[tuple[str, str, str], list[float]], breakdowns: dict[tuple[str, str], dict[str, float]],
           masks: MaskSet) -> str:
    lines = [*header, ""]
    if busy is not None and busy > BUSY_CORES:
        lines += [f"**Warning:** other processes kept {busy:.2f} cores busy on average during this run; with "
                  "threads competing for the cores the figures below are unreliable. Re-run on an idle machine.", ""]

    med = statistics.median
    step = med(dense)
    ratios = [med(sparse) / step, min(sparse) / min(dense), med(b / a for a, b in zip(dense, sparse))]
    ok = [verdict(r <= TARGET_STEP_RATIO) for r in ratios]
    lines += ["### Training step (interleaved blocks)", ""]
    lines += table(["", "median ms/step", "min ms/step", "blocks x steps"],
                   [["dense", ms(step), ms(min(dense)), f"{len(dense)} x {s.block}"],
                    ["sparse (+ maybe_update + masks.apply_)", ms(med(sparse)), ms(min(sparse)),
                     f"{len(sparse)} x {s.block}"]])
    lines += ["", f"- ratio sparse/dense (medians): **{ratios[0]:.3f}** (target <= {TARGET_STEP_RATIO}: **{ok[0]}**)",
              f"- ratio of minima: {ratios[1]:.3f} ({ok[1]}); median of per-round ratios: {ratios[2]:.3f} ({ok[2]})",
              ""]

    upd = {case: med(v) for case, v in updates.items()}
    lines += ["### Topology update (all layers)", "",
              f"Median of {s.update_reps} timed updates after {s.update_warmup} warm-up; dense step = {ms(step)} ms "
              f"(median above). Target: each update <= {TARGET_UPDATE_STEPS:g} dense steps.", ""]
    lines += table(["criterion", "growth", "scope", "median ms", "min ms", "dense steps", "target"],
                   [[*case, ms(upd[case]), ms(min(v)), f"{upd[case] / step:.2f}",
                     verdict(upd[case] / step <= TARGET_UPDATE_STEPS)] for case, v in updates.items()])
    worst = max(upd, key=upd.get)
    n_fail = sum(u / step > TARGET_UPDATE_STEPS for u in upd.values())
    lines += ["", f"- slowest: {'/'.join(worst)} at {ms(upd[worst])} ms = {upd[worst] / step:.2f} dense steps; "
              f"{n_fail} of {len(upd)} cases over target: **{verdict(n_fail == 0)}**", ""]

    lines += ["### Where an update's time goes (largest layer, local scope)", ""]
    rows = [[label] + [ms(b[label]) for b in breakdowns.values()] for label in next(iter(breakdowns.values()))]
    rows.append(["for reference: `updater.update`, all layers"] + [ms(upd[(c, g, "local")]) for c, g in breakdowns])
    lines += table(["section"] + [f"{c}+{g} ms" for c, g in breakdowns], rows)

    n = sum(m.numel() for m in masks.masks.values())
    mb = sum(m.element_size() * m.numel() for m in masks.masks.values())
    eb = sum(e.element_size() * e.numel() for e in masks._ever.values())
    lines += ["", "### Mask memory", ""]
    lines += table(["", "bytes", "bytes/weight", "target"],
                   [["masks (torch.bool)", f"{mb:,}", f"{mb / n:.3f}",
                     f"<= {TARGET_MASK_BYTES:g}: {verdict(mb / n <= TARGET_MASK_BYTES)}"],
                    ["ITOP record (packed uint8)", f"{eb:,}", f"{eb / n:.3f}", ""],
                    ["both", f"{mb + eb:,}", f"{(mb + eb) / n:.3f}", ""]])
    lines += ["", f"({n:,} sparsified weights, density {masks.density():.4f})"]
    return "\n".join(lines) + "\n"




def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="few repetitions (< 60 s); figures are rough")
    parser.add_argument("--out", type=Path, help="Markdown file whose bench_dst_step section is (re)written")
    parser.add_argument("--threads", type=int, default=2, help="torch threads (default 2)")
    args = parser.parse_args(argv)
    s = QUICK if args.quick else FULL
    torch.set_num_threads(args.threads)
    wall, clock = time.perf_counter(), cpu_clock()

    print(f"[1/3] training steps: {s.rounds} rounds x 2 x {s.block} steps ...", flush=True)
    dense, sparse = measure_steps(s)
    cases = update_cases(s)
    print(f"[2/3] topology updates: {len(cases)} cases x {s.update_reps} ...", flush=True)
    run = make_run(True)
    train_step(run)  # momentum buffers exist from here on, as in a real run
    updates = {}
    for case in cases:
        updates[case] = measure_update(run, *case, s)
        print(f"      {case[0]:>22} {case[1]:>8} {case[2]:>6}: {ms(statistics.median(updates[case])):>8} ms",
              flush=True)
    print("[3/3] breakdown ...", flush=True)
    breakdowns = {case: measure_breakdown(run, *case, s) for case in BREAKDOWN_CASES}
    busy = other_cores(clock, cpu_clock())

    command = shlex.join(["python", *(sys.argv if argv is None else [sys.argv[0], *argv])])
    header = [
        f"Command: `{command}`", "",
        f"- date: {datetime.now(timezone.utc):%Y-%m-%d %H:%M UTC}",
        f"- torch {torch.__version__}, Python {platform.python_version()}, threads: {torch.get_num_threads()}",
        f"- CPU: {cpu_model()} ({os.cpu_count()} logical cores); other processes used "
        + (f"{busy:.2f} cores on average during the run" if busy is not None else "n/a cores"),
        f"- model {MODEL} {INPUT_SHAPE} -> {NUM_CLASSES}, batch {BATCH} of random data; SGD lr {LR}, momentum "
        f"{MOMENTUM}, Nesterov, weight decay {WEIGHT_DECAY}; sparse: density {DENSITY}, {INIT} masks; "
        f"updates: drop fraction {DROP_FRACTION} (constant)",
        f"- settings: {'quick' if args.quick else 'full'} (warm-up {s.warmup} steps, {s.rounds} rounds; "
        f"{s.update_warmup} warm-up + {s.update_reps} timed updates/case; {s.breakdown_reps} breakdown reps)",
        f"- total wall time: {time.perf_counter() - wall:.1f} s",
    ]
    body = report(header, busy, s, dense, sparse, updates, breakdowns, run.masks)
    print()
    print(body)
    if args.out:
        write_section(args.out, "bench_dst_step", "DST step cost (bench/bench_dst_step.py)", body)
        print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
