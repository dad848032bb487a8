"""Datasets: offline ones load correctly and reproducibly; file-based ones read the real on-disk
formats (tiny fake files written here) and fail with one clear message when files are missing."""

from __future__ import annotations

import gzip
import importlib
import pickle
import pkgutil
import random
import struct
from pathlib import Path

import numpy as np
import pytest
import torch

import dst_core.data as data_pkg
import dst_core.data.higgs as higgs_mod
import dst_core.data.mnist1d as mnist1d_mod
from dst_core.data import DATASETS, DataBundle, load_dataset
from dst_core.errors import ConfigError, DatasetNotFoundError, UnknownNameError
from dst_core.models import MODELS


@pytest.fixture
def fresh_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    cache = tmp_path / "cache"
    monkeypatch.setenv("DST_STUDY_CACHE", str(cache))
    mnist1d_mod.clear_memory_cache()
    yield cache
    mnist1d_mod.clear_memory_cache()


def check_bundle(b: DataBundle, shape: tuple[int, ...], n_train: int, n_test: int, classes: int) -> None:
    assert b.input_shape == shape
    assert b.train_x.shape == (n_train, *shape) and b.test_x.shape == (n_test, *shape)
    assert b.train_x.dtype == b.test_x.dtype == torch.float32
    assert b.train_y.dtype == b.test_y.dtype == torch.int64
    assert b.train_y.shape == (n_train,) and b.test_y.shape == (n_test,)
    assert b.num_classes == classes
    assert int(b.train_y.min()) >= 0 and int(b.train_y.max()) < classes


# ---------------------------------------------------------------- registry


def test_every_data_module_registers_a_dataset() -> None:
    registered = {e.obj.__module__ for e in DATASETS}
    for info in pkgutil.iter_modules(data_pkg.__path__):
        mod = importlib.import_module(f"dst_core.data.{info.name}")
        assert mod.__name__ in registered, f"{mod.__name__} registers no dataset (missing import in __init__?)"


def test_registry_meta() -> None:
    assert set(DATASETS.names()) == {"mnist1d", "digits", "cifar10", "cifar100", "fashion_mnist", "higgs"}
    for e in DATASETS:
        assert isinstance(e.meta["needs_root"], bool)
        assert e.meta["description"] and "\n" not in e.meta["description"]
        assert e.meta["default_model"] in MODELS
    assert not DATASETS.get("mnist1d").needs_root and DATASETS.get("cifar10").needs_root


def test_unknown_dataset() -> None:
    with pytest.raises(UnknownNameError, match="mnist1d"):
        load_dataset("mnist2d")


# ---------------------------------------------------------------- mnist1d / digits


def test_mnist1d_shapes_determinism_and_rng(fresh_cache: Path) -> None:
    np.random.seed(123)
    random.seed(123)
    np_before, py_before = np.random.get_state(), random.getstate()

    a = load_dataset("mnist1d")  # generates (the cache dir is empty)
    np_after = np.random.get_state()
    assert np_after[0] == np_before[0] and np.array_equal(np_after[1], np_before[1])
    assert np_after[2:] == np_before[2:]
    assert random.getstate() == py_before

    check_bundle(a, (40,), 4000, 1000, 10)
    assert a.augment is None
    assert set(a.train_y.unique().tolist()) == set(range(10))
    assert (fresh_cache / mnist1d_mod.CACHE_FILE).is_file()

    b = load_dataset("mnist1d")  # in-process cache; fresh tensors
    assert torch.equal(a.train_x, b.train_x) and torch.equal(a.test_y, b.test_y)
    assert a.train_x is not b.train_x


def test_mnist1d_reads_the_cache_file(fresh_cache: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    a = load_dataset("mnist1d")
    mnist1d_mod.clear_memory_cache()

    def boom() -> None:
        raise AssertionError("regenerated although the cache file exists")

    monkeypatch.setattr(mnist1d_mod, "generate", boom)
    b = load_dataset("mnist1d")
    assert torch.equal(a.train_x, b.train_x) and torch.equal(a.train_y, b.train_y)
    assert torch.equal(a.test_x, b.test_x) and torch.equal(a.test_y, b.test_y)
    assert not list(fresh_cache.glob("*.tmp"))  # atomic write leaves no temp file


def test_digits() -> None:
    b = load_dataset("digits")
    check_bundle(b, (64,), 1437, 360, 10)
    assert abs(float(b.train_x.mean())) < 1e-3
    assert torch.equal(load_dataset("digits").test_y, b.test_y)  # fixed split


# ---------------------------------------------------------------- cifar


def write_cifar10(root: Path, n: int = 4) -> None:
    base = root / "cifar-10-batches-py"
    base.mkdir(parents=True)
    rng = np.random.default_rng(0)
    for i, name in enumerate([f"data_batch_{k}" for k in range(1, 6)] + ["test_batch"]):
        d = {b"data": rng.integers(0, 256, (n, 3072), dtype=np.uint8), b"labels": [(i + j) % 10 for j in range(n)]}
        with open(base / name, "wb") as f:
            pickle.dump(d, f)


def test_cifar10_loads_fake_batches(tmp_path: Path) -> None:
    write_cifar10(tmp_path)
    b = load_dataset("cifar10", tmp_path)
    check_bundle(b, (3, 32, 32), 20, 4, 10)
    assert b.train_y[:4].tolist() == [0, 1, 2, 3] and b.test_y.tolist() == [5, 6, 7, 8]
    # first pixel of image 0 round-trips through the normalisation
    with open(tmp_path / "cifar-10-batches-py" / "data_batch_1", "rb") as f:
        raw = pickle.load(f)[b"data"]
    expected = (raw[0, 0] / 255.0 - 0.4914) / 0.2023  # the paper code's std
    assert float(b.train_x[0, 0, 0, 0]) == pytest.approx(expected, abs=1e-5)


def test_cifar100_loads_fake_files(tmp_path: Path) -> None:
    base = tmp_path / "cifar-100-python"
    base.mkdir()
    for name, n in [("train", 6), ("test", 3)]:
        d = {b"data": np.zeros((n, 3072), dtype=np.uint8), b"fine_labels": list(range(90, 90 + n)), b"coarse_labels": [0] * n}
        with open(base / name, "wb") as f:
            pickle.dump(d, f)
    b = load_dataset("cifar100", str(tmp_path))
    check_bundle(b, (3, 32, 32), 6, 3, 100)
    assert b.test_y.tolist() == [90, 91, 92]


def test_cifar_missing_folder_message(tmp_path: Path) -> None:
    with pytest.raises(DatasetNotFoundError) as err:
        load_dataset("cifar10", tmp_path)
    msg = str(err.value)
    assert "cifar10" in msg and str(tmp_path) in msg
    assert "cifar-10-batches-py" in msg and "data_batch_1..5" in msg and "test_batch" in msg
    assert "cifar-10-python.tar.gz" in msg
    with pytest.raises(DatasetNotFoundError, match="root is None"):
        load_dataset("cifar100", None)


def test_cifar_augment_is_deterministic_and_keeps_shapes(tmp_path: Path) -> None:
    write_cifar10(tmp_path, n=8)
    b = load_dataset("cifar10", tmp_path)
    assert b.augment is not None
    x = b.train_x[:16]
    out1 = b.augment(x, torch.Generator().manual_seed(7))
    out2 = b.augment(x, torch.Generator().manual_seed(7))
    out3 = b.augment(x, torch.Generator().manual_seed(8))
    assert out1.shape == x.shape and out1.dtype == x.dtype
    assert torch.equal(out1, out2) and not torch.equal(out1, out3)
    assert torch.equal(x, b.train_x[:16])  # input untouched


def test_crop_flip_semantics() -> None:
    from dst_core.data.cifar import CropFlip

    x = torch.arange(2 * 1 * 4 * 4, dtype=torch.float32).reshape(2, 1, 4, 4)
    aug = CropFlip(fill=(-1.0,), pad=0)  # no padding: only flips
    out = aug(x, torch.Generator().manual_seed(0))
    for i in range(2):
        assert torch.equal(out[i], x[i]) or torch.equal(out[i], x[i].flip(-1))
    # with padding every output pixel is either an input pixel or the fill value
    out = CropFlip(fill=(-1.0,), pad=2)(x, torch.Generator().manual_seed(1))
    values = set(x.flatten().tolist()) | {-1.0}
    assert set(out.flatten().tolist()) <= values


# ---------------------------------------------------------------- fashion-mnist


def idx_bytes(a: np.ndarray) -> bytes:
    header = bytes([0, 0, 0x08, a.ndim]) + struct.pack(f">{a.ndim}I", *a.shape)
    return header + a.astype(np.uint8).tobytes()


@pytest.mark.parametrize("layout, gz", [("fashion_mnist", True), ("FashionMNIST/raw", False)])
def test_fashion_mnist_loads_idx_files(tmp_path: Path, layout: str, gz: bool) -> None:
    base = tmp_path / layout
    base.mkdir(parents=True)
    rng = np.random.default_rng(0)
    files = {
        "train-images-idx3-ubyte": rng.integers(0, 256, (5, 28, 28)),
        "train-labels-idx1-ubyte": np.array([9, 0, 1, 2, 3]),
        "t10k-images-idx3-ubyte": rng.integers(0, 256, (2, 28, 28)),
        "t10k-labels-idx1-ubyte": np.array([4, 5]),
    }
    for name, a in files.items():
        if gz:
            with gzip.open(base / (name + ".gz"), "wb") as f:
                f.write(idx_bytes(a))
        else:
            (base / name).write_bytes(idx_bytes(a))
    b = load_dataset("fashion_mnist", tmp_path)
    check_bundle(b, (1, 28, 28), 5, 2, 10)
    assert b.train_y.tolist() == [9, 0, 1, 2, 3] and b.test_y.tolist() == [4, 5]
    expected = (files["t10k-images-idx3-ubyte"][1, 3, 7] / 255.0 - 0.2860) / 0.3530
    assert float(b.test_x[1, 0, 3, 7]) == pytest.approx(expected, abs=1e-5)


def test_fashion_mnist_missing_message(tmp_path: Path) -> None:
    with pytest.raises(DatasetNotFoundError) as err:
        load_dataset("fashion_mnist", tmp_path / "nowhere")
    msg = str(err.value)
    assert str(tmp_path / "nowhere") in msg and "train-images-idx3-ubyte" in msg and "t10k-labels-idx1-ubyte" in msg


# ---------------------------------------------------------------- higgs


def write_higgs_csv(path: Path, n: int) -> np.ndarray:
    rng = np.random.default_rng(0)
    rows = np.concatenate([(np.arange(n) % 2)[:, None].astype(float), rng.normal(size=(n, 28))], axis=1)
    text = "".join(",".join(f"{v:.18e}" for v in r) + "\n" for r in rows)
    if path.suffix == ".gz":
        with gzip.open(path, "wt") as f:
            f.write(text)
    else:
        path.write_text(text)
    return rows


@pytest.mark.parametrize("filename", ["HIGGS.csv.gz", "HIGGS.csv"])
def test_higgs_csv_split_and_standardisation(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, filename: str) -> None:
    monkeypatch.setattr(higgs_mod, "TEST_ROWS", 5)
    monkeypatch.setattr(higgs_mod, "CHUNK_ROWS", 7)  # exercise chunked reading
    rows = write_higgs_csv(tmp_path / filename, 25)
    b = load_dataset("higgs", tmp_path)
    check_bundle(b, (28,), 20, 5, 2)
    assert b.train_y.tolist() == (np.arange(20) % 2).tolist()
    assert b.test_y.tolist() == (np.arange(20, 25) % 2).tolist()  # the LAST rows are the test set
    assert torch.allclose(b.train_x.mean(0), torch.zeros(28), atol=1e-5)
    assert torch.allclose(b.train_x.std(0, unbiased=False), torch.ones(28), atol=1e-4)
    mean, std = rows[:20, 1:].mean(0), rows[:20, 1:].std(0)
    assert b.test_x.numpy() == pytest.approx((rows[20:, 1:] - mean) / std, abs=1e-4)


def test_higgs_npz_preferred(tmp_path: Path) -> None:
    rng = np.random.default_rng(1)
    np.savez(
        tmp_path / "higgs.npz",
        x_train=rng.normal(size=(12, 28)), y_train=np.array([0.0, 1.0] * 6),
        x_test=rng.normal(size=(4, 28)), y_test=np.array([1, 1, 0, 0]),
    )
    (tmp_path / "HIGGS.csv").write_text("garbage\n")  # must not be read
    b = load_dataset("higgs", tmp_path)
    check_bundle(b, (28,), 12, 4, 2)
    assert b.test_y.tolist() == [1, 1, 0, 0]


def test_higgs_too_short_and_missing(tmp_path: Path) -> None:
    write_higgs_csv(tmp_path / "HIGGS.csv", 10)  # fewer rows than the 500k test split
    with pytest.raises(DatasetNotFoundError, match="too short"):
        load_dataset("higgs", tmp_path)
    with pytest.raises(DatasetNotFoundError) as err:
        load_dataset("higgs", tmp_path / "empty")
    msg = str(err.value)
    assert str(tmp_path / "empty") in msg and "HIGGS.csv.gz" in msg and "higgs.npz" in msg


def test_crop_flip_reflect_padding_is_a_crop_of_the_reflected_image() -> None:
    from dst_core.data.cifar import CropFlip

    x = torch.randn(6, 2, 5, 5)
    p = 2
    out = CropFlip(fill=None, pad=p)(x, torch.Generator().manual_seed(3))
    padded = torch.nn.functional.pad(x, (p, p, p, p), mode="reflect")
    for i in range(len(x)):
        crops = [padded[i, :, dy:dy + 5, dx:dx + 5] for dy in range(2 * p + 1) for dx in range(2 * p + 1)]
        candidates = crops + [c.flip(-1) for c in crops]
        assert any(torch.equal(out[i], c) for c in candidates)


def test_cifar10_pads_by_reflection_cifar100_with_black(tmp_path: Path) -> None:
    write_cifar10(tmp_path)
    assert load_dataset("cifar10", tmp_path).augment.fill is None
    from dst_core.data.cifar import CIFAR100_MEAN, CIFAR100_STD
    base = tmp_path / "cifar-100-python"
    base.mkdir()
    for name in ("train", "test"):
        with open(base / name, "wb") as f:
            pickle.dump({b"data": np.zeros((2, 3072), dtype=np.uint8), b"fine_labels": [0, 1]}, f)
    fill = load_dataset("cifar100", tmp_path).augment.fill
    assert fill == pytest.approx(tuple(-m / s for m, s in zip(CIFAR100_MEAN, CIFAR100_STD)))


def test_validation_split_is_the_last_images_of_the_training_set(tmp_path: Path) -> None:
    from dst_core.trainer import Trainer, n_kept_for_training

    assert n_kept_for_training(50_000, 0.1) == 45_000  # the paper's CIFAR split
    assert n_kept_for_training(4000, 0.1) == 3600 and n_kept_for_training(4000, 0.0) == 4000
    write_cifar10(tmp_path, n=10)  # 50 training images
    b = load_dataset("cifar10", tmp_path)
    cfg = dict(dataset="cifar10", data_root=str(tmp_path), epochs=2, batch_size=16, device="cpu", density=0.05)
    t = Trainer(dict(cfg, val_fraction=0.1))
    assert torch.equal(t.train_set.x, b.train_x[:45]) and torch.equal(t.val_set.x, b.train_x[45:])
    assert torch.equal(t.val_set.y, b.train_y[45:]) and t.steps_per_epoch == 3
    history = list(t.epochs())
    assert all(m["val_accuracy"] in {i / 5 for i in range(6)} for m in history)
    assert len(Trainer(dict(cfg, val_fraction=0.0)).val_set) == 0
    with pytest.raises(ConfigError, match="val_fraction: 1e-09 of 50 training examples leaves 50 .* and 0"):
        Trainer(dict(cfg, val_fraction=1e-9))  # nothing left to validate on


class _Planted:
    """Unpickling this runs a shell command: what a hostile writer of a shared folder would plant."""

    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        import os
        return (os.system, (f"touch {self.marker}",))


def test_a_planted_cifar_pickle_is_refused_without_running_it(tmp_path: Path) -> None:
    write_cifar10(tmp_path)
    marker = tmp_path / "pwned"
    with open(tmp_path / "cifar-10-batches-py" / "data_batch_3", "wb") as f:
        pickle.dump({b"data": _Planted(marker), b"labels": [0]}, f)
    with pytest.raises(DatasetNotFoundError, match=r"data_batch_3: not a CIFAR \"python version\" pickle .*"
                                                   r"posix.system is not part of the CIFAR format"):
        load_dataset("cifar10", tmp_path)
    assert not marker.exists()


@pytest.mark.parametrize("name", ["mnist1d", "digits"])
def test_registered_shape_and_classes_are_what_the_loader_yields(name: str) -> None:
    meta = DATASETS.get(name).meta
    b = load_dataset(name)
    assert b.input_shape == meta["input_shape"] and b.num_classes == meta["num_classes"]
    assert all("input_shape" in d.meta and "num_classes" in d.meta for d in DATASETS)
