"""bench/findings.py on the committed studies of record: the headline verdicts of
docs/reproduction.md that a change to the statistics or to the script could turn."""

import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
FIG1, FIG4 = ROOT / "results" / "mnist1d_fig1", ROOT / "results" / "mnist1d_fig4"
sys.path.insert(0, str(ROOT / "bench"))

import findings  # noqa: E402

pytestmark = pytest.mark.skipif(not (FIG1 / "trials").is_dir() or not (FIG4 / "trials").is_dir(),
                                reason="the studies of record are not in this checkout")


@pytest.fixture(scope="module")
def fig1():
    return findings.load(str(FIG1))


def pooled_row(cells, growth, criterion):
    return cells[(cells["growth"] == growth) & (cells["criterion"] == criterion)].iloc[0]


def test_random_growth_snip_ahead_of_magnitude_at_low_density(fig1):
    f = findings.magnitude_at_low(fig1)
    snip = pooled_row(f.data["pooled"], "random", "snip")
    assert snip["test"] == "paired" and snip["n"] == 30  # 6 densities x 5 seeds
    assert snip["diff"] > 0.02 and snip["ci_low"] > 0 and snip["p_adjusted"] < 0.01


def test_gradient_growth_magnitude_best_or_tied_at_low_density(fig1):
    f = findings.magnitude_at_low(fig1)
    assert f.data[("gradient", "low")] == (6, 6)
    ahead = f.data["pooled"]
    ahead = ahead[(ahead["growth"] == "gradient") & (ahead["diff"] > 0) & (ahead["p_adjusted"] < findings.ALPHA)]
    assert ahead.empty  # no criterion significantly ahead of magnitude, pooled over densities <= 0.1


def test_reciprocal_random_never_leaves_the_plateau(fig1):
    f = findings.collapse(str(FIG1), fig1)
    assert f.data["first_update_epoch"] == 4 and f.data["identical_before_update"]
    assert f.data["reciprocal_sensitivity"]["early"] == 21 and f.data["magnitude"]["early"] == 0
    assert f.data["reciprocal_sensitivity"]["min_train_loss"] > 2.29  # ln 10 = 2.303: a uniform guess
    assert f.data["magnitude"]["max_train_loss"] < 2.0


def test_jaccard_family_with_the_pages_set(fig1):
    f = findings.jaccard(str(FIG1))
    assert round(f.data[25]["set_paper_code"], 2) == 0.87 and round(f.data[25]["set"], 2) == 0.90
    assert f.data[100]["set_paper_code"] < 0.1 < f.data[100]["set"]


def test_frequent_updates_hurt_only_reciprocal_random():
    f = findings.update_period(findings.load(str(FIG4)))
    table = f.data["table"]
    assert set(map(tuple, table.loc[table["hurts"], ["criterion", "growth"]].to_numpy())) == {
        ("reciprocal_sensitivity", "random")}
    rest = table[(table["criterion"] != "reciprocal_sensitivity") & (table["growth"] == "random")]
    assert (rest.loc[rest["density"] == 0.1, "best_period"] == 25).all()
    assert table.loc[(table["density"] == 0.2) & ~((table["criterion"] == "reciprocal_sensitivity")
                                                    & (table["growth"] == "random")), "range"].max() < 0.02


def test_script_prints_every_finding(capsys):
    out = findings.main(str(FIG1), str(FIG4))
    text = capsys.readouterr().out
    assert len(out) == 8 and all(f"### {f.title}" in text for f in out)
    assert all("correction:" in f.show() and "n:" in f.show() for f in out)
