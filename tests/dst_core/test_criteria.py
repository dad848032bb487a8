import pytest
import torch

from dst_core.criteria import CRITERIA, select_prune
from dst_core.errors import ConfigError, UnknownNameError
from dst_core.growth import GROWTH, select_grow

#            0     1     2     3     4      5     6    7
W = torch.tensor([0.5, -0.1, 0.3, -0.7, 0.05, -0.2, 0.9, 0.0])
G = torch.tensor([0.1, 0.9, -0.2, 0.05, 0.4, -0.3, 1.0, 0.6])
MASK = torch.tensor([1, 1, 1, 1, 1, 1, 0, 1], dtype=torch.bool)  # position 6 is inactive


def removed(name, k=3, w=W, g=G, mask=MASK, **params):
    return sorted(select_prune(name, w, g, mask, k, **params).nonzero().flatten().tolist())


# Hand-computed over the active positions 0,1,2,3,4,5,7:
# magnitude |w|:            .5  .1  .3  .7  .05  .2  0     -> lowest 3: 7, 4, 1
# snip |wg|:                .05 .09 .06 .035 .02 .06 0     -> 7, 4, 3
# mest |w|+|g|:             .6  1.0 .5  .75 .45  .5  .6    -> 4, then 2 and 5 (tied at .5)
# mest gamma=.5:            .55 .55 .4  .725 .25 .35 .3    -> 4, 7, 5
# sensitivity |g|/|w|:      .2  9   .67 .071 8   1.5 huge  -> 3, 0, 2
# reciprocal |w|/|g|:       5   .11 1.5 14  .125 .67 0     -> 7, 1, 4
@pytest.mark.parametrize("name,params,expected", [
    ("magnitude", {}, [1, 4, 7]),
    ("snip", {}, [3, 4, 7]),
    ("mest", {}, [2, 4, 5]),
    ("mest", {"gamma": 0.5}, [4, 5, 7]),
    ("sensitivity", {}, [0, 2, 3]),
    ("reciprocal_sensitivity", {}, [1, 4, 7]),
])
def test_removal_sets_match_hand_computed(name, params, expected):
    assert removed(name, **params) == expected


def test_paper_spellings_resolve():
    assert removed("ReciprocalSensitivity") == removed("reciprocal_sensitivity")
    assert removed("SNIP") == removed("snip")
    assert removed("SET") == removed("set")


def test_set_splits_by_sign():
    w = torch.tensor([0.01, 0.02, 0.03, -0.5, -0.6, 0.04])
    every = torch.ones(6, dtype=torch.bool)
    # k=2: one smallest positive (0) and the negative closest to zero (3); magnitude would take 0, 1
    assert removed("set", 2, w, None, every) == [0, 3]
    assert removed("magnitude", 2, w, None, every) == [0, 1]
    # odd k=3: ceil(3/2)=2 positives (0, 1) and floor(3/2)=1 negative (3)
    assert removed("set", 3, w, None, every) == [0, 1, 3]


def test_set_takes_the_rest_from_the_other_sign_when_one_runs_short():
    w = torch.tensor([0.1, 0.2, 0.3, 0.4, -0.5])
    every = torch.ones(5, dtype=torch.bool)
    # k=4 wants 2 negatives but there is one: 3 positives (0, 1, 2) + the negative (4)
    assert removed("set", 4, w, None, every) == [0, 1, 2, 4]
    w = torch.tensor([-0.1, -0.2, -0.3, 0.4])
    assert removed("set", 3, w, None, torch.ones(4, dtype=torch.bool)) == [0, 1, 3]


def test_set_counts_active_zeros_as_positive_and_ignores_inactive():
    w = torch.tensor([0.0, 0.3, -0.2, 0.001, -0.01])
    mask = torch.tensor([True, True, True, False, True])
    assert removed("set", 2, w, None, mask) == [0, 4]


def test_ties_break_towards_lower_index():
    w = torch.tensor([0.2, 0.1, 0.1, 0.1, 0.3])
    assert removed("magnitude", 2, w, None, torch.ones(5, dtype=torch.bool)) == [1, 2]


def test_random_is_uniform_over_active_and_seeded():
    picks = [removed("random", 3, generator=torch.Generator().manual_seed(s)) for s in range(200)]
    assert all(6 not in p and len(p) == 3 for p in picks)
    counts = torch.zeros(8)
    for p in picks:
        counts[p] += 1
    # each of the 7 active positions is picked 3/7 of the time: 85.7 of 200 on average
    assert counts[6] == 0 and counts[MASK].min() > 55 and counts[MASK].max() < 120
    g1, g2 = torch.Generator().manual_seed(5), torch.Generator().manual_seed(5)
    assert removed("random", generator=g1) == removed("random", generator=g2)


def test_set_paper_code_hand_computed():
    #                  0     1    2     3    4    5     6      7    8     9
    w = torch.tensor([0.3, -0.5, 0.1, -0.2, 0.0, 0.4, -0.9, -0.05, 0.2, -0.3])
    every = torch.ones(10, dtype=torch.bool)
    # k=4, h=2: the 2 smallest positives (2, 8); of the negatives only the h-1 = 1 most negative (6)
    # stays, so 1, 3, 7, 9 go; the active zero (4) goes too: 7 of 10 removed, not 4
    assert removed("set_paper_code", 4, w, None, every) == [1, 2, 3, 4, 7, 8, 9]
    # k=1, h=1: the smallest positive (2) and every negative and zero
    assert removed("set_paper_code", 1, w, None, every) == [1, 2, 3, 4, 6, 7, 9]
    assert removed("set_paper_code", 0, w, None, every) == []
    # inactive positions never compete: with 6 masked, the most negative active one (1) is kept
    mask = every.clone()
    mask[6] = False
    assert removed("set_paper_code", 4, w, None, mask) == [2, 3, 4, 7, 8, 9]


def test_set_paper_code_is_the_paper_codes_threshold_rule():
    # the paper's magnitude_and_negativity_prune keeps w > t_pos (t_pos: the h-th smallest positive)
    # and w < t_neg (t_neg: the h-th most negative); on tie-free data the removals must agree
    torch.manual_seed(3)
    w = torch.randn(400)
    for k in (1, 2, 7, 40, 199):
        h = (k + 1) // 2
        t_pos = w[w > 0].sort().values[h - 1]
        t_neg = w[w < 0].sort().values[h - 1]
        keep = (w > t_pos) | (w < t_neg)
        expected = (~keep).nonzero().flatten().tolist()
        assert removed("set_paper_code", k, w, None, torch.ones(400, dtype=torch.bool)) == expected
        assert len(expected) > 400 // 2 - h  # about half of all weights, whatever k is


@pytest.mark.parametrize("name", CRITERIA.names())
def test_contract_exact_count_only_active_inputs_untouched(name):
    torch.manual_seed(1)
    w, g = torch.randn(20, 30), torch.randn(20, 30)
    mask = torch.rand(20, 30) < 0.4
    w_copy, g_copy, m_copy = w.clone(), g.clone(), mask.clone()
    out = select_prune(name, w, g, mask, 37, torch.Generator().manual_seed(0))
    assert out.dtype == torch.bool and out.shape == w.shape
    exact = CRITERIA.get(name).meta.get("exact_count", True)
    assert (int(out.sum()) == 37) == exact and not (out & ~mask).any()
    assert torch.equal(w, w_copy) and torch.equal(g, g_copy) and torch.equal(mask, m_copy)
    again = select_prune(name, w, g, mask, 37, torch.Generator().manual_seed(0))
    assert torch.equal(out, again)


def test_gradient_criteria_refuse_missing_gradient():
    with pytest.raises(ValueError, match="needs the gradient"):
        select_prune("snip", W, None, MASK, 2)


def test_unknown_criterion_and_parameter():
    with pytest.raises(UnknownNameError, match="did you mean 'magnitude'.*choices: magnitude, mest"):
        select_prune("magnitdue", W, G, MASK, 2)
    from dst_core.criteria import check_params
    with pytest.raises(ConfigError, match="no parameter 'gama'; did you mean 'gamma'"):
        check_params("mest", {"gama": 1.0})
    with pytest.raises(ConfigError, match="accepted: none"):
        check_params("magnitude", {"gamma": 1.0})


def test_gradient_growth_takes_largest_abs_gradient_among_inactive():
    mask = torch.tensor([1, 0, 0, 1, 0, 0], dtype=torch.bool)
    g = torch.tensor([9.0, 0.5, -0.8, 9.0, 0.1, 0.7])
    grown = select_grow("gradient", torch.zeros(6), g, mask, 2)
    assert grown.nonzero().flatten().tolist() == [2, 5]


@pytest.mark.parametrize("name", GROWTH.names())
def test_growth_contract(name):
    torch.manual_seed(2)
    w, g, mask = torch.randn(50), torch.randn(50), torch.rand(50) < 0.3
    out = select_grow(name, w, g, mask, 10, torch.Generator().manual_seed(0))
    assert int(out.sum()) == 10 and not (out & mask).any()


@pytest.mark.parametrize("n,density,k", [(100_000, 0.1, 4_000), (100_000, 0.5, 30_000), (1_000, 0.9, 90)])
def test_random_growth_is_exact_distinct_inactive_and_seeded(n, density, k):
    mask = torch.rand(n, generator=torch.Generator().manual_seed(0)) < density
    a = select_grow("random", torch.zeros(n), None, mask, k, torch.Generator().manual_seed(1))
    b = select_grow("random", torch.zeros(n), None, mask, k, torch.Generator().manual_seed(1))
    assert int(a.sum()) == k and not (a & mask).any() and torch.equal(a, b)


def test_random_growth_is_uniform_over_inactive():
    mask = torch.zeros(40, dtype=torch.bool)
    mask[::4] = True  # 30 inactive positions, each grown with probability 3/30
    hits = torch.zeros(40)
    for s in range(3000):
        hits += select_grow("random", torch.zeros(40), None, mask, 3, torch.Generator().manual_seed(s))
    assert hits[mask].sum() == 0
    # expected 300 per inactive position; binomial sd ~16.4, so +-70 is over 4 sd
    assert (hits[~mask] - 300).abs().max() < 70


BROKEN = {  # what a user's criterion might return, and the one line that stops the trial
    "wrong_shape": (lambda w, g, mask, gen=None: w.abs()[:-1],
                    r"criterion 'broken' returned scores of shape \(14,\) for 15 weights; expected a tensor of "
                    r"their shape \(15,\), one score per weight \(layer 0.weight, step 7\)"),
    "zero_d": (lambda w, g, mask, gen=None: w.abs().sum(),
               r"returned scores of shape \(\) for 15 weights"),
    "not_a_tensor": (lambda w, g, mask, gen=None: w.abs().tolist(), r"returned scores of list for 15 weights"),
    "nan": (lambda w, g, mask, gen=None: torch.where(w > 0, w, torch.nan),
            r"criterion 'broken' returned \d+ NaN or infinite scores of 15 that decide, from finite weights and "
            r"gradients \(layer 0.weight, step 7\)"),
    "inf": (lambda w, g, mask, gen=None: w.abs() / 0, r"returned \d+ NaN or infinite scores"),
}


@pytest.fixture
def layers():
    """Two layers of 25 and 12 weights, 15 and 7 active."""
    torch.manual_seed(0)
    weights = {"0.weight": torch.randn(5, 5), "2.weight": torch.randn(3, 4)}
    masks = {"0.weight": torch.zeros(25, dtype=torch.bool), "2.weight": torch.zeros(12, dtype=torch.bool)}
    masks["0.weight"][:15], masks["2.weight"][:7] = True, True
    masks = {n: m.view_as(weights[n]) for n, m in masks.items()}
    return weights, {n: torch.randn_like(w) for n, w in weights.items()}, masks


@pytest.mark.parametrize("case", BROKEN)
def test_a_criterion_that_breaks_its_contract_stops_with_one_line_naming_it_the_layer_and_the_step(
        case, layers, forget_plugins):
    from dst_core.errors import ContractError
    from dst_core.topology import plan_update

    score, message = BROKEN[case]
    CRITERIA.register("broken", needs_grad=False, paper_order="after_step", description="a test's")(score)
    with pytest.raises(ContractError, match=message):
        plan_update(*layers, 0.3, criterion="broken", growth="random", step=7)


def test_scores_on_diverged_weights_say_the_training_diverged_and_global_scope_says_so(layers):
    from dst_core.errors import Diverged
    from dst_core.topology import plan_update

    weights, grads, masks = layers
    weights["2.weight"][0, 0] = torch.nan
    with pytest.raises(Diverged, match=r"training diverged: the weights that criterion 'magnitude' scores are not "
                                       r"finite; .*\(all 2 layers at once \(global scope\), step 3\)"):
        plan_update(weights, grads, masks, 0.3, criterion="magnitude", growth="random", scope="global", step=3)


def test_a_growth_rule_is_checked_where_its_scores_decide(layers, forget_plugins):
    from dst_core.errors import ContractError
    from dst_core.topology import plan_update

    weights, grads, masks = layers
    # NaN on active positions decides nothing (they cannot grow): allowed
    GROWTH.register("active_nan", needs_grad=False, description="a test's")(
        lambda w, g, mask, gen=None: torch.where(mask, torch.nan, w.abs()))
    plan_update(weights, grads, masks, 0.3, criterion="magnitude", growth="active_nan")
    GROWTH.register("flat", needs_grad=False, description="a test's")(lambda w, g, mask, gen=None: w.abs().flatten())
    with pytest.raises(ContractError, match=r"growth 'flat' returned scores of shape \(25,\) for 25 weights; "
                                            r"expected a tensor of their shape \(5, 5\).*\(layer 0.weight, step 0\)"):
        plan_update(weights, grads, masks, 0.3, criterion="magnitude", growth="flat")


@pytest.mark.parametrize("select,message", [
    (lambda w, g, k, gen=None: torch.arange(k + 1), r"selected a torch.int64 tensor of shape \(\d+,\); expected "
                                                      r"exactly \d+ distinct integer indices into its 15 active"),
    (lambda w, g, k, gen=None: torch.zeros(k, dtype=torch.long), r"selected a torch.int64 tensor"),
    (lambda w, g, k, gen=None: w[:k], r"selected a torch.float32 tensor"),
])
def test_a_selecting_criterion_must_select_k_distinct_active_positions(select, message, layers, forget_plugins):
    from dst_core.errors import ContractError
    from dst_core.topology import plan_update

    CRITERIA.register("picks", needs_grad=False, paper_order="after_step", selects=True, description="t")(select)
    with pytest.raises(ContractError, match=message):
        plan_update(*layers, 0.3, criterion="picks", growth="random")
