"""The CUDA path: the same selections as on the CPU, bit-exact resume, a trial end to end.

Skipped without CUDA; ``bench/gpu_check.sh`` runs them on a machine with a GPU.
"""

import pytest
import torch

from dst_core import TrainConfig, Trainer, select_prune, train
from dst_core.criteria import CRITERIA
from dst_core.masks import top_indices

pytestmark = [pytest.mark.gpu, pytest.mark.skipif(not torch.cuda.is_available(),
                                                  reason="needs CUDA: run bench/gpu_check.sh where a GPU is")]

FAST = dict(epochs=3, batch_size=256, update_period=4, lr=0.1)


@pytest.mark.parametrize("name", [c for c in CRITERIA.names() if c != "random"])
def test_criteria_select_the_same_positions_on_cuda(name):
    torch.manual_seed(0)
    w, g, mask = torch.randn(64, 300), torch.randn(64, 300), torch.rand(64, 300) < 0.3
    on_cpu = select_prune(name, w, g, mask, 500)
    on_gpu = select_prune(name, w.cuda(), g.cuda(), mask.cuda(), 500)
    assert torch.equal(on_cpu, on_gpu.cpu())


def test_top_k_is_the_same_on_cuda_ties_included():
    values = torch.randint(0, 50, (200_000,)).float()  # many ties
    assert torch.equal(top_indices(values, 3000), top_indices(values.cuda(), 3000).cpu())


def test_resume_on_cuda_is_bit_identical(tmp_path):
    cfg = TrainConfig(density=0.1, criterion="snip", growth="gradient", device="cuda", **FAST)
    full = list(Trainer(cfg).epochs())
    part = []
    for m in train(cfg, checkpoint_dir=tmp_path):
        part.append(m)
        if m["epoch"] == 1:
            break
    resumed = Trainer(cfg, checkpoint_dir=tmp_path)
    rest = list(resumed.epochs())
    strip = lambda h: [{k: v for k, v in m.items() if not k.endswith("seconds")} for m in h]  # noqa: E731
    assert strip(part + rest) == strip(full)


def test_a_trial_on_cuda_end_to_end():
    t = Trainer(TrainConfig(density=0.05, device="cuda", **FAST))
    history = list(t.epochs())
    assert t.device.type == "cuda" and all(p.is_cuda for p in t.model.parameters())
    assert history[-1]["density"] == pytest.approx(0.05, abs=1e-3) and history[-1]["test_accuracy"] > 0.1


def test_datasets_on_cuda_are_pinned_and_train_as_the_tensors(forget_plugins):
    import dst_core
    from torch.utils.data import TensorDataset
    from dst_core.data import DataBundle, load_dataset

    base = load_dataset("mnist1d")
    dst_core.register_dataset("t_cuda_datasets", needs_root=False, description="t", default_model="mnist1d_mlp",
                              input_shape=(40,), num_classes=10)(lambda root: DataBundle(
                                  "t", num_classes=10, train=TensorDataset(base.train_x, base.train_y),
                                  test=TensorDataset(base.test_x, base.test_y)))
    cfg = dict(density=0.1, device="cuda", **FAST)
    tensors, datasets = Trainer(cfg), Trainer(dict(cfg, dataset="t_cuda_datasets", num_workers=2))
    assert datasets.train_set.reader.loader.pin_memory
    strip = lambda h: [{k: v for k, v in m.items() if not k.endswith("seconds")} for m in h]  # noqa: E731
    assert strip(tensors.epochs()) == strip(datasets.epochs())


def test_a_model_moved_to_cuda_after_attach_is_an_error_naming_the_fix():
    from torch import nn

    from dst_core import attach
    from dst_core.errors import DstError

    model = nn.Sequential(nn.Linear(12, 32), nn.ReLU(), nn.Linear(32, 3))
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    attach(model, optimizer, total_steps=10, density=0.3)
    model.cuda()
    model(torch.randn(4, 12, device="cuda")).sum().backward()
    with pytest.raises(DstError, match=r"weight 0.weight is on cuda:0 but its mask on cpu: the model moved after attach"):
        optimizer.step()
