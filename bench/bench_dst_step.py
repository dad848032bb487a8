"""Cost of dynamic sparse training on the paper's MLP-CIFAR10 (3072-1024-512-10), on the CPU.

Usage::

    python bench/bench_dst_step.py [--quick] [--out docs/benchmarks.md]

What is measured (batch of 128 random images ``randn(128, 3, 32, 32)`` with random labels,
``torch.set_num_threads(2)``, SGD lr 0.01, momentum 0.9, Nesterov, weight decay 5e-4):

1. **Training step.** Dense step = ``zero_grad(set_to_none=True)``, forward, cross-entropy,
   backward, ``optimizer.step()``. Sparse step (density 0.1, ERK masks built exactly as
   ``Trainer.__init__`` builds them) = the same plus what ``Trainer._train_step`` adds on every
   step: ``updater.maybe_update(step)`` (never due here) and ``masks.apply_(params)``. Timing on a
   shared machine is noisy, so dense and sparse are measured in *interleaved* blocks (full run:
   20 warm-up steps each, then 15 rounds of one 20-step block of each, the order alternating
   every round; ``--quick``: 2, 3 rounds, 5 steps) and each block gives one per-step time. Reported: the median and the minimum of the block times, the ratio of the
   medians (the figure checked against the target), the ratio of the minima, and the median of
   the per-round ratios (each round's dense and sparse blocks ran back to back).
2. **Topology update.** For every criterion x growth rule x scope, a
   :class:`~dst_core.topology.TopologyUpdater` (constant drop fraction 0.5) is built on one shared
   sparse run in mid-training (the updates keep the density, so each leaves a valid state for the
   next). Each repetition does forward + backward (so gradients exist, as in the trainer), times
   ``updater.update(step)``, then takes the optimizer step and re-applies the masks (untimed), so
   every update sees fresh weights, gradients and momentum. After an untimed warm-up update the
   median of the timed ones is reported, also in units of the median dense step.
3. **Breakdown** of one update on the largest layer for two cases: the same functions the
   updater calls (score function, ``select_top`` for the drop, growth score, ``select_top`` for
   the grow, weight/momentum reset, ``MaskSet.set``), each timed with ``perf_counter``, plus the
   internals of the grow-side ``select_top`` (a step-by-step copy of it, checked to give the same
   mask).
4. **Mask memory**: bytes of the boolean masks, and of the bit-packed ever-active (ITOP) record,
   per sparsified weight.

Targets: sparse step <= 1.05 x dense; each update <= 2 dense steps; masks <= 1 byte/weight.

Run it on an otherwise idle machine: with two OpenMP threads on two cores, any other busy process
makes every parallel region wait (steps were seen to get 10x slower). The report states how many
cores other processes used during the run (``/proc/stat`` minus our own ``getrusage``) and flags
the figures as unreliable above 0.1 core.
"""

from __future__ import annotations

import argparse
import dataclasses
import gc
import math
import os
import platform
import re
import resource
import shlex
import statistics
import sys
import time
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Callable

import torch
import torch.nn.functional as F
from torch import nn

from dst_core.criteria import CRITERIA, select_prune
from dst_core.density import layer_counts
from dst_core.growth import GROWTH, select_grow
from dst_core.masks import MaskSet, select_top, sparsifiable
from dst_core.models import build_model
from dst_core.schedules import UpdateSchedule, drop_schedule
from dst_core.topology import TopologyUpdater, derive_generator, n_drop
from dst_core.trainer import _MASK_INIT  # the mask-init stream id Trainer uses

MODEL, INPUT_SHAPE, NUM_CLASSES, BATCH = "mlp_cifar10", (3, 32, 32), 10, 128
DENSITY, INIT, ERK_POWER, DROP_FRACTION, SEED = 0.1, "erk", 1.0, 0.5, 0
LR, MOMENTUM, WEIGHT_DECAY = 0.01, 0.9, 5e-4
TARGET_STEP_RATIO, TARGET_UPDATE_STEPS, TARGET_MASK_BYTES = 1.05, 2.0, 1.0
GLOBAL_AT_LEAST = ("magnitude", "random")  # criteria whose global scope is always measured
BREAKDOWN_CASES = (("magnitude", "gradient"), ("random", "random"))
BUSY_CORES = 0.1  # other processes' average CPU use (cores) above which a run is flagged
MARK_START, MARK_END = "<!-- bench_dst_step:start -->", "<!-- bench_dst_step:end -->"


@dataclass(frozen=True)
class Settings:
    threads: int
    warmup: int  # steps of each kind before timing
    rounds: int  # interleaved dense/sparse rounds
    block: int  # steps per block
    update_warmup: int  # untimed updates (and breakdown repetitions) before the timed ones
    update_reps: int  # timed updates per criterion x growth x scope
    breakdown_reps: int
    all_global: bool  # global scope for every criterion (else only GLOBAL_AT_LEAST)


FULL = Settings(threads=2, warmup=20, rounds=15, block=20, update_warmup=1, update_reps=7, breakdown_reps=7,
                all_global=True)
QUICK = Settings(threads=2, warmup=2, rounds=3, block=5, update_warmup=0, update_reps=1, breakdown_reps=1,
                 all_global=False)


# --------------------------------------------------------------------------------------------
# setup


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
    params = sparsifiable(model)
    gen = torch.Generator().manual_seed(SEED + 1)
    x = torch.randn(BATCH, *INPUT_SHAPE, generator=gen)
    y = torch.randint(0, NUM_CLASSES, (BATCH,), generator=gen)
    run = Run(model, optimizer, params, x, y)
    if sparse:
        counts = layer_counts({n: tuple(p.shape) for n, p in params.items()}, DENSITY, INIT, ERK_POWER)
        run.masks = MaskSet.from_counts(params, counts, derive_generator(SEED, 0, _MASK_INIT))
        run.masks.apply_(params)
        run.updater = new_updater(run, "magnitude", "random", "local")
    return run


def forward_backward(run: Run) -> None:
    run.optimizer.zero_grad(set_to_none=True)
    loss = F.cross_entropy(run.model(run.x), run.y)
    loss.backward()


def finish_step(run: Run) -> None:
    run.optimizer.step()
    if run.masks is not None:
        run.masks.apply_(run.params)
    run.step += 1


def dense_step(run: Run) -> None:
    forward_backward(run)
    finish_step(run)


def sparse_step(run: Run) -> None:
    """What ``Trainer._train_step`` does on a step without a topology update."""
    forward_backward(run)
    run.updater.maybe_update(run.step)  # never due (period 1e9): only the schedule check
    finish_step(run)


# --------------------------------------------------------------------------------------------
# measurements


def timed(fn: Callable[[], object]) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def time_block(step: Callable[[Run], None], run: Run, n: int) -> float:
    """Seconds per step over ``n`` consecutive steps."""
    start = time.perf_counter()
    for _ in range(n):
        step(run)
    return (time.perf_counter() - start) / n


@dataclass
class StepResult:
    dense: list[float]  # per-step seconds, one per block
    sparse: list[float]

    @property
    def dense_median(self) -> float:
        return statistics.median(self.dense)

    @property
    def sparse_median(self) -> float:
        return statistics.median(self.sparse)

    @property
    def ratio_median(self) -> float:
        return self.sparse_median / self.dense_median

    @property
    def ratio_min(self) -> float:
        return min(self.sparse) / min(self.dense)

    @property
    def ratio_paired(self) -> float:
        return statistics.median(s / d for s, d in zip(self.sparse, self.dense))


def measure_steps(s: Settings) -> StepResult:
    dense, sparse = make_run(False), make_run(True)
    for _ in range(s.warmup):
        dense_step(dense)
        sparse_step(sparse)
    result = StepResult([], [])
    gc.collect()
    gc.disable()
    try:
        for r in range(s.rounds):
            order = [(dense_step, dense, result.dense), (sparse_step, sparse, result.sparse)]
            for step, run, out in order if r % 2 == 0 else order[::-1]:
                out.append(time_block(step, run, s.block))
    finally:
        gc.enable()
    return result


@dataclass
class UpdateResult:
    criterion: str
    growth: str
    scope: str
    seconds: list[float]

    @property
    def median(self) -> float:
        return statistics.median(self.seconds)


def update_cases(s: Settings) -> list[tuple[str, str, str]]:
    cases = []
    for scope in ("local", "global"):
        for criterion in CRITERIA.names():
            if scope == "global" and not (s.all_global or criterion in GLOBAL_AT_LEAST):
                continue
            cases += [(criterion, growth, scope) for growth in GROWTH.names()]
    return cases


def new_updater(run: Run, criterion: str, growth: str, scope: str) -> TopologyUpdater:
    """A fresh updater on ``run``'s parameters, masks and optimizer (as the trainer builds it)."""
    return TopologyUpdater(run.params, run.masks, run.optimizer, criterion, growth,
                           drop_schedule("constant", DROP_FRACTION, 10**9), UpdateSchedule(10**9, 10**9),
                           scope, SEED)


def measure_update(run: Run, criterion: str, growth: str, scope: str, s: Settings) -> UpdateResult:
    """Time ``updater.update`` on ``run``, a sparse run in mid-training (weights, momentum, masks).

    The cases share one run: each update leaves a valid state at the same density, which is what
    the next update would meet in training.
    """
    updater = new_updater(run, criterion, growth, scope)
    seconds = []
    for rep in range(s.update_warmup + s.update_reps):
        forward_backward(run)  # gradients of this minibatch, before the optimizer step
        gc.collect()
        gc.disable()
        try:
            elapsed = timed(lambda: updater.update(run.step))
        finally:
            gc.enable()
        if rep >= s.update_warmup:
            seconds.append(elapsed)
        finish_step(run)
    return UpdateResult(criterion, growth, scope, seconds)


def measure_breakdown(run: Run, criterion: str, growth: str, s: Settings) -> dict[str, float]:
    """Median seconds per section of one local update of the largest layer.

    Mirrors ``drop_and_grow`` + ``TopologyUpdater.update`` for one layer, calling the same
    functions; ``select_top`` appears once inside ``select_prune`` / ``select_grow`` and once
    more on its own (score functions timed separately) so both views are available.
    """
    name = max(run.params, key=lambda n: run.params[n].numel())
    index = list(run.params).index(name)
    c_entry, g_entry = CRITERIA.get(criterion), GROWTH.get(growth)
    samples: dict[str, list[float]] = {}

    def section(label: str, fn: Callable[[], object]):
        start = time.perf_counter()
        out = fn()
        samples.setdefault(label, []).append(time.perf_counter() - start)
        return out

    for rep in range(s.update_warmup + s.breakdown_reps):
        forward_backward(run)
        w, g, mask = run.params[name].detach(), run.params[name].grad, run.masks[name]
        gc.collect()
        gc.disable()
        try:
            start = time.perf_counter()
            k = section("count active + n_drop", lambda: n_drop(int(mask.sum()), DROP_FRACTION))
            gen = section("derive_generator", lambda: derive_generator(SEED, run.step, index))
            scores = section("drop: score function", lambda: c_entry.obj(w, g, mask, gen))
            removed = section("drop: select_top (lowest k of active)",
                              lambda: select_top(scores, mask, k, largest=False))
            kept = section("kept = mask & ~removed", lambda: mask & ~removed)
            n_grow = section("count removed", lambda: int(removed.sum()))
            gen2 = derive_generator(SEED, run.step, len(run.params) + index)
            gscores = section("grow: score function", lambda: g_entry.obj(w, g, kept, gen2))
            grown = section("grow: select_top (highest k of inactive)",
                            lambda: select_top(gscores, ~kept, n_grow))
            new = section("new = kept | grown", lambda: kept | grown)

            def reset():
                survivors = mask & ~removed
                w.masked_fill_(~survivors, 0)
                for value in run.optimizer.state.get(run.params[name], {}).values():
                    if isinstance(value, torch.Tensor) and value.shape == w.shape:
                        value.masked_fill_(~survivors, 0)

            section("reset weights + momentum (masked_fill_)", reset)
            section("MaskSet.set (pack ITOP bits, OR)", lambda: run.masks.set(name, new))
            section("UpdateStats: count removed again", lambda: int(removed.sum()))
            samples.setdefault("= sum of sections (one layer)", []).append(time.perf_counter() - start)
            # the public per-layer entry points, as drop_and_grow calls them (not applied)
            section("[check] select_prune (score + select_top)",
                    lambda: select_prune(criterion, w, g, mask, k, gen))
            section("[check] select_grow (score + select_top)",
                    lambda: select_grow(growth, w, g, kept, n_grow, gen2))
        finally:
            gc.enable()
        if rep < s.update_warmup:
            samples.clear()
        finish_step(run)
    return {label: statistics.median(v) for label, v in samples.items()}


def select_top_internals(run: Run, s: Settings) -> tuple[str, int, int, dict[str, float]]:
    """Step-by-step copy of ``select_top`` on the grow of ``random`` growth, largest layer.

    The copy is asserted to give exactly ``select_top``'s mask, so the sections are the real work.
    """
    name = max(run.params, key=lambda n: run.params[n].numel())
    mask = run.masks[name]
    k = n_drop(int(mask.sum()), DROP_FRACTION)
    kept = mask & ~select_top(run.params[name].detach().abs(), mask, k, largest=False)
    candidates = ~kept
    samples: dict[str, list[float]] = {}

    def section(label, fn):
        start = time.perf_counter()
        out = fn()
        samples.setdefault(label, []).append(time.perf_counter() - start)
        return out

    for rep in range(s.update_warmup + s.breakdown_reps):
        scores = torch.rand(mask.shape, generator=torch.Generator().manual_seed(rep))
        gc.collect()
        gc.disable()
        try:
            start = time.perf_counter()
            out = section("zeros(shape, bool)", lambda: torch.zeros(scores.shape, dtype=torch.bool))
            idx = section("candidates.nonzero()", lambda: candidates.reshape(-1).nonzero().squeeze(1))
            n = idx.numel()
            gathered = section("gather scores[idx]", lambda: scores.reshape(-1)[idx])
            vals = section("nan_to_num", lambda: torch.nan_to_num(gathered, nan=-math.inf))
            threshold = section("kthvalue", lambda: torch.kthvalue(vals, n - k + 1).values)

            def choose():
                above = vals > threshold
                tie = vals == threshold
                n_tie_taken = k - int(above.sum())
                return above | (tie & (tie.cumsum(0) <= n_tie_taken))

            chosen = section("compare + tie cumsum", choose)

            def scatter():
                out.view(-1)[idx[chosen]] = True

            section("scatter out[idx[chosen]] = True", scatter)
            samples.setdefault("= total (copy)", []).append(time.perf_counter() - start)
            reference = section("select_top itself", lambda: select_top(scores, candidates, k))
        finally:
            gc.enable()
        assert torch.equal(out, reference), "select_top copy diverged from dst_core.masks.select_top"
        if rep < s.update_warmup:
            samples.clear()
    return name, int(candidates.sum()), k, {label: statistics.median(v) for label, v in samples.items()}


def mask_memory(run: Run) -> dict[str, float]:
    n_weights = sum(m.numel() for m in run.masks.masks.values())
    mask_bytes = sum(m.element_size() * m.numel() for m in run.masks.masks.values())
    ever_bytes = sum(e.element_size() * e.numel() for e in run.masks._ever.values())
    return {"weights": n_weights, "mask_bytes": mask_bytes, "ever_bytes": ever_bytes,
            "mask_per_weight": mask_bytes / n_weights, "ever_per_weight": ever_bytes / n_weights,
            "density": run.masks.density()}


# --------------------------------------------------------------------------------------------
# reporting


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def load_average() -> tuple[float, float, float] | None:
    try:
        return os.getloadavg()
    except OSError:
        return None


def fmt_load(load: tuple[float, float, float] | None) -> str:
    return " ".join(f"{x:.2f}" for x in load) if load else "n/a"


class OtherCpuMeter:
    """CPU time that *other* processes used while this one ran (from /proc/stat and getrusage).

    With OpenMP threads on oversubscribed cores every parallel region waits for descheduled
    threads, and a step can get several times slower; this measures how much competition there
    was, where the load average (a 1-minute moving average) only hints at it.
    """

    def __init__(self):
        self.start = self._sample()

    @staticmethod
    def _sample() -> tuple[float, float, float] | None:
        try:
            fields = [int(x) for x in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
        except (OSError, ValueError):
            return None
        hz = os.sysconf("SC_CLK_TCK")
        busy = (sum(fields[:8]) - fields[3] - fields[4]) / hz  # all but idle and iowait
        usage = resource.getrusage(resource.RUSAGE_SELF)
        return time.perf_counter(), busy, usage.ru_utime + usage.ru_stime

    def cores(self) -> float | None:
        """Average number of cores kept busy by other processes since construction."""
        end = self._sample()
        if self.start is None or end is None:
            return None
        wall, busy, own = (e - s for e, s in zip(end, self.start))
        return max(0.0, busy - own) / wall if wall > 0 else None


def busy_warning(other_cores: float | None) -> str | None:
    if other_cores is None or other_cores <= BUSY_CORES:
        return None
    return (f"**Warning:** other processes kept {other_cores:.2f} cores busy on average during this run; "
            "with threads competing for the cores the figures below are unreliable. "
            "Re-run on an idle machine.")


def verdict(ok: bool) -> str:
    return "PASS" if ok else "FAIL"


def ms(seconds: float) -> str:
    return f"{seconds * 1e3:.2f}"


def table(header: list[str], rows: list[list[str]]) -> list[str]:
    """A Markdown table (also readable as plain text)."""
    widths = [max(len(str(c)) for c in col) for col in zip(header, *rows)]
    fmt = lambda cells: "| " + " | ".join(str(c).ljust(w) for c, w in zip(cells, widths)) + " |"  # noqa: E731
    return [fmt(header), "|" + "|".join("-" * (w + 2) for w in widths) + "|", *map(fmt, rows)]


def report(meta: dict[str, Any], steps: StepResult, updates: list[UpdateResult],
           breakdowns: dict[tuple[str, str], dict[str, float]], internals, memory: dict[str, float]) -> str:
    s, dense = meta["settings"], steps.dense_median
    lines = [f"Command: `{meta['command']}`", "",
             f"- date: {meta['date']}",
             f"- torch {meta['torch']}, Python {meta['python']}, threads: {meta['threads']}",
             f"- CPU: {meta['cpu']} ({meta['cores']} logical cores); load average at start / end: "
             f"{fmt_load(meta['load_start'])} / {fmt_load(meta['load_end'])}; other processes used "
             + (f"{meta['other_cores']:.2f} cores on average during the run" if meta["other_cores"] is not None
                else "n/a cores"),
             f"- model {MODEL} {INPUT_SHAPE} -> {NUM_CLASSES}, batch {BATCH} of random data; SGD lr {LR}, "
             f"momentum {MOMENTUM}, Nesterov, weight decay {WEIGHT_DECAY}; sparse: density {DENSITY}, {INIT} "
             f"masks; updates: drop fraction {DROP_FRACTION} (constant)",
             f"- settings: {s}", f"- total wall time: {meta['wall']:.1f} s", ""]
    warning = busy_warning(meta["other_cores"])
    if warning:
        lines += [warning, ""]

    lines += ["### Training step (interleaved blocks)", ""]
    lines += table(
        ["", "median ms/step", "min ms/step", "blocks x steps"],
        [["dense", ms(steps.dense_median), ms(min(steps.dense)), f"{len(steps.dense)} x {meta['block']}"],
         ["sparse (+ maybe_update + masks.apply_)", ms(steps.sparse_median), ms(min(steps.sparse)),
          f"{len(steps.sparse)} x {meta['block']}"]])
    lines += ["",
              f"- ratio sparse/dense (medians): **{steps.ratio_median:.3f}** "
              f"(target <= {TARGET_STEP_RATIO}: **{verdict(steps.ratio_median <= TARGET_STEP_RATIO)}**)",
              f"- ratio of minima: {steps.ratio_min:.3f} "
              f"({verdict(steps.ratio_min <= TARGET_STEP_RATIO)}); median of per-round ratios: "
              f"{steps.ratio_paired:.3f} ({verdict(steps.ratio_paired <= TARGET_STEP_RATIO)})", ""]

    lines += ["### Topology update (all layers)", "",
              f"Median of {meta['update_reps']} timed updates after {meta['update_warmup']} warm-up; dense step = {ms(dense)} ms "
              f"(median above). Target: each update <= {TARGET_UPDATE_STEPS:g} dense steps.", ""]
    rows = [[u.criterion, u.growth, u.scope, ms(u.median), ms(min(u.seconds)), f"{u.median / dense:.2f}",
             verdict(u.median / dense <= TARGET_UPDATE_STEPS)] for u in updates]
    lines += table(["criterion", "growth", "scope", "median ms", "min ms", "dense steps", "target"], rows)
    worst = max(updates, key=lambda u: u.median)
    n_fail = sum(u.median / dense > TARGET_UPDATE_STEPS for u in updates)
    lines += ["", f"- slowest: {worst.criterion}/{worst.growth}/{worst.scope} at {ms(worst.median)} ms "
              f"= {worst.median / dense:.2f} dense steps; {n_fail} of {len(updates)} cases over target: "
              f"**{verdict(n_fail == 0)}**", ""]

    lines += ["### Where an update's time goes (largest layer, local scope)", ""]
    labels = list(next(iter(breakdowns.values())))
    header = ["section"] + [f"{c}+{g} ms" for c, g in breakdowns]
    rows = [[label] + [ms(b[label]) for b in breakdowns.values()] for label in labels]
    full = {(u.criterion, u.growth): u.median for u in updates if u.scope == "local"}
    rows.append(["for reference: updater.update, all layers"]
                + [ms(full[case]) if case in full else "-" for case in breakdowns])
    lines += table(header, rows)
    name, n_cand, k, parts = internals
    lines += ["", f"`select_top` internals for the grow on `{name}` ({n_cand} candidates, k = {k}), "
              "step-by-step copy checked equal to `select_top`:", ""]
    lines += table(["step", "ms"], [[label, ms(v)] for label, v in parts.items()])

    lines += ["", "### Mask memory", ""]
    lines += table(
        ["", "bytes", "bytes/weight", "target"],
        [["masks (torch.bool)", f"{memory['mask_bytes']:,}", f"{memory['mask_per_weight']:.3f}",
          f"<= {TARGET_MASK_BYTES:g}: {verdict(memory['mask_per_weight'] <= TARGET_MASK_BYTES)}"],
         ["ITOP record (packed uint8)", f"{memory['ever_bytes']:,}", f"{memory['ever_per_weight']:.3f}", ""],
         ["both", f"{memory['mask_bytes'] + memory['ever_bytes']:,}",
          f"{memory['mask_per_weight'] + memory['ever_per_weight']:.3f}", ""]])
    lines += ["", f"({memory['weights']:,} sparsified weights, density {memory['density']:.4f})"]
    return "\n".join(lines) + "\n"


def write_section(path: Path, body: str) -> None:
    """Replace the marked section of ``path``, or append it / create the file."""
    section = f"{MARK_START}\n## DST step cost (bench/bench_dst_step.py)\n\n{body}{MARK_END}\n"
    if path.exists():
        text = path.read_text()
        pattern = re.compile(re.escape(MARK_START) + r".*?" + re.escape(MARK_END) + r"\n?", re.S)
        if pattern.search(text):
            text = pattern.sub(lambda _: section, text, count=1)
        else:
            text = text.rstrip("\n") + "\n\n" + section
    else:
        path.parent.mkdir(parents=True, exist_ok=True)
        text = "# Benchmarks\n\n" + section
    path.write_text(text)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="few repetitions (< 60 s); figures are rough")
    parser.add_argument("--out", type=Path, help="Markdown file whose bench_dst_step section is (re)written")
    parser.add_argument("--threads", type=int, default=None, help="torch threads (default 2)")
    args = parser.parse_args(argv)
    s = QUICK if args.quick else FULL
    if args.threads:
        s = dataclasses.replace(s, threads=args.threads)
    torch.set_num_threads(s.threads)
    wall, meter = time.perf_counter(), OtherCpuMeter()
    meta: dict[str, Any] = {"command": shlex.join(["python", *(sys.argv if argv is None else [sys.argv[0], *argv])]),
            "date": datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
            "torch": torch.__version__, "python": platform.python_version(),
            "threads": str(torch.get_num_threads()), "cpu": cpu_model(), "cores": str(os.cpu_count()),
            "load_start": load_average(), "block": str(s.block), "update_reps": str(s.update_reps),
            "settings": ("quick" if args.quick else "full") + f" (warm-up {s.warmup} steps, {s.rounds} rounds; "
                        f"{s.update_warmup} warm-up + {s.update_reps} timed updates/case; "
                        f"{s.breakdown_reps} breakdown reps)", "update_warmup": str(s.update_warmup)}

    print(f"[1/4] training steps: {s.rounds} rounds x 2 x {s.block} steps ...", flush=True)
    steps = measure_steps(s)
    cases = update_cases(s)
    print(f"[2/4] topology updates: {len(cases)} cases x {s.update_reps} ...", flush=True)
    run = make_run(True)
    sparse_step(run)  # momentum buffers exist from here on, as in a real run
    updates = []
    for criterion, growth, scope in cases:
        updates.append(measure_update(run, criterion, growth, scope, s))
        print(f"      {criterion:>22} {growth:>8} {scope:>6}: {ms(updates[-1].median):>8} ms", flush=True)
    print("[3/4] breakdown ...", flush=True)
    breakdowns = {case: measure_breakdown(run, *case, s) for case in BREAKDOWN_CASES}
    internals = select_top_internals(run, s)
    print("[4/4] mask memory ...", flush=True)
    memory = mask_memory(run)
    meta["load_end"], meta["wall"] = load_average(), time.perf_counter() - wall
    meta["other_cores"] = meter.cores()

    body = report(meta, steps, updates, breakdowns, internals, memory)
    print()
    print(body)
    if args.out:
        write_section(args.out, body)
        print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
