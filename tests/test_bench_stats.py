"""The statistics benchmark's simulation (bench/bench_stats.py) at tiny replication counts: that it
measures study.stats, and measures it right (known rates under no difference, known power)."""

import math
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "bench"))

from bench_stats import (Spread, check_against_stats, holm_adjust, simulate, sole_winner,  # noqa: E402
                         variance_components)

from study import stats  # noqa: E402

SPREAD = Spread(sd_resid=1.4, sd_seed=0.6)  # about the study of record's


def bound(p: float, draws: int) -> float:
    """A generous Monte Carlo bound: 4.5 standard errors of a rate p over ``draws`` draws."""
    return 4.5 * math.sqrt(p * (1 - p) / draws)


@pytest.mark.parametrize("n", [3, 5])
def test_vectorised_pvalues_equal_study_stats(n):
    assert check_against_stats(n, SPREAD, draws=40, seed=n) <= 1e-9


def test_holm_adjust_is_study_stats_holm_nans_included():
    rng = np.random.default_rng(0)
    p = rng.random((50, 6)) ** 3
    p[rng.random(p.shape) < 0.2] = np.nan
    p[:, 3] = p[:, 2]  # ties
    expected = np.array([stats.holm(row) for row in p])
    np.testing.assert_allclose(holm_adjust(p), expected, rtol=0, atol=1e-15)


def test_paired_against_a_fixed_reference_is_wrong_at_rate_alpha():
    # 2 rows x 8 columns x 500 tables: 4,000 independent comparisons under no difference
    rates = simulate(5, SPREAD, rows=2, cols=8, reps=500, seed=1)
    fpr = rates["paired", "fixed", "none"]["comparison"]
    assert abs(fpr - 0.05) < bound(0.05, 4000), fpr
    # Holm over a column of 5 rows keeps the column's error at most alpha
    rates = simulate(5, SPREAD, rows=5, cols=8, reps=500, seed=2)
    assert rates["paired", "fixed", "holm"]["column"] < 0.05 + bound(0.05, 4000)
    assert rates["paired", "fixed", "none"]["column"] > 0.10  # four tests: more than one alpha


def test_choosing_the_best_row_first_inflates_false_positives():
    rates = simulate(5, SPREAD, rows=5, cols=8, reps=500, seed=3)
    best, fixed = rates["paired", "best", "none"]["column"], rates["paired", "fixed", "none"]["column"]
    assert best > fixed + 0.05, (best, fixed)
    # Holm over all pairs of the column is valid whatever row came out best
    assert rates["paired", "best", "holm, all pairs"]["column"] < 0.05 + bound(0.05, 4000)


def test_a_huge_difference_is_always_found():
    rates = simulate(5, SPREAD, rows=5, cols=2, delta=20.0, reps=200, seed=4)
    for test in ("paired", "welch"):
        for reference in ("best", "fixed"):
            for correction in ("none", "holm", "holm, all pairs"):
                assert rates[test, reference, correction]["power"] > 0.98, (test, reference, correction)
    assert sole_winner(5, SPREAD, 20.0, reps=200, seed=5)["paired", "holm"] > 0.98


def test_pairing_pays_when_the_seed_effect_dominates():
    shared = Spread(sd_resid=0.5, sd_seed=3.0)
    rates = simulate(5, shared, rows=2, cols=1, delta=1.5, reps=1000, seed=6)
    paired, welch = rates["paired", "fixed", "none"]["power"], rates["welch", "fixed", "none"]["power"]
    assert paired > 0.7 and paired > welch + 0.4, (paired, welch)


def test_variance_components_recover_an_additive_table():
    rows, seed_effect = np.array([50.0, 51.0, 49.5]), np.array([0.0, 1.0, -2.0, 0.5])
    trials = pd.DataFrame([{"kind": "dst", "status": "completed", "growth": "random", "density": 0.1,
                            "criterion": f"c{r}", "seed": s, "test_accuracy_at_best_val": (mu + b) / 100}
                           for r, mu in enumerate(rows) for s, b in enumerate(seed_effect)])
    comp = variance_components(trials).iloc[0]
    assert (comp["rows"], comp["seeds"]) == (3, 4)
    assert comp["resid_var"] == pytest.approx(0.0, abs=1e-9)
    assert comp["seed_var"] == pytest.approx(seed_effect.var(ddof=1))
