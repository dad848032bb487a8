"""The paper's findings, tested on the committed MNIST-1D studies of record (docs/reproduction.md).

    python bench/findings.py results/mnist1d_fig1 results/mnist1d_fig4 > /tmp/findings.md

Reads only the committed Parquet tables; every number in docs/reproduction.md comes from here. Each
finding is one function that returns a :class:`Finding`: the markdown lines it prints, the test,
the correction and the n it ran with, and the numbers a test (tests/test_findings.py) checks.

The tests are those of ``dst-study compare`` (:mod:`study.comparison`): a cell is the mean over
seeds; two cells that ran the same seeds (they do here: seeds 1-5 in Figure 1, 1-3 in Figure 4, for
every criterion, growth rule and baseline) are compared by a paired t-test on the seed-wise
differences; the p-values of one column (or one pooled question) are Holm-corrected as one family.
A pooled comparison is the mean over the pooled cells of their seed-paired differences
(:func:`study.stats.pool`). "Tied" means not significantly different at Holm-adjusted p >= 0.05.
"""

from __future__ import annotations

import math
import sys
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from study.comparison import compare
from study.queries import open_study, query

METRIC = "test_accuracy_at_best_val"
ALPHA = 0.05
LOW, MODERATE = 0.1, 0.2  # "low density": <= 0.1; "moderate": >= 0.2 (the paper's reading of Figure 1)
RECIP = "reciprocal_sensitivity"
STEPS_PER_EPOCH = 29  # 3,600 training examples / batch 128, rounded up
PAIRED = "paired t-test on the seed-wise differences"


@dataclass
class Finding:
    title: str
    test: str  # which test, on what
    correction: str  # Holm over which family
    n: str  # seeds per cell, cells pooled
    lines: list[str] = field(default_factory=list)  # what it prints, markdown
    data: dict = field(default_factory=dict)  # the headline numbers, for tests

    def show(self) -> str:
        head = [f"### {self.title}", "", f"- test: {self.test}", f"- correction: {self.correction}", f"- n: {self.n}",
                ""]
        return "\n".join(head + self.lines) + "\n"


def pts(x: float) -> str:
    """A fraction as percentage points, one decimal."""
    return f"{100 * x:.1f}"


def signed(x: float) -> str:
    return f"{100 * x:+.1f}"


def pval(p: float) -> str:
    return "–" if p is None or math.isnan(p) else "< 0.001" if p < 0.001 else f"{p:.3f}"


def ci(row) -> str:
    return f"{signed(row['diff'])} [{signed(row['ci_low'])}, {signed(row['ci_high'])}]"


def load(study: str) -> pd.DataFrame:
    trials = query(open_study(study), "trials")
    return trials[trials["status"] == "completed"]


def dst(trials: pd.DataFrame) -> pd.DataFrame:
    return trials[trials["kind"] == "dst"]


def low(trials: pd.DataFrame) -> pd.DataFrame:
    return trials[trials["density"] <= LOW]


def moderate(trials: pd.DataFrame) -> pd.DataFrame:
    return trials[trials["density"] >= MODERATE]


def columns(trials: pd.DataFrame) -> pd.DataFrame:
    """Figure 1 per column (growth x density): every criterion against the column's best mean."""
    return compare(dst(trials), METRIC).cells


def pooled(trials: pd.DataFrame, reference: str | None = None) -> pd.DataFrame:
    """One answer per growth rule and criterion over all densities of ``trials``: against
    ``reference``, or against the criterion with the best pooled mean."""
    return compare(trials, METRIC, pool="density", reference=reference).cells


def _pooled_lines(cells: pd.DataFrame, against: str) -> list[str]:
    out = [f"| growth | criterion | pooled mean | difference to {against} [95 % CI] | Holm p | detectable |",
           "|---|---|---|---|---|---|"]
    for _, r in cells.iterrows():
        if r["kind"] != "dst" and r["criterion"] != against:
            continue
        tested = not pd.isna(r["test"])
        diff = ci(r) if tested else "(best)" if r["best"] else "(reference)"
        out.append(f"| {r['growth']} | {r['criterion']} | {pts(r['mean'])} | {diff} | {pval(r['p_adjusted'])} | "
                   f"{pts(r['detectable']) if tested else '–'} |")
    return out + ["", "(detectable: the difference the test finds with 80 % power at its n and spread, "
                  "at Holm's strictest level)"]


def detectable(cells: pd.DataFrame) -> str:
    d = cells["detectable"].dropna()
    return f"{pts(d.median())} points (median over {len(d)} tests, range {pts(d.min())}-{pts(d.max())})"


# -- Figure 1 ---------------------------------------------------------------------------------------------------

def figure1_columns(trials: pd.DataFrame) -> Finding:
    """The per-column table every Figure 1 finding reads from."""
    cells = columns(trials)
    f = Finding("Figure 1, column by column", f"{PAIRED}, each criterion against the column's best mean",
                "Holm over the 4 comparisons of each column (growth x density)", "5 seeds per cell")
    f.lines += ["| growth | density | best | spread of means | not tied with the best: difference (Holm p) |",
                "|---|---|---|---|---|"]
    for (growth, density), g in cells[cells["kind"] == "dst"].groupby(["growth", "density"]):
        best = g[g["best"]].iloc[0]
        lost = g[~g["best"] & ~g["tied"]]
        lost_text = ", ".join(f"{r['criterion']} {signed(r['diff'])} ({pval(r['p_adjusted'])})"
                              for _, r in lost.iterrows()) or "–"
        f.lines.append(f"| {growth} | {density:g} | {best['criterion']} {pts(best['mean'])} | "
                       f"{pts(g['mean'].max() - g['mean'].min())} | {lost_text} |")
    for growth, g in cells.groupby("growth"):
        f.lines.append(f"- {growth} growth, detectable difference per column: {detectable(g)}")
    dense = trials.loc[trials["kind"] == "dense", METRIC]
    static = trials[trials["kind"] == "static"].groupby("density")[METRIC]
    f.lines += ["", f"dense: {pts(dense.mean())} ± {pts(dense.std())} (n = {len(dense)}); static per density: "
                + ", ".join(f"{d:g}: {pts(m)} ± {pts(s)}" for d, m, s in
                            zip(static.mean().index, static.mean(), static.std()))]
    vs = cells[cells["kind"] == "dst"].merge(static.mean().rename("static").reset_index(), on="density")
    vs["gain"] = vs["mean"] - vs["static"]
    gradient = vs[vs["growth"] == "gradient"]
    gap = low(gradient)["gain"]
    f.lines.append(f"gradient growth, density <= {LOW:g}: the cells' means are {pts(gap.min())} to "
                   f"{pts(gap.max())} points above static")
    f.lines.append(f"gradient growth, density > {LOW:g}: every cell's mean within "
                   f"{pts(gradient.loc[gradient['density'] > LOW, 'gain'].abs().max())} points of static")
    rnd = vs[(vs["growth"] == "random") & (vs["criterion"] != RECIP)]
    top = rnd.loc[rnd["gain"].idxmax()]
    f.lines.append(f"random growth without reciprocal_sensitivity: largest gain over static "
                   f"{pts(top['gain'])} points ({top['criterion']} at {top['density']:g})")
    table = cells[cells["kind"] == "dst"].assign(
        cell=lambda c: [f"{pts(m)} ± {pts(sd)}" for m, sd in zip(c["mean"], c["std"])])
    table = table.pivot(index=["growth", "criterion"], columns="density", values="cell")
    f.lines += ["", "Mean ± std over seeds:", "",
                "| growth | criterion | " + " | ".join(f"{d:g}" for d in table.columns) + " |",
                "|---|---|" + "---|" * len(table.columns)]
    f.lines += [f"| {g} | {c} | " + " | ".join(row) + " |" for (g, c), row in table.iterrows()]
    f.data["cells"] = cells
    return f


def similar_at_moderate(trials: pd.DataFrame) -> Finding:
    cells = moderate(columns(trials))
    cells = cells[cells["kind"] == "dst"]
    f = Finding(f"Most criteria give similar results at moderate density (>= {MODERATE:g})",
                f"{PAIRED}, each criterion against the column's best mean; pooled: against the criterion with the "
                f"best mean over the 4 densities",
                "Holm over the 4 comparisons of each column; pooled: Holm over the 4 comparisons per growth rule",
                "5 seeds per cell; pooled: 4 cells x 5 seeds = 20 pairs")
    for growth, g in cells.groupby("growth"):
        cols = g.groupby("density")
        all_tied = sum((c["best"] | c["tied"]).all() for _, c in cols)
        lost = g[~g["best"] & ~g["tied"]]
        other = lost[lost["criterion"] != RECIP]
        f.lines.append(f"- {growth} growth: every criterion best or tied in {all_tied} of {cols.ngroups} columns; "
                       f"mean spread of the means {pts(np.mean([c['mean'].max() - c['mean'].min() for _, c in cols]))}"
                       f" points; not tied: "
                       + (", ".join(f"{r['criterion']} at {r['density']:g} ({signed(r['diff'])})"
                                    for _, r in lost.iterrows()) or "none"))
        f.data[growth] = {"all_tied": all_tied, "columns": cols.ngroups,
                          "largest_other_gap": float(-other["diff"].min()) if len(other) else 0.0}
    pool = pooled(moderate(dst(trials)))
    f.lines += ["", "Pooled over densities 0.2, 0.3, 0.4, 0.5, against the best pooled criterion:", ""]
    f.lines += _pooled_lines(pool, "the best")
    return f


def differences_at_low(trials: pd.DataFrame) -> Finding:
    cells = columns(trials)
    cells = cells[cells["kind"] == "dst"]
    f = Finding("Differences grow at low density",
                f"spread of the cell means (descriptive); {PAIRED} pooled over the densities of each range, each "
                f"criterion against the criterion with the best pooled mean",
                "Holm over the 4 comparisons per growth rule and density range",
                f"5 seeds per cell; pooled: 6 cells (<= {LOW:g}) x 5 = 30 pairs, 4 cells (>= {MODERATE:g}) x 5 = 20")
    f.lines += ["| growth | densities | mean spread of the means | without reciprocal_sensitivity | "
                "largest pooled gap to the best (Holm p) | significant pooled gaps |", "|---|---|---|---|---|---|"]
    for growth, g in cells.groupby("growth"):
        for label, part, pool_trials in ((f"<= {LOW:g}", low(g), low(dst(trials))),
                                         (f">= {MODERATE:g}", moderate(g), moderate(dst(trials)))):
            spread = np.mean([c["mean"].max() - c["mean"].min() for _, c in part.groupby("density")])
            wo = part[part["criterion"] != RECIP]
            spread_wo = np.mean([c["mean"].max() - c["mean"].min() for _, c in wo.groupby("density")])
            p = pooled(pool_trials)
            p = p[(p["growth"] == growth) & p["test"].notna()]
            worst = p.loc[p["diff"].idxmin()]
            sig = p[p["p_adjusted"] < ALPHA]
            f.lines.append(f"| {growth} | {label} | {pts(spread)} | {pts(spread_wo)} | {worst['criterion']} "
                           f"{signed(worst['diff'])} ({pval(worst['p_adjusted'])}) | {len(sig)} of {len(p)}: "
                           + (", ".join(f"{r['criterion']} {signed(r['diff'])}" for _, r in sig.iterrows()) or "–")
                           + " |")
            f.data[(growth, label)] = {"spread": spread, "spread_without_recip": spread_wo, "significant": len(sig)}
    return f


def magnitude_at_low(trials: pd.DataFrame) -> Finding:
    cells = columns(trials)
    mag = cells[(cells["criterion"] == "magnitude") & (cells["kind"] == "dst")]
    f = Finding("Magnitude is best or tied at low density",
                f"per column: {PAIRED}, each criterion against the column's best mean; pooled: {PAIRED}, each "
                f"criterion against magnitude, the mean of the 6 cells' differences",
                "per column: Holm over its 4 comparisons; pooled: Holm over the 4 criteria compared with magnitude, "
                "per growth rule",
                "5 seeds per cell; pooled over densities 0.05-0.1: 6 cells x 5 seeds = 30 pairs")
    for growth in sorted(mag["growth"].unique()):
        for label, part in (("low", low(mag)), ("moderate", moderate(mag))):
            part = part[part["growth"] == growth]
            ok = int((part["best"] | part["tied"]).sum())
            f.lines.append(f"- {growth} growth, {label} density: magnitude best or tied in {ok} of {len(part)} "
                           f"columns (best in {int(part['best'].sum())})")
            f.data[(growth, label)] = ok, len(part)
    winners = cells[cells["best"] & (cells["density"] <= LOW)].groupby(["growth", "criterion"]).size()
    f.lines.append(f"- best mean at density <= {LOW:g}: " + ", ".join(f"{g} {c} {n}x" for (g, c), n in winners.items()))
    pool = pooled(low(dst(trials)), reference="magnitude")
    f.lines += ["", f"Pooled over densities <= {LOW:g}, against magnitude:", ""] + _pooled_lines(pool, "magnitude")
    f.data["pooled"] = pool
    per = compare(low(dst(trials)), METRIC, reference="magnitude").cells
    snip = per[(per["criterion"] == "snip") & (per["growth"] == "random")]
    f.lines += ["", "SNIP against magnitude with random growth, per density (Holm over the column's 4 comparisons "
                "with magnitude): " + ", ".join(f"{r['density']:g}: {signed(r['diff'])} ({pval(r['p_adjusted'])})"
                                                 for _, r in snip.iterrows())]
    return f


def beats_static(trials: pd.DataFrame) -> Finding:
    data = trials[trials["kind"] != "dense"]  # dense is no member of the family
    cells = compare(data, METRIC, reference="static").cells
    cells = cells[cells["kind"] == "dst"].assign(low=lambda c: c["density"] <= LOW)
    cells["verdict"] = np.where(cells["p_adjusted"] >= ALPHA, "tied", np.where(cells["diff"] > 0, "above", "below"))
    f = Finding("Every DST criterion beats static",
                f"{PAIRED} (static ran the same seeds: up to the first topology update it is the same run), each "
                f"criterion against static; pooled: the mean of the cells' paired differences",
                "Holm over the 5 criteria of each column; pooled: Holm over the 5 criteria per growth rule and range",
                "5 seeds per cell; pooled: 6 cells (<= 0.1) or 5 cells (0.15-0.5) x 5 seeds")
    f.lines += ["| growth | densities | significantly above static | tied | below | mean difference |",
                "|---|---|---|---|---|---|"]
    for (growth, is_low), g in cells.groupby(["growth", "low"]):
        counts = g["verdict"].value_counts()
        f.lines.append(f"| {growth} | {'<= 0.1' if is_low else '> 0.1'} | {counts.get('above', 0)} | "
                       f"{counts.get('tied', 0)} | {counts.get('below', 0)} | {signed(g['diff'].mean())} |")
        f.data[(growth, "low" if is_low else "high")] = {k: int(counts.get(k, 0)) for k in ("above", "tied", "below")}
    high = cells[~cells["low"]]["verdict"].value_counts()
    f.lines.append(f"\ndensity > 0.1, both growth rules: {high.get('tied', 0)} of {int(high.sum())} cells tied, "
                   f"{high.get('above', 0)} above, {high.get('below', 0)} below")
    rest = cells[cells["low"] & (cells["growth"] == "random") & (cells["criterion"] != RECIP)]["verdict"].value_counts()
    f.lines.append(f"random growth, density <= 0.1, without reciprocal_sensitivity: {rest.get('above', 0)} of "
                   f"{int(rest.sum())} cells above static, {rest.get('tied', 0)} tied, {rest.get('below', 0)} below")
    below = cells[cells["verdict"] == "below"]
    f.lines.append("\nsignificantly below static: " + ", ".join(
        f"{r['criterion']} + {r['growth']} at {r['density']:g} ({signed(r['diff'])})" for _, r in below.iterrows()))
    above_high = cells[(cells["verdict"] == "above") & ~cells["low"]]
    f.lines.append("significantly above static at density > 0.1: " + ", ".join(
        f"{r['criterion']} + {r['growth']} at {r['density']:g} ({signed(r['diff'])})"
        for _, r in above_high.iterrows()))
    for label, part in (("<= 0.1", low(data)), ("> 0.1", data[data["density"] > LOW])):
        pool = pooled(part, reference="static")
        f.lines += ["", f"Pooled over densities {label}, against static:", ""] + _pooled_lines(pool, "static")
        f.data[("pooled", label)] = pool
    return f


def collapse(study: str, trials: pd.DataFrame) -> Finding:
    """ReciprocalSensitivity + random growth at low density: when the trials peak, and whether they learn."""
    history = query(open_study(study), "history").drop(columns="density")
    runs = trials[trials["kind"] != "dense"]
    h = history.merge(runs[["trial_id", "kind", "criterion", "growth", "density", "seed"]], on="trial_id")
    first_update = h[h["n_updates"] > 0].groupby("trial_id")["epoch"].min()
    before = h[h["epoch"] < first_update.min()]
    identical = bool((before.groupby(["density", "seed", "epoch"])["val_accuracy"].nunique() == 1).all())
    low_random = low(dst(trials))
    low_random = low_random[low_random["growth"] == "random"]
    f = Finding("ReciprocalSensitivity + random growth at density <= 0.1",
                "descriptive: the trials' best validation epoch, final training loss and accuracy (history and "
                "trials tables)", "none (no test)", "30 trials per combination (6 densities x 5 seeds)")
    f.lines.append(f"- first topology update: during epoch {first_update.min()} in all {first_update.size} DST trials "
                   f"(after step 100; {STEPS_PER_EPOCH} steps per epoch); epochs 1-{first_update.min() - 1} are "
                   f"{'the same run' if identical else 'NOT the same run'} for every criterion, growth rule and the "
                   f"static baseline of a density and seed (one distinct validation accuracy each)")
    f.lines += ["", "| criterion + random growth | best val. epoch <= 3 | best val. epoch: median (range) | "
                "final train loss: range | final train accuracy: max | test acc. at best val.: mean |",
                "|---|---|---|---|---|---|"]
    for criterion in ("magnitude", "mest", "snip", "set_paper_code", RECIP):
        g = low_random[low_random["criterion"] == criterion]
        early = int((g["best_val_epoch"] < first_update.min()).sum())
        f.lines.append(f"| {criterion} | {early} of {len(g)} | {g['best_val_epoch'].median():g} "
                       f"({g['best_val_epoch'].min()}-{g['best_val_epoch'].max()}) | "
                       f"{g['final_train_loss'].min():.3f}-{g['final_train_loss'].max():.3f} | "
                       f"{pts(g['final_train_accuracy'].max())} | {pts(g[METRIC].mean())} |")
        f.data[criterion] = {"early": early, "n": len(g), "max_train_loss": float(g["final_train_loss"].max()),
                             "min_train_loss": float(g["final_train_loss"].min())}
    recip = low_random[low_random["criterion"] == RECIP]
    by_density = recip.groupby("density")["best_val_epoch"].apply(lambda s: int((s < first_update.min()).sum()))
    f.lines += ["", f"ln 10 = {math.log(10):.3f} (the loss of a uniform guess over 10 classes). ReciprocalSensitivity "
                "+ random, best validation epoch before the first update, per density: "
                + ", ".join(f"{d:g}: {n} of 5" for d, n in by_density.items())]
    for criterion in (RECIP, "magnitude"):
        at = h[(h["criterion"] == criterion) & (h["growth"] == "random") & (h["density"] <= LOW)]
        loss = at.groupby("epoch")["train_loss"].mean()
        f.lines.append(f"{criterion} + random, mean training loss at epochs 1, 3, 4, 5, 10, 25, 50, 100: "
                       + ", ".join(f"{loss[e]:.3f}" for e in (1, 3, 4, 5, 10, 25, 50, 100)))
    wider = dst(trials)
    wider = wider[(wider["criterion"] == RECIP) & (wider["growth"] == "random") & (wider["density"] > LOW)]
    f.lines.append("at density > 0.1: " + ", ".join(
        f"{d:g}: {pts(g[METRIC].mean())} ± {pts(g[METRIC].std())}, final train loss "
        f"{g['final_train_loss'].min():.2f}-{g['final_train_loss'].max():.2f}" for d, g in wider.groupby("density")))
    f.data["first_update_epoch"] = int(first_update.min())
    f.data["identical_before_update"] = identical
    return f


def jaccard(study: str) -> Finding:
    data = query(open_study(study), "jaccard")
    trials = data["trial_id"].nunique()
    f = Finding("What the criteria would remove (Jaccard, Figure 6)",
                "descriptive: the mean over trials of the Jaccard overlap of two criteria's removal sets, from the "
                "same state", "none (no test)", f"{trials} DST trials, every 25 epochs")

    def family(m: pd.DataFrame, names: tuple[str, ...]) -> float:
        return float(np.mean([m.loc[a, b] for i, a in enumerate(names) for b in names[i + 1:]]))

    history = query(open_study(study), "history")
    drop = history[history["trial_id"].isin(data["trial_id"].unique())].groupby("epoch")["drop_fraction"].mean()
    f.lines += ["| epoch | drop fraction p_t | within magnitude, set_paper_code, MEST | within magnitude, set, MEST | "
                "magnitude-MEST | magnitude-set_paper_code | magnitude-set | magnitude-SNIP | "
                "magnitude-ReciprocalSensitivity | magnitude-Random | chance p_t/(2-p_t) |",
                "|---|---|---|---|---|---|---|---|---|---|---|"]
    for epoch in sorted(data["epoch"].unique()):
        m = data[data["epoch"] == epoch].pivot_table(index="criterion_a", columns="criterion_b", values="jaccard",
                                                     aggfunc="mean")
        paper_code = family(m, ("magnitude", "set_paper_code", "mest"))
        published = family(m, ("magnitude", "set", "mest"))
        row = [m.loc["magnitude", c] for c in ("mest", "set_paper_code", "set", "snip", RECIP, "random")]
        f.lines.append(f"| {epoch} | {drop[epoch]:.3f} | {paper_code:.2f} | {published:.2f} | "
                       + " | ".join(f"{v:.2f}" for v in row) + f" | {drop[epoch] / (2 - drop[epoch]):.2f} |")
        f.data[int(epoch)] = {"set_paper_code": paper_code, "set": published, "drop_fraction": float(drop[epoch])}
    last = data[data["epoch"] == data["epoch"].max()].pivot_table(index="criterion_a", columns="criterion_b",
                                                                   values="jaccard", aggfunc="mean")
    f.lines += ["", f"last epoch: sensitivity with magnitude {last.loc['sensitivity', 'magnitude']:.2f}, with SNIP "
                f"{last.loc['sensitivity', 'snip']:.2f}"]
    return f


# -- Figure 4 ---------------------------------------------------------------------------------------------------

def update_period(trials: pd.DataFrame) -> Finding:
    runs = dst(trials)
    f = Finding("Very frequent updates hurt (Figure 4)",
                f"{PAIRED}, every other update period against period 25, per criterion x growth x density; pooled: "
                f"the same pooled over the criteria (ReciprocalSensitivity + random growth left out)",
                "Holm over the 6 periods compared with 25 in each criterion x growth x density cell (and in each "
                "pooled growth x density cell)",
                "3 seeds per cell; pooled: 5 criteria (4 with random growth) x 3 seeds")
    by25 = compare(runs, METRIC, rows="update_period", cols="density", reference=25).cells
    keys = ["criterion", "growth", "density"]
    rows = []
    for key, g in by25.groupby(keys):
        others = g[g["update_period"] != 25]
        better = others[(others["p_adjusted"] < ALPHA) & (others["diff"] > 0)]
        worse = others[(others["p_adjusted"] < ALPHA) & (others["diff"] < 0)]
        best = g.loc[g["mean"].idxmax()]
        rows.append(dict(zip(keys, key), mean25=float(g.loc[g["update_period"] == 25, "mean"].iloc[0]),
                         best_period=int(best["update_period"]), best=float(best["mean"]),
                         range=float(g["mean"].max() - g["mean"].min()), hurts=len(better) > 0,
                         better=", ".join(f"{int(r['update_period'])} {signed(r['diff'])}"
                                          for _, r in better.iterrows()),
                         worse=", ".join(f"{int(r['update_period'])} {signed(r['diff'])}"
                                         for _, r in worse.iterrows())))
    table = pd.DataFrame(rows)
    f.lines += ["| criterion | growth | density | period 25 | best period (mean) | range of the means | periods "
                "significantly better than 25 | significantly worse |", "|---|---|---|---|---|---|---|---|"]
    for _, r in table.iterrows():
        f.lines.append(f"| {r['criterion']} | {r['growth']} | {r['density']:g} | {pts(r['mean25'])} | "
                       f"{r['best_period']} ({pts(r['best'])}) | {pts(r['range'])} | {r['better'] or '–'} | "
                       f"{r['worse'] or '–'} |")
    hurt = table[table["hurts"]]
    f.lines.append(f"\ndetectable difference per cell: {detectable(by25)}")
    f.lines.append(f"period 25 significantly below another period in {len(hurt)} of {len(table)} cells: "
                   + ", ".join(f"{r['criterion']} + {r['growth']} at {r['density']:g}" for _, r in hurt.iterrows()))
    vs_best = compare(runs, METRIC, rows="update_period", cols="density").cells
    below_best = vs_best[(vs_best["update_period"] == 25) & ~vs_best["best"] & ~vs_best["tied"]]
    f.lines.append(f"the same against the best period instead of 25 (dst-study compare's default; Holm over the 6 "
                   f"periods compared with the best): period 25 below the best in {len(below_best)} of {len(table)} "
                   f"cells: " + ", ".join(f"{r['criterion']} + {r['growth']} at {r['density']:g}"
                                          for _, r in below_best.iterrows()))
    f.data["below_best"] = len(below_best)
    rest = table[~((table["criterion"] == RECIP) & (table["growth"] == "random"))]
    best25 = rest[(rest["growth"] == "random") & (rest["density"] == LOW) & (rest["best_period"] == 25)]
    f.lines.append(f"random growth, density {LOW:g}: period 25 has the best mean for "
                   f"{', '.join(best25['criterion'])}")
    at02 = rest[rest["density"] == MODERATE]
    f.lines.append(f"density {MODERATE:g}, every cell but ReciprocalSensitivity + random: largest range of the means "
                   f"over the periods {pts(at02['range'].max())} points")
    f.data["table"] = table

    # pooled over criteria, per growth x density
    kept = runs[~((runs["criterion"] == RECIP) & (runs["growth"] == "random"))]
    pooled_ = compare(kept, METRIC, rows="update_period", cols="density", reference=25, pool="criterion").cells
    f.lines += ["", "Pooled over the criteria (without ReciprocalSensitivity + random), every period against 25:", "",
                "| growth | density | " + " | ".join(str(p) for p in sorted(runs["update_period"].unique())) + " |",
                "|---|---|" + "---|" * runs["update_period"].nunique()]
    for (growth, density), g in pooled_.groupby(["growth", "density"]):
        g = g.sort_values("update_period")
        f.lines.append(f"| {growth} | {density:g} | " + " | ".join(
            pts(r["mean"]) if r["update_period"] == 25 else
            f"{signed(r['diff'])}{'*' if r['p_adjusted'] < ALPHA else ''}" for _, r in g.iterrows()) + " |")
    f.lines.append("(period 25: the pooled mean; others: difference to 25, * where Holm p < 0.05); detectable: "
                   + detectable(pooled_))
    f.data["pooled"] = pooled_

    # the rarest period against the static network
    with_static = trials[trials["kind"] != "dense"]
    vs_static = compare(with_static, METRIC, rows="update_period", cols="density", reference="static").cells
    rare = vs_static[(vs_static["update_period"] == 1600) & (vs_static["density"] == LOW)]
    tied = int((rare["p_adjusted"] >= ALPHA).sum())
    f.lines.append(f"\nperiod 1600 (one update, after step 1600 of 2,900) against static at density {LOW:g} (Holm over "
                   f"the 7 periods of each cell): tied in {tied} of {len(rare)} cells, differences "
                   f"{signed(rare['diff'].min())} to {signed(rare['diff'].max())}")

    means = trials.assign(period=trials["update_period"].astype("Int64"))
    d = means[means["kind"] == "dst"].pivot_table(index="density", columns="period", values=METRIC, aggfunc="mean")
    f.lines += ["", "Mean over criteria, growth rules and seeds (descriptive):", "",
                "| density | " + " | ".join(str(c) for c in d.columns) + " | static | dense |",
                "|---|" + "---|" * (len(d.columns) + 2)]
    dense = trials.loc[trials["kind"] == "dense", METRIC]
    for density, row in d.iterrows():
        s = trials.loc[(trials["kind"] == "static") & (trials["density"] == density), METRIC]
        f.lines.append(f"| {density:g} | " + " | ".join(pts(v) for v in row)
                       + f" | {pts(s.mean())} ± {pts(s.std())} | {pts(dense.mean())} ± {pts(dense.std())} |")
    wo = means[(means["kind"] == "dst") & ~((means["criterion"] == RECIP) & (means["growth"] == "random"))]
    f.lines.append("without ReciprocalSensitivity + random, over both densities: "
                   + ", ".join(f"{p}: {pts(v)}" for p, v in wo.groupby("period")[METRIC].mean().items()))
    return f


def main(fig1_study: str, fig4_study: str | None = None) -> list[Finding]:
    trials = load(fig1_study)
    print(f"## {fig1_study}: {len(trials)} trials, metric {METRIC}\n")
    findings = [figure1_columns(trials), similar_at_moderate(trials), differences_at_low(trials),
                magnitude_at_low(trials), beats_static(trials), collapse(fig1_study, trials), jaccard(fig1_study)]
    if fig4_study:
        trials4 = load(fig4_study)
        findings.append(update_period(trials4))
    for f in findings:
        print(f.show())
    return findings


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2] if len(sys.argv) > 2 else None)
