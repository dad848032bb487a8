"""A data set given as torch Datasets trains as one given as tensors: the same validation split, the
same seeded order, the same augmentation, bit-identical weights; its resume from the middle of an
epoch is bit-identical, and so is randomness drawn inside the Dataset, with or without workers."""

import pytest
import torch
from torch.utils.data import Dataset, IterableDataset, TensorDataset

import dst_core
from dst_core import checkpoint
from dst_core.data import DataBundle, load_dataset
from dst_core.errors import ConfigError
from dst_core.topology import derive_generator
from dst_core.trainer import _DATA_ORDER, Interrupted, Trainer, train

FAST = dict(epochs=2, batch_size=64, update_period=4, lr=0.1, density=0.1, criterion="snip", growth="gradient",
            device="cpu")  # 540 training examples: 9 batches an epoch, the last one of 28
TIMING = ("epoch_seconds", "update_seconds")


def _strip(history):
    return [{k: v for k, v in m.items() if k not in TIMING} for m in history]


def _noise(x: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    """A per-batch augmentation, drawn only from the trainer's generator."""
    return x + 0.1 * torch.randn(x.shape, generator=generator, device=generator.device)


class Noisy(Dataset):
    """Randomness inside ``__getitem__`` from the global generator, as torchvision's transforms draw."""

    def __init__(self, x, y):
        self.x, self.y = x, y

    def __len__(self):
        return len(self.y)

    def __getitem__(self, i):
        return self.x[i] + 0.1 * torch.randn(self.x.shape[1:]), int(self.y[i])


def _tensors():
    base = load_dataset("mnist1d")
    return base.train_x[:600], base.train_y[:600], base.test_x[:200], base.test_y[:200]


def _register(name, make):
    """Register ``make(x, y, test_x, test_y) -> DataBundle`` over the first 600/200 MNIST-1D examples."""
    x, y, tx, ty = _tensors()
    dst_core.register_dataset(name, needs_root=False, description="test data", default_model="mnist1d_mlp",
                              input_shape=(40,), num_classes=10)(lambda root: make(x, y, tx, ty))
    return name


@pytest.fixture
def tensors_and_datasets(forget_plugins):
    """Two data sets of the same examples and augmentation: one of tensors, one of Datasets."""
    return (_register("t_tensors", lambda x, y, tx, ty: DataBundle("t", x, y, tx, ty, num_classes=10,
                                                                   augment=_noise)),
            _register("t_datasets", lambda x, y, tx, ty: DataBundle(
                "t", num_classes=10, train=TensorDataset(x, y), test=TensorDataset(tx, ty), augment=_noise)))


@pytest.fixture
def noisy(forget_plugins):
    return _register("t_noisy", lambda x, y, tx, ty: DataBundle("t", num_classes=10, train=Noisy(x, y),
                                                                test=Noisy(tx, ty), augment=_noise))


def _same_weights(a: Trainer, b: Trainer) -> None:
    for name, value in a.model.state_dict().items():
        assert torch.equal(value, b.model.state_dict()[name]), name


@pytest.mark.parametrize("workers", [0, 2])
def test_datasets_of_the_same_tensors_train_bit_identically_to_the_tensors(tensors_and_datasets, workers):
    in_memory, datasets = tensors_and_datasets
    a = Trainer(dict(FAST, dataset=in_memory))
    b = Trainer(dict(FAST, dataset=datasets, num_workers=workers))
    sizes = lambda t: (t.steps_per_epoch, len(t.val_set), len(t.test_set))  # noqa: E731
    assert sizes(a) == sizes(b) == (9, 60, 200)
    history = list(a.epochs())
    assert _strip(history) == _strip(list(b.epochs()))
    assert history[-1]["n_updates"] > 0 and history[-1]["val_accuracy"] is not None
    _same_weights(a, b)
    assert all(torch.equal(a.masks[n], b.masks[n]) for n in a.masks)


@pytest.mark.parametrize("workers", [0, 2])
def test_interrupt_mid_epoch_then_resume_is_bit_identical_on_the_dataset_path(noisy, tmp_path, workers):
    cfg = dict(FAST, dataset=noisy, num_workers=workers)
    full = Trainer(cfg)
    full_history = list(full.epochs())
    calls = {"n": 0}

    def stop_after_13_batches():
        calls["n"] += 1
        return calls["n"] > 13  # 9 batches per epoch: stops inside epoch 2

    with pytest.raises(Interrupted):
        list(train(cfg, checkpoint_dir=tmp_path, should_stop=stop_after_13_batches))
    assert checkpoint.load(tmp_path / checkpoint.FILENAME)["position"] == {"epoch": 1, "batch": 4, "step": 13}
    resumed = Trainer(cfg, checkpoint_dir=tmp_path)
    list(resumed.epochs())
    assert _strip(resumed.history) == _strip(full_history)
    _same_weights(full, resumed)


def test_randomness_inside_a_dataset_is_seeded_whatever_the_workers(noisy):
    runs = {}
    for workers in (0, 2):
        t = Trainer(dict(FAST, dataset=noisy, num_workers=workers, epochs=1))
        before = torch.get_rng_state()
        runs[workers] = list(t.epochs()), t
        assert torch.equal(torch.get_rng_state(), before)  # the reads leave the global generator alone
    assert _strip(runs[0][0]) == _strip(runs[2][0])
    _same_weights(runs[0][1], runs[2][1])
    # the noise is drawn: the same examples without it train otherwise
    x, y, tx, ty = _tensors()
    _register("t_plain", lambda *a: DataBundle("t", x, y, tx, ty, num_classes=10, augment=_noise))
    plain = Trainer(dict(FAST, dataset="t_plain", epochs=1))
    list(plain.epochs())
    noisy_weights = runs[0][1].model.state_dict()
    assert any(not torch.equal(v, noisy_weights[k]) for k, v in plain.model.state_dict().items())


def test_validation_split_is_the_last_examples_of_the_training_dataset(tensors_and_datasets):
    x, y, _, _ = _tensors()
    t = Trainer(dict(FAST, dataset=tensors_and_datasets[1]))
    assert t.train_set.indices == range(540) and t.val_set.indices == range(540, 600)
    seeds = lambda b: b  # noqa: E731
    val = list(t.val_set.batches(16, seeds))
    assert [len(b[1]) for b in val] == [16, 16, 16, 12]  # in stored order, in eval batches
    assert torch.equal(torch.cat([b[0] for b in val]), x[540:]) and torch.equal(torch.cat([b[1] for b in val]), y[540:])
    assert len(Trainer(dict(FAST, dataset=tensors_and_datasets[1], val_fraction=0.0)).val_set) == 0


def test_each_epoch_reads_its_seeded_permutation(forget_plugins):
    n = 600
    ids = torch.arange(n, dtype=torch.float32)[:, None].expand(n, 40).contiguous()  # x says which example
    _register("t_ids", lambda x, y, tx, ty: DataBundle("t", num_classes=10, train=TensorDataset(ids, y),
                                                        test=TensorDataset(tx, ty)))

    t = Trainer(dict(FAST, dataset="t_ids", seed=3, num_workers=2, lr=1e-6))
    seen, step = [], t._train_step
    t._train_step = lambda x, y: (seen.append(x[:, 0].long()), step(x, y))
    list(t.epochs())
    epochs = torch.cat(seen).view(2, 540)
    for e in range(2):  # the trainer's permutation of the first 540 examples, from (seed, epoch)
        assert torch.equal(epochs[e], torch.randperm(540, generator=derive_generator(3, e, _DATA_ORDER)))
    assert not torch.equal(epochs[0], epochs[1])
    assert not torch.equal(epochs[0], torch.randperm(540, generator=derive_generator(4, 0, _DATA_ORDER)))


def test_a_bundle_holds_tensors_or_datasets_and_checks_their_first_item():
    x, y = torch.zeros(5, 3), torch.arange(5)
    b = DataBundle("d", num_classes=5, train=TensorDataset(x, y), test=TensorDataset(x[:2], y[:2]))
    assert b.input_shape == (3,) and b.train_size == 5 and b.train_x is None
    assert DataBundle("d", x, y, x, y, num_classes=5).input_shape == (3,)
    cases = [
        (dict(train_x=x, train_y=y, test_x=x, test_y=y, train=TensorDataset(x, y)), "got train_x, .*, train; expected"),
        (dict(train=TensorDataset(x, y)), "got train; expected either"),
        (dict(train=TensorDataset(x.double(), y), test=TensorDataset(x, y)),
         r"bad train split: item 0 is x Tensor torch.float64, y Tensor torch.int64; expected \(x, y\)"),
        (dict(train=TensorDataset(x, y.float()), test=TensorDataset(x, y)), "y Tensor torch.float32"),
        (dict(train=TensorDataset(x, y), test=TensorDataset(x[:, :2], y)), r"differ: got \(3,\) and \(2,\)"),
        (dict(train=TensorDataset(x[:0], y[:0]), test=TensorDataset(x, y)), "got an empty Dataset"),
        (dict(train=_Stream(), test=TensorDataset(x, y)), "got a _Stream; expected a map-style Dataset"),
    ]
    for fields, message in cases:
        with pytest.raises(ConfigError, match=message):
            DataBundle("d", num_classes=5, **fields)


class _Stream(IterableDataset):
    def __iter__(self):
        yield torch.zeros(3), 0


def test_pinned_memory_only_for_cuda(tensors_and_datasets):
    t = Trainer(dict(FAST, dataset=tensors_and_datasets[1], num_workers=2))
    assert t.train_set.reader.loader.pin_memory is False and t.train_set.reader.loader.num_workers == 2
    assert t.test_set.reader is t.train_set.reader  # one pool of workers for every split


def test_a_data_set_of_datasets_passes_the_spec_checks(tensors_and_datasets, tmp_path):
    from study.spec import SpecError, parse

    spec = {"name": "s", "storage": str(tmp_path), "base": {"epochs": 1, "dataset": "t_datasets"},
            "grid": {"density": [0.1], "seed": [0]}}
    assert parse(spec).trials()[0].config.dataset == "t_datasets"
    with pytest.raises(SpecError, match="model: dataset 't_datasets': model 'lenet5' expects image input"):
        parse({**spec, "base": {"epochs": 1, "dataset": "t_datasets", "model": "lenet5"}})
