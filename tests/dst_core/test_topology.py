import itertools
import math

import pytest
import torch
from torch import nn

from dst_core.criteria import CRITERIA
from dst_core.density import layer_counts
from dst_core.growth import GROWTH
from dst_core.masks import MaskSet, sparsifiable
from dst_core.schedules import UpdateSchedule, drop_schedule
from dst_core.topology import TopologyUpdater, drop_and_grow, n_drop


@pytest.mark.parametrize("active,p,expected", [(10, 0.3, 3), (10, 0.31, 4), (7, 0.5, 4), (100, 0.005, 1),
                                               (0, 0.5, 0), (5, 1.0, 5), (8, 0.0, 0)])
def test_n_drop_is_ceil(active, p, expected):
    assert n_drop(active, p) == expected


def test_drop_and_grow_hand_computed():
    # one layer, 8 weights; active 0,1,2,3; p = 0.5 -> remove ceil(0.5 * 4) = 2 with smallest |w|
    w = {"w": torch.tensor([0.9, -0.05, 0.2, 0.01, 0.0, 0.0, 0.0, 0.0])}
    g = {"w": torch.tensor([0.0, 5.0, 0.0, 0.0, 0.1, -0.7, 0.3, 0.2])}
    m = {"w": torch.tensor([1, 1, 1, 1, 0, 0, 0, 0], dtype=torch.bool)}
    new, removed = drop_and_grow(w, g, m, 0.5, criterion="magnitude", growth="gradient")
    assert removed["w"].nonzero().flatten().tolist() == [1, 3]
    # regrow 2 by largest |g| among inactive {1, 3, 4, 5, 6, 7}: |g| 5.0 (1) and 0.7 (5)
    assert new["w"].nonzero().flatten().tolist() == [0, 1, 2, 5]
    assert m["w"].tolist() == [1, 1, 1, 1, 0, 0, 0, 0]  # input untouched


def test_global_scope_ranks_across_layers():
    w = {"a": torch.tensor([0.1, 0.2, 0.3, 0.4]), "b": torch.tensor([0.01, 0.02, 0.9, 0.8])}
    m = {n: torch.ones(4, dtype=torch.bool) for n in w}
    for n in w:
        m[n][3] = False  # 3 active per layer, 6 in all
    new, removed = drop_and_grow(w, {}, m, 0.5, criterion="magnitude", growth="random", scope="global")
    # remove ceil(0.5 * 6) = 3 globally: 0.01, 0.02 (b) and 0.1 (a)
    assert removed["a"].tolist() == [True, False, False, False]
    assert removed["b"].tolist() == [True, True, False, False]
    assert {n: int(x.sum()) for n, x in new.items()} == {"a": 3, "b": 3}
    _, local = drop_and_grow(w, {}, m, 0.5, criterion="magnitude", growth="random", scope="local")
    assert {n: int(x.sum()) for n, x in local.items()} == {"a": 2, "b": 2}


def _setup(criterion, growth, scope, density=0.3, p=0.4, grown_momentum="keep", init="erk"):
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(20, 30), nn.ReLU(), nn.Linear(30, 30), nn.ReLU(), nn.Linear(30, 5))
    params = sparsifiable(model)
    counts = layer_counts({n: tuple(w.shape) for n, w in params.items()}, density, init)
    masks = MaskSet.from_counts(params, counts, torch.Generator().manual_seed(0))
    masks.apply_(params)
    opt = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9, nesterov=True, weight_decay=5e-4)
    updater = TopologyUpdater(params, masks, opt, criterion, growth, drop_schedule("constant", p, 1000),
                              UpdateSchedule(5, 1000), scope, seed=3, grown_momentum=grown_momentum)
    x, y = torch.randn(64, 20), torch.randint(0, 5, (64,))

    def step(t):
        opt.zero_grad()
        nn.functional.cross_entropy(model(x), y).backward()
        stats = updater.maybe_update(t)
        opt.step()
        masks.apply_(params)
        return stats
    return model, params, masks, opt, updater, counts, step


def _update_by_hand(model, masks, opt, updater, step):
    """Four ordinary steps, then the state just before the update at step 5, and its stats."""
    for t in range(1, 5):
        assert step(t) is None
    opt.zero_grad()
    x, y = torch.randn(64, 20), torch.randint(0, 5, (64,))
    nn.functional.cross_entropy(model(x), y).backward()
    params = updater.params
    before = {n: (m.clone(), params[n].detach().clone(), opt.state[params[n]]["momentum_buffer"].clone())
              for n, m in masks.items()}
    return before, updater.maybe_update(5)


@pytest.mark.parametrize("criterion,growth,scope,grown_momentum", list(itertools.product(
    CRITERIA.names(), GROWTH.names(), ["local", "global"], ["keep", "zero"])))
def test_update_keeps_counts_and_changes_only_dropped_weights(criterion, growth, scope, grown_momentum):
    model, params, masks, opt, updater, counts, step = _setup(criterion, growth, scope, grown_momentum=grown_momentum)
    before, stats = _update_by_hand(model, masks, opt, updater, step)
    assert stats is not None and stats.step == 5
    assert masks.n_active() == counts  # density unchanged, exactly
    active_before = {n: int(m.sum()) for n, (m, _, _) in before.items()}
    if CRITERIA.get(criterion).meta.get("exact_count", True):
        if scope == "local":
            assert stats.n_removed == {n: math.ceil(0.4 * a) for n, a in active_before.items()}
        else:
            assert stats.total_removed == math.ceil(0.4 * sum(active_before.values()))
    for name, w in params.items():
        old, w0, buf0 = before[name]
        new, buf = masks[name], opt.state[w]["momentum_buffer"]
        dropped, grown, kept = old & ~new, new & ~old, old & new  # kept includes removed-and-regrown
        assert int(dropped.sum()) == int(grown.sum()) <= stats.n_removed[name]
        assert torch.all(w[dropped] == 0) and torch.all(w[grown] == 0)
        assert torch.equal(w[kept], w0[kept]) and torch.equal(buf[kept], buf0[kept])
        assert torch.equal(buf[dropped], buf0[dropped])  # a removed weight's state is left alone
        expected_grown_buf = buf0[grown] if grown_momentum == "keep" else torch.zeros_like(buf0[grown])
        assert torch.equal(buf[grown], expected_grown_buf)
    opt.step()
    masks.apply_(params)
    for name, w in params.items():
        assert torch.all(w[~masks[name]] == 0)
    assert masks.itop_rate() > masks.density()


@pytest.mark.parametrize("grown_momentum", ["keep", "zero"])
def test_update_of_a_dense_layer_changes_nothing(grown_momentum):
    # at density 0.6 ERK makes the 5x30 output layer dense: the update removes ceil(0.4 * 150) = 60
    # of its weights and, all positions being eligible, regrows exactly those 60 (the paper's code
    # and RigL): its weights and optimizer state stay bit-identical
    model, params, masks, opt, updater, counts, step = _setup("magnitude", "gradient", "local", density=0.6,
                                                              grown_momentum=grown_momentum)
    name = "4.weight"
    assert counts[name] == 150
    before, stats = _update_by_hand(model, masks, opt, updater, step)
    assert stats.n_removed[name] == 60
    old, w0, buf0 = before[name]
    assert masks[name].all()
    assert torch.equal(params[name].detach(), w0) and torch.equal(opt.state[params[name]]["momentum_buffer"], buf0)


@pytest.mark.parametrize("grown_momentum", ["keep", "zero"])
def test_removed_and_regrown_keep_value_and_state_hand_built(grown_momentum):
    w = nn.Parameter(torch.tensor([0.9, -0.05, 0.2, 0.01, 0.0, 0.0, 0.0, 0.0]))
    masks = MaskSet({"w": torch.tensor([1, 1, 1, 1, 0, 0, 0, 0], dtype=torch.bool)})
    opt = torch.optim.SGD([w], lr=0.1, momentum=0.9)
    w.grad = torch.ones(8)
    opt.step()  # creates momentum buffers: 1.0 everywhere
    buf = opt.state[w]["momentum_buffer"]
    buf.copy_(torch.arange(1.0, 9.0))
    with torch.no_grad():
        w.copy_(torch.tensor([0.9, -0.05, 0.2, 0.01, 0.0, 0.0, 0.0, 0.0]))
    w.grad = torch.tensor([0.0, 5.0, 0.0, 0.0, 0.1, -0.7, 0.3, 0.2])
    updater = TopologyUpdater({"w": w}, masks, opt, "magnitude", "gradient", drop_schedule("constant", 0.5, 100),
                              UpdateSchedule(1, 100), grown_momentum=grown_momentum)
    stats = updater.update(1)
    # magnitude removes ceil(0.5 * 4) = 2: positions 1 (-0.05) and 3 (0.01); gradient growth takes
    # the largest |g| among inactive {1, 3, 4, 5, 6, 7}: 1 (|g| 5.0) and 5 (0.7)
    assert stats.n_removed == {"w": 2}
    assert masks["w"].nonzero().flatten().tolist() == [0, 1, 2, 5]
    # 1 was removed and regrown: value and momentum as they were; 3 was dropped: 0, momentum kept;
    # 5 is new: 0, with the momentum it gathered while inactive (keep) or none (zero)
    assert w.detach().tolist() == pytest.approx([0.9, -0.05, 0.2, 0.0, 0.0, 0.0, 0.0, 0.0])
    assert buf.tolist() == [1, 2, 3, 4, 5, 6 if grown_momentum == "keep" else 0, 7, 8]


@pytest.mark.parametrize("optimizer", [torch.optim.Adam, torch.optim.AdamW])
@pytest.mark.parametrize("grown_momentum", ["keep", "zero"])
def test_adam_moments_of_grown_weights_hand_built(optimizer, grown_momentum):
    # the same update as above with Adam's state: keep leaves both moments of the newly grown
    # position 5 as gathered while inactive, zero sets both to 0; the removed-and-regrown position 1
    # and the dropped position 3 keep theirs, and the per-tensor step count is not touched
    w = nn.Parameter(torch.tensor([0.9, -0.05, 0.2, 0.01, 0.0, 0.0, 0.0, 0.0]))
    masks = MaskSet({"w": torch.tensor([1, 1, 1, 1, 0, 0, 0, 0], dtype=torch.bool)})
    opt = optimizer([w], lr=0.1, weight_decay=0.01)
    w.grad = torch.ones(8)
    opt.step()
    state = opt.state[w]
    state["exp_avg"].copy_(torch.arange(1.0, 9.0))
    state["exp_avg_sq"].copy_(torch.arange(11.0, 19.0))
    step_before = state["step"].clone()
    with torch.no_grad():
        w.copy_(torch.tensor([0.9, -0.05, 0.2, 0.01, 0.0, 0.0, 0.0, 0.0]))
    w.grad = torch.tensor([0.0, 5.0, 0.0, 0.0, 0.1, -0.7, 0.3, 0.2])
    updater = TopologyUpdater({"w": w}, masks, opt, "magnitude", "gradient", drop_schedule("constant", 0.5, 100),
                              UpdateSchedule(1, 100), grown_momentum=grown_momentum)
    updater.update(1)
    assert masks["w"].nonzero().flatten().tolist() == [0, 1, 2, 5]
    zero = grown_momentum == "zero"
    assert state["exp_avg"].tolist() == [1, 2, 3, 4, 5, 0 if zero else 6, 7, 8]
    assert state["exp_avg_sq"].tolist() == [11, 12, 13, 14, 15, 0 if zero else 16, 17, 18]
    assert torch.equal(state["step"], step_before)
    opt.step()  # the moments of masked positions move the weights; the mask puts them back to 0
    assert torch.all(w.detach()[~masks["w"]] != 0)
    masks.apply_({"w": w})
    assert torch.all(w.detach()[~masks["w"]] == 0) and torch.all(w.detach()[masks["w"]] != 0)


def test_update_is_a_pure_function_of_state_and_seed():
    results = []
    for _ in range(2):
        model, params, masks, opt, updater, counts, step = _setup("random", "random", "local")
        for t in range(1, 16):
            step(t)
        results.append({n: m.clone() for n, m in masks.items()})
    assert all(torch.equal(results[0][n], results[1][n]) for n in results[0])


def test_updates_happen_only_at_scheduled_steps_and_state_round_trips():
    model, params, masks, opt, updater, counts, step = _setup("magnitude", "gradient", "local")
    done = [t for t in range(0, 21) if step(t) is not None]
    assert done == [5, 10, 15, 20] and updater.n_updates == 4
    state = updater.state_dict()
    _, _, masks2, _, updater2, _, _ = _setup("magnitude", "gradient", "local")
    updater2.load_state_dict(state)
    assert updater2.n_updates == 4 and all(torch.equal(masks2[n], masks[n]) for n in masks)
