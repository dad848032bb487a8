"""Comparison tables: averages over seeds only, splits by every other axis, baselines as references,
best and ties by a paired (or Welch's) t-test with Holm's correction, differences to a reference,
pooled answers across cells."""

import math

import numpy as np
import pandas as pd
import pytest

from study import stats
from study.cli import main
from study.comparison import compare, default_axes, ranking
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
    title, header, body, _ = comparison_tables(c)[1]
    assert title == "growth = random" and header == ["criterion \\ density", "0.1", "0.5"]
    assert [row[0] for row in body] == ["magnitude", "snip", "static", "dense"]
    assert body[0][1] == "82.0 ± 2.0 ★" and body[3] == ["dense", "97.0 ± 1.0", "97.0 ± 1.0"]


def test_best_and_ties_by_a_paired_test_where_cells_share_seeds():
    c = compare(_study())
    # density 0.5, random: snip 0.91 x3 vs magnitude 0.90 x3, no spread at all: not tied
    assert _cell(c, growth="random", criterion="snip", density=0.5)["best"]
    assert not _cell(c, growth="random", criterion="magnitude", density=0.5)["tied"]
    # density 0.1, gradient: magnitude (0.70, 0.72, 0.74) best, snip (0.70, 0.71, 0.72) tied with it
    best = _cell(c, growth="gradient", criterion="magnitude", density=0.1)
    other = _cell(c, growth="gradient", criterion="snip", density=0.1)
    assert best["best"] and other["tied"] and not other["best"] and math.isnan(best["t"]) and best["diff"] == 0
    # paired: the seed-wise differences are (0, -0.01, -0.02): mean -0.01, sd 0.01, t = -sqrt(3), df 2
    assert other["test"] == "paired" and other["t"] == pytest.approx(-math.sqrt(3), rel=1e-9)
    assert other["p"] == pytest.approx(0.2254033307585166, rel=1e-9) and other["diff"] == pytest.approx(-0.01)
    half = 4.302652729911275 * 0.01 / math.sqrt(3)  # t_{0.975, 2} x se
    assert (other["ci_low"], other["ci_high"]) == pytest.approx((-0.01 - half, -0.01 + half), rel=1e-9)
    # density 0.1, random: magnitude 0.82 ± 0.02 vs snip 0.71 ± 0.01: clearly different
    snip = _cell(c, growth="random", criterion="snip", density=0.1)
    assert not snip["tied"] and snip["p"] < 0.01 and snip["diff"] == pytest.approx(-0.11)
    # Welch, forced: t = (0.71 - 0.72) / sqrt(0.01**2 / 3 + 0.02**2 / 3), by hand
    welch = _cell(compare(_study(), test="welch"), growth="gradient", criterion="snip", density=0.1)
    assert welch["test"] == "welch" and welch["t"] == pytest.approx(-0.01 / math.sqrt(0.0001 / 3 + 0.0004 / 3))
    frame = comparison_frame(c)
    assert list(frame.columns) == ["growth", "criterion", "density", "kind", "n", "mean", "std", "test", "diff",
                                   "ci_low", "ci_high", "t", "p", "p_adjusted", "detectable", "best", "tied"]


def test_welch_where_the_cells_ran_different_seeds():
    frame = _study()
    drop = (frame["criterion"] == "snip") & (frame["growth"] == "gradient") & (frame["density"] == 0.1) \
        & (frame["seed"] == 3)
    c = compare(frame[~drop])
    assert _cell(c, growth="gradient", criterion="snip", density=0.1)["test"] == "welch"
    assert _cell(c, growth="random", criterion="snip", density=0.1)["test"] == "paired"
    assert "paired t-test where two cells ran the same seeds, Welch's t-test otherwise" in c.caption
    forced = _cell(compare(frame[~drop], test="paired"), growth="gradient", criterion="snip", density=0.1)
    assert forced["test"] == "paired"  # on the two seeds both cells ran: (0, -0.01)
    assert forced["diff"] == pytest.approx(-0.005) and forced["t"] == pytest.approx(-1.0)


def test_holm_by_hand():
    adjusted = stats.holm([0.01, 0.04, 0.03, math.nan, 0.5])
    # sorted: 0.01 x 4, 0.03 x 3, 0.04 x 2, 0.5 x 1, each at least the one before
    assert adjusted[:3] == pytest.approx([0.04, 0.09, 0.09]) and math.isnan(adjusted[3]) and adjusted[4] == 0.5
    assert list(stats.holm([0.9, 0.8])) == [1.0, 1.0]  # 0.8 x 2 caps at 1, and 0.9 may not fall below it


def _column(seed_effects, offsets, noise, rng, criteria=("a", "b", "c", "d")):
    """One density column: criterion x seed, a shared seed effect, per-criterion offsets, noise."""
    return [("dst", name, "random", 0.1, seed, 0.5 + s + off + rng.normal(0, noise))
            for seed, s in enumerate(seed_effects) for name, off in zip(criteria, offsets)]


def test_a_column_is_one_holm_family():
    rng = np.random.default_rng(3)
    c = compare(_frame(_column(rng.normal(0, 0.02, 5), (0.0, -0.004, -0.006, -0.02), 0.005, rng)))
    cells = c.cells.set_index("criterion")
    tested = cells.loc[["b", "c", "d"] if cells.loc["a", "best"] else [], "p"]
    assert len(tested) == 3
    assert list(cells.loc[tested.index, "p_adjusted"]) == pytest.approx(list(stats.holm(tested.to_numpy())))
    assert (cells.loc[tested.index, "tied"] == (cells.loc[tested.index, "p_adjusted"] >= 0.05)).all()
    uncorrected = compare(_frame(_column(rng.normal(0, 0.02, 5), (0, 0, 0, 0), 0.005, rng)), correction="none")
    assert (uncorrected.cells["p_adjusted"].dropna() == uncorrected.cells["p"].dropna()).all()


def test_paired_and_welch_equal_scipys():
    from scipy import stats as scipy_stats

    rng = np.random.default_rng(0)
    for n_a, n_b in [(2, 2), (2, 9), (3, 5), (10, 10), (40, 3)]:
        for _ in range(10):
            a = rng.normal(0, 1, n_a)
            b = rng.normal(rng.normal(0, 2), rng.uniform(0.05, 3), n_b)
            expected = scipy_stats.ttest_ind(a, b, equal_var=False)
            got = stats.welch(a, b)
            assert got.t == pytest.approx(expected.statistic, rel=1e-12)
            assert got.p == pytest.approx(expected.pvalue, rel=1e-9, abs=1e-14)
            assert got.ci() == pytest.approx(tuple(expected.confidence_interval()), rel=1e-8)
            if n_a == n_b:
                expected = scipy_stats.ttest_rel(a, b + a)  # correlated pairs
                got = stats.paired(a, b + a)
                assert (got.t, got.p) == pytest.approx((expected.statistic, expected.pvalue), rel=1e-9)
                assert got.ci() == pytest.approx(tuple(expected.confidence_interval()), rel=1e-8)
    for df in (1, 1.7, 2, 4, 9.3, 29, 300):
        for q in (0.6, 0.8, 0.975, 0.9995):
            assert stats.t_quantile(q, df) == pytest.approx(scipy_stats.t.ppf(q, df), rel=1e-9)


def test_detectable_difference_is_what_the_test_finds_with_80_percent_power():
    """At the stated difference, a paired test at alpha = 0.05 with 5 seeds rejects about 80 % of the
    time (a Monte-Carlo check of the formula, not a copy of it)."""
    rng = np.random.default_rng(1)
    sd, n = 0.01, 5
    delta = stats.Contrast("paired", 0.0, sd / math.sqrt(n), n - 1, n).detectable()
    rejected = np.mean([stats.paired(rng.normal(delta, sd, n), np.zeros(n)).p < 0.05 for _ in range(4000)])
    assert 0.75 < rejected < 0.85


def test_a_reference_row_is_compared_with_every_other_row():
    c = compare(_study(), reference="snip")
    cells = c.cells[(c.cells["growth"] == "random") & (c.cells["density"] == 0.1)].set_index("criterion")
    assert cells.loc["snip", "diff"] == 0 and not cells["best"].any()
    assert cells.loc["magnitude", "diff"] == pytest.approx(0.11) and cells.loc["magnitude", "test"] == "paired"
    assert cells.loc["static", "diff"] == pytest.approx(0.61 - 0.71)  # baselines are compared too
    assert cells.loc["dense", "diff"] == pytest.approx(0.97 - 0.71)
    _, _, body, _ = comparison_tables(c)[1]
    assert body[0][0] == "magnitude" and body[0][1].startswith("+11.0 ± ") and body[0][1].endswith(" *")
    assert body[1][:2] == ["snip", "71.0 ± 1.0"]
    with pytest.raises(StoreError, match=r"--reference 'snap': no such criterion here \(rows: dense, magnitude, "):
        compare(_study(), reference="snap")


def test_pooling_recovers_a_known_difference():
    """Six density cells of five seeds, b better than a by 1, 2, ..., 6 points: pooled, b - a is
    3.5 points, and the 95 % CI covers the truth in about 95 % of studies."""
    rng = np.random.default_rng(7)
    truth = np.arange(1, 7) / 100
    covered, estimates = 0, []
    for _ in range(300):
        rows = []
        for density, delta in zip((0.02, 0.04, 0.06, 0.08, 0.1, 0.12), truth):
            for seed in range(5):
                shared = rng.normal(0, 0.02)  # the seed moves both criteria alike
                rows += [("dst", "a", "random", density, seed, 0.5 + shared + rng.normal(0, 0.01)),
                         ("dst", "b", "random", density, seed, 0.5 + delta + shared + rng.normal(0, 0.01))]
        cell = _cell(compare(_frame(rows), pool="density", reference="a"), criterion="b")
        estimates.append(cell["diff"])
        covered += cell["ci_low"] <= truth.mean() <= cell["ci_high"]
        assert cell["density"] == "pooled" and cell["n"] == 30 and cell["test"] == "paired"
    assert np.mean(estimates) == pytest.approx(truth.mean(), abs=0.001)
    assert 0.91 <= covered / 300 <= 0.99


def test_pooling_refuses_what_it_cannot_answer():
    with pytest.raises(StoreError, match=r"--pool 'seed': not an axis of this comparison"):
        compare(_study(), pool="seed")
    with pytest.raises(StoreError, match="the dense baseline is the same trials at every density"):
        compare(_study(), pool="density", reference="dense")
    pooled = compare(_study(), pool="density", reference="static")
    assert "dense" not in set(pooled.cells["criterion"])  # it spans the pooled axis: left out


def test_the_committed_study_answers_the_pooled_question(capsys):
    """Issue 18: is magnitude best at low density with random growth? Pooled over densities <= 0.1,
    SNIP is ahead of it, on the committed data, without running anything."""
    assert main(["compare", "results/mnist1d_fig1", "--where", "density <= 0.1 and growth == 'random'", "--pool",
                 "density", "--reference", "magnitude", "--format", "csv"]) == 0
    cells = pd.read_csv(__import__("io").StringIO(capsys.readouterr().out)).set_index("criterion")
    assert {"test", "p_adjusted", "diff", "ci_low", "ci_high", "detectable"} <= set(cells.columns)
    assert cells.loc["snip", "diff"] > 0.02 and cells.loc["snip", "p_adjusted"] < 0.01
    assert cells.loc["snip", "test"] == "paired" and cells.loc["snip", "n"] == 30
    assert main(["compare", "results/mnist1d_fig1", "--format", "csv"]) == 0
    cells = pd.read_csv(__import__("io").StringIO(capsys.readouterr().out))
    assert set(cells["test"].dropna()) == {"paired"}  # every cell of the grid ran the same five seeds
    assert main(["compare", "results/mnist1d_fig1", "--where", "growth == 'random'"]) == 0
    assert "power: its tests detect a difference of " in capsys.readouterr().out


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


def test_a_study_of_baselines_only_shows_their_means():
    dense = [("dense", None, None, 1.0, seed, 0.9 + seed / 100) for seed in (1, 2)]
    c = compare(_frame(dense), "final_test_accuracy", *default_axes(_frame(dense)))
    assert comparison_tables(c)[0][:3] == ("", ["criterion \\ density", "all"], [["dense", "91.5 ± 0.7"]])
    static = [("static", None, None, d, seed, 0.5 + d) for d in (0.1, 0.2) for seed in (1, 2)]
    _, header, body, _ = comparison_tables(compare(_frame(dense + static)))[0]
    assert header == ["criterion \\ density", "0.1", "0.2"]
    assert body == [["static", "60.0 ± 0.0", "70.0 ± 0.0"], ["dense", "91.5 ± 0.7", "91.5 ± 0.7"]]


def test_a_numeric_row_is_named_from_the_command_line_and_sorted_as_a_number():
    rows = [("dst", "magnitude", "random", 0.1, seed, 0.5 + period / 10_000 + seed / 1000)
            for period in (25, 100, 1600) for seed in (1, 2, 3)]
    frame = _frame(rows).assign(update_period=[p for p in (25, 100, 1600) for _ in range(3)])
    c = compare(frame, rows="update_period", reference="25")  # text, as --reference gives it
    assert c.reference == 25 and _cell(c, update_period=1600)["diff"] == pytest.approx(0.1575)
    _, _, body, _ = comparison_tables(c)[0]
    assert [row[0] for row in body] == ["25", "100", "1600"]


def test_several_studies_line_up_and_a_shared_trial_counts_once(tmp_path, capsys):
    from datetime import datetime, timezone

    from dst_core import TrainConfig
    from study.store import ParquetStore
    from study.trial import Trial, history_rows, trial_row

    def store(name, runs):
        s = ParquetStore(str(tmp_path / name))
        for criterion, seed, accuracy in runs:
            trial = Trial.of(TrainConfig(criterion=criterion, seed=seed, density=0.1))
            history = [{"epoch": 1, "step": 1, "lr": 0.1, "train_loss": 1.0, "train_accuracy": 0.5, "test_loss": 1.0,
                        "test_accuracy": accuracy, "density": 0.1, "drop_fraction": 0.3, "itop_rate": 0.2,
                        "n_updates": 1, "update_seconds": accuracy, "epoch_seconds": 0.1}]
            s.append([trial_row(trial, history, status="completed", started_at=datetime.now(timezone.utc))],
                     history_rows(trial, history))
        return str(s.root)

    record = store("record", [("magnitude", seed, 0.5 + seed / 100) for seed in (1, 2, 3)])
    mine = store("mine", [("snip", seed, 0.6 + seed / 100) for seed in (1, 2, 3)] + [("magnitude", 1, 0.51)])
    assert main(["compare", record, mine, "--metric", "final_test_accuracy", "--format", "csv"]) == 0
    out = capsys.readouterr()
    cells = pd.read_csv(__import__("io").StringIO(out.out)).set_index("criterion")
    assert cells.loc["magnitude", "n"] == 3 and cells.loc["snip", "n"] == 3  # the shared trial once
    assert cells.loc["snip", "best"] and cells.loc["magnitude", "test"] == "paired" and out.err == ""
    other = store("other", [("magnitude", 1, 0.99)])  # the same trial, another result
    assert main(["compare", record, other, "--metric", "final_test_accuracy"]) == 0
    assert f"with different results; {record}'s is used" in capsys.readouterr().err
