"""Which parameters are sparsified: one mask per parameter tensor (shared and tied weights by identity),
attention's Q/K/V projections included, frozen ones left out, ``keep_dense`` and ``sparsify_also``
as users write them; densities counted by hand."""

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from dst_core import attach
from dst_core.data import DATASETS
from dst_core.errors import ConfigError, DstWarning
from dst_core.masks import SPARSE_MODULES, choose_params, n_active, sparsifiable
from dst_core.models import MODELS, build_model


def _paper_rule(model):
    """The rule before attention and shared weights were counted: every Linear and Conv weight."""
    return [f"{name}.weight" for name, m in model.named_modules() if isinstance(m, SPARSE_MODULES)]


def test_every_built_in_model_sparsifies_what_the_papers_rule_does():
    built = 0
    for name in MODELS.names():
        if MODELS.get(name).plugin is not None:
            continue
        for dataset in DATASETS.names():
            meta = DATASETS.get(dataset).meta
            try:
                model = build_model(name, meta["input_shape"], meta["num_classes"])
            except ConfigError:
                continue  # not this data set's shape
            assert list(sparsifiable(model)) == _paper_rule(model), (name, dataset)
            built += 1
            break
    assert built >= 6


class Encoder(nn.Module):
    """Two transformer layers (d 16, 2 heads, feed-forward 32) and a linear head of 4 classes."""

    def __init__(self):
        super().__init__()
        torch.manual_seed(0)
        self.encoder = nn.TransformerEncoder(nn.TransformerEncoderLayer(16, 2, 32, batch_first=True), 2,
                                             enable_nested_tensor=False)
        self.head = nn.Linear(16, 4)

    def forward(self, x):
        return self.head(self.encoder(x).mean(1))


def _train_steps(model, sparse, optimizer, shape, n=3):
    gen = torch.Generator().manual_seed(0)
    for _ in range(n):
        x, y = torch.randn(8, *shape, generator=gen), torch.randint(0, 4, (8,), generator=gen)
        optimizer.zero_grad()
        F.cross_entropy(model(x), y).backward()
        optimizer.step()
        sparse.step()


def test_a_transformer_sparsifies_its_attention_projections_at_the_density_asked():
    model = Encoder()
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    sparse = attach(model, optimizer, total_steps=10, density=0.1, init="uniform", update_period=2)
    per_layer = {"self_attn.in_proj_weight": 48 * 16, "self_attn.out_proj.weight": 16 * 16,
                 "linear1.weight": 32 * 16, "linear2.weight": 16 * 32}
    expected = {f"encoder.layers.{i}.{n}": size for i in (0, 1) for n, size in per_layer.items()}
    expected["head.weight"] = 4 * 16
    assert {n: p.numel() for n, p in sparse.params.items()} == expected
    weights = dict(model.named_parameters())
    by_hand = {768: 77, 256: 26, 512: 51, 64: 6}  # round(0.1 n)
    for name, size in expected.items():  # Q/K/V included: the weights attention really multiplies by
        assert int((weights[name] != 0).sum()) == n_active(size, 0.1) == by_hand[size], name
    _train_steps(model, sparse, optimizer, (5, 16))  # an update at step 2: the counts hold through it
    assert sparse.updater.n_updates == 1
    for name, size in expected.items():  # (a grown weight starts at 0: count the masks)
        assert int(sparse.masks[name].sum()) == by_hand[size] and bool((weights[name][~sparse.masks[name]] == 0).all())
    active, total_sparse = 2 * (77 + 26 + 51 + 51) + 6, 2 * (768 + 256 + 512 + 512) + 64
    assert sparse.masks.density() == active / total_sparse == 0.1
    total = sum(p.numel() for p in model.parameters())
    assert sparse.density_all() == pytest.approx((active + total - total_sparse) / total)


class TiedLM(nn.Module):
    """An embedding of 50 tokens in 8 dimensions, a hidden Linear, and a head tied to the embedding."""

    def __init__(self):
        super().__init__()
        torch.manual_seed(0)
        self.embed = nn.Embedding(50, 8)
        self.fc = nn.Linear(8, 8)
        self.head = nn.Linear(8, 50, bias=False)
        self.head.weight = self.embed.weight

    def forward(self, x):
        return self.head(torch.relu(self.fc(self.embed(x))))


def test_a_tied_head_and_its_embedding_have_one_mask_and_are_named_together():
    model = TiedLM()
    choices = {c.name: c for c in choose_params(model)}
    assert list(choices) == ["embed.weight", "fc.weight", "fc.bias"]  # the tied tensor once
    tied = choices["embed.weight"]
    assert tied.sparse and tied.why == "Linear.weight" and tied.also == ("head.weight",)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    sparse = attach(model, optimizer, total_steps=10, density=0.1, init="uniform", static=True)
    assert list(sparse.masks) == ["embed.weight", "fc.weight"]
    assert int((model.embed.weight != 0).sum()) == n_active(400, 0.1) == 40  # the real density is the one asked
    assert int((model.fc.weight != 0).sum()) == 6
    assert sparse.masks.density() == 46 / 464
    assert "embed.weight  (50, 8)" in sparse.describe() and "(also head.weight: one tensor, one mask)" in \
        sparse.describe()
    dense = attach(TiedLM(), torch.optim.SGD(TiedLM().parameters(), lr=0.1), total_steps=10, density=0.1,
                   keep_dense=["head.*"], static=True)
    assert list(dense.masks) == ["fc.weight"]  # a rule over either name of a tied tensor keeps it dense


def test_one_weight_shared_by_two_linear_layers_gets_one_mask():
    model = nn.Sequential(nn.Linear(10, 10), nn.ReLU(), nn.Linear(10, 10), nn.ReLU(), nn.Linear(10, 3))
    model[2].weight = model[0].weight
    sparse = attach(model, torch.optim.SGD(model.parameters(), lr=0.1), total_steps=10, density=0.1,
                    init="uniform", static=True)
    assert list(sparse.masks) == ["0.weight", "4.weight"]
    assert int((model[0].weight != 0).sum()) == 10 and sparse.masks.density() == (10 + 3) / 130


def test_frozen_parameters_are_left_out_and_said_to_be():
    model = nn.Sequential(nn.Linear(6, 16), nn.ReLU(), nn.Linear(16, 4))
    model[0].requires_grad_(False)
    optimizer = torch.optim.SGD([p for p in model.parameters() if p.requires_grad], lr=0.1)
    with pytest.warns(DstWarning, match=r"2 frozen parameter tensors left dense \(requires_grad=False: nothing would "
                                        r"regrow them\): 0.weight, 0.bias"):
        sparse = attach(model, optimizer, total_steps=10, density=0.25, criterion="snip", growth="gradient",
                        update_period=2, init="uniform")
    assert list(sparse.masks) == ["2.weight"] and bool((model[0].weight != 0).all())
    _train_steps(model, sparse, optimizer, (6,))  # gradient growth on the trained layer only
    assert sparse.updater.n_updates == 1 and int(sparse.masks["2.weight"].sum()) == 16
    assert sparse.describe().splitlines() == [
        "sparsified: 1 of 4 parameter tensors, 64 of 180 weights; density 0.2500 over them, 0.7333 over all weights",
        "  2.weight  (4, 16)         density 0.2500  Linear.weight",
        "left dense by a rule:",
        "  0.weight  (16, 6)         frozen (requires_grad=False)",
        "  0.bias    (16,)           frozen (requires_grad=False)",
        "left dense: 1 other parameter tensors (4 weights: biases, norms, embeddings, ...)"]


def test_keep_dense_and_sparsify_also_by_name_or_module_class():
    model = TiedLM()
    model.head = nn.Linear(8, 50)  # untied
    choices = {c.name: c for c in choose_params(model, sparsify_also=["Embedding.weight"], keep_dense=["head.*"])}
    assert [n for n, c in choices.items() if c.sparse] == ["embed.weight", "fc.weight"]
    assert choices["embed.weight"].why == "sparsify_also 'Embedding.weight'"
    assert choices["head.weight"].why == "keep_dense 'head.*'" and choices["head.bias"].why == "keep_dense 'head.*'"
    # attention's out_proj is a Linear by its class's base: 'Linear.*' reaches it
    encoder = Encoder()
    dense = [c.name for c in choose_params(encoder, keep_dense=["Linear.weight"]) if c.why.startswith("keep_dense")]
    assert "encoder.layers.0.self_attn.out_proj.weight" in dense and "head.weight" in dense


@pytest.mark.parametrize("field", ["keep_dense", "sparsify_also"])
def test_a_pattern_that_matches_no_parameter_is_an_error_naming_the_parameters(field):
    with pytest.raises(ConfigError, match=rf"{field}: pattern 'clasifier.\*' matches no parameter of TiedLM "
                                          r"\(its parameters: embed.weight, fc.weight, fc.bias;"):
        attach(TiedLM(), torch.optim.SGD(TiedLM().parameters(), lr=0.1), total_steps=10, **{field: ["clasifier.*"]})
