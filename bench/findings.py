"""The paper's findings, tested on the committed MNIST-1D studies of record (docs/reproduction.md).

    python bench/findings.py results/mnist1d_fig1 results/mnist1d_fig4 > /tmp/findings.md

Reads only the committed Parquet tables; every number in docs/reproduction.md comes from here.
The tests are those of ``dst-study compare``: cells are means over seeds, ties with the best are
Welch's two-sided t-test at p >= 0.05 (study.comparison).
"""

from __future__ import annotations

import sys

import numpy as np
import pandas as pd

from study.comparison import compare, welch
from study.queries import open_study, query

METRIC = "test_accuracy_at_best_val"
LOW, MODERATE = 0.1, 0.2  # "low density": <= 0.1; "moderate": >= 0.2 (the paper's reading of Figure 1)
MAGNITUDE_FAMILY = ("magnitude", "set", "set_paper_code", "mest")


def _pct(x: float) -> str:
    return f"{100 * x:.1f}"


def fig1(study: str) -> None:
    trials = query(open_study(study), "trials")
    c = compare(trials, METRIC)
    cells = c.cells
    dst = cells[cells["kind"] == "dst"]
    print(f"## {study}: {len(trials)} trials, metric {METRIC}\n")

    print("### Criteria similar at moderate density; differences at low density\n")
    print("| growth | density | best | spread of means (points) | criteria tied with the best |")
    print("|---|---|---|---|---|")
    for (growth, density), g in dst.groupby(["growth", "density"]):
        best = g[g["best"]].iloc[0]
        tied = sorted(g.loc[g["tied"], "criterion"])
        print(f"| {growth} | {density:g} | {best['criterion']} {_pct(best['mean'])} | "
              f"{_pct(g['mean'].max() - g['mean'].min())} | {len(tied)} of {len(g) - 1}: {', '.join(tied) or '–'} |")
    for label, part in (("low (<= 0.1)", dst[dst["density"] <= LOW]),
                        ("moderate (>= 0.2)", dst[dst["density"] >= MODERATE])):
        for growth, by_growth in part.groupby("growth"):
            columns = by_growth.groupby("density")
            all_tied = sum((g["best"] | g["tied"]).all() for _, g in columns)
            spread = np.mean([g["mean"].max() - g["mean"].min() for _, g in columns])
            without = by_growth[by_growth["criterion"] != "reciprocal_sensitivity"].groupby("density")
            spread_wo = np.mean([g["mean"].max() - g["mean"].min() for _, g in without])
            print(f"\n{label}, {growth} growth: every criterion best or tied in {all_tied} of {columns.ngroups} "
                  f"columns; mean spread {_pct(spread)} points ({_pct(spread_wo)} without reciprocal_sensitivity)")

    print("\n### Magnitude best or tied at low density\n")
    mag = dst[(dst["criterion"] == "magnitude")]
    for growth in sorted(mag["growth"].unique()):
        for label, part in (("low", mag[mag["density"] <= LOW]), ("moderate", mag[mag["density"] >= MODERATE])):
            part = part[part["growth"] == growth]
            ok = (part["best"] | part["tied"]).sum()
            print(f"- {growth} growth, {label} density: magnitude best or tied in {ok} of {len(part)} columns "
                  f"(best in {part['best'].sum()})")
    winners = dst[dst["best"] & (dst["density"] <= LOW)].groupby(["growth", "criterion"]).size()
    print(f"- best at low density, per growth: {', '.join(f'{g} {c}: {n}' for (g, c), n in winners.items())}")

    print("\n### Every DST criterion beats static\n")
    raw = trials[trials["status"] == "completed"]
    static = raw[raw["kind"] == "static"]
    outcome = []
    for (criterion, growth, density), g in raw[raw["kind"] == "dst"].groupby(["criterion", "growth", "density"]):
        s = static.loc[static["density"] == density, METRIC].to_numpy()
        if len(s) < 2:
            continue
        t, p = welch(g[METRIC].to_numpy(), s)
        verdict = "above" if p < 0.05 and t > 0 else "below" if p < 0.05 else "tied"
        outcome.append({"criterion": criterion, "growth": growth, "low": density <= LOW, "verdict": verdict,
                        "gap": g[METRIC].mean() - s.mean()})
    outcome = pd.DataFrame(outcome)
    print("| growth | densities | significantly above static | tied | below | mean gap (points) |")
    print("|---|---|---|---|---|---|")
    for (growth, low), g in outcome.groupby(["growth", "low"]):
        counts = g["verdict"].value_counts()
        print(f"| {growth} | {'<= 0.1' if low else '> 0.1'} | {counts.get('above', 0)} | {counts.get('tied', 0)} | "
              f"{counts.get('below', 0)} | {_pct(g['gap'].mean())} |")
    below = outcome[outcome["verdict"] == "below"].groupby(["criterion", "growth"]).size()
    print(f"\nsignificantly below static: {dict(below)}")
    dense = raw.loc[raw["kind"] == "dense", METRIC]
    print(f"- dense: {_pct(dense.mean())} ± {_pct(dense.std())} (n = {len(dense)})")


def fig4(study: str) -> None:
    trials = query(open_study(study), "trials")
    raw = trials[(trials["status"] == "completed") & (trials["kind"] == "dst")]
    print(f"\n## {study}: very frequent updates hurt\n")
    print("| criterion | growth | density | period 25 | best period | best | 25 significantly worse |")
    print("|---|---|---|---|---|---|---|")
    worse = total = 0
    for (criterion, growth, density), g in raw.groupby(["criterion", "growth", "density"]):
        means = g.groupby("update_period")[METRIC].mean()
        best_period = means.idxmax()
        a = g.loc[g["update_period"] == 25, METRIC].to_numpy()
        b = g.loc[g["update_period"] == best_period, METRIC].to_numpy()
        t, p = welch(a, b) if best_period != 25 else (0.0, 1.0)
        significant = p < 0.05 and t < 0
        worse += significant
        total += 1
        print(f"| {criterion} | {growth} | {density:g} | {_pct(means.get(25, np.nan))} | {best_period} | "
              f"{_pct(means.max())} | {'yes' if significant else 'no'} |")
    print(f"\nperiod 25 significantly worse than the best period in {worse} of {total} cells")
    by_period = raw.groupby("update_period")[METRIC].mean()
    print("\nmean over criteria, growth rules, densities and seeds, per period: "
          + ", ".join(f"{p}: {_pct(v)}" for p, v in by_period.items()))


def jaccard(study: str) -> None:
    data = query(open_study(study), "jaccard")
    if data.empty:
        return
    print(f"\n## {study}: what the criteria would remove (Jaccard)\n")
    for epoch in sorted(data["epoch"].unique()):
        m = data[data["epoch"] == epoch].pivot_table(index="criterion_a", columns="criterion_b", values="jaccard",
                                                     aggfunc="mean")
        fam = [c for c in MAGNITUDE_FAMILY if c in m.index and c != "set_paper_code"]
        within = np.mean([m.loc[a, b] for a in fam for b in fam if a < b])
        others = [c for c in ("snip", "reciprocal_sensitivity", "random") if c in m.index]
        to_mag = {c: m.loc["magnitude", c] for c in others}
        print(f"- epoch {epoch}: mean Jaccard within magnitude, set, mest: {within:.2f}; magnitude with "
              + ", ".join(f"{c} {v:.2f}" for c, v in to_mag.items()))
    last = data[data["epoch"] == data["epoch"].max()]
    m = last.pivot_table(index="criterion_a", columns="criterion_b", values="jaccard", aggfunc="mean")
    print("\nlast recorded epoch, mean over trials:\n")
    print("| | " + " | ".join(m.columns) + " |")
    print("|---" * (len(m.columns) + 1) + "|")
    for name, row in m.iterrows():
        print(f"| {name} | " + " | ".join(f"{v:.2f}" for v in row) + " |")


if __name__ == "__main__":
    pd.set_option("display.width", 200)
    fig1_study, fig4_study = sys.argv[1], sys.argv[2] if len(sys.argv) > 2 else None
    fig1(fig1_study)
    jaccard(fig1_study)
    if fig4_study:
        fig4(fig4_study)
