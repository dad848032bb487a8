"""Comparison tables: averages over seeds only, splits by every other axis, baselines as references,
best and ties by Welch's t-test."""

import math

import numpy as np
import pandas as pd
import pytest

from study.comparison import compare, default_axes, ranking, welch
from study.render import comparison_frame, comparison_tables
from study.store import StoreError


def _frame(rows):
    keys = ("kind", "criterion", "growth", "density", "seed", "final_test_accuracy")
    return pd.DataFrame([{**dict(zip(keys, r)), "status": "completed", "update_period": 100} for r in rows])


def _study():
    rows = []
    for seed, (m, s, st) in enumerate([(0.80, 0.70, 0.60), (0.82, 0.71, 0.62), (0.84, 0.72, 0.61)], start=1):
        rows += [("dst", "magnitude", "random", 0.1, seed, m), ("dst", "snip", "random", 0.1, seed, s),
                 ("dst", "magnitude", "gradient", 0.1, seed, m - 0.10), ("dst", "snip", "gradient", 0.1, seed, s),
                 ("dst", "magnitude", "random", 0.5, seed, 0.90), ("dst", "snip", "random", 0.5, seed, 0.91),
                 ("dst", "magnitude", "gradient", 0.5, seed, 0.90), ("dst", "snip", "gradient", 0.5, seed, 0.89),
                 ("static", None, None, 0.1, seed, st), ("static", None, None, 0.5, seed, st + 0.2),
                 ("dense", None, None, 1.0, seed, 0.95 + seed / 100)]
    rows.append(("dst", "random", "random", 0.1, 1, 0.1))
    frame = _frame(rows)
    frame.loc[frame.index[-1], "status"] = "failed"  # failed trials are left out
    return frame


def _cell(c, **where):
    cells = c.cells
    for key, value in where.items():
        cells = cells[cells[key] == value]
    assert len(cells) == 1, cells
    return cells.iloc[0]


def test_cells_average_over_seeds_only_and_other_axes_split():
    c = compare(_study())
    assert c.split == ["growth"] and [values for values, _ in c.tables] == [{"growth": "gradient"},
                                                                            {"growth": "random"}]
    cell = _cell(c, growth="random", criterion="magnitude", density=0.1)
    assert cell["n"] == 3 and cell["mean"] == pytest.approx(0.82) and cell["std"] == pytest.approx(0.02)
    assert _cell(c, growth="gradient", criterion="magnitude", density=0.1)["mean"] == pytest.approx(0.72)
    assert "random" not in set(c.cells["criterion"])  # the failed trial
    assert set(c.cells.loc[c.cells["kind"] == "dst", "n"]) == {3}  # never 6: growth is not pooled


def test_baselines_are_reference_rows_static_per_density_dense_one_value():
    c = compare(_study())
    for growth in ("random", "gradient"):
        static = _cell(c, growth=growth, criterion="static", density=0.1)
        assert static["mean"] == pytest.approx(0.61) and static["n"] == 3 and not static["best"]
        assert _cell(c, growth=growth, criterion="static", density=0.5)["mean"] == pytest.approx(0.81)
        for density in (0.1, 0.5):  # dense spans every density column of every table
            dense = _cell(c, growth=growth, criterion="dense", density=density)
            assert dense["mean"] == pytest.approx(0.97) and dense["n"] == 3 and not dense["best"]
    assert 1.0 not in set(c.cells["density"])  # no column of its own for the dense baseline
    title, header, body = comparison_tables(c)[1]
    assert title == "growth = random" and header == ["criterion \\ density", "0.1", "0.5"]
    assert [row[0] for row in body] == ["magnitude", "snip", "static", "dense"]
    assert body[0][1] == "82.0 ± 2.0 ★" and body[3] == ["dense", "97.0 ± 1.0", "97.0 ± 1.0"]


def test_best_and_ties_by_welchs_t_test():
    c = compare(_study())
    # density 0.5, random: snip 0.91 x3 vs magnitude 0.90 x3, no spread at all: not tied
    assert _cell(c, growth="random", criterion="snip", density=0.5)["best"]
    assert not _cell(c, growth="random", criterion="magnitude", density=0.5)["tied"]
    # density 0.1, gradient: magnitude (0.70, 0.72, 0.74) best, snip (0.70, 0.71, 0.72) tied with it
    best = _cell(c, growth="gradient", criterion="magnitude", density=0.1)
    other = _cell(c, growth="gradient", criterion="snip", density=0.1)
    assert best["best"] and other["tied"] and not other["best"] and math.isnan(best["t"])
    # Welch: t = (0.71 - 0.72) / sqrt(0.01**2 / 3 + 0.02**2 / 3), by hand; p well above 0.05
    assert other["t"] == pytest.approx(-0.01 / math.sqrt(0.0001 / 3 + 0.0004 / 3), rel=1e-6)
    assert other["p"] > 0.4 and other["gap"] == pytest.approx(-0.01)
    # density 0.1, random: magnitude 0.82 ± 0.02 vs snip 0.71 ± 0.01: clearly different
    snip = _cell(c, growth="random", criterion="snip", density=0.1)
    assert not snip["tied"] and snip["p"] < 0.01 and snip["gap"] == pytest.approx(-0.11)
    frame = comparison_frame(c)
    assert list(frame.columns) == ["growth", "criterion", "density", "kind", "n", "mean", "std", "gap", "best",
                                   "tied", "t", "p"]


def test_a_loss_is_better_lower_and_unknown_columns_are_named():
    frame = _study().assign(final_test_loss=lambda f: 1 - f["final_test_accuracy"])
    c = compare(frame, "final_test_loss")
    assert _cell(c, growth="random", criterion="magnitude", density=0.1)["best"]
    with pytest.raises(StoreError, match="unknown column 'growht'"):
        compare(frame, rows="growht")


def test_default_axes_follow_the_study():
    assert default_axes(_study()) == ("criterion", "density")
    periods = _frame([("dst", c, "random", d, 1, 0.5) for c in ("magnitude", "snip") for d in (0.1, 0.2)])
    periods = pd.concat([periods.assign(update_period=p) for p in (25, 50, 100)], ignore_index=True)
    assert default_axes(periods) == ("criterion", "update_period")  # 3 periods against 2 densities


def test_ranking_orders_a_search_best_first():
    frame = pd.DataFrame({"final_test_accuracy": [0.5, 0.9, 0.7], "density": [0.1, 0.3, 0.2], "seed": 0,
                          "trial_id": ["a", "b", "c"], "status": "completed"})
    ranked = ranking(frame, "final_test_accuracy", ["density"])
    assert list(ranked["trial_id"]) == ["b", "c", "a"] and list(ranked["rank"]) == [1, 2, 3]


def test_welch_p_values_equal_scipys():
    from scipy import stats

    rng = np.random.default_rng(0)
    for n_a, n_b in [(2, 2), (2, 9), (3, 5), (10, 10), (40, 3)]:
        for _ in range(20):
            a = rng.normal(0, 1, n_a)
            b = rng.normal(rng.normal(0, 2), rng.uniform(0.05, 3), n_b)
            expected = stats.ttest_ind(a, b, equal_var=False)
            t, p = welch(a, b)
            assert t == pytest.approx(expected.statistic, rel=1e-12)
            assert p == pytest.approx(expected.pvalue, rel=1e-9, abs=1e-14)


def test_a_study_of_baselines_only_shows_their_means():
    dense = [("dense", None, None, 1.0, seed, 0.9 + seed / 100) for seed in (1, 2)]
    c = compare(_frame(dense), "final_test_accuracy", *default_axes(_frame(dense)))
    assert comparison_tables(c) == [("", ["criterion \\ density", "all"], [["dense", "91.5 ± 0.7"]])]
    static = [("static", None, None, d, seed, 0.5 + d) for d in (0.1, 0.2) for seed in (1, 2)]
    _, header, body = comparison_tables(compare(_frame(dense + static)))[0]
    assert header == ["criterion \\ density", "0.1", "0.2"]
    assert body == [["static", "60.0 ± 0.0", "70.0 ± 0.0"], ["dense", "91.5 ± 0.7", "91.5 ± 0.7"]]
