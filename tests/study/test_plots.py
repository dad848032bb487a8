"""What each figure shows (panels, lines, legends, the static and dense references), read from the
matplotlib Figure that ``plot`` saves, on a small study with known numbers."""

import itertools

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import pytest  # noqa: E402

from study.plots import COLOURS, figure, per_epoch_metric, plot  # noqa: E402
from study.queries import Studies  # noqa: E402
from study.store import ParquetStore  # noqa: E402

CRITERIA, GROWTHS, DENSITIES, PERIODS, SEEDS, EPOCHS = ("magnitude", "snip"), ("gradient", "random"), \
    (0.05, 0.2), (50, 200), (0, 1), 3
JACCARD_EPOCHS = (1, 2, 3, 4, 5)


def _accuracy(kind, criterion, growth, density, period, seed):
    """Final test accuracy: a known number per trial (seeds differ by 0.02)."""
    base = {"static": 0.30, "dense": 0.90}.get(kind) or {"magnitude": 0.50, "snip": 0.40}[criterion]
    if kind == "dst":
        base += (growth == "gradient") * 0.05 + (period == 200) * 0.01
    return round(base + (density != 1.0) * density / 10 + 0.02 * seed, 6)


def _trials():
    dst = [dict(kind="dst", criterion=c, growth=g, density=d, update_period=p, seed=s)
           for c, g, d, p, s in itertools.product(CRITERIA, GROWTHS, DENSITIES, PERIODS, SEEDS)]
    static = [dict(kind="static", criterion=None, growth=None, density=d, update_period=None, seed=s)
              for d, s in itertools.product(DENSITIES, SEEDS)]
    dense = [dict(kind="dense", criterion=None, growth=None, density=1.0, update_period=None, seed=s) for s in SEEDS]
    return [dict(t, trial_id=f"t{i:02d}", status="completed", algorithm_revision=2,
                 final_test_accuracy=_accuracy(t["kind"], t["criterion"], t["growth"], t["density"],
                                               t["update_period"], t["seed"]))
            for i, t in enumerate(dst + static + dense)]


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    trials = _trials()
    history = [{"trial_id": t["trial_id"], "epoch": e, "test_accuracy": t["final_test_accuracy"] - 0.1 * (EPOCHS - e)}
               for t in trials for e in range(1, EPOCHS + 1)]
    jaccard = [{"trial_id": "t00", "epoch": e, "criterion_a": a, "criterion_b": b,
                "jaccard": 1.0 if a == b else e / 10} for e in JACCARD_EPOCHS for a in CRITERIA for b in CRITERIA]
    failed = dict(trials[0], trial_id="failed", status="failed", final_test_accuracy=0.0)  # never drawn
    store = ParquetStore(str(tmp_path_factory.mktemp("plots") / "study"))
    store.append([*trials, failed], history, jaccard)
    return store


@pytest.fixture
def draw(store):
    figures = []

    def draw(kind, **kw):
        figures.append(figure(Studies([store]), kind, **kw))
        return figures[-1]
    yield draw
    for fig in figures:
        plt.close(fig)


def _panels(fig):
    return {ax.get_title(): ax for ax in fig.axes if ax.get_visible() and ax.get_title()}


def _mean(values):
    return sum(values) / len(values)


def _line(ax, label):
    (line,) = [ln for ln in ax.get_lines() if ln.get_label() == label]
    return line


def _legend(ax):
    return [t.get_text() for t in ax.get_legend().get_texts()]


def test_every_registered_criterion_has_a_colour():
    from dst_core import CRITERIA as REGISTERED  # loads torch: the figures never do
    assert set(REGISTERED.names()) <= set(COLOURS)
    assert len({COLOURS[c] for c in REGISTERED.names()}) == len(REGISTERED.names())  # all distinct


def test_density_figure_a_line_per_criterion_static_as_a_line_dense_as_a_reference(draw):
    fig = draw("density")
    assert fig.get_suptitle() == "final_test_accuracy vs density (mean ± std over seeds)"
    panels = _panels(fig)  # one per growth x update period; density is the x axis
    # in order, numbers by value: update period 50 before 200
    assert list(panels) == [f"growth = {g}, update_period = {p}" for g in GROWTHS for p in PERIODS]
    dense = _mean([_accuracy("dense", None, None, 1.0, None, s) for s in SEEDS])
    for (growth, period), ax in ((k, panels[f"growth = {k[0]}, update_period = {k[1]}"])
                                 for k in itertools.product(GROWTHS, PERIODS)):
        assert len(ax.get_lines()) == 4
        assert _legend(ax) == ["magnitude", "snip", "static", f"dense ({100 * dense:.1f})"]
        for criterion in CRITERIA:
            line = _line(ax, criterion)
            assert list(line.get_xdata()) == list(DENSITIES) and line.get_color() == COLOURS[criterion]
            assert list(line.get_ydata()) == pytest.approx(
                [_mean([_accuracy("dst", criterion, growth, d, period, s) for s in SEEDS]) for d in DENSITIES])
        static = _line(ax, "static")  # the same in every panel: static never reads growth or the period
        assert list(static.get_xdata()) == list(DENSITIES) and static.get_linestyle() == "-."
        assert list(static.get_ydata()) == pytest.approx(
            [_mean([_accuracy("static", None, None, d, None, s) for s in SEEDS]) for d in DENSITIES])
        reference = _line(ax, f"dense ({100 * dense:.1f})")
        assert reference.get_linestyle() == "--" and list(reference.get_ydata()) == pytest.approx([dense, dense])
        assert ax.get_xscale() == "log" and ax.get_xlabel().startswith("density")


def test_update_period_figure_has_both_baselines_as_references(draw):
    fig = draw("update-period")
    panels = _panels(fig)
    assert set(panels) == {f"density = {d:g}, growth = {g}" for d in DENSITIES for g in GROWTHS}
    for density, growth in itertools.product(DENSITIES, GROWTHS):
        ax = panels[f"density = {density:g}, growth = {growth}"]
        static = _mean([_accuracy("static", None, None, density, None, s) for s in SEEDS])
        dense = _mean([_accuracy("dense", None, None, 1.0, None, s) for s in SEEDS])
        assert _legend(ax) == ["magnitude", "snip", f"static ({100 * static:.1f})", f"dense ({100 * dense:.1f})"]
        assert list(_line(ax, f"static ({100 * static:.1f})").get_ydata()) == pytest.approx([static, static])
        assert _line(ax, f"static ({100 * static:.1f})").get_linestyle() == ":"
        snip = _line(ax, "snip")
        assert list(snip.get_xdata()) == list(PERIODS)
        assert list(snip.get_ydata()) == pytest.approx(
            [_mean([_accuracy("dst", "snip", growth, density, p, s) for s in SEEDS]) for p in PERIODS])


def test_curves_a_line_per_criterion_and_baseline_per_panel(draw):
    fig = draw("curves")
    assert fig.get_suptitle() == "test_accuracy per epoch (mean ± std over seeds)"
    panels = _panels(fig)  # every varying axis but the seed: density x growth x update period
    assert len(panels) == len(DENSITIES) * len(GROWTHS) * len(PERIODS)
    ax = panels["density = 0.2, growth = random, update_period = 50"]
    assert _legend(ax) == ["dense", "magnitude", "snip", "static"]
    assert [_line(ax, b).get_linestyle() for b in ("static", "dense")] == ["--", "--"]
    magnitude = _line(ax, "magnitude")
    final = _mean([_accuracy("dst", "magnitude", "random", 0.2, 50, s) for s in SEEDS])
    assert list(magnitude.get_xdata()) == [1, 2, 3]
    assert list(magnitude.get_ydata()) == pytest.approx([final - 0.2, final - 0.1, final])
    assert list(_line(ax, "static").get_ydata())[-1] == pytest.approx(
        _mean([_accuracy("static", None, None, 0.2, None, s) for s in SEEDS]))


@pytest.mark.parametrize("metric,drawn", [("final_train_loss", "train_loss"), ("final_itop_rate", "itop_rate"),
                                          ("test_accuracy_at_best_val", "test_accuracy"),
                                          ("n_updates", "n_updates"), ("epochs_done", "test_accuracy")])
def test_curves_follow_the_per_epoch_metric_a_trials_column_ends(metric, drawn):
    assert per_epoch_metric(metric) == drawn


def test_jaccard_four_epochs_spread_over_those_recorded(draw):
    fig = draw("jaccard")
    images = [ax for ax in fig.axes if ax.images]
    assert [ax.get_title() for ax in images] == ["epoch 1", "epoch 2", "epoch 4", "epoch 5"]
    for ax, epoch in zip(images, (1, 2, 4, 5)):
        assert ax.images[0].get_array().tolist() == [[1.0, epoch / 10], [epoch / 10, 1.0]]
        assert [t.get_text() for t in ax.get_xticklabels()] == list(CRITERIA)
        assert sorted(t.get_text() for t in ax.texts) == sorted(["1.00", "1.00", f"{epoch / 10:.2f}",
                                                                  f"{epoch / 10:.2f}"])


def test_search_a_panel_per_varying_parameter_a_point_per_trial_with_a_value(draw):
    fig = draw("search")
    axes = [ax for ax in fig.axes if ax.get_visible()]
    assert [ax.get_xlabel() for ax in axes] == ["density", "criterion", "growth", "update_period"]
    completed, dst = len(_trials()), len(CRITERIA) * len(GROWTHS) * len(DENSITIES) * len(PERIODS) * len(SEEDS)
    for ax, points in zip(axes, (completed, dst, dst, dst)):  # baselines have no criterion, growth, period
        (drawn,) = ax.collections
        assert len(drawn.get_offsets()) == points and ax.get_ylabel() == "final_test_accuracy"
    assert [t.get_text() for t in axes[1].get_xticklabels()] == list(CRITERIA)  # a categorical axis


def test_where_narrows_what_is_drawn(draw):
    fig = draw("density", where="criterion == 'snip' or kind != 'dst'")
    for ax in _panels(fig).values():
        assert [ln.get_label() for ln in ax.get_lines()][:2] == ["snip", "static"]


def test_plot_saves_that_figure(store, tmp_path):
    out = plot(Studies([store]), "density", tmp_path / "density.png")
    header = out.read_bytes()[:24]
    fig = figure(Studies([store]), "density")
    width, height = (round(v * 110) for v in fig.get_size_inches())
    plt.close(fig)
    assert header[:8] == b"\x89PNG\r\n\x1a\n"
    assert (int.from_bytes(header[16:20], "big"), int.from_bytes(header[20:24], "big")) == (width, height)
