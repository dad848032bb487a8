"""Comparison tables that say what they average: over seeds, and over nothing else.

:func:`compare` pivots a metric of the completed trials into ``rows`` × ``cols`` (criterion ×
density by default). A cell is the mean ± std over **seeds** only: every other config axis that
varies among the DST trials (growth, update period, ...) splits the comparison into one table per
value, never pooled. The static and dense baselines are reference rows of every table they apply
to: static per density, dense as one value. They are not ranked.

Per column, the best mean of the DST rows is marked, and every row whose seeds are not
significantly different from the best's is marked as tied: Welch's t-test (two-sided, unequal
variances, which suits 3–5 seeds per cell), tied when p ≥ ``alpha`` (0.05). A cell with fewer than
two seeds is never tested. :func:`ranking` orders the trials of a search by the metric instead.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from dst_core.config import RUN_ONLY_FIELDS, UNUSED_BY_KIND

from .store import CONFIG_COLUMNS, StoreError

__all__ = ["Comparison", "SPANS", "TEST", "check_one_revision", "compare", "default_axes", "default_metric", "groupable", "ranking", "welch",
           "trial_kinds", "varying_axes"]

TEST = "Welch's two-sided t-test"
REFERENCES = ("static", "dense")
# axes that never split a comparison: what is averaged over, and what does not change a result
_NOT_AXES = {"seed", "static", *RUN_ONLY_FIELDS}
# a baseline's value spans the axes it never reads; the dense baseline also spans density
SPANS = {"static": set(UNUSED_BY_KIND["static"]), "dense": set(UNUSED_BY_KIND["dense"]) | {"density"}}


@dataclass
class Comparison:
    """One table per combination of ``split`` values; ``cells`` holds them all in long form."""

    metric: str
    rows: str
    cols: str
    split: list[str]  # axes that vary inside a rows × cols cell, one table per combination
    cells: pd.DataFrame  # split..., rows, cols, kind, n, mean, std, gap, best, tied, t, p
    alpha: float = 0.05
    higher_is_better: bool = True
    tables: list[tuple[dict, pd.DataFrame]] = field(default_factory=list)  # (split values, its cells)
    notes: list[str] = field(default_factory=list)  # what a reader must know to read the tables right

    @property
    def caption(self) -> str:
        best = "highest" if self.higher_is_better else "lowest"
        return (f"mean ± std over seeds; ★ {best} mean per {self.cols}, ☆ not significantly different from "
                f"it ({TEST}, p ≥ {self.alpha:g}); static and dense are reference rows, not ranked")


def trial_kinds(trials: pd.DataFrame) -> pd.Series:
    """The ``kind`` column; rows written before it existed are dense at density 1, else DST."""
    guessed = np.where(trials["density"] == 1.0, "dense", "dst") if "density" in trials else "dst"
    if "kind" not in trials:
        return pd.Series(guessed, index=trials.index)
    return trials["kind"].fillna(pd.Series(guessed, index=trials.index))


def groupable(column: pd.Series) -> pd.Series:
    """Lists (``lr_milestones``) become tuples so that they can be grouped on."""
    if column.dtype != object:  # numbers, strings, booleans: as they are
        return column
    return column.map(lambda v: tuple(v) if isinstance(v, (list, np.ndarray)) else v)


def check_one_revision(trials: pd.DataFrame) -> None:
    """Refuse to pool results of different algorithm revisions (rows without one are revision 1)."""
    if "algorithm_revision" not in trials or trials.empty:
        return
    revisions = sorted(int(r) for r in trials["algorithm_revision"].fillna(1).unique())
    if len(revisions) > 1:
        raise StoreError(f"these trials come from algorithm revisions {', '.join(map(str, revisions))}, whose "
                         f"results are not comparable; narrow them with --where 'algorithm_revision == "
                         f"{revisions[-1]}', or re-run the older ones (dst-study run SPEC --rerun-outdated)")


def columns_for(metric: str | None, rows: str, cols: str) -> list[str]:
    """The trials columns :func:`compare` reads (``metric`` None: those :func:`default_metric` picks
    from): ids, status, kind and revision, every config axis, the metric. Reading only these, a
    comparison of 100,000 trials skips the other two thirds of the table."""
    metrics = [metric] if metric else ["test_accuracy_at_best_val", "final_test_accuracy"]
    return list(dict.fromkeys(["trial_id", "status", "kind", "algorithm_revision", "n_updates", *CONFIG_COLUMNS,
                               *metrics, rows, cols]))


def default_metric(trials: pd.DataFrame) -> str:
    """``test_accuracy_at_best_val`` (the paper's number) when every completed trial has it, else
    ``final_test_accuracy``."""
    done = trials[trials["status"] == "completed"] if "status" in trials else trials
    column = done.get("test_accuracy_at_best_val")
    return "test_accuracy_at_best_val" if column is not None and len(done) and column.notna().all() \
        else "final_test_accuracy"


def varying_axes(trials: pd.DataFrame) -> list[str]:
    """Config axes with more than one value among the DST trials, in config order."""
    dst = trials[trial_kinds(trials) == "dst"]
    return [c for c in CONFIG_COLUMNS if c in dst and c not in _NOT_AXES
            and groupable(dst[c]).dropna().nunique() > 1]


def default_axes(trials: pd.DataFrame) -> tuple[str, str]:
    """``rows``, ``cols`` for a closing table that follows the study's axes: criterion against the
    varying axis with the most values (density on a tie, or when nothing else varies)."""
    varying = varying_axes(trials)
    rows = "criterion" if "criterion" in varying or len(varying) < 2 else varying[0]
    others = [a for a in varying if a != rows]
    if not others:
        return rows, "density"
    dst = trials[trial_kinds(trials) == "dst"]
    return rows, max(others, key=lambda a: (groupable(dst[a]).nunique(), a == "density"))


def welch(a: np.ndarray, b: np.ndarray) -> tuple[float, float]:
    """Welch's t statistic and two-sided p of ``a`` against ``b``; NaN when either has < 2 values."""
    if len(a) < 2 or len(b) < 2:
        return math.nan, math.nan
    if np.var(a) == 0 and np.var(b) == 0:  # no spread: equal means are tied, others are not
        return (0.0, 1.0) if np.mean(a) == np.mean(b) else (math.inf, 0.0)
    va, vb = np.var(a, ddof=1) / len(a), np.var(b, ddof=1) / len(b)
    t = float((np.mean(a) - np.mean(b)) / math.sqrt(va + vb))
    df = float((va + vb) ** 2 / (va ** 2 / (len(a) - 1) + vb ** 2 / (len(b) - 1)))
    return t, _beta_regularized(df / (df + t * t), df / 2, 0.5)  # P(|T_df| >= |t|)


def _beta_regularized(x: float, a: float, b: float) -> float:
    """The regularised incomplete beta function I_x(a, b), by its continued fraction (modified Lentz).

    Written out rather than taken from scipy: importing ``scipy.special`` costs 0.15 s, a sixth of
    what ``dst-study compare`` may take as a whole. Tests hold it to ``scipy.stats`` to 1e-10."""
    if x <= 0 or x >= 1:
        return 0.0 if x <= 0 else 1.0
    if x > (a + 1) / (a + b + 2):  # the fraction converges fast only below this point: use symmetry
        return 1.0 - _beta_regularized(1 - x, b, a)
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


def compare(trials: pd.DataFrame, metric: str = "final_test_accuracy", rows: str = "criterion",
            cols: str = "density", status: str | None = "completed", alpha: float = 0.05) -> Comparison:
    """The comparison of ``metric`` over ``rows`` × ``cols`` (module docstring)."""
    for name in (metric, rows, cols):
        if name not in trials.columns:
            raise StoreError(f"unknown column {name!r} (columns: {', '.join(trials.columns)})")
    if rows == cols:
        raise StoreError(f"--rows and --cols are both {rows!r}; choose two different columns")
    data = trials if status is None else trials[trials["status"] == status]
    check_one_revision(data)
    data = data.assign(kind=trial_kinds(data), **{metric: pd.to_numeric(data[metric], errors="coerce")})
    data = data[data[metric].notna()]
    split = [a for a in varying_axes(data) if a not in (rows, cols)]
    for axis in {rows, cols, *split}:
        data[axis] = groupable(data[axis])
    higher = "loss" not in metric
    dst = data[data["kind"] == "dst"]
    groups = dst.groupby([*split, rows, cols], dropna=False, observed=True)[metric]
    cells = groups.agg(n="count", mean="mean", std="std").reset_index().assign(kind="dst")
    samples = {key if isinstance(key, tuple) else (key,): g.to_numpy() for key, g in groups}
    refs = [_reference(data[data["kind"] == kind], kind, metric, rows, cols, split, cells)
            for kind in REFERENCES]
    cells = pd.concat([cells, *[r for r in refs if not r.empty]], ignore_index=True)
    cells = _rank(cells, samples, split, rows, cols, higher, alpha)
    comparison = Comparison(metric, rows, cols, split, cells, alpha, higher, notes=_static_note(dst))
    if not split:
        comparison.tables.append(({}, cells))
        return comparison
    for values, table in cells.groupby(split, dropna=False, observed=True, sort=True):
        values = values if isinstance(values, tuple) else (values,)
        comparison.tables.append((dict(zip(split, values)), table))
    return comparison


def _static_note(dst: pd.DataFrame) -> list[str]:
    """DST trials that never updated their mask (too few steps for one update period) are static
    runs under a DST label: their rows rank nothing about pruning criteria."""
    if "n_updates" not in dst:  # rows written before the column existed: unknown
        return []
    never = int((dst["n_updates"] == 0).fillna(False).sum())
    if not never:
        return []
    return [f"{never} of the {len(dst)} DST trials compared never updated their mask (n_updates 0): they ran as "
            f"static sparse training, so their rows do not compare pruning criteria (dst-study validate names "
            f"such cells before a study runs)"]


def _reference(data: pd.DataFrame, kind: str, metric: str, rows: str, cols: str, split: list[str],
               dst_cells: pd.DataFrame) -> pd.DataFrame:
    """A baseline's cells: grouped by the axes it reads, repeated over those it spans."""
    if data.empty:
        return pd.DataFrame()
    used = [a for a in (*split, cols) if a not in SPANS[kind]]
    stats = (data.groupby(used, dropna=False, observed=True)[metric].agg(n="count", mean="mean", std="std")
             .reset_index() if used else
             pd.DataFrame([{"n": data[metric].count(), "mean": data[metric].mean(), "std": data[metric].std()}]))
    spanned = [a for a in (*split, cols) if a not in used]
    grid = dst_cells[spanned].drop_duplicates() if spanned and not dst_cells.empty else None
    if grid is not None:
        stats = stats.merge(grid, how="cross")
    if cols in used and not dst_cells.empty:  # only the columns the DST rows have
        stats = stats[stats[cols].isin(dst_cells[cols].unique())]
    return stats.assign(**{rows: kind, "kind": kind})


def _rank(cells: pd.DataFrame, samples: dict, split: list[str], rows: str, cols: str, higher: bool,
          alpha: float) -> pd.DataFrame:
    """Per column of each table: the best DST mean, each other cell's gap to it and Welch's test."""
    n = len(cells)
    gap, t, p = np.full(n, math.nan), np.full(n, math.nan), np.full(n, math.nan)
    best, tied = np.zeros(n, dtype=bool), np.zeros(n, dtype=bool)
    keys = list(zip(*(cells[a].to_numpy() for a in (*split, rows, cols))))  # each cell's samples key
    means, kinds = cells["mean"].to_numpy(), cells["kind"].to_numpy()
    columns: dict[tuple, list[int]] = {}
    for i in np.flatnonzero(kinds == "dst"):
        columns.setdefault((*keys[i][:len(split)], keys[i][-1]), []).append(i)
    for members in columns.values():
        top = (max if higher else min)(members, key=lambda i: means[i])  # the first of equal means
        best[top] = True
        for i in members:
            gap[i] = means[i] - means[top]
            if i != top:
                t[i], p[i] = welch(samples[keys[i]], samples[keys[top]])
                tied[i] = bool(p[i] >= alpha) if not math.isnan(p[i]) else False
    return cells.assign(gap=gap, best=best, tied=tied, t=t, p=p)


def ranking(trials: pd.DataFrame, metric: str, params: list[str], higher_is_better: bool = True,
            status: str | None = "completed") -> pd.DataFrame:
    """The trials of a search, best first: rank, the metric, the sampled values, the trial id."""
    data = trials if status is None else trials[trials["status"] == status]
    data = data.sort_values(metric, ascending=not higher_is_better, kind="stable").reset_index(drop=True)
    out = data[[metric, *params, "seed", "trial_id"]].copy()
    out.insert(0, "rank", range(1, len(out) + 1))
    return out
