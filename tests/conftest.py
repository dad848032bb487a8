import pytest
import torch
from torch import nn


@pytest.fixture(autouse=True)
def _deterministic_threads():
    # the same thread count in every test keeps float reductions repeatable
    torch.set_num_threads(2)


@pytest.fixture
def tiny_mlp():
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(12, 16), nn.ReLU(), nn.Linear(16, 8), nn.ReLU(), nn.Linear(8, 3))


@pytest.fixture(autouse=True)
def _cache_dir(tmp_path_factory, monkeypatch):
    # one MNIST-1D cache for the whole session, never the user's home
    monkeypatch.setenv("DST_STUDY_CACHE", str(tmp_path_factory.getbasetemp() / "cache"))
