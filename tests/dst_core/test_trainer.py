import math

import pytest
import torch

from dst_core import checkpoint
from dst_core.config import TrainConfig
from dst_core.errors import CheckpointMismatchError, ConfigError
from dst_core.trainer import Interrupted, Trainer, train

FAST = dict(epochs=4, batch_size=256, update_period=4, lr=0.1, device="cpu")
TIMING = ("epoch_seconds", "update_seconds")


def _strip(history):
    return [{k: v for k, v in m.items() if k not in TIMING} for m in history]


def test_masked_weights_zero_and_counts_exact_after_every_step_and_update():
    t = Trainer(TrainConfig(density=0.2, init="erk", criterion="snip", growth="gradient", **FAST))
    counts = t.masks.n_active()
    shapes = {n: p.numel() for n, p in t.params.items()}
    assert sum(counts.values()) == pytest.approx(0.2 * sum(shapes.values()), abs=len(shapes))
    order = torch.randperm(len(t.train_set))
    n_updates = 0
    for b in range(12):  # 12 steps with update_period 4: updates at steps 4 and 8
        idx = order[b * 256:(b + 1) * 256]
        t._train_step(t.train_set.x[idx], t.train_set.y[idx])
        assert t.masks.n_active() == counts
        for name, p in t.params.items():
            assert torch.all(p[~t.masks[name]] == 0)
        n_updates = t.updater.n_updates
    assert n_updates == 2
    assert t.masks.itop_rate() > t.masks.density()


@pytest.mark.parametrize("optimizer", ["sgd", "adam", "adamw"])
@pytest.mark.parametrize("criterion,order,momentum", [("magnitude", "after_step", "zero"),
                                                      ("snip", "before_step", "keep")])
def test_masked_weights_exactly_zero_after_every_step_with_every_optimizer(optimizer, criterion, order, momentum):
    # Adam moves a weight whose gradient is 0 (its moments are not 0) and weight decay acts on
    # every weight: the mask re-applied after each step is what keeps removed weights at 0
    cfg = TrainConfig(density=0.2, criterion=criterion, growth="gradient", update_order=order, grown_momentum=momentum,
                      optimizer=optimizer, weight_decay=0.01, **dict(FAST, lr=0.01))
    t = Trainer(cfg)
    counts, order_ = t.masks.n_active(), torch.randperm(len(t.train_set))
    moved, n_checked = False, 0  # whether the optimizer alone would have moved a masked weight
    for b in range(12):  # updates after steps 4, 8 and 12 (after_step) or before steps 5 and 9
        masks_before, updates_before = {n: m.clone() for n, m in t.masks.items()}, t.updater.n_updates
        idx = order_[b * 256:(b + 1) * 256]
        t._train_step(t.train_set.x[idx], t.train_set.y[idx])
        assert t.masks.n_active() == counts
        for name, p in t.params.items():
            assert torch.all(p[~t.masks[name]] == 0), (b, name)
            state = t.optimizer.state[p]
            avg = state["momentum_buffer"] if optimizer == "sgd" else state["exp_avg"]
            moved |= bool((avg[~t.masks[name]] != 0).any())
            fresh = t.masks[name] & ~masks_before[name]
            if t.updater.n_updates > updates_before and momentum == "zero":
                n_checked += int(fresh.sum())
                for key in ("exp_avg", "exp_avg_sq") if optimizer != "sgd" else ("momentum_buffer",):
                    assert torch.all(state[key][fresh] == 0), key  # reset at the update, no step since
    assert t.updater.n_updates == (3 if order == "after_step" else 2) and moved
    assert n_checked > 0 or momentum == "keep"


@pytest.mark.parametrize("criterion,growth,order,momentum,optimizer", [
    ("random", "random", "paper", "keep", "sgd"),
    ("snip", "gradient", "after_step", "zero", "sgd"),
    ("magnitude", "gradient", "before_step", "keep", "sgd"),
    ("magnitude", "gradient", "paper", "zero", "adam"),
    ("snip", "random", "paper", "keep", "adamw"),
])
def test_resume_is_bit_identical(tmp_path, criterion, growth, order, momentum, optimizer):
    cfg = TrainConfig(density=0.1, criterion=criterion, growth=growth, update_order=order, grown_momentum=momentum,
                      optimizer=optimizer, **dict(FAST, lr=0.01 if optimizer != "sgd" else FAST["lr"]))
    full = Trainer(cfg, checkpoint_dir=tmp_path / "full")
    full_history = list(full.epochs())
    assert len(full_history) == 4 and full.step == 4 * full.steps_per_epoch

    part = tmp_path / "part"
    first = []
    for metrics in train(cfg, checkpoint_dir=part):
        first.append(metrics)
        if metrics["epoch"] == 2:
            break  # the epoch-2 checkpoint is written before the metrics are yielded
    resumed = Trainer(cfg, checkpoint_dir=part)
    assert resumed.resumed_from == 2
    rest = list(resumed.epochs())
    assert [m["epoch"] for m in rest] == [3, 4]
    assert _strip(first + rest) == _strip(full_history)
    assert _strip(resumed.history) == _strip(full_history)
    for name, value in full.model.state_dict().items():
        assert torch.equal(value, resumed.model.state_dict()[name]), name
    for name in full.masks:
        assert torch.equal(full.masks[name], resumed.masks[name])
    a, b = full.optimizer.state_dict()["state"], resumed.optimizer.state_dict()["state"]
    assert a.keys() == b.keys() and all(a[i].keys() == b[i].keys() for i in a)
    assert all(torch.equal(a[i][k], b[i][k]) for i in a for k in a[i])


@pytest.mark.parametrize("static", [False, True])
@pytest.mark.parametrize("layout", ["current", "format 2"])
def test_static_and_dst_runs_resume_from_either_checkpoint_layout(tmp_path, static, layout):
    cfg = TrainConfig(density=0.2, static=static, **dict(FAST, epochs=2))
    full = Trainer(cfg)
    list(full.epochs())
    for _ in train(cfg, checkpoint_dir=tmp_path):
        break
    path = tmp_path / checkpoint.FILENAME
    if layout == "format 2":  # as written before attach: no step count; masks under "updater", of DST runs only
        state = checkpoint.load(path)
        sparse = state.pop("sparse")
        state.update(format=2, updater=None if static else {"n_updates": sparse["n_updates"], "masks": sparse["masks"]})
        torch.save(state, path)
    resumed = Trainer(cfg, checkpoint_dir=tmp_path)
    assert resumed.resumed_from == 1 and resumed.sparse.steps == resumed.step == 15
    list(resumed.epochs())
    assert _strip(resumed.history) == _strip(full.history)
    for name, value in full.model.state_dict().items():
        assert torch.equal(value, resumed.model.state_dict()[name]), name
    assert all(torch.equal(full.masks[n], resumed.masks[n]) for n in full.masks)


def test_interrupt_mid_epoch_then_resume_is_bit_identical(tmp_path):
    cfg = TrainConfig(density=0.1, criterion="magnitude", growth="gradient", **dict(FAST, epochs=2))
    full = Trainer(cfg)
    full_history = list(full.epochs())
    calls = {"n": 0}

    def stop_after_20_batches():
        calls["n"] += 1
        return calls["n"] > 20  # 15 batches per epoch (3600 training examples): stops inside epoch 2

    with pytest.raises(Interrupted):
        list(train(cfg, checkpoint_dir=tmp_path, should_stop=stop_after_20_batches))
    state = checkpoint.load(tmp_path / checkpoint.FILENAME)
    assert state["position"] == {"epoch": 1, "batch": 5, "step": 20}
    resumed = Trainer(cfg, checkpoint_dir=tmp_path)
    list(resumed.epochs())
    assert _strip(resumed.history) == _strip(full_history)
    for name, value in full.model.state_dict().items():
        assert torch.equal(value, resumed.model.state_dict()[name]), name


def test_finished_run_resumes_to_nothing(tmp_path):
    cfg = TrainConfig(density=0.5, **dict(FAST, epochs=1))
    assert len(list(train(cfg, checkpoint_dir=tmp_path))) == 1
    assert list(train(cfg, checkpoint_dir=tmp_path)) == []


def test_checkpoints_follow_their_cadence_but_always_end_and_stop_with_one(tmp_path, monkeypatch):
    clock = {"now": 0.0}  # each epoch takes 4 s of this clock
    monkeypatch.setattr("dst_core.trainer.time.perf_counter", lambda: clock["now"])
    train_epoch = Trainer._train_epoch

    def four_seconds(self, should_stop):
        clock["now"] += 4
        return train_epoch(self, should_stop)

    monkeypatch.setattr(Trainer, "_train_epoch", four_seconds)
    cfg = TrainConfig(density=0.5, **dict(FAST, epochs=5))
    trainer = Trainer(cfg, checkpoint_dir=tmp_path, checkpoint_seconds=10)
    saved = []
    for metrics in trainer.epochs():
        saved.append(trainer.saved)
        if trainer.saved:
            assert checkpoint.load(tmp_path / checkpoint.FILENAME)["position"]["epoch"] == metrics["epoch"]
    # 4 s epochs, 10 s cadence: saves after the 3rd epoch (12 s after the start), and the last
    assert saved == [False, False, True, False, True]

    stopped = tmp_path / "stopped"
    calls = {"n": 0}
    with pytest.raises(Interrupted):  # a stop saves its position, whatever the cadence
        list(train(cfg, checkpoint_dir=stopped, checkpoint_seconds=1e9,
                   should_stop=lambda: calls.__setitem__("n", calls["n"] + 1) or calls["n"] > 20))
    assert checkpoint.load(stopped / checkpoint.FILENAME)["position"]["step"] == 20


def test_checkpoint_from_other_config_is_refused(tmp_path):
    list(train(TrainConfig(density=0.5, **dict(FAST, epochs=1)), checkpoint_dir=tmp_path))
    with pytest.raises(CheckpointMismatchError, match="density: checkpoint has 0.5, config has 0.2"):
        train(TrainConfig(density=0.2, **dict(FAST, epochs=1)), checkpoint_dir=tmp_path)


def test_same_seed_same_result_other_seed_differs():
    cfg = dict(density=0.2, **dict(FAST, epochs=1))
    a, b = list(train(TrainConfig(**cfg))), list(train(TrainConfig(**cfg)))
    c = list(train(TrainConfig(seed=1, **cfg)))
    assert _strip(a) == _strip(b) and _strip(a) != _strip(c)


@pytest.mark.filterwarnings("ignore:update_period")  # no update is the point here
def test_a_seed_fixes_weights_mask_and_data_order_whatever_the_criterion():
    """What makes two cells of a comparison paired (study.stats): a seed gives every criterion and
    growth rule the same initial weights, the same initial mask and the same order of batches."""
    base = dict(FAST, epochs=1, update_period=10_000, density=0.2, seed=3)  # no topology update in the epoch
    runs = [Trainer(TrainConfig(criterion=c, growth=g, **base))
            for c, g in (("magnitude", "random"), ("snip", "gradient"), ("reciprocal_sensitivity", "random"))]
    other_seed = Trainer(TrainConfig(**dict(base, seed=4)))

    def same(a, b):
        return all(torch.equal(x, y) for x, y in zip(a.model.state_dict().values(), b.model.state_dict().values()))

    for run in runs[1:]:
        assert same(runs[0], run)
        assert all(torch.equal(runs[0].masks[n], run.masks[n]) for n in runs[0].masks)
    assert not same(runs[0], other_seed)
    for run in (*runs, other_seed):  # one epoch without an update: equal weights need equal batches too
        list(run.epochs())
    assert all(same(runs[0], run) for run in runs[1:]) and not same(runs[0], other_seed)


def test_lr_schedule_and_metrics_fields():
    t = Trainer(TrainConfig(density=0.3, **dict(FAST, epochs=8)))
    assert [t.lr_at(e) for e in range(8)] == pytest.approx([0.1] * 4 + [0.01] * 2 + [0.001] * 2)
    m = next(t.epochs())
    assert set(m) >= {"epoch", "step", "train_loss", "train_accuracy", "test_loss", "test_accuracy", "density",
                      "drop_fraction", "itop_rate", "n_updates", "update_seconds", "epoch_seconds"}
    assert m["n_updates"] == math.floor((t.steps_per_epoch - 1) / 4)  # updates at steps 4, 8, 12
    total = sum(p.numel() for p in t.params.values())
    assert m["density"] == sum(t.masks.n_active().values()) / total


@pytest.mark.parametrize("criterion,order,expected", [
    ("snip", "before_step", "before_step"), ("magnitude", "after_step", "after_step"),
    ("magnitude", "paper", "after_step"), ("set", "paper", "after_step"), ("random", "paper", "after_step"),
    ("snip", "paper", "before_step"), ("mest", "paper", "before_step"),
    ("reciprocal_sensitivity", "paper", "before_step"), ("sensitivity", "paper", "before_step"),
])
def test_update_order_places_the_update_around_the_optimizer_step(criterion, order, expected):
    t = Trainer(TrainConfig(density=0.2, criterion=criterion, growth="gradient", update_order=order, **FAST))
    events, update = [], t.updater.update
    t.optimizer.register_step_post_hook(lambda *_: events.append("step"))  # once the weights have moved
    t.updater.update = lambda s: (events.append(f"update@{s}"), update(s))[1]
    for b in range(9):
        t._train_step(t.train_set.x[b * 256:(b + 1) * 256], t.train_set.y[b * 256:(b + 1) * 256])
    # either way an update follows 4 and 8 optimizer steps; the order decides what comes first
    if expected == "before_step":  # update, step, mask: the 5th step already uses the new mask
        assert events == ["step"] * 4 + ["update@4", "step"] + ["step"] * 3 + ["update@8", "step"]
    else:  # step, mask, update
        assert events == ["step"] * 4 + ["update@4"] + ["step"] * 4 + ["update@8", "step"]
    assert t.update_order == expected


def test_static_run_keeps_its_first_mask_to_the_end():
    dst = Trainer(TrainConfig(density=0.2, **dict(FAST, epochs=2)))
    t = Trainer(TrainConfig(density=0.2, static=True, **dict(FAST, epochs=2)))
    first = {n: m.clone() for n, m in t.masks.items()}
    assert all(torch.equal(first[n], dst.masks[n]) for n in first)  # the same first mask as a DST run's
    history = list(t.epochs())
    assert t.updater is None and all(m["n_updates"] == 0 and m["drop_fraction"] == 0.0 for m in history)
    assert all(torch.equal(first[n], t.masks[n]) for n in first)
    assert all(torch.all(p[~t.masks[n]] == 0) for n, p in t.params.items())
    assert history[-1]["itop_rate"] == history[-1]["density"] == pytest.approx(0.2, abs=1e-3)
    assert TrainConfig(density=0.2, static=True).kind == "static" and TrainConfig(density=1.0).kind == "dense"


def test_dense_run_has_no_masks():
    t = Trainer(TrainConfig(density=1.0, **dict(FAST, epochs=1)))
    assert t.masks is None and t.updater is None
    assert next(t.epochs())["density"] == 1.0


@pytest.mark.slow
@pytest.mark.parametrize("density,minimum", [(1.0, 0.60), (0.1, 0.45)])
def test_mnist1d_accuracy(density, minimum):
    # measured once (seed 0, 40 epochs, lr 0.1): dense 0.693, density 0.1 0.542; chance is 0.10
    cfg = TrainConfig(dataset="mnist1d", model="mnist1d_mlp", density=density, epochs=40, lr=0.1, device="cpu")
    final = list(train(cfg))[-1]
    assert final["test_accuracy"] >= minimum
    assert final["density"] == pytest.approx(density, abs=1e-3)


@pytest.mark.parametrize("bad,message", [
    (dict(density=0), r"density: got 0; expected a float in \(0, 1\]"),
    (dict(density=1.5), r"density: got 1.5; expected a float in \(0, 1\]"),
    (dict(criterion="magnitdue"), r"criterion: unknown criterion 'magnitdue'; did you mean 'magnitude'\? \(choices: magnitude, mest"),
    (dict(model="resnet"), r"model: unknown model 'resnet'.*choices: .*resnet56"),
    (dict(growth="rigl"), r"growth: unknown growth 'rigl'.*choices: gradient, random"),
    (dict(scope="layer"), r"scope: got 'layer'; expected one of global, local"),
    (dict(update_period=0), r"update_period: got 0; expected an integer >= 1"),
    (dict(epochs=2.5), r"epochs: got 2.5; expected an integer >= 1"),
    (dict(criterion="mest", criterion_params={"gama": 2}), r"no parameter 'gama'; did you mean 'gamma'"),
    (dict(update_order="after"), r"update_order: got 'after'; expected one of paper, before_step, after_step"),
    (dict(grown_momentum="reset"), r"grown_momentum: got 'reset'; expected one of keep, zero"),
    (dict(optimizer="rmsprop"), r"optimizer: got 'rmsprop'; expected one of sgd, adam, adamw"),
    (dict(betas=(0.9,)), r"betas: got \[0.9\]; expected two numbers in \[0, 1\)"),
    (dict(betas=(0.9, 1.0)), r"betas: got \[0.9, 1.0\]; expected two numbers in \[0, 1\)"),
    (dict(eps=0), r"eps: got 0; expected a finite number > 0"),
    (dict(val_fraction=1.0), r"val_fraction: got 1.0; expected a finite number >= 0 and < 1"),
    (dict(val_fraction=-0.1), r"val_fraction: got -0.1; expected a finite number >= 0"),
])
def test_bad_config(bad, message):
    with pytest.raises(ConfigError, match=message):
        TrainConfig(**bad)


def test_unknown_key_did_you_mean():
    with pytest.raises(ConfigError, match="unknown config key 'densty'; did you mean 'density'"):
        TrainConfig.from_dict({"densty": 0.1})


def test_missing_dataset_folder(tmp_path):
    from dst_core.errors import DatasetNotFoundError
    with pytest.raises(DatasetNotFoundError, match="cifar-10-batches-py"):
        train(TrainConfig(dataset="cifar10", data_root=str(tmp_path / "nowhere")))


def test_a_planted_checkpoint_is_refused_without_running_it(tmp_path):
    import os

    class Planted:
        def __reduce__(self):
            return (os.system, (f"touch {tmp_path / 'pwned'}",))

    cfg = TrainConfig(density=0.5, **dict(FAST, epochs=1))
    list(train(cfg, checkpoint_dir=tmp_path))
    state = checkpoint.load(tmp_path / checkpoint.FILENAME)
    torch.save({**state, "planted": Planted()}, tmp_path / checkpoint.FILENAME)
    with pytest.raises(CheckpointMismatchError, match="refused: it holds something other than tensors"):
        Trainer(cfg, checkpoint_dir=tmp_path)
    assert not (tmp_path / "pwned").exists()


def test_a_diverging_run_fails_instead_of_completing(tmp_path):
    from dst_core.trainer import Diverged
    cfg = TrainConfig(density=0.5, **dict(FAST, epochs=3, lr=1e6))
    # met by the first topology update (step 4) on NaN weights, or else by the epoch's loss
    with pytest.raises(Diverged, match=r"training diverged: (the train loss is (nan|inf) in epoch 1 \(lr 1e\+06\)|"
                                       r"the weights that criterion 'magnitude' scores are not finite; .*step 4\))"):
        list(train(cfg, checkpoint_dir=tmp_path))


@pytest.mark.parametrize("bad,message", [
    (dict(lr=float("nan")), "lr: got nan; expected a finite number > 0"),
    (dict(momentum=float("inf")), "momentum: got inf; expected a finite number >= 0 and <= 1"),
    (dict(weight_decay="abc"), "weight_decay: got 'abc'; expected a finite number >= 0"),
    (dict(nesterov="false"), "nesterov: got 'false'; expected true or false"),
    (dict(lr_milestones=0.5), "lr_milestones: got 0.5; expected a list of fractions in (0, 1)"),
    (dict(criterion="mest", criterion_params={"gamma": "abc"}), "gamma of criterion 'mest': got 'abc'"),
    (dict(criterion="mest", criterion_params={"gamma": float("nan")}), "expected a finite number"),
    (dict(erk_power="x" * 10_000), "erk_power: got 'xxxxxxxx"),
    (dict(device="cuda0"), "device: got 'cuda0'; expected auto, cpu, cuda or cuda:N"),
    (dict(device="gpu"), "device: got 'gpu'"),
    (dict(seed=2**70), "seed: got 1180591620717411303424; expected an integer >= 0 and <= 9223372036854775807"),
])
def test_wrong_types_and_non_finite_values_are_refused(bad, message):
    with pytest.raises(ConfigError) as info:
        TrainConfig(**bad)
    assert message in str(info.value) and len(str(info.value)) < 300


def test_yaml_style_numbers_in_strings_are_the_numbers_meant():
    cfg = TrainConfig(lr="5e-2", density="1e-1", weight_decay="5E-4")
    assert (cfg.lr, cfg.density, cfg.weight_decay) == (0.05, 0.1, 0.0005)


def test_a_density_that_leaves_a_layer_without_weights_is_refused():
    # MNIST-1D MLP under uniform: the 256x10 output layer gets round(2560 d) weights: none below 1/5120
    with pytest.raises(ConfigError, match=r"density: got 0.0001; under uniform layer .* would get no active "
                                          r"weight .*; expected at least 0.000195"):
        Trainer(TrainConfig(density=1e-4, init="uniform", **FAST))


@pytest.mark.parametrize("changes,message", [
    (dict(update_period=10_000), "no topology update will happen, the run is static"),
    (dict(drop_fraction=0.0, schedule="constant"), "drop_fraction 0: every topology update removes nothing"),
])
def test_settings_under_which_nothing_updates_are_warned_about(changes, message):
    from dst_core.errors import DstWarning
    with pytest.warns(DstWarning, match=message):
        Trainer(TrainConfig(density=0.1, **dict(FAST, **changes)))


def test_a_checkpoint_of_another_algorithm_revision_is_not_resumed(tmp_path):
    from dst_core.errors import DstWarning
    cfg = TrainConfig(density=0.5, **dict(FAST, epochs=2))
    for _ in train(cfg, checkpoint_dir=tmp_path):
        break  # a checkpoint at epoch 1
    state = checkpoint.load(tmp_path / checkpoint.FILENAME)
    assert state["algorithm_revision"] == 2
    del state["algorithm_revision"]  # as revision 1 wrote them
    checkpoint.save(tmp_path / checkpoint.FILENAME, state)
    with pytest.warns(DstWarning, match="written by algorithm revision 1, not 2: the run starts over"):
        t = Trainer(cfg, checkpoint_dir=tmp_path)
    assert t.resumed_from is None and t.epoch == 0


def test_a_checkpoint_of_other_plugin_code_is_not_resumed(tmp_path):
    from dst_core.errors import DstWarning
    cfg = TrainConfig(density=0.5, **dict(FAST, epochs=2))
    for _ in Trainer(cfg, checkpoint_dir=tmp_path, plugin_sources={"mine": "a" * 64}).epochs():
        break  # a checkpoint at epoch 1, made by the plugin's source "aaa…"
    assert checkpoint.load(tmp_path / checkpoint.FILENAME)["plugin_sources"] == {"mine": "a" * 64}
    same = Trainer(cfg, checkpoint_dir=tmp_path, plugin_sources={"mine": "a" * 64})
    assert same.resumed_from == 1 and same.started_over is None
    for sources, why in (({"mine": "b" * 64}, r"plugin mine \(mine aaaaaaaaaaaa, now mine bbbbbbbbbbbb\)"),
                         ({}, r"plugin mine \(mine aaaaaaaaaaaa, now no mine\)"),
                         ({"mine": "a" * 64, "other": "c" * 64}, r"plugin other \(no other, now other cccccccccccc\)")):
        with pytest.warns(DstWarning, match=f"was made by other source code of {why}: the run starts over"):
            t = Trainer(cfg, checkpoint_dir=tmp_path, plugin_sources=sources)
        assert t.resumed_from is None and t.epoch == 0 and t.started_over


def test_optimizer_is_built_from_the_config():
    t = Trainer(TrainConfig(density=0.1, optimizer="AdamW", betas=[0.8, 0.99], eps=1e-6, weight_decay=0.01, **FAST))
    assert t.config.optimizer == "adamw" and t.config.betas == (0.8, 0.99)
    assert type(t.optimizer) is torch.optim.AdamW
    group = t.optimizer.param_groups[0]
    assert group["betas"] == (0.8, 0.99) and group["eps"] == 1e-6 and group["weight_decay"] == 0.01
    assert type(Trainer(TrainConfig(density=1.0, optimizer="adam", **FAST)).optimizer) is torch.optim.Adam
    assert type(Trainer(TrainConfig(density=1.0, **FAST)).optimizer) is torch.optim.SGD
