"""Statistics you can trust, measured: false positives and power of the comparison tables' tests.

Usage::

    python bench/bench_stats.py [--reps 10000] [--seed 2026] [--quick] [--out docs/statistics.md]

No training. A comparison table is R rows (criteria) x C columns (densities) of cells, each the
mean of n seeds. A seed fixes initial weights, mask and data order for every criterion, so within
a column the draws share a seed effect: a trial's accuracy is ``mu_row + s_seed + e`` with
``s ~ N(0, sd_seed^2)`` shared by the column's rows and ``e ~ N(0, sd_resid^2)`` its own.

1. **Variance components** of the study of record (``results/mnist1d_fig1``, metric
   ``test_accuracy_at_best_val`` in points, the DST rows): per (growth, density) column a two-way
   ANOVA without interaction (row x seed): ``sd_resid^2`` = the residual mean square,
   ``sd_seed^2`` = (seed mean square - residual mean square) / R. The simulation uses the medians
   over columns; R and C are the study's (rows per column, densities per growth rule).
2. **Monte Carlo** for n = 3, 5, 10 seeds, each test (``paired``: t-test of the seed-wise
   differences; ``welch``: Welch's t-test treating the cells as independent), two references
   (``best``: each row against the row with the best mean, what ``compare`` does; ``fixed``: each
   row against a row chosen before seeing the data) and these corrections, "not tied" when the
   (adjusted) p < alpha = 0.05:

   - ``none``: each comparison at alpha;
   - ``holm``: Holm over a column's R - 1 comparisons with its reference;
   - ``holm, all pairs``: Holm over a column's R(R-1)/2 pairwise tests, then the pairs with the
     reference are read off (valid whatever row is selected as the best);
   - ``holm, table``: Holm over the table's C(R-1) comparisons.

   Reported: the false-positive rate of "not tied" when all rows are equal, per comparison, per
   column (any row of the column) and per table (any cell of the table); the power to find one row
   that is worse than the others by delta = 0.5, 1, 2, 3 points (its comparison with the
   reference is "not tied"; for ``best``, a worse row that came out best counts as a miss); the
   chance that one row better by delta is the best and every other row is "not tied" with it (a
   sole winner); how the selection of the best inflates false positives as the number of rows
   grows; Welch against paired as the shared part of the spread varies; and whether
   ``Contrast.detectable`` finds what it promises (80 % power), at alpha and at Holm's alpha/(R-1).

The p-values are the formulas of ``study/stats.py`` vectorised in numpy (scipy's ``betainc`` for
its ``beta_regularized``); before the run the script checks, on a few hundred draws per n, that
they equal ``stats.paired(...).p``, ``stats.welch(...).p`` and ``stats.holm`` to 1e-9, so the
figures measure the code that runs. Fixed seed; one generator per scenario. ``--out`` rewrites
the marked ``bench_stats`` section of that file and leaves the prose around it alone.
"""

from __future__ import annotations

import argparse
import math
import platform
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from scipy.special import betainc  # a dependency of scikit-learn, so always installed

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "bench"))
sys.path.insert(0, str(ROOT))
from report import table, write_section  # noqa: E402

from study import stats  # noqa: E402

MARK = "bench_stats"
STUDY = ROOT / "results" / "mnist1d_fig1"
METRIC = "test_accuracy_at_best_val"
ALPHA = 0.05
SEEDS = (3, 5, 10)
DELTAS = (0.5, 1.0, 2.0, 3.0)
TESTS = ("paired", "welch")
REFERENCES = ("best", "fixed")
CORRECTIONS = ("none", "holm", "holm, all pairs", "holm, table")


# ----------------------------------------------------------------------------- variance components


@dataclass(frozen=True)
class Spread:
    """Variance components in points: a column's cells are ``s_seed + e`` (module docstring)."""

    sd_resid: float
    sd_seed: float

    @property
    def share(self) -> float:
        """The part of a cell's variance shared by the column's rows: the correlation of two rows."""
        return self.sd_seed ** 2 / (self.sd_seed ** 2 + self.sd_resid ** 2)


def variance_components(trials, metric: str = METRIC):
    """Per (growth, density) column of the DST rows: R, n, the median cell sd, and the two-way
    ANOVA's residual and seed components (points; ``seed_var`` may be negative, an estimate)."""
    import pandas as pd

    done = trials[(trials["kind"] == "dst") & (trials["status"] == "completed")]
    rows = []
    for (growth, density), column in done.groupby(["growth", "density"]):
        x = column.pivot_table(index="criterion", columns="seed", values=metric).dropna(axis=1).to_numpy() * 100
        r, n = x.shape
        resid = x - x.mean(1, keepdims=True) - x.mean(0, keepdims=True) + x.mean()
        ms_resid = (resid ** 2).sum() / ((r - 1) * (n - 1))
        ms_seed = r * x.mean(0).var(ddof=1)
        rows.append({"growth": growth, "density": density, "rows": r, "seeds": n,
                     "cell_sd": float(np.median(x.std(1, ddof=1))), "resid_var": ms_resid,
                     "seed_var": (ms_seed - ms_resid) / r})
    return pd.DataFrame(rows)


def study_of_record() -> tuple[Spread, int, int, list[str]]:
    """The spread, rows per column and columns per table of ``results/mnist1d_fig1``, and report lines."""
    from study.store import ParquetStore

    trials = ParquetStore(str(STUDY)).read("trials")
    comp = variance_components(trials)
    rows = int(comp["rows"].median())
    cols = int(comp.groupby("growth").size().median())
    sd_resid = float(np.median(np.sqrt(comp["resid_var"])))
    sd_seed = float(np.median(np.sqrt(comp["seed_var"].clip(lower=0))))
    share_col = comp["seed_var"].clip(lower=0) / (comp["seed_var"].clip(lower=0) + comp["resid_var"])
    pooled = comp["seed_var"].mean() / (comp["seed_var"].mean() + comp["resid_var"].mean())
    q = lambda s: f"{s.quantile(0.25):.2f} / {s.median():.2f} / {s.quantile(0.75):.2f}"  # noqa: E731
    lines = [
        f"Study of record `{STUDY.relative_to(ROOT)}`, `{METRIC}` in points, DST rows: {len(comp)} columns "
        f"(growth x density) of {rows} rows (criteria) x {int(comp['seeds'].median())} seeds; a table "
        f"(one growth rule) has {cols} columns. Two-way ANOVA per column (row x seed, no interaction):",
        "",
        *table(["quantity (points)", "25th pct / median / 75th pct over columns"], [
            ["sd within a cell (median over the column's rows)", q(comp["cell_sd"])],
            ["sd_resid: residual (own to a row and seed)", q(np.sqrt(comp["resid_var"]))],
            ["sd_seed: seed effect shared by a column's rows (negative estimates as 0)",
             q(np.sqrt(comp["seed_var"].clip(lower=0)))],
            ["shared part sd_seed^2 / (sd_seed^2 + sd_resid^2)", q(share_col)],
        ]),
        "",
        f"Pooled over columns (mean variances): sd_resid {math.sqrt(comp['resid_var'].mean()):.2f}, "
        f"sd_seed {math.sqrt(max(0.0, comp['seed_var'].mean())):.2f}, shared part {pooled:.2f} (the noisy "
        "low-density random-growth columns weigh more in the mean).",
        f"**Simulated: sd_resid = {sd_resid:.2f}, sd_seed = {sd_seed:.2f} (the medians), shared part "
        f"{Spread(sd_resid, sd_seed).share:.2f}, R = {rows} rows, C = {cols} columns.**",
    ]
    return Spread(sd_resid, sd_seed), rows, cols, lines


# ----------------------------------------------------------------------------- the tests, vectorised


def pair_pvalues(x: np.ndarray, test: str) -> np.ndarray:
    """Two-sided p of every pair of rows: ``x`` is (..., R, n) -> (..., R(R-1)/2), pairs in
    ``np.triu_indices(R, 1)`` order; the formulas of ``stats.paired`` / ``stats.welch``."""
    r, n = x.shape[-2:]
    i, j = np.triu_indices(r, 1)
    if test == "paired":
        d = x[..., i, :] - x[..., j, :]
        diff, se, df = d.mean(-1), d.std(-1, ddof=1) / math.sqrt(n), np.float64(n - 1)
    elif test == "welch":
        mean, var = x.mean(-1), x.var(-1, ddof=1) / n
        va, vb = var[..., i], var[..., j]
        diff, se = mean[..., i] - mean[..., j], np.sqrt(va + vb)
        df = (va + vb) ** 2 / ((va ** 2 + vb ** 2) / (n - 1))
    else:
        raise ValueError(f"pair_pvalues: test {test!r}; expected 'paired' or 'welch'")
    with np.errstate(divide="ignore", invalid="ignore"):
        t = diff / se
        return betainc(df / 2, 0.5, df / (df + t * t))  # = stats.t_sf2(t, df)


def holm_adjust(p: np.ndarray) -> np.ndarray:
    """``stats.holm`` along the last axis, vectorised: NaNs stay NaN and do not count."""
    order = np.argsort(p, axis=-1, kind="stable")  # NaN last
    ps = np.take_along_axis(p, order, -1)
    m = (~np.isnan(p)).sum(-1, keepdims=True)
    adj = np.maximum.accumulate(np.minimum(1.0, (m - np.arange(p.shape[-1])) * ps), axis=-1)
    out = np.empty_like(adj)
    np.put_along_axis(out, order, adj, -1)
    return out


def _square(pairs: np.ndarray, r: int) -> np.ndarray:
    """(..., R(R-1)/2) pair values -> (..., R, R) symmetric matrix, NaN on the diagonal."""
    i, j = np.triu_indices(r, 1)
    out = np.full(pairs.shape[:-1] + (r, r), np.nan)
    out[..., i, j] = pairs
    out[..., j, i] = pairs
    return out


def declared(x: np.ndarray, test: str, reference: str, alpha: float = ALPHA,
             pairs: np.ndarray | None = None) -> tuple[np.ndarray, dict]:
    """Tables ``x`` (reps, C, R, n) -> (the reference row of each column (reps, C), {correction:
    (reps, C, R) bool "not tied with the reference"}; the reference row itself is never declared).
    ``pairs``: ``pair_pvalues(x, test)`` if already computed."""
    reps, c, r, _ = x.shape
    pairs = pair_pvalues(x, test) if pairs is None else pairs
    ref = x.mean(-1).argmax(-1) if reference == "best" else np.zeros((reps, c), dtype=int)
    pick = lambda m: np.take_along_axis(m, ref[..., None, None], -2)[..., 0, :]  # noqa: E731
    p = pick(_square(pairs, r))  # (reps, C, R), NaN at the reference
    adjusted = {"none": p, "holm": holm_adjust(p), "holm, all pairs": pick(_square(holm_adjust(pairs), r)),
                "holm, table": holm_adjust(p.reshape(reps, c * r)).reshape(reps, c, r)}
    return ref, {k: np.nan_to_num(v, nan=1.0) < alpha for k, v in adjusted.items()}


# ----------------------------------------------------------------------------- the simulation


def draw(rng: np.random.Generator, reps: int, cols: int, rows: int, n: int, spread: Spread,
         shift: float = 0.0) -> np.ndarray:
    """``reps`` tables (reps, cols, rows, n) of equal rows, row 1 of column 0 moved by ``shift``."""
    x = rng.normal(0.0, spread.sd_seed, (reps, cols, 1, n)) + rng.normal(0.0, spread.sd_resid, (reps, cols, rows, n))
    x[:, 0, 1, :] += shift
    return x


def simulate(n: int, spread: Spread, *, rows: int = 5, cols: int = 11, delta: float = 0.0, reps: int = 2000,
             seed: int = 0, alpha: float = ALPHA, chunk: int = 1000) -> dict:
    """Rates over ``reps`` tables of ``rows`` x ``cols`` cells of ``n`` seeds, row 1 of column 0
    ``delta`` points worse than the others (0: no difference): {(test, reference, correction):
    {"comparison", "column", "table", "power"}}. ``comparison`` and ``column`` are over every
    column whose rows are all equal (all of them when delta = 0); ``table`` is any cell of the
    table (a false-positive rate when delta = 0); ``power`` is the shifted row's."""
    rng = np.random.default_rng(seed)
    keys = [(t, ref, c) for t in TESTS for ref in REFERENCES for c in CORRECTIONS]
    count = {k: np.zeros(4) for k in keys}
    done, null_cols = 0, slice(0 if delta == 0 else 1, None)
    while done < reps:
        k = min(chunk, reps - done)
        x = draw(rng, k, cols, rows, n, spread, -delta)
        for test in TESTS:
            pairs = pair_pvalues(x, test)
            for reference in REFERENCES:
                ref, dec = declared(x, test, reference, alpha, pairs)
                for corr, d in dec.items():
                    count[test, reference, corr] += [d[:, null_cols].sum() / (rows - 1), d[:, null_cols].any(-1).sum(),
                                                     d.any((-1, -2)).sum(), (d[:, 0, 1] & (ref[:, 0] != 1)).sum()]
        done += k
    null = reps * (cols - (delta != 0))  # columns whose rows are all equal
    per = np.array([null, null, reps, reps], float)
    with np.errstate(invalid="ignore"):  # no such column: NaN
        return {key: dict(zip(("comparison", "column", "table", "power"), v / per)) for key, v in count.items()}


def sole_winner(n: int, spread: Spread, delta: float, *, rows: int = 5, reps: int = 2000, seed: int = 0,
                alpha: float = ALPHA) -> dict:
    """P(a row ``delta`` better than the others is the best and every other row is not tied with
    it), one column, against the best: {(test, correction): rate}."""
    x = draw(np.random.default_rng(seed), reps, 1, rows, n, spread, delta)
    out = {}
    for test in TESTS:
        ref, dec = declared(x, test, "best", alpha)
        for corr in ("none", "holm", "holm, all pairs"):
            out[test, corr] = float(((ref[:, 0] == 1) & (dec[corr][:, 0].sum(-1) == rows - 1)).mean())
    return out


def check_against_stats(n: int, spread: Spread, *, rows: int = 5, draws: int = 300, seed: int = 0) -> float:
    """The largest difference between this script's p-values (raw and Holm-adjusted against the
    best) and ``study.stats``'s over ``draws`` columns; raises if it exceeds 1e-9."""
    x = draw(np.random.default_rng(seed), draws, 1, rows, n, spread)[:, 0]
    i, j = np.triu_indices(rows, 1)
    worst = 0.0
    for test, fn in (("paired", stats.paired), ("welch", stats.welch)):
        mine = pair_pvalues(x, test)
        theirs = np.array([[fn(col[a], col[b]).p for a, b in zip(i, j)] for col in x])
        worst = max(worst, float(np.abs(mine - theirs).max()))
        top = x.mean(-1).argmax(-1)
        p_ref = np.take_along_axis(_square(mine, rows), top[:, None, None], -2)[:, 0]
        theirs_holm = np.array([stats.holm(row) for row in p_ref])
        worst = max(worst, float(np.nanmax(np.abs(holm_adjust(p_ref) - theirs_holm))))
    if not worst <= 1e-9:
        raise AssertionError(f"vectorised p-values differ from study.stats by {worst:.3g} (> 1e-9) at n={n}")
    return worst


def detectable_check(n: int, spread: Spread, *, reps: int, seed: int, rows: int = 5) -> dict:
    """``Contrast.detectable`` (alpha 0.05, power 0.8) of a paired comparison, median over draws,
    and the power a test really has at that difference, alone and with Holm over the column."""
    from scipy.stats import nct

    x = draw(np.random.default_rng(seed), 200, 1, 2, n, spread)[:, 0]
    found = float(np.median([stats.paired(a, b).detectable() for a, b in x]))
    df, se = n - 1, spread.sd_resid * math.sqrt(2 / n)  # the true standard error of a paired difference
    at_true_se = stats.Contrast("paired", 0.0, se, df, n).detectable()
    crit = stats.t_quantile(1 - ALPHA / 2, df)
    exact = lambda d: float(nct.sf(crit, df, d / se) + nct.cdf(-crit, df, d / se))  # noqa: E731
    sim = simulate(n, spread, rows=rows, cols=1, delta=found, reps=reps, seed=seed)
    # what compare reports under Holm: the detectable difference at Holm's strictest step, alpha / (R - 1)
    strict = float(np.median([stats.paired(a, b).detectable(ALPHA / (rows - 1)) for a, b in x]))
    holm = simulate(n, spread, rows=rows, cols=1, delta=strict, reps=reps, seed=seed + 1)
    return {"true_se": at_true_se, "exact_true_se": exact(at_true_se), "detectable": found, "exact": exact(found),
            "fixed": sim["paired", "fixed", "none"]["power"],
            "fixed_holm": sim["paired", "fixed", "holm"]["power"], "best_holm": sim["paired", "best", "holm"]["power"],
            "strict": strict, "strict_fixed": holm["paired", "fixed", "holm"]["power"],
            "strict_best": holm["paired", "best", "holm"]["power"]}


# ----------------------------------------------------------------------------- the report


def pct(v: float) -> str:
    return f"{100 * v:.1f}"


def report(reps: int, seed: int) -> list[str]:
    clock = time.perf_counter()
    spread, rows, cols, lines = study_of_record()
    worst = max(check_against_stats(n, spread, rows=rows, seed=seed + n) for n in SEEDS)
    null = {n: simulate(n, spread, rows=rows, cols=cols, reps=reps, seed=seed + 100 * n) for n in SEEDS}
    power = {(n, d): simulate(n, spread, rows=rows, cols=cols, delta=d, reps=reps, seed=seed + 100 * n + k + 1)
             for n in SEEDS for k, d in enumerate(DELTAS)}
    se_table = 100 * math.sqrt(0.25 / reps)
    lines += ["", f"Monte Carlo: {reps:,} tables of {rows} x {cols} cells per scenario (seed {seed}); a rate "
              f"over tables (per table, power) has a standard error of at most {se_table:.1f} points, one over "
              f"columns or comparisons at most {100 * math.sqrt(0.25 / (reps * (cols - 1))):.2f}. The vectorised "
              f"p-values equal `study.stats`' to {worst:.1e} (checked on 300 columns per n). All rates in %."]

    for reference, title in (("best", "against the best row of each column (what `compare` does)"),
                             ("fixed", "against a reference row fixed in advance")):
        lines += ["", f"### False positives when all rows are equal: {title}", ""]
        corr_col = CORRECTIONS[:3]
        head = ["n", "test", "per comparison, none"] + [f"per column, {c}" for c in corr_col] + \
               [f"per table, {c}" for c in ("none", "holm", "holm, table")]
        body = []
        for n in SEEDS:
            for test in TESTS:
                r = null[n]
                body.append([str(n), test, pct(r[test, reference, "none"]["comparison"])]
                            + [pct(r[test, reference, c]["column"]) for c in corr_col]
                            + [pct(r[test, reference, c]["table"]) for c in ("none", "holm", "holm, table")])
        lines += table(head, body)

    for reference, what in (("best", "the worse row is not tied with the best (a worse row that came out best is "
                                     "a miss)"), ("fixed", "the shifted row is not tied with the reference")):
        lines += ["", f"### Power: one row worse than the others by delta points; {what}", ""]
        head = ["n", "test", "correction"] + [f"delta {d:g}" for d in DELTAS]
        corrs = CORRECTIONS if reference == "best" else ("none", "holm", "holm, table")
        body = [[str(n), test, corr] + [pct(power[n, d][test, reference, corr]["power"]) for d in DELTAS]
                for n in SEEDS for test in TESTS for corr in corrs]
        lines += table(head, body)

    lines += ["", "### A sole winner: one row better than the others by delta; it is the best and every other row "
              "is not tied with it (one column)", ""]
    win = {(n, d): sole_winner(n, spread, d, rows=rows, reps=reps, seed=seed + 7000 + 100 * n + k)
           for n in SEEDS for k, d in enumerate(DELTAS)}
    lines += table(["n", "test", "correction"] + [f"delta {d:g}" for d in DELTAS],
                   [[str(n), test, corr] + [pct(win[n, d][test, corr]) for d in DELTAS]
                    for n in SEEDS for test in TESTS for corr in ("none", "holm", "holm, all pairs")])

    lines += ["", "### The selection of the best, by number of rows (n = 5, paired, Holm over the column; "
              "false positives per column when all rows are equal)", ""]
    body = []
    for k, r_ in enumerate((2, 3, 5, 7)):
        at = {a: simulate(5, spread, rows=r_, cols=4, reps=reps, seed=seed + 8000 + 10 * k + i, alpha=a)
              for i, a in enumerate((ALPHA, 0.03))}
        body.append([str(r_), pct(at[ALPHA]["paired", "best", "holm"]["column"]),
                     pct(at[ALPHA]["paired", "best", "holm, all pairs"]["column"]),
                     pct(at[ALPHA]["paired", "fixed", "holm"]["column"]),
                     pct(at[0.03]["paired", "best", "holm"]["column"])])
    lines += table(["rows R", "against the best, alpha 0.05", "against the best, Holm over all pairs",
                    "against a fixed reference", "against the best, alpha 0.03"], body)

    total = spread.sd_resid ** 2 + spread.sd_seed ** 2
    lines += ["", f"### Paired against Welch as the shared part varies (a column against a fixed reference, Holm; "
              f"cell sd kept at {math.sqrt(total):.2f})", ""]
    body = []
    for n in SEEDS:
        for k, share in enumerate((0.0, spread.share, 0.3, 0.6, 0.8)):
            s = Spread(math.sqrt(total * (1 - share)), math.sqrt(total * share))
            cells = []
            for delta in (0.0, 2.0, 3.0):
                r = simulate(n, s, rows=rows, cols=1, delta=delta, reps=reps,
                             seed=seed + 9000 + 100 * n + 10 * k + int(delta))
                key = "column" if delta == 0 else "power"
                cells += [pct(r["paired", "fixed", "holm"][key]), pct(r["welch", "fixed", "holm"][key])]
            body.append([str(n), f"{share:.2f}", f"{s.sd_resid:.2f} / {s.sd_seed:.2f}", *cells])
    lines += table(["n", "shared part", "sd_resid / sd_seed", "FPR per column: paired", "welch",
                    "power delta 2: paired", "welch", "power delta 3: paired", "welch"], body)

    lines += ["", "### Does `Contrast.detectable` keep its promise? (paired, power 0.8)", "",
              "At alpha 0.05: the detectable difference at the true standard error and the median of those "
              "computed from each draw's observed one, and the power a test really has there, alone and "
              f"under Holm over a column of {rows} rows:", ""]
    checks = {n: detectable_check(n, spread, reps=reps, seed=seed + 11000 + n, rows=rows) for n in SEEDS}
    lines += table(["n", "at the true se, points", "its power (exact)", "median over draws, points",
                    "its power: one test (exact)", "simulated: one test", "simulated: Holm, fixed reference",
                    "simulated: Holm, against the best"],
                   [[str(n), f"{r['true_se']:.2f}", pct(r["exact_true_se"]), f"{r['detectable']:.2f}", pct(r["exact"]),
                     pct(r["fixed"]), pct(r["fixed_holm"]), pct(r["best_holm"])] for n, r in checks.items()])
    lines += ["", f"At alpha / {rows - 1} (Holm's strictest step, what `compare` reports under Holm): the median "
              "detectable difference and the power there under Holm:", ""]
    lines += table(["n", "median over draws, points", "simulated: Holm, fixed reference",
                    "simulated: Holm, against the best"],
                   [[str(n), f"{r['strict']:.2f}", pct(r["strict_fixed"]), pct(r["strict_best"])]
                    for n, r in checks.items()])
    lines += ["", "Command: `python bench/bench_stats.py --out docs/statistics.md` "
              f"({time.perf_counter() - clock:.0f} s "
              f"on {platform.machine()}, numpy {np.__version__}, Python {platform.python_version()})."]
    return lines


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--reps", type=int, default=5000, help="tables per scenario (default 5,000)")
    parser.add_argument("--seed", type=int, default=2026)
    parser.add_argument("--quick", action="store_true", help="1,000 tables per scenario")
    parser.add_argument("--out", type=Path, help="Markdown file whose bench_stats section is (re)written")
    args = parser.parse_args(argv)
    body = "\n".join(report(1000 if args.quick else args.reps, args.seed))
    print(body)
    if args.out:
        write_section(args.out, MARK, "The tables' tests, measured (bench/bench_stats.py)", body)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
