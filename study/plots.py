"""Figures of a study as PNG files (matplotlib, Agg backend: no display needed).

* ``density``: a metric against density (log axis), one line per criterion, mean ± std band.
* ``update-period``: a metric against the update period, one line per criterion, one panel per density.
* ``curves``: a per-epoch metric, mean over seeds, one line per criterion, one panel per density.
* ``jaccard``: heat-map of the mean Jaccard overlap of what pairs of criteria remove (last epoch).
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Callable

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import pandas as pd  # noqa: E402

from .queries import query  # noqa: E402
from .store import ParquetStore, StoreError  # noqa: E402

__all__ = ["KINDS", "plot"]


def _lines(ax, data: pd.DataFrame, x: str, y: str, by: str) -> None:
    stats = data.groupby([by, x], observed=True)[y].agg(["mean", "std"]).reset_index()
    for label, g in stats.groupby(by, observed=True):
        g = g.sort_values(x)
        ax.plot(g[x], g["mean"], marker="o", ms=3, label=str(label))
        ax.fill_between(g[x], g["mean"] - g["std"].fillna(0), g["mean"] + g["std"].fillna(0), alpha=0.2)


def _log_ticks(ax, values: pd.Series) -> None:
    """Log x axis labelled at the values that were run (0.05, 0.1, ... rather than 10^-1)."""
    ticks = sorted(pd.unique(values))
    ax.set_xscale("log")
    ax.set_xticks(ticks, [f"{t:g}" for t in ticks])
    ax.minorticks_off()


def _panels(n: int, title: str, size: tuple[float, float] = (5, 3.8)):
    cols = min(n, 3)
    rows = math.ceil(n / cols)
    fig, axes = plt.subplots(rows, cols, figsize=(size[0] * cols, size[1] * rows), squeeze=False)
    for ax in axes.flat[n:]:
        ax.set_visible(False)
    fig.suptitle(title)
    return fig, list(axes.flat[:n])


def _completed(store: ParquetStore) -> pd.DataFrame:
    trials = query(store, where="status == 'completed'")
    if trials.empty:
        raise StoreError(f"{store.root}: no completed trials to plot")
    return trials


def _density(store: ParquetStore, metric: str):
    trials = _completed(store)
    fig, (ax,) = _panels(1, f"{metric} vs density")
    _lines(ax, trials, "density", metric, "criterion")
    _log_ticks(ax, trials["density"])
    ax.set_xlabel("density (fraction of active weights)")
    ax.set_ylabel(metric)
    ax.legend(title="criterion", fontsize=8)
    ax.grid(alpha=0.3)
    return fig


def _update_period(store: ParquetStore, metric: str):
    trials = _completed(store)
    densities = sorted(trials["density"].unique())
    fig, axes = _panels(len(densities), f"{metric} vs update period")
    for ax, d in zip(axes, densities):
        _lines(ax, trials[trials["density"] == d], "update_period", metric, "criterion")
        _log_ticks(ax, trials["update_period"])
        ax.set(title=f"density {d:g}", xlabel="update period (steps)", ylabel=metric)
        ax.grid(alpha=0.3)
    axes[0].legend(title="criterion", fontsize=8)
    return fig


def _curves(store: ParquetStore, metric: str):
    metric = metric.removeprefix("final_")
    trials = _completed(store)[["trial_id", "criterion", "density"]]
    history = query(store, "history", columns=["trial_id", "epoch", metric])
    data = history.merge(trials, on="trial_id")
    densities = sorted(data["density"].unique())
    fig, axes = _panels(len(densities), f"{metric} per epoch (mean ± std over seeds)")
    for ax, d in zip(axes, densities):
        _lines(ax, data[data["density"] == d], "epoch", metric, "criterion")
        ax.set(title=f"density {d:g}", xlabel="epoch", ylabel=metric)
        ax.grid(alpha=0.3)
    axes[0].legend(title="criterion", fontsize=8)
    return fig


def _jaccard(store: ParquetStore, metric: str):
    del metric
    data = query(store, "jaccard")
    if data.empty:
        raise StoreError(f"{store.root}: no Jaccard rows; train with --jaccard-every N (or jaccard_every: N "
                         "in the spec) to record what each criterion would remove")
    last = data.groupby("trial_id")["epoch"].transform("max") == data["epoch"]
    matrix = data[last].pivot_table(index="criterion_a", columns="criterion_b", values="jaccard", aggfunc="mean")
    fig, (ax,) = _panels(1, "Jaccard overlap of what criteria remove\n(last recorded epoch, mean over trials)",
                         size=(7, 6))
    image = ax.imshow(matrix.to_numpy(dtype=float), vmin=0, vmax=1, cmap="viridis")
    ax.set_xticks(range(len(matrix.columns)), matrix.columns, rotation=45, ha="right")
    ax.set_yticks(range(len(matrix.index)), matrix.index)
    for (i, j), v in pd.DataFrame(matrix.to_numpy()).stack().items():
        ax.text(j, i, f"{v:.2f}", ha="center", va="center", fontsize=7, color="white" if v < 0.6 else "black")
    fig.colorbar(image, ax=ax)
    return fig


KINDS: dict[str, Callable] = {"density": _density, "update-period": _update_period, "curves": _curves,
                              "jaccard": _jaccard}


def plot(store: ParquetStore, kind: str, out: str | Path, metric: str = "final_test_accuracy") -> Path:
    """Draw figure ``kind`` of the study into the PNG file ``out``."""
    if kind not in KINDS:
        raise StoreError(f"unknown plot kind {kind!r} (choices: {', '.join(sorted(KINDS))})")
    fig = KINDS[kind](store, metric)
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.tight_layout()
    fig.savefig(out, dpi=120)
    plt.close(fig)
    return out
