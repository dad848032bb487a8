import math
import re
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from dst_core import attach, rng, select_prune
from dst_core.config import SPARSITY_FIELDS, TrainConfig
from dst_core.data import load_dataset
from dst_core.errors import ConfigError, DstError, DstWarning
from dst_core.models import build_model
from dst_core.topology import derive_generator
from dst_core.trainer import Trainer, n_kept_for_training

FAST = dict(epochs=2, batch_size=256, update_period=4, lr=0.1, lr_milestones=(), device="cpu")


def _own_loop(cfg: TrainConfig):
    """``cfg``'s run as a user writes it with attach: the trainer's seeding, data order and optimizer."""
    data = load_dataset(cfg.dataset)
    n = n_kept_for_training(len(data.train_y), cfg.val_fraction)
    xs, ys = data.train_x[:n], data.train_y[:n]
    rng.seed_everything(cfg.seed)
    model = build_model(cfg.model, data.input_shape, data.num_classes)
    optimizer = torch.optim.SGD(model.parameters(), lr=cfg.lr, momentum=cfg.momentum, nesterov=True,
                                weight_decay=cfg.weight_decay)
    sparse = attach(model, optimizer, total_steps=cfg.epochs * math.ceil(n / cfg.batch_size),
                    **{k: getattr(cfg, k) for k in SPARSITY_FIELDS})
    for epoch in range(cfg.epochs):
        for idx in torch.randperm(n, generator=derive_generator(cfg.seed, epoch, -3)).split(cfg.batch_size):
            loss = F.cross_entropy(model(xs[idx]), ys[idx])
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            sparse.step()
    return model, sparse


@pytest.mark.parametrize("criterion,growth,order,static", [
    ("magnitude", "random", "paper", False),  # after_step
    ("magnitude", "gradient", "before_step", False),
    ("snip", "gradient", "paper", False),  # before_step
    ("snip", "random", "after_step", False),
    ("sensitivity", "gradient", "paper", False),
    ("magnitude", "random", "paper", True),
])
def test_an_own_loop_with_attach_ends_bit_identical_to_train(criterion, growth, order, static):
    cfg = TrainConfig(density=0.1, criterion=criterion, growth=growth, update_order=order, static=static, **FAST)
    trainer = Trainer(cfg)
    list(trainer.epochs())
    model, sparse = _own_loop(cfg)
    assert sparse.steps == trainer.step == 30 and sparse.update_order == trainer.update_order
    if static:
        assert sparse.updater is None and trainer.updater is None
    else:
        assert sparse.updater.n_updates == trainer.updater.n_updates == 7  # after (or before) steps 4, 8, ..., 28
    for name, value in trainer.model.state_dict().items():
        assert torch.equal(value, model.state_dict()[name]), name
    for name in trainer.masks:
        assert torch.equal(trainer.masks[name], sparse.masks[name]), name
    assert static or sparse.masks.itop_rate() > sparse.masks.density()  # the masks did move


def _mlp_run(init_seed=0, optimizer="sgd", **settings):
    """A small MLP, its optimizer and attach (MEST + gradient growth unless ``settings`` say otherwise)."""
    torch.manual_seed(init_seed)
    model = nn.Sequential(nn.Linear(12, 32), nn.ReLU(), nn.Linear(32, 16), nn.ReLU(), nn.Linear(16, 3))
    opt = (torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9) if optimizer == "sgd"
           else torch.optim.Adam(model.parameters(), lr=0.01, weight_decay=0.01, fused=optimizer == "fused_adam"))
    kwargs = dict(density=0.3, criterion="mest", growth="gradient", update_period=3)
    return model, opt, attach(model, opt, total_steps=24, **dict(kwargs, **settings))


def _batches(n=24):
    gen = torch.Generator().manual_seed(1)
    return [(torch.randn(16, 12, generator=gen), torch.randint(0, 3, (16,), generator=gen)) for _ in range(n)]


@pytest.mark.parametrize("autocast", [False, True])
@pytest.mark.parametrize("order", ["before_step", "after_step"])
def test_criteria_score_unscaled_gradients_under_a_grad_scaler(order, autocast):
    def run(scaler):
        model, optimizer, sparse = _mlp_run(update_order=order)
        for x, y in _batches():
            with torch.autocast("cpu", dtype=torch.bfloat16, enabled=autocast):
                loss = F.cross_entropy(model(x), y)
            optimizer.zero_grad()
            if scaler is None:
                loss.backward()
                optimizer.step()
            else:
                scaler.scale(loss).backward()
                scaler.step(optimizer)
                scaler.update()
            sparse.step()
        return model, sparse

    (plain, plain_sparse), scaler = run(None), torch.amp.GradScaler("cpu", init_scale=2.0**16)
    scaled, scaled_sparse = run(scaler)
    assert scaler.get_scale() == 2.0**16 and scaled_sparse.steps == 24 and scaled_sparse.updater.n_updates == 7
    for name, value in plain.state_dict().items():  # a power-of-two scale, unscaled, is exact
        assert torch.equal(value, scaled.state_dict()[name]), name
    assert all(torch.equal(plain_sparse.masks[n], scaled_sparse.masks[n]) for n in plain_sparse.masks)
    # and MEST's |w| + |g| would have told scaled gradients apart: the test can fail
    w, mask = plain[0].weight.detach(), plain_sparse.masks["0.weight"]
    assert not torch.equal(select_prune("mest", w, plain[0].weight.grad, mask, 40),
                           select_prune("mest", w, plain[0].weight.grad * 2.0**16, mask, 40))


def test_a_fused_optimizer_under_a_grad_scaler_needs_the_gradients_unscaled_first():
    def run(unscale):
        model, optimizer, sparse = _mlp_run(optimizer="fused_adam", update_order="before_step", update_period=1)
        scaler = torch.amp.GradScaler("cpu", init_scale=2.0**16)
        for x, y in _batches(4):
            optimizer.zero_grad()
            scaler.scale(F.cross_entropy(model(x), y)).backward()
            if unscale:
                scaler.unscale_(optimizer)
            scaler.step(optimizer)
            scaler.update()
            sparse.step()
        return sparse

    with pytest.raises(DstError, match=r"call scaler.unscale_\(optimizer\) before scaler.step\(optimizer\)"):
        run(unscale=False)
    model, optimizer, plain = _mlp_run(optimizer="fused_adam", update_order="before_step", update_period=1)
    for x, y in _batches(4):
        optimizer.zero_grad()
        F.cross_entropy(model(x), y).backward()
        optimizer.step()
        plain.step()
    unscaled = run(unscale=True)
    assert unscaled.updater.n_updates == 3
    assert all(torch.equal(plain.masks[n], unscaled.masks[n]) for n in plain.masks)


def test_a_step_the_scaler_skips_is_neither_counted_nor_updated_on():
    model, optimizer, sparse = _mlp_run(criterion="snip", update_period=2, update_order="after_step")
    scaler = torch.amp.GradScaler("cpu", init_scale=2.0**40)  # float16 gradients are inf until it is halved
    skipped = 0
    for i, (x, y) in enumerate(_batches(40)):
        scale, before = scaler.get_scale(), {n: p.clone() for n, p in sparse.params.items()}
        optimizer.zero_grad()
        with torch.autocast("cpu", dtype=torch.float16):
            loss = F.cross_entropy(model(x), y)
        scaler.scale(loss).backward()
        scaler.step(optimizer)
        scaler.update()
        stats = sparse.step()
        if scaler.get_scale() < scale:  # the scaler found inf gradients and skipped the step
            skipped += 1
            assert stats is None and all(torch.equal(before[n], p) for n, p in sparse.params.items())
        assert sparse.steps == i + 1 - skipped
    assert skipped >= 2 and sparse.updater.n_updates == len(range(2, min(40 - skipped + 1, 24), 2))


def test_masked_weights_are_exactly_zero_after_every_optimizer_step_and_counts_never_move():
    # Adam with weight decay moves weights whose gradient is 0: the post-step hook zeroes them
    model, optimizer, sparse = _mlp_run(optimizer="adam", criterion="snip", update_order="before_step",
                                        update_period=2)
    counts, n_updates = sparse.masks.n_active(), 0
    for x, y in _batches():
        optimizer.zero_grad()
        F.cross_entropy(model(x), y).backward()
        optimizer.step()
        assert all(torch.all(p[~sparse.masks[n]] == 0) for n, p in sparse.params.items())
        n_updates += sparse.step() is not None
        assert sparse.masks.n_active() == counts
    assert n_updates == sparse.updater.n_updates == 11
    sparse.detach()  # no hooks left: the optimizer alone moves masked weights again
    optimizer.step()
    assert any(torch.any(p[~sparse.masks[n]] != 0) for n, p in sparse.params.items())


@pytest.mark.parametrize("as_keyword", [False, True])
@pytest.mark.parametrize("criterion,growth", [("snip", "gradient"), ("mest", "random"), ("magnitude", "gradient")])
def test_a_closure_step_scores_the_gradients_its_closure_computes(criterion, growth, as_keyword):
    """optimizer.step(closure) runs the forward and backward inside the step: the run equals the plain
    loop bit for bit (a before_step update on the previous batch's gradients would not)."""
    def run(closure_loop):
        model, optimizer, sparse = _mlp_run(criterion=criterion, growth=growth, update_period=2)
        for x, y in _batches():
            def closure():
                optimizer.zero_grad()
                loss = F.cross_entropy(model(x), y)
                loss.backward()
                return loss
            if not closure_loop:
                closure()
                optimizer.step()
            else:
                optimizer.step(closure=closure) if as_keyword else optimizer.step(closure)
            sparse.step()
        return model, sparse

    (plain, plain_sparse), (closed, closed_sparse) = run(False), run(True)
    assert closed_sparse.updater.n_updates == plain_sparse.updater.n_updates == 11
    for name, value in plain.state_dict().items():
        assert torch.equal(value, closed.state_dict()[name]), name
    for name in plain_sparse.masks:
        assert torch.equal(plain_sparse.masks[name], closed_sparse.masks[name]), name


def test_lbfgs_calls_its_closure_many_times_and_the_update_scores_the_first_call_once():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(12, 32), nn.ReLU(), nn.Linear(32, 3))
    optimizer = torch.optim.LBFGS(model.parameters(), lr=0.1, max_iter=4)
    sparse = attach(model, optimizer, total_steps=6, density=0.3, criterion="snip", growth="gradient",
                    update_period=2)
    counts, calls = sparse.masks.n_active(), []
    for x, y in _batches(6):
        def closure():
            optimizer.zero_grad()
            loss = F.cross_entropy(model(x), y)
            loss.backward()
            calls.append(sparse.updater.n_updates)
            return loss
        optimizer.step(closure)
        sparse.step()
        assert sparse.masks.n_active() == counts
        assert all(torch.all(p[~sparse.masks[n]] == 0) for n, p in sparse.params.items())
    assert len(calls) > 6 and sparse.updater.n_updates == 2  # before steps 3 and 5 (update_period 2, stop at 6)


def test_an_optimizer_step_without_sparse_step_after_the_last_is_an_error():
    model, optimizer, sparse = _mlp_run()
    x, y = _batches(1)[0]
    F.cross_entropy(model(x), y).backward()
    optimizer.step()
    with pytest.raises(DstError, match=r"call sparse.step\(\) once after every optimizer step"):
        optimizer.step()


def test_state_dict_resumes_a_loop_bit_identically(tmp_path):
    def iterate(model, optimizer, sparse, batches):
        for x, y in batches:
            optimizer.zero_grad()
            F.cross_entropy(model(x), y).backward()
            optimizer.step()
            sparse.step()

    batches = _batches()
    model, optimizer, sparse = _mlp_run(criterion="random", growth="random")
    iterate(model, optimizer, sparse, batches)
    first = _mlp_run(criterion="random", growth="random")
    iterate(*first, batches[:10])
    torch.save({"model": first[0].state_dict(), "optimizer": first[1].state_dict(), "sparse": first[2].state_dict()},
               tmp_path / "ckpt.pt")
    state = torch.load(tmp_path / "ckpt.pt", weights_only=True)
    resumed = _mlp_run(init_seed=5, criterion="random", growth="random")  # other weights and masks until loaded
    for part, obj in zip(("model", "optimizer", "sparse"), resumed):
        obj.load_state_dict(state[part])
    assert resumed[2].steps == 10
    iterate(*resumed, batches[10:])
    for name, value in model.state_dict().items():
        assert torch.equal(value, resumed[0].state_dict()[name]), name
    assert all(torch.equal(sparse.masks[n], resumed[2].masks[n]) for n in sparse.masks)
    assert resumed[2].masks.itop_rate() == sparse.masks.itop_rate() and resumed[2].updater.n_updates == 7


@pytest.mark.parametrize("settings,error,message", [
    (dict(densty=0.1), ConfigError, "attach: unknown setting 'densty'; did you mean 'density'?"),
    (dict(lr=0.1), ConfigError, r"attach: unknown setting 'lr' \(settings: criterion, criterion_params, density"),
    (dict(density=1.5), ConfigError, "density: got 1.5"),
    (dict(criterion="magnitdue"), ConfigError, "did you mean 'magnitude'"),
    (dict(total_steps=0), ConfigError, "total_steps: got 0; expected the run's optimizer steps"),
    (dict(total_steps=20, update_period=20), DstWarning, "no topology update will happen"),
])
def test_bad_settings_are_refused_with_their_name(settings, error, message):
    model = nn.Sequential(nn.Linear(12, 8), nn.ReLU(), nn.Linear(8, 3))
    settings = dict(dict(total_steps=100), **settings)
    if issubclass(error, Warning):
        with pytest.warns(error, match=message):
            attach(model, torch.optim.SGD(model.parameters(), lr=0.1), **settings)
    else:
        with pytest.raises(error, match=message):
            attach(model, torch.optim.SGD(model.parameters(), lr=0.1), **settings)


def test_the_readme_loop_runs():
    readme = (Path(__file__).resolve().parents[2] / "README.md").read_text()
    section = readme[readme.index("### DST in your own loop"):readme.index("## Layout")]
    loop, amp, repeat = re.findall(r"```python\n(.*?)```", section, re.S)
    scope: dict = {}
    exec(compile(loop, "README loop", "exec"), scope)
    sparse, model = scope["sparse"], scope["model"]
    assert sparse.steps == 320 and sparse.updater.n_updates == 3 and sparse.update_order == "before_step"
    assert sparse.masks.density() == pytest.approx(0.1, abs=1e-4)
    exec(compile(amp.replace('"cuda"', '"cpu"'), "README AMP loop", "exec"), scope)  # one more epoch
    assert sparse.steps == 352 and isinstance(scope["scaler"], torch.amp.GradScaler)
    assert all(torch.all(p[~sparse.masks[n]] == 0) for n, p in model.named_parameters() if n in sparse.masks)
    # the loop that repeats train() with public names only ends where train() ends, bit for bit
    scope = {}
    exec(compile(repeat, "README repeat loop", "exec"), scope)
    reference = Trainer(scope["config"])
    list(reference.epochs())
    assert scope["sparse"].steps == reference.step and scope["sparse"].updater.n_updates == reference.updater.n_updates
    for name, value in reference.model.state_dict().items():
        assert torch.equal(value, scope["model"].state_dict()[name]), name
    for name in reference.masks:
        assert torch.equal(reference.masks[name], scope["sparse"].masks[name]), name


def test_a_model_moved_after_attach_is_an_error_naming_the_fix():
    model, optimizer, sparse = _mlp_run()
    # model.to(device) keeps the Parameters and moves their data away from the masks; on CPU (meta
    # data cannot replace CPU data) the masks move instead. test_cuda.py moves the model itself.
    sparse.masks.masks["0.weight"] = sparse.masks.masks["0.weight"].to("meta")
    with pytest.raises(DstError, match=r"attach: weight 0.weight is on cpu but its mask on meta: the model moved "
                                       r"after attach; move the model to its device first, then attach"):
        optimizer.step()
