import pytest
import torch
from torch import nn

from dst_core.masks import MaskSet, n_active, random_mask, select_top, sparsifiable, top_indices


@pytest.mark.parametrize("size,density,expected", [
    (10, 0.1, 1), (10, 0.25, 3), (10, 0.35, 4), (7, 0.5, 4), (1000, 0.001, 1), (5, 1.0, 5), (3, 0.01, 0),
])
def test_n_active_rounds_half_up(size, density, expected):
    assert n_active(size, density) == expected


def test_select_top_picks_largest_and_breaks_ties_to_lower_index():
    scores = torch.tensor([0.5, 0.9, 0.1, 0.9, 0.9, 0.3])
    cand = torch.tensor([True, True, True, True, False, True])
    # candidates 0.5, 0.9(1), 0.1, 0.9(3), 0.3; top 2 are 1 and 3; position 4 is not a candidate
    assert select_top(scores, cand, 2).tolist() == [False, True, False, True, False, False]
    # three-way tie at 0.9 among all positions: the lower indices 1, 3 win
    assert select_top(scores, torch.ones(6, dtype=torch.bool), 2).nonzero().flatten().tolist() == [1, 3]
    # smallest: 0.1 (2) then 0.3 (5)
    assert select_top(scores, cand, 2, largest=False).nonzero().flatten().tolist() == [2, 5]


def test_select_top_edge_counts():
    scores = torch.arange(6.0).view(2, 3)
    cand = torch.tensor([[True, False, True], [False, True, False]])
    assert not select_top(scores, cand, 0).any()
    assert torch.equal(select_top(scores, cand, 3), cand)
    with pytest.raises(ValueError):
        select_top(scores, cand, 4)


def test_select_top_nan_scores_are_never_preferred():
    scores = torch.tensor([float("nan"), 1.0, 2.0])
    assert select_top(scores, torch.ones(3, dtype=torch.bool), 2).tolist() == [False, True, True]


@pytest.mark.parametrize("k", [0, 1, 17, 50])
def test_random_mask_exact_count_and_seeded(k):
    g1, g2 = torch.Generator().manual_seed(3), torch.Generator().manual_seed(3)
    m1, m2 = random_mask((5, 10), k, g1), random_mask((5, 10), k, g2)
    assert m1.dtype == torch.bool and int(m1.sum()) == k
    assert torch.equal(m1, m2)


def test_sparsifiable_takes_linear_and_conv_weights_only():
    model = nn.Sequential(nn.Conv2d(3, 4, 3), nn.BatchNorm2d(4), nn.Flatten(), nn.Linear(4, 2))
    assert list(sparsifiable(model)) == ["0.weight", "3.weight"]


def test_maskset_apply_density_itop_and_state_round_trip(tiny_mlp):
    params = sparsifiable(tiny_mlp)
    counts = {"0.weight": 50, "2.weight": 30, "4.weight": 6}
    masks = MaskSet.from_counts(params, counts, torch.Generator().manual_seed(0))
    assert masks.n_active() == counts
    masks.apply_(params)
    for name, p in params.items():
        assert torch.all(p[~masks[name]] == 0)
        assert int((p != 0).sum()) <= counts[name]
    total = sum(p.numel() for p in params.values())
    assert masks.density() == pytest.approx(86 / total)
    assert masks.itop_rate() == pytest.approx(86 / total)
    # a new mask disjoint from the old one: ITOP counts the union
    old = masks["4.weight"]
    new = torch.zeros_like(old)
    new.view(-1)[(~old).view(-1).nonzero()[:6, 0]] = True
    masks.set("4.weight", new)
    assert masks.itop_rate() == pytest.approx(92 / total)

    copy = MaskSet({n: torch.ones_like(m) for n, m in masks.items()})
    copy.load_state_dict(masks.state_dict())
    assert all(torch.equal(copy[n], masks[n]) for n in masks)
    assert copy.itop_rate() == masks.itop_rate()


def test_maskset_rejects_non_bool_and_mismatched_state(tiny_mlp):
    with pytest.raises(TypeError, match="torch.bool"):
        MaskSet({"w": torch.ones(3)})
    masks = MaskSet({"a": torch.ones(3, dtype=torch.bool)})
    with pytest.raises(ValueError, match="shape"):
        masks.load_state_dict({"masks": {"a": torch.ones(4, dtype=torch.bool)}})


def _reference_top(values, k, largest=True):
    """Stable sort: among equal values the lower index comes first."""
    v = torch.nan_to_num(values if largest else -values, nan=-float("inf"))
    order = torch.sort(-v, stable=True).indices  # descending, ties by index
    return sorted(order[:k].tolist())


@pytest.mark.parametrize("n,k,kind", [
    (200_000, 1_000, "normal"), (200_000, 40_000, "normal"), (300_000, 5_000, "ties"),
    (300_000, 7_000, "sorted"), (300_000, 7_000, "reversed"), (100_000, 60_000, "normal"), (70_000, 3, "ties"),
    (300_000, 5_000, "mostly_zero"),  # k beyond the non-zeros: the k-th largest is a tie of 290k zeros
])
@pytest.mark.parametrize("largest", [True, False])
def test_top_indices_fast_path_equals_full_sort(n, k, kind, largest):
    g = torch.Generator().manual_seed(n + k)
    values = {
        "normal": lambda: torch.randn(n, generator=g),
        "ties": lambda: torch.randint(0, 50, (n,), generator=g).float(),  # thousands of ties per value
        "sorted": lambda: torch.arange(n).float(),  # a strided sample sees a biased picture
        "reversed": lambda: torch.arange(n, 0, -1).float(),
        "mostly_zero": lambda: torch.zeros(n).index_fill_(0, torch.randperm(n, generator=g)[:1000], 1.0)
        * torch.rand(n, generator=g),
    }[kind]()
    got = top_indices(values, k, largest=largest)
    assert got.numel() == k and got.unique().numel() == k
    assert sorted(got.tolist()) == _reference_top(values, k, largest)


def test_select_top_never_picks_non_candidates_even_with_inf_scores():
    scores = torch.tensor([float("-inf"), float("nan"), 5.0, float("-inf")])
    cand = torch.tensor([True, True, False, True])
    assert select_top(scores, cand, 3).tolist() == [True, True, False, True]
    assert select_top(scores, cand, 1, largest=False).tolist() == [True, False, False, False]


def test_pack_matches_bitwise_reference():
    from dst_core.masks import _pack, _popcount
    for n in (1, 8, 13, 64, 1001):
        bits = torch.rand(n, generator=torch.Generator().manual_seed(n)) < 0.5
        padded = torch.cat([bits, bits.new_zeros((-n) % 8)]).view(-1, 8)
        expected = [sum(int(b) << i for i, b in enumerate(row)) for row in padded.tolist()]
        assert _pack(bits).tolist() == expected
        assert _popcount(_pack(bits)) == int(bits.sum())
