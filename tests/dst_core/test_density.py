import math

import pytest

from dst_core.density import DENSITY, layer_counts, layer_densities
from dst_core.errors import ConfigError, UnknownNameError
from dst_core.masks import n_active

MLP = {"fc1": (1024, 3072), "fc2": (512, 1024), "fc3": (10, 512)}
CNN = {"conv1": (16, 3, 3, 3), "conv2": (32, 16, 3, 3), "fc": (10, 2048)}


def _total(shapes, densities):
    return sum(densities[n] * math.prod(s) for n, s in shapes.items())


@pytest.mark.parametrize("method", DENSITY.names())
@pytest.mark.parametrize("shapes", [MLP, CNN])
@pytest.mark.parametrize("density", [0.01, 0.05, 0.1, 0.3, 0.8, 1.0])
def test_total_density_is_exact_and_counts_within_one_per_layer(method, shapes, density):
    d = layer_densities(shapes, density, method)
    assert all(0 <= v <= 1 for v in d.values())
    total = sum(math.prod(s) for s in shapes.values())
    assert _total(shapes, d) == pytest.approx(density * total, rel=1e-9)
    counts = layer_counts(shapes, density, method)
    assert abs(sum(counts.values()) - density * total) <= len(shapes)
    assert counts == {n: n_active(math.prod(s), d[n]) for n, s in shapes.items()}


def test_uniform():
    assert layer_densities(MLP, 0.2, "uniform") == {n: 0.2 for n in MLP}


def test_er_ratio_matches_formula():
    d = layer_densities(MLP, 0.05, "er")
    raw = {n: (s[0] + s[1]) / (s[0] * s[1]) for n, s in MLP.items()}
    assert d["fc1"] / d["fc2"] == pytest.approx(raw["fc1"] / raw["fc2"])


def test_erk_caps_dense_layers_and_resolves_epsilon():
    # fc3 (10x512) has the largest raw ratio; at density 0.3 it would exceed 1 and is made dense
    d = layer_densities(MLP, 0.3, "erk")
    assert d["fc3"] == 1.0
    raw = {n: sum(s) / math.prod(s) for n, s in MLP.items()}
    assert d["fc1"] / d["fc2"] == pytest.approx(raw["fc1"] / raw["fc2"])
    # kernel dimensions count in ERK: conv1's ratio includes the 3x3 kernel
    dc = layer_densities(CNN, 0.1, "erk")
    assert dc["conv1"] == 1.0 or dc["conv1"] / dc["conv2"] == pytest.approx(
        (sum(CNN["conv1"]) / math.prod(CNN["conv1"])) / (sum(CNN["conv2"]) / math.prod(CNN["conv2"])))


def test_erk_power_scale_flattens_distribution():
    d1 = layer_densities(MLP, 0.05, "erk", power=1.0)
    d0 = layer_densities(MLP, 0.05, "erk", power=0.0)  # power 0: every raw ratio is 1 -> uniform
    assert d0 == pytest.approx({n: 0.05 for n in MLP})
    assert d1["fc1"] < d0["fc1"]


@pytest.mark.parametrize("bad", [0, 0.0, 1.5, -0.1, "0.1", None, True])
def test_bad_density(bad):
    with pytest.raises(ConfigError, match=r"expected a float in \(0, 1\]"):
        layer_densities(MLP, bad, "erk")


def test_unknown_method_lists_choices():
    with pytest.raises(UnknownNameError, match="did you mean 'erk'.*choices: er, erk, uniform"):
        layer_densities(MLP, 0.1, "erkk")


def test_paper_spelling_is_accepted():
    assert layer_densities(MLP, 0.1, "ERK") == layer_densities(MLP, 0.1, "erk")
