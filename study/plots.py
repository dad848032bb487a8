"""Figures of a study as PNG files (matplotlib, Agg backend: no display needed).

* ``density`` (the paper's Figure 1): a metric against density on a log axis, one panel per growth
  rule (and per value of any other axis that varies), a line and ± std band per criterion, the
  static baseline as its own line, the dense baseline as a dashed horizontal line.
* ``update-period`` (Figure 4): a metric against the update period (log axis), a panel per density
  × growth, with the static and dense baselines as horizontal references.
* ``curves``: a per-epoch metric, mean ± std over seeds, a panel per density × growth.
* ``jaccard`` (Figure 6): heat-maps of the mean Jaccard overlap of what pairs of criteria would
  remove from the same state, at up to four recorded epochs (the overlap changes as training goes).
* ``search``: the metric of every trial of a search against each searched parameter.

Every figure gives a criterion the same colour (:func:`colour`); all take ``where`` like ``query`` and
draw one or more studies read as one (:class:`study.queries.Studies`).
"""

from __future__ import annotations

import itertools
import math
import numbers
import zlib
from pathlib import Path
from typing import Callable

import pandas as pd

from .comparison import SPANS, check_one_revision, groupable, trial_kinds, varying_axes
from .queries import Studies
from .store import METRICS, StoreError

__all__ = ["COLOURS", "KINDS", "colour", "figure", "per_epoch_metric", "plot"]

# matplotlib's tab10 without its grey, which is the dense baseline's
_PALETTE = ["tab:blue", "tab:orange", "tab:green", "tab:red", "tab:purple", "tab:brown", "tab:pink", "tab:olive",
            "tab:cyan"]
# One colour per criterion in every figure, listed here rather than read from dst_core's registry so
# that drawing a figure never loads torch (tests/study/test_plots.py checks that every registered
# criterion has one)
_CRITERIA = ("magnitude", "mest", "random", "reciprocal_sensitivity", "sensitivity", "set", "set_paper_code", "snip")
COLOURS = {name: _PALETTE[i % len(_PALETTE)] for i, name in enumerate(_CRITERIA)} | {"static": "black",
                                                                                      "dense": "grey"}
# a plugin's criterion: a colour none of the above has, the same in every figure (chosen by its name)
_OTHERS = ["darkgoldenrod", "teal", "indigo", "crimson", "olivedrab", "saddlebrown", "deeppink", "navy"]


def colour(label: str) -> str:
    return COLOURS.get(label) or _OTHERS[zlib.crc32(label.encode()) % len(_OTHERS)]


def _label(value) -> str:
    return f"{value:g}" if isinstance(value, float) else str(value)


def _band(ax, data: pd.DataFrame, x: str, y: str, label: str, **style) -> None:
    stats = data.groupby(x, observed=True)[y].agg(["mean", "std"]).reset_index().sort_values(x)
    line, = ax.plot(stats[x], stats["mean"], marker="o", ms=3, label=label, color=colour(label), **style)
    ax.fill_between(stats[x], stats["mean"] - stats["std"].fillna(0), stats["mean"] + stats["std"].fillna(0),
                    alpha=0.15, color=line.get_color())


def _reference(ax, values: pd.Series, label: str) -> None:
    """A baseline that does not vary along x: its mean as a horizontal line."""
    if len(values):
        ax.axhline(values.mean(), color=COLOURS[label], ls="--" if label == "dense" else ":", lw=1.2,
                   label=f"{label} ({100 * values.mean():.1f})" if values.max() <= 1 else label)


def _legend(ax) -> None:
    if ax.get_legend_handles_labels()[0]:
        ax.legend(fontsize=7)


def _log_ticks(ax, values: pd.Series) -> None:
    """Log x axis labelled at the values that were run (0.05, 0.1, ... rather than 10^-1)."""
    ticks = sorted(pd.unique(values))
    ax.set_xscale("log")
    ax.set_xticks(ticks, [f"{t:g}" for t in ticks], rotation=45 if len(ticks) > 8 else 0)
    ax.minorticks_off()


def _pyplot():
    """matplotlib's pyplot on the Agg backend (no display), loaded when a figure is drawn: the CLI that
    imports this module for its figure names need not pay for it."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _panels(n: int, title: str, size: tuple[float, float] = (5.5, 4), sharey: bool = False, max_cols: int = 3):
    plt = _pyplot()
    cols = min(n, max_cols)
    rows = math.ceil(n / cols)
    fig, axes = plt.subplots(rows, cols, figsize=(size[0] * cols, size[1] * rows), squeeze=False, sharey=sharey,
                             layout="constrained")
    for ax in axes.flat[n:]:
        ax.set_visible(False)
    fig.suptitle(title)
    return fig, list(axes.flat[:n])


def _trials(studies: Studies, where: str | None) -> pd.DataFrame:
    clause = "status == 'completed'" + (f" and ({where})" if where else "")
    trials = studies.query(where=clause)
    if trials.empty:
        raise StoreError(f"{studies.root}: no completed trials to plot" + (f" where {where}" if where else ""))
    check_one_revision(trials)
    trials = trials.assign(kind=trial_kinds(trials))
    for column in trials.columns:
        if trials[column].dtype == object:
            trials[column] = groupable(trials[column])
    return trials


def _facets(trials: pd.DataFrame, exclude: tuple[str, ...]) -> list[dict]:
    """One dict of axis values per panel: every varying axis but ``exclude`` (and the criterion)."""
    axes = [a for a in varying_axes(trials) if a not in (*exclude, "criterion")]
    dst = trials[trials["kind"] == "dst"]
    values = [sorted(dst[a].dropna().unique(), key=_in_order) for a in axes]
    return [dict(zip(axes, combo)) for combo in itertools.product(*values)]


def _select(trials: pd.DataFrame, facet: dict) -> pd.DataFrame:
    """The DST trials of a panel, and the baselines that apply to it (they span the axes they never
    read, as in :mod:`study.comparison`)."""
    keep = pd.Series(True, index=trials.index)
    for axis, value in facet.items():
        spans = trials["kind"].map(lambda kind: kind != "dst" and axis in SPANS[kind])
        keep &= (trials[axis] == value) | spans
    return trials[keep]


def _in_order(value) -> tuple:
    """Numbers by value (update period 25 before 100), then anything else by its text."""
    number = isinstance(value, numbers.Real) and not isinstance(value, bool)  # numpy's numbers too
    return (not number, value if number else 0, str(value))


def _title(facet: dict) -> str:
    return ", ".join(f"{a} = {_label(v)}" for a, v in facet.items())


def _against(x: str, xlabel: str):
    """A figure of the metric against the config axis ``x`` (log scale): a panel per value of every
    other varying axis, a line and band per criterion, the baselines as lines or references."""
    def figure(studies: Studies, metric: str, where: str | None):
        trials = _trials(studies, where)
        facets = _facets(trials, (x,))
        fig, axes = _panels(len(facets), f"{metric} vs {x.replace('_', ' ')} (mean ± std over seeds)", sharey=True)
        for ax, facet in zip(axes, facets):
            data = _select(trials, facet)
            dst = data[data["kind"] == "dst"]
            for criterion, g in dst.groupby("criterion"):
                _band(ax, g, x, metric, criterion)
            static = data[data["kind"] == "static"]
            if x in SPANS["static"]:  # the static baseline does not vary along x: a reference line
                _reference(ax, static[metric], "static")
            elif not static.empty:
                _band(ax, static[static[x].isin(dst[x].unique())], x, metric, "static", ls="-.")
            _reference(ax, data.loc[data["kind"] == "dense", metric], "dense")
            _log_ticks(ax, dst[x])
            ax.set(title=_title(facet), xlabel=xlabel, ylabel=metric)
            ax.grid(alpha=0.3)
            _legend(ax)
        return fig
    return figure


def per_epoch_metric(metric: str) -> str:
    """The per-epoch metric (a ``history`` column) whose course the trials column ``metric`` ends:
    ``final_X`` (or ``X``) is ``X``; a metric picked at one epoch (``test_accuracy_at_best_val``,
    ``best_val_accuracy``) is drawn as the test accuracy."""
    name = metric.removeprefix("final_")
    return name if name in METRICS and name != "epoch" else "test_accuracy"


def _curves(studies: Studies, metric: str, where: str | None):
    per_epoch = per_epoch_metric(metric)
    trials = _trials(studies, where)
    history = studies.query("history", columns=["trial_id", "epoch", per_epoch])
    facets = _facets(trials, ("seed",)) or [{}]
    fig, axes = _panels(len(facets), f"{per_epoch} per epoch (mean ± std over seeds)")
    for ax, facet in zip(axes, facets):
        data = _select(trials, facet).assign(line=lambda f: f["criterion"].where(f["kind"] == "dst", f["kind"]))
        merged = history.merge(data[["trial_id", "line"]], on="trial_id")
        for line, g in merged.groupby("line"):
            _band(ax, g, "epoch", per_epoch, line, ls="--" if line in ("static", "dense") else "-")
        ax.set(title=_title(facet), xlabel="epoch", ylabel=per_epoch)
        ax.grid(alpha=0.3)
        _legend(ax)
    return fig


def _jaccard(studies: Studies, metric: str, where: str | None):
    del metric
    data = studies.query("jaccard")
    if where:
        data = data[data["trial_id"].isin(_trials(studies, where)["trial_id"])]
    if data.empty:
        raise StoreError(f"{studies.root}: no Jaccard rows; train with --jaccard-every N (or jaccard_every: N "
                         "in the spec) to record what each criterion would remove")
    epochs = sorted(data["epoch"].unique())
    if len(epochs) > 4:  # four moments of training, evenly spread
        epochs = [epochs[round(i * (len(epochs) - 1) / 3)] for i in range(4)]
    fig, axes = _panels(len(epochs), "Jaccard overlap of what criteria would remove from the same state "
                                     "(mean over trials)", size=(6, 5.2), max_cols=2)
    for ax, epoch in zip(axes, epochs):
        matrix = data[data["epoch"] == epoch].pivot_table(index="criterion_a", columns="criterion_b",
                                                          values="jaccard", aggfunc="mean")
        image = ax.imshow(matrix.to_numpy(dtype=float), vmin=0, vmax=1, cmap="viridis")
        ax.set_xticks(range(len(matrix.columns)), matrix.columns, rotation=45, ha="right", fontsize=8)
        ax.set_yticks(range(len(matrix.index)), matrix.index, fontsize=8)
        for (i, j), v in pd.DataFrame(matrix.to_numpy()).stack().items():
            ax.text(j, i, f"{v:.2f}", ha="center", va="center", fontsize=6.5, color="white" if v < 0.6 else "black")
        ax.set_title(f"epoch {epoch}")
    fig.colorbar(image, ax=axes, shrink=0.8)
    return fig


def _search(studies: Studies, metric: str, where: str | None):
    trials = _trials(studies, where)
    params = varying_axes(trials)
    if not params:
        raise StoreError(f"{studies.root}: no parameter varies between the trials; nothing to plot against")
    fig, axes = _panels(len(params), f"{metric} of each trial against the searched parameters", size=(4.5, 3.8))
    for ax, param in zip(axes, params):
        drawn = trials[trials[param].notna()]  # a baseline has no value for an axis it never reads
        values = drawn[param]
        if pd.api.types.is_numeric_dtype(values) and not pd.api.types.is_bool_dtype(values):
            ax.scatter(values, drawn[metric], s=14)
            if values.min() > 0 and values.max() / values.min() > 20:
                ax.set_xscale("log")
        else:  # a categorical choice: one column of points per value
            names = sorted(values.astype(str).unique())
            ax.scatter([names.index(str(v)) for v in values], drawn[metric], s=14,
                       c=[colour(str(v)) for v in values])
            ax.set_xticks(range(len(names)), names, rotation=30, ha="right")
        ax.set(xlabel=param, ylabel=metric)
        ax.grid(alpha=0.3)
    return fig


KINDS: dict[str, Callable] = {"density": _against("density", "density (fraction of active weights)"),
                              "update-period": _against("update_period", "update period (optimizer steps)"),
                              "curves": _curves, "jaccard": _jaccard, "search": _search}


def figure(studies: Studies, kind: str, metric: str = "final_test_accuracy", where: str | None = None):
    """The matplotlib Figure of kind ``kind`` of the study (its trials matching ``where``); close it
    with ``matplotlib.pyplot.close`` when done."""
    if kind not in KINDS:
        raise StoreError(f"unknown plot kind {kind!r} (choices: {', '.join(sorted(KINDS))})")
    return KINDS[kind](studies, metric, where)


def plot(studies: Studies, kind: str, out: str | Path, metric: str = "final_test_accuracy",
         where: str | None = None) -> Path:
    """Draw figure ``kind`` of the study (its trials matching ``where``) into the PNG file ``out``."""
    out = Path(out)
    if out.suffix.lower() != ".png":
        raise StoreError(f"--out {str(out)!r}: expected a .png file name")
    fig = figure(studies, kind, metric, where)
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=110)  # the panels' layout is matplotlib's constrained layout
    _pyplot().close(fig)
    return out
