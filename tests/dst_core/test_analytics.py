import pytest
import torch

from dst_core.analytics import jaccard, removal_overlap


def test_jaccard_hand_computed():
    a = torch.tensor([1, 1, 0, 0, 1], dtype=torch.bool)
    b = torch.tensor([0, 1, 1, 0, 1], dtype=torch.bool)
    assert jaccard(a, b) == pytest.approx(2 / 4)
    assert jaccard({"x": a, "y": a}, {"x": b, "y": a}) == pytest.approx((2 + 3) / (4 + 3))
    empty = torch.zeros(3, dtype=torch.bool)
    assert jaccard(empty, empty) == 1.0


def test_removal_overlap_of_criteria_from_one_state():
    w = {"l": torch.tensor([0.5, -0.1, 0.3, -0.7, 0.05, -0.2, 0.9, 0.0])}
    g = {"l": torch.tensor([0.1, 0.9, -0.2, 0.05, 0.4, -0.3, 1.0, 0.6])}
    m = {"l": torch.tensor([1, 1, 1, 1, 1, 1, 0, 1], dtype=torch.bool)}
    # p = 0.4 of 7 active -> k = 3; magnitude removes {1,4,7}, snip {3,4,7}, sensitivity {0,2,3}
    sim = removal_overlap(["magnitude", "SNIP", "sensitivity"], w, g, m, 0.4)
    assert sim[("magnitude", "magnitude")] == 1.0
    assert sim[("magnitude", "snip")] == pytest.approx(2 / 4)
    assert sim[("snip", "sensitivity")] == pytest.approx(1 / 5)
    assert sim[("magnitude", "sensitivity")] == 0.0
    assert sim[("snip", "magnitude")] == sim[("magnitude", "snip")]
