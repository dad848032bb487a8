"""The statistics of comparison tables: paired and Welch t-tests, their pooling over cells, Holm's
correction and the smallest difference a test could detect. Plain numpy and one special function.

A seed fixes a trial's initial weights, initial mask and data order whatever its criterion, so two
cells of one column that ran the same seeds are paired observations (common random numbers): the
paired t-test on the seed-wise differences removes the seed-to-seed spread that Welch's test,
which treats the cells as independent samples, counts as noise. Every test here is a
:class:`Contrast`: a difference with its standard error and degrees of freedom, from which the
t statistic, the two-sided p, the confidence interval and the detectable difference follow.

Pooling (:func:`pool`) answers one question over several cells (e.g. "is magnitude ahead of SNIP at
densities <= 0.1?"): the mean over cells of each cell's difference, cells taken as fixed strata
(the question is about these cells, not a population of them), its variance the sum of the cells'
squared standard errors over the number of cells squared, its degrees of freedom Welch-
Satterthwaite's. With one cell it is that cell's test.
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass
from typing import Sequence

import numpy as np

__all__ = ["Contrast", "beta_regularized", "holm", "paired", "pool", "t_quantile", "t_sf2", "welch"]


@dataclass(frozen=True)
class Contrast:
    """A difference of means ``a - b`` and what is known about it."""

    test: str  # "paired" or "welch"
    diff: float
    se: float  # standard error of diff
    df: float  # degrees of freedom of its t distribution
    n: int  # pairs (paired) or the smaller sample (welch), summed over pooled cells

    @property
    def t(self) -> float:
        if self.se == 0:
            return 0.0 if self.diff == 0 else math.copysign(math.inf, self.diff)
        return self.diff / self.se

    @property
    def p(self) -> float:
        """Two-sided p of "no difference"."""
        if math.isnan(self.se):
            return math.nan
        return t_sf2(self.t, self.df)

    def ci(self, level: float = 0.95) -> tuple[float, float]:
        if math.isnan(self.se):
            return math.nan, math.nan
        half = t_quantile(0.5 + level / 2, self.df) * self.se
        return self.diff - half, self.diff + half

    def detectable(self, alpha: float = 0.05, power: float = 0.8) -> float:
        """The smallest true difference this test finds (two-sided, at ``alpha``) with probability
        ``power``, at the observed spread: (t_{1-alpha/2} + t_{power}) x se, the usual
        normal-approximation formula with t quantiles for the small n of seeds."""
        if math.isnan(self.se):
            return math.nan
        return (t_quantile(1 - alpha / 2, self.df) + t_quantile(power, self.df)) * self.se


_NONE = Contrast("none", math.nan, math.nan, math.nan, 0)


def paired(a: np.ndarray, b: np.ndarray) -> Contrast:
    """The paired t-test of ``a - b`` (``a[i]`` and ``b[i]`` ran the same seed); NaN below 2 pairs."""
    d = np.asarray(a, dtype=float) - np.asarray(b, dtype=float)
    if len(d) < 2:
        return Contrast("paired", float(d.mean()) if len(d) else math.nan, math.nan, math.nan, len(d))
    return Contrast("paired", float(d.mean()), float(d.std(ddof=1) / math.sqrt(len(d))), len(d) - 1.0, len(d))


def welch(a: np.ndarray, b: np.ndarray) -> Contrast:
    """Welch's t-test of ``mean(a) - mean(b)`` (independent samples, unequal variances)."""
    a, b = np.asarray(a, dtype=float), np.asarray(b, dtype=float)
    diff = float(a.mean() - b.mean()) if len(a) and len(b) else math.nan
    if len(a) < 2 or len(b) < 2:
        return Contrast("welch", diff, math.nan, math.nan, min(len(a), len(b)))
    va, vb = a.var(ddof=1) / len(a), b.var(ddof=1) / len(b)
    if va + vb == 0:  # no spread at all: the difference is exact
        return Contrast("welch", diff, 0.0, len(a) + len(b) - 2.0, min(len(a), len(b)))
    df = (va + vb) ** 2 / (va ** 2 / (len(a) - 1) + vb ** 2 / (len(b) - 1))
    return Contrast("welch", diff, float(math.sqrt(va + vb)), float(df), min(len(a), len(b)))


def pool(cells: Sequence[Contrast]) -> Contrast:
    """The mean of several cells' differences (module docstring); cells without a test are left out."""
    usable = [c for c in cells if not math.isnan(c.se)]
    if not usable:
        return cells[0] if len(cells) == 1 else _NONE
    if len(usable) == 1:
        return usable[0]
    k = len(usable)
    diff = sum(c.diff for c in usable) / k
    var = sum(c.se ** 2 for c in usable) / k ** 2
    terms = sum((c.se ** 2) ** 2 / c.df for c in usable if c.se > 0)
    df = (k ** 2 * var) ** 2 / terms if terms > 0 else sum(c.df for c in usable)
    tests = {c.test for c in usable}
    return Contrast(tests.pop() if len(tests) == 1 else "mixed", diff, math.sqrt(var), df,
                    sum(c.n for c in usable))


def holm(p: Sequence[float]) -> np.ndarray:
    """Holm's step-down adjusted p-values (family-wise error at most alpha when adjusted p < alpha);
    NaNs stay NaN and do not count in the family."""
    p = np.asarray(p, dtype=float)
    out = np.full(len(p), math.nan)
    tested = np.flatnonzero(~np.isnan(p))
    m = len(tested)
    running = 0.0
    for rank, i in enumerate(tested[np.argsort(p[tested], kind="stable")]):
        running = max(running, min(1.0, (m - rank) * p[i]))  # monotone: never below an earlier one
        out[i] = running
    return out


def t_sf2(t: float, df: float) -> float:
    """P(|T_df| >= |t|), the two-sided p of a t statistic."""
    if math.isinf(t):
        return 0.0
    return beta_regularized(df / (df + t * t), df / 2, 0.5)


@functools.lru_cache(maxsize=4096)  # a table asks for the same few (q, df) thousands of times
def t_quantile(q: float, df: float) -> float:
    """The q-quantile of Student's t with ``df`` degrees of freedom: Newton's method on the CDF,
    kept inside a bracket that bisection narrows whenever a step would leave it."""
    if q == 0.5:
        return 0.0
    if q < 0.5:
        return -t_quantile(1 - q, df)
    tail = 2 * (1 - q)  # P(|T| >= x) at the quantile
    low, high = 0.0, 1.0
    while t_sf2(high, df) > tail:
        low, high = high, high * 2
    log_norm = math.lgamma((df + 1) / 2) - math.lgamma(df / 2) - 0.5 * math.log(df * math.pi)
    x = (low + high) / 2
    for _ in range(200):
        excess = t_sf2(x, df) - tail  # > 0: x is below the quantile
        if excess > 0:
            low = x
        else:
            high = x
        density = math.exp(log_norm - (df + 1) / 2 * math.log1p(x * x / df))
        step = x + excess / (2 * density)
        if abs(step - x) <= 1e-14 * x or high - low <= 1e-14 * x:
            return step
        x = step if low < step < high else (low + high) / 2
    return x


def beta_regularized(x: float, a: float, b: float) -> float:
    """The regularised incomplete beta function I_x(a, b), by its continued fraction (modified Lentz).

    Written out rather than taken from scipy: importing ``scipy.special`` costs 0.15 s, a sixth of
    what ``dst-study compare`` may take as a whole. Tests hold it to ``scipy.stats`` to 1e-10."""
    if x <= 0 or x >= 1:
        return 0.0 if x <= 0 else 1.0
    if x > (a + 1) / (a + b + 2):  # the fraction converges fast only below this point: use symmetry
        return 1.0 - beta_regularized(1 - x, b, a)
    front = math.exp(math.lgamma(a + b) - math.lgamma(a) - math.lgamma(b) + a * math.log(x) + b * math.log1p(-x)) / a
    tiny = 1e-300
    f, c, d = 1.0, 1.0, 0.0
    for i in range(400):
        m = i // 2
        if i == 0:
            term = 1.0
        elif i % 2 == 0:
            term = m * (b - m) * x / ((a + 2 * m - 1) * (a + 2 * m))
        else:
            term = -(a + m) * (a + b + m) * x / ((a + 2 * m) * (a + 2 * m + 1))
        d = 1.0 + term * d
        d = 1.0 / (d if abs(d) > tiny else tiny)
        c = 1.0 + term / c
        c = c if abs(c) > tiny else tiny
        f *= c * d
        if abs(c * d - 1.0) < 1e-15:
            break
    return front * (f - 1.0)
