"""Comparison tables that say what they average, which test they ran and what it could detect.

:func:`compare` pivots a metric of the completed trials into ``rows`` × ``cols`` (criterion ×
density by default). A cell is the mean ± std over **seeds** only: every other config axis that
varies among the DST trials (growth, update period, ...) splits the comparison into one table per
value, never pooled. The static and dense baselines are reference rows of every table they apply
to: static per density, dense as one value.

Per column, every DST row is compared with the best one (or, with ``reference``, every row with
that row): a paired t-test on the seed-wise differences when the two cells ran the same seeds (a
seed fixes initial weights, mask and data order for every criterion: common random numbers),
Welch's test otherwise (:mod:`study.stats`). The p-values of a column's comparisons are
Holm-corrected as one family; a row is tied with the best when its adjusted p ≥ ``alpha``. Each
comparison carries its difference, 95 % confidence interval and the smallest difference it could
have detected with 80 % power. With ``pool``, the cells along that axis are pooled into one answer
per row (:func:`study.stats.pool`). :func:`ranking` orders the trials of a search by the metric.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from dst_core.config import RUN_ONLY_FIELDS, UNUSED_BY_KIND

from . import stats
from .store import CONFIG_COLUMNS, SUMMARY_COLUMNS, StoreError, revision, revision_where

__all__ = ["CORRECTIONS", "Comparison", "SPANS", "TESTS", "check_one_plugin_source", "check_one_revision",
           "columns_for", "compare", "default_axes", "default_metric", "groupable", "ranking", "stopped_note",
           "trial_kinds", "varying_axes"]

TESTS = ("auto", "paired", "welch")  # auto: paired where the two cells ran the same seeds
CORRECTIONS = ("holm", "none")
POWER = 0.8  # the power at which a table states the difference it could detect
REFERENCES = ("static", "dense")
# axes that never split a comparison: what is averaged over, and what does not change a result
_NOT_AXES = {"seed", "static", *RUN_ONLY_FIELDS}
# a baseline's value spans the axes it never reads; the dense baseline also spans density
SPANS = {"static": set(UNUSED_BY_KIND["static"]), "dense": set(UNUSED_BY_KIND["dense"]) | {"density"}}
_TEST_NAMES = {"paired": "paired t-test on the seed-wise differences", "welch": "Welch's t-test"}


@dataclass
class Comparison:
    """One table per combination of ``split`` values; ``cells`` holds them all in long form."""

    metric: str
    rows: str
    cols: str
    split: list[str]  # axes that vary inside a rows × cols cell, one table per combination
    cells: pd.DataFrame  # split..., rows, cols, kind, n, mean, std, test, diff, ci_low, ci_high, t, p, ...
    alpha: float = 0.05
    higher_is_better: bool = True
    tables: list[tuple[dict, pd.DataFrame]] = field(default_factory=list)  # (split values, its cells)
    notes: list[str] = field(default_factory=list)  # what a reader must know to read the tables right
    correction: str = "holm"
    reference: str | None = None  # the row every other row is compared with; None: the best row
    pool: str | None = None  # the axis whose cells were pooled
    pooled: list = field(default_factory=list)  # its values

    @property
    def tests_run(self) -> str:
        """Which test ran, in words: paired, Welch's, or both (cells with and without shared seeds)."""
        ran = sorted(set(self.cells["test"].dropna()) & set(_TEST_NAMES)) if "test" in self.cells else []
        if not ran:
            return "no test ran (fewer than 2 seeds per cell)"
        if len(ran) == 2 or "mixed" in set(self.cells["test"].dropna()):
            return "paired t-test where two cells ran the same seeds, Welch's t-test otherwise"
        return _TEST_NAMES[ran[0]]

    @property
    def caption(self) -> str:
        corrected = "Holm-corrected over each column's comparisons" if self.correction == "holm" else "uncorrected"
        test = f"{self.tests_run}, two-sided, {corrected}"
        pooled = "" if self.pool is None else \
            f"pooled over {self.pool} = {', '.join(_show(v) for v in self.pooled)} (the mean of those cells); "
        if self.reference is not None:
            return (f"{pooled}{self.reference}: mean ± std over seeds; every other row: its difference to "
                    f"{self.reference} ± the half-width of its 95 % CI (the CI itself in --format csv/json), * where "
                    f"significant ({test}, p < {self.alpha:g})")
        best = "highest" if self.higher_is_better else "lowest"
        return (f"{pooled}mean ± std over seeds; ★ {best} mean per {self.cols}, ☆ not significantly different from "
                f"it ({test}, p ≥ {self.alpha:g}); static and dense are reference rows, not ranked")


def _show(value) -> str:
    return f"{value:g}" if isinstance(value, float) else str(value)


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
    """Refuse to pool results of different algorithm revisions (:func:`study.store.revision`)."""
    if "algorithm_revision" not in trials or trials.empty:
        return
    revisions = sorted(int(r) for r in revision(trials).unique())
    if len(revisions) > 1:
        raise StoreError(f"these trials come from algorithm revisions {', '.join(map(str, revisions))}, whose "
                         f"results are not comparable; narrow them with --where '{revision_where(revisions[-1])}', "
                         "or re-run the older ones (dst-study run SPEC --rerun-outdated)")
    check_one_plugin_source(trials)


def check_one_plugin_source(trials: pd.DataFrame) -> None:
    """Refuse to pool results that ran different source code of one plugin (the rows' ``plugins``
    hashes), as results of different algorithm revisions are refused; rows that used no plugin pool
    with any. The ``--where`` offered leaves out the rows of any plugin's older code and keeps every
    other row (those of the newest code, of other plugins, of none)."""
    if "plugins" not in trials or trials.empty:
        return
    from .plugins import recorded_hashes  # reads the rows' records: imports no plugin

    texts = trials["plugins"].dropna()
    hashes: dict[str, set[str]] = {}
    for text in texts.unique():
        for module, sha256 in recorded_hashes(text).items():
            hashes.setdefault(module, set()).add(sha256)
    differ = sorted(m for m, h in hashes.items() if len(h) > 1)
    if not differ:
        return
    # per module, the code of its newest row; the --where leaves out each record that names older code
    # of one, and keeps every other (rows of other plugins, of none)
    if "ended_at" in trials and trials.loc[texts.index, "ended_at"].notna().any():
        by_age = texts.loc[trials.loc[texts.index, "ended_at"].sort_values(kind="stable").index]
    else:
        by_age = texts.loc[texts.map(texts.value_counts()).sort_values(kind="stable").index]
    newest = {m: h for text in by_age for m, h in recorded_hashes(text).items()}  # the last one seen wins
    older = sorted(t for t in texts.unique() if any(newest.get(m) != h for m, h in recorded_hashes(t).items()
                                                    if m in differ))
    versions = "; ".join(f"{m}: sha256 {', '.join(sorted(h[:12] for h in hashes[m]))}" for m in differ)
    where = " and ".join(f"plugins != {json.dumps(t)}" for t in older)
    raise StoreError(f"these trials ran different source code of plugin{'s' * (len(differ) > 1)} {', '.join(differ)} "
                     f"({versions}), whose results are not comparable; narrow them with --where '{where}', or re-run "
                     "the older ones (dst-study run SPEC --rerun-outdated)")


def columns_for(metric: str | None, rows: str, cols: str) -> list[str]:
    """The trials columns :func:`compare` reads (``metric`` None: those :func:`default_metric` picks
    from): ids, status, kind and revision, every config axis, the metric. Reading only these, a
    comparison of 100,000 trials skips the other two thirds of the table."""
    metrics = [metric] if metric else ["test_accuracy_at_best_val", "final_test_accuracy"]
    return list(dict.fromkeys(["trial_id", "status", "kind", "algorithm_revision", "plugins", "ended_at", "n_updates",
                               *CONFIG_COLUMNS,
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


def compare(trials: pd.DataFrame, metric: str = "final_test_accuracy", rows: str = "criterion",
            cols: str = "density", status: str | None = "completed", alpha: float = 0.05, *, test: str = "auto",
            correction: str = "holm", reference: str | None = None, pool: str | None = None) -> Comparison:
    """The comparison of ``metric`` over ``rows`` × ``cols`` (module docstring)."""
    for name in (metric, rows, cols):
        if name not in trials.columns:
            raise StoreError(f"unknown column {name!r} (columns: {', '.join(trials.columns)})")
    if rows == cols:
        raise StoreError(f"--rows and --cols are both {rows!r}; choose two different columns")
    if not 0 < alpha < 1:  # NaN fails this too
        raise StoreError(f"--alpha: got {alpha}; expected a level between 0 and 1, e.g. 0.05")
    for name, value, choices in (("--test", test, TESTS), ("--correction", correction, CORRECTIONS)):
        if value not in choices:
            raise StoreError(f"{name}: got {value!r}; expected one of {', '.join(choices)}")
    if not pd.api.types.is_numeric_dtype(trials[metric]) or pd.api.types.is_bool_dtype(trials[metric]):
        numeric = [c for c in SUMMARY_COLUMNS if c not in ("epochs_done", "best_epoch", "best_val_epoch")]
        raise StoreError(f"--metric {metric}: holds {trials[metric].dtype} values, not numbers to compare; "
                         f"choose a metric ({', '.join(numeric)})")
    data = trials if status is None else trials[trials["status"] == status]
    if data.empty:
        why = f"of the {len(trials)} that match, none is {status}" if len(trials) else \
            "the filter (--where) matches none, or the study has none yet"
        raise StoreError(f"no trials to compare: {why}")
    check_one_revision(data)
    data = data.assign(kind=trial_kinds(data), **{metric: pd.to_numeric(data[metric], errors="coerce")})
    data = data[data[metric].notna()]
    if data.empty:
        raise StoreError(f"--metric {metric}: no {status or ''} trial has a value (e.g. test_accuracy_at_best_val "
                         "needs a validation split)")
    split = [a for a in varying_axes(data) if a not in (rows, cols)]
    if pool is not None and pool != cols and pool not in split:
        raise StoreError(f"--pool {pool!r}: not an axis of this comparison; pool the columns ({cols!r}) or an axis "
                         f"that splits it ({', '.join(map(repr, split)) or 'none here'})")
    for axis in {rows, cols, *split}:
        data[axis] = groupable(data[axis])
    higher = "loss" not in metric
    if "seed" not in data:
        data = data.assign(seed=range(len(data)))  # no seeds known: nothing pairs
    dst = data[data["kind"] == "dst"]
    cells = _cells(dst, metric, [*split, rows, cols]).assign(kind="dst")
    # a baseline that spans the pooled axis is the same trials in every pooled cell: pooling it would
    # count them once per cell, as if independent; it is left out of a pooled table
    kinds = [k for k in REFERENCES if pool is None or pool not in SPANS[k]]
    if reference in REFERENCES and reference not in kinds:
        raise StoreError(f"--reference {reference}: the {reference} baseline is the same trials at every {pool}, so "
                         f"it cannot be pooled over {pool}; compare with it without --pool")
    refs = [_reference(data[data["kind"] == kind], kind, metric, rows, cols, split, cells) for kind in kinds]
    cells = pd.concat([cells, *[r for r in refs if not r.empty]], ignore_index=True)
    if reference is not None and reference not in set(cells[rows]):
        # from the command line a reference is text: the row it names may be a number (an update period)
        named = [r for r in cells[rows].unique() if _show(r) == str(reference) or str(r) == str(reference)]
        if len(named) != 1:
            raise StoreError(f"--reference {reference!r}: no such {rows} here (rows: "
                             f"{', '.join(sorted(map(str, cells[rows].unique())))})")
        reference = named[0]
    pooled = sorted(cells[pool].dropna().unique(), key=lambda v: (str(type(v)), v)) if pool is not None else []
    cells = _test(cells, split, rows, cols, pool, reference, higher, alpha, test, correction)
    comparison = Comparison(metric, rows, cols, [a for a in split if a != pool], cells, alpha, higher,
                            notes=_static_note(dst) + (stopped_note(trials) if status == "completed" else []),
                            correction=correction, reference=reference, pool=pool,
                            pooled=pooled)
    if not comparison.split:
        comparison.tables.append(({}, cells))
        return comparison
    for values, table in cells.groupby(comparison.split, dropna=False, observed=True, sort=True):
        values = values if isinstance(values, tuple) else (values,)
        comparison.tables.append((dict(zip(comparison.split, values)), table))
    return comparison


def _cells(data: pd.DataFrame, metric: str, axes: list[str]) -> pd.DataFrame:
    """n, mean and std of ``metric`` per combination of ``axes``, with each cell's values by seed
    (``_values``, a Series indexed by seed) for the tests."""
    if data.empty:
        return pd.DataFrame(columns=[*axes, "n", "mean", "std", "_values"])
    values = data.set_index("seed")[metric]
    if not axes:
        return pd.DataFrame([{"n": len(values), "mean": values.mean(), "std": values.std(), "_values": values}])
    groups = values.groupby([data[a].to_numpy() for a in axes], dropna=False, observed=True, sort=True)
    out = groups.agg(["count", "mean", "std"]).rename(columns={"count": "n"})
    out["_values"] = [g for _, g in groups]
    return out.rename_axis(axes).reset_index()


def stopped_note(trials: pd.DataFrame) -> list[str]:
    """Trials a search's scheduler stopped early trained fewer epochs than the rest: their metrics are
    not comparable, so the tables and figures leave them out and say how many."""
    stopped = int((trials["status"] == "stopped").sum()) if "status" in trials else 0
    return [f"{stopped} trial{'s' * (stopped != 1)} stopped early by the search's scheduler (asha) "
            f"{'are' if stopped != 1 else 'is'} left out (status 'stopped': query them with --where "
            "\"status == 'stopped'\")"] if stopped else []


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
    stats_ = _cells(data, metric, used)
    spanned = [a for a in (*split, cols) if a not in used]
    grid = dst_cells[spanned].drop_duplicates() if spanned and not dst_cells.empty else None
    if grid is not None:
        stats_ = stats_.merge(grid, how="cross")
    if cols in used and not dst_cells.empty:  # only the columns the DST rows have
        stats_ = stats_[stats_[cols].isin(dst_cells[cols].unique())]
    return stats_.assign(**{rows: kind, "kind": kind})


def _contrast(a: pd.Series, b: pd.Series, test: str) -> stats.Contrast:
    """``a`` against ``b`` (values indexed by seed): paired on the shared seeds, or Welch's test."""
    shared = a.index.is_unique and b.index.is_unique and set(a.index) == set(b.index)
    if test == "paired" or (test == "auto" and shared and len(a) >= 2):
        common = a.index.intersection(b.index) if a.index.is_unique and b.index.is_unique else a.index[:0]
        return stats.paired(a.loc[common].to_numpy(), b.loc[common].to_numpy())
    return stats.welch(a.to_numpy(), b.to_numpy())


_RESULTS = ("test", "diff", "ci_low", "ci_high", "t", "p", "p_adjusted", "detectable")


def _test(cells: pd.DataFrame, split: list[str], rows: str, cols: str, pool: str | None, reference: str | None,
          higher: bool, alpha: float, test: str, correction: str) -> pd.DataFrame:
    """Per column (a table's ``cols`` value, or all of ``pool``'s cells at once): the comparator (the
    best DST row, or ``reference``), every other row's contrast with it, Holm over the column."""
    values = cells.pop("_values").tolist()
    group = [a for a in (*split, cols) if a != pool]  # what identifies a column of the output
    keys = list(zip(*(cells[a].to_numpy() for a in group))) if group else [()] * len(cells)
    strata = cells[pool].to_numpy() if pool is not None else [None] * len(cells)
    columns: dict[tuple, dict[tuple, dict]] = {}  # column -> (row, kind) -> stratum -> cell index
    for i, (key, row, kind, stratum) in enumerate(zip(keys, cells[rows].to_numpy(), cells["kind"].to_numpy(),
                                                      strata)):
        columns.setdefault(key, {}).setdefault((row, kind), {}).setdefault(stratum, i)
    out = []
    for key, members in columns.items():
        merged = {m: _merge(cells, [values[i] for i in at.values()], list(at.values())) for m, at in members.items()}
        if reference is None:
            dst = [m for m in members if m[1] == "dst"]
            comparator = (max if higher else min)(dst, key=lambda m: merged[m]["mean"]) if dst else None
            tested = [m for m in dst if m != comparator]
        else:
            comparator = next((m for m in members if m[0] == reference), None)
            tested = [m for m in members if m != comparator] if comparator else []
        results = {m: dict.fromkeys(_RESULTS, math.nan) | {"test": None} for m in members}
        contrasts = {}
        for m in tested:
            shared = [s for s in members[m] if s in members[comparator]]
            contrasts[m] = stats.pool([_contrast(values[members[m][s]], values[members[comparator][s]], test)
                                       for s in shared]) if shared else stats.pool([])
        p = [contrasts[m].p for m in tested]
        adjusted = stats.holm(p) if correction == "holm" else np.asarray(p, dtype=float)
        family = max(1, int(np.sum(~np.isnan(np.asarray(p, dtype=float)))))
        level = alpha / family if correction == "holm" else alpha  # Holm's strictest step
        for m, p_adjusted in zip(tested, adjusted):
            c = contrasts[m]
            low, high = c.ci()
            results[m] = {"test": None if c.test == "none" else c.test, "diff": c.diff, "ci_low": low,
                          "ci_high": high, "t": c.t if not math.isnan(c.se) else math.nan, "p": c.p,
                          "p_adjusted": p_adjusted, "detectable": c.detectable(level, POWER)}
        if comparator is not None:
            results[comparator]["diff"] = 0.0
        for m in members:
            r = results[m]
            tied = m in tested and not math.isnan(r["p_adjusted"]) and r["p_adjusted"] >= alpha
            out.append({**dict(zip(group, key)), rows: m[0], "kind": m[1], **merged[m], **r,
                        "best": reference is None and m == comparator, "tied": tied})
    frame = pd.DataFrame(out)
    if pool is not None and pool == cols:
        frame[cols] = "pooled"
    return frame[[*(a for a in split if a != pool), rows, cols, "kind", "n", "mean", "std", *_RESULTS,
                  "best", "tied"]]


def _merge(cells: pd.DataFrame, values: list[pd.Series], at: list[int]) -> dict:
    """n, mean, std of a row in a column: its cell's, or over the pooled cells (the mean of their
    means, as the pooled difference weighs each cell alike; no std across cells)."""
    if len(at) == 1:
        cell = cells.iloc[at[0]]
        return {"n": int(cell["n"]), "mean": float(cell["mean"]), "std": float(cell["std"])}
    return {"n": int(sum(len(v) for v in values)), "mean": float(np.mean([v.mean() for v in values])),
            "std": math.nan}


def ranking(trials: pd.DataFrame, metric: str, params: list[str], higher_is_better: bool = True,
            status: str | None = "completed") -> pd.DataFrame:
    """The trials of a search, best first: rank, the metric, the sampled values, the trial id."""
    data = trials if status is None else trials[trials["status"] == status]
    data = data.sort_values(metric, ascending=not higher_is_better, kind="stable").reset_index(drop=True)
    out = data[[metric, *params, "seed", "trial_id"]].copy()
    out.insert(0, "rank", range(1, len(out) + 1))
    return out
