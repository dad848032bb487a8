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


@pytest.fixture
def forget_plugins(monkeypatch):
    """What a test's plugins register or import is forgotten after it (other tests list or build
    every registry entry): the registries, the imported plugin modules and sys.path are restored."""
    import sys

    import dst_core
    from study import plugins

    registries = [getattr(dst_core, name) for name in plugins.REGISTRY_FIELDS.values()]
    saved = [dict(r._entries) for r in registries]
    modules, loaded, helpers = set(sys.modules), dict(plugins._LOADED), dict(plugins._HELPERS)
    monkeypatch.setattr(sys, "path", list(sys.path))
    yield
    for registry, entries in zip(registries, saved):
        registry._entries = entries
    for name in set(plugins._LOADED) - set(loaded):
        for module in (name, *plugins._HELPERS.get(name, ())):
            sys.modules.pop(module, None)
    plugins._LOADED.clear()
    plugins._LOADED.update(loaded)
    plugins._HELPERS.clear()
    plugins._HELPERS.update(helpers)
