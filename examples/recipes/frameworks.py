"""`dst_core.attach` under PyTorch Lightning (automatic and manual optimization) and the HuggingFace
`Trainer`: each recipe of README's "DST in a framework's loop", run against the plain loop on the same
model, batches and optimizer; the weights and masks must come out bit for bit the same.

    pip install lightning transformers   # not dependencies of dst-study; only these recipes need them
    python examples/recipes/frameworks.py

SNIP with gradient growth updates *before* the optimizer step, on the gradients of the step's own
batch: Lightning's automatic optimization computes them inside `optimizer.step(closure)`, which is
where a wrong recipe would score the previous batch's.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from dst_core import attach, build_model, load_dataset

BATCH, STEPS, SETTINGS = 64, 24, dict(density=0.1, criterion="snip", growth="gradient", update_period=5)


def setup():
    """The model (seeded), its optimizer and the first STEPS batches of MNIST-1D, in order."""
    data = load_dataset("mnist1d")
    torch.manual_seed(0)
    model = build_model("mnist1d_mlp", data.input_shape, data.num_classes)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9)
    x, y = data.train_x[:BATCH * STEPS], data.train_y[:BATCH * STEPS]
    return model, optimizer, x, y


def plain_loop():
    model, optimizer, x, y = setup()
    sparse = attach(model, optimizer, total_steps=STEPS, **SETTINGS)
    for xb, yb in zip(x.split(BATCH), y.split(BATCH)):
        optimizer.zero_grad()
        F.cross_entropy(model(xb), yb).backward()
        optimizer.step()
        sparse.step()
    return model, sparse


def lightning_automatic():
    import lightning as L

    class Sparse(L.LightningModule):
        def __init__(self, model, optimizer):
            super().__init__()
            self.model, self.optimizer = model, optimizer

        def configure_optimizers(self):  # the model is on its device here: attach now
            self.sparse = attach(self.model, self.optimizer, total_steps=self.trainer.estimated_stepping_batches,
                                 **SETTINGS)
            return self.optimizer

        def training_step(self, batch, batch_idx):
            x, y = batch
            return F.cross_entropy(self.model(x), y)

        def on_train_batch_end(self, outputs, batch, batch_idx):
            self.sparse.step()  # counts an optimizer step (none yet while gradients accumulate)

    model, optimizer, x, y = setup()
    module = Sparse(model, optimizer)
    _lightning_trainer().fit(module, _loader(x, y))
    return model, module.sparse


def lightning_manual():
    import lightning as L

    class Sparse(L.LightningModule):
        def __init__(self, model, optimizer):
            super().__init__()
            self.model, self.optimizer = model, optimizer
            self.automatic_optimization = False

        def configure_optimizers(self):
            self.sparse = attach(self.model, self.optimizer, total_steps=self.trainer.estimated_stepping_batches,
                                 **SETTINGS)
            return self.optimizer

        def training_step(self, batch, batch_idx):
            x, y = batch
            optimizer = self.optimizers()
            optimizer.zero_grad()
            self.manual_backward(F.cross_entropy(self.model(x), y))
            optimizer.step()
            self.sparse.step()

    model, optimizer, x, y = setup()
    module = Sparse(model, optimizer)
    _lightning_trainer().fit(module, _loader(x, y))
    return model, module.sparse


def huggingface_trainer():
    import tempfile

    from transformers import Trainer, TrainerCallback, TrainingArguments

    class WithLoss(nn.Module):  # the Trainer reads the loss from the model's output
        def __init__(self, model):
            super().__init__()
            self.model = model

        def forward(self, x, labels):
            logits = self.model(x)
            return {"loss": F.cross_entropy(logits, labels), "logits": logits}

    class SparseStep(TrainerCallback):
        def on_step_end(self, args, state, control, **kwargs):  # after each optimizer step
            sparse.step()

    class InOrder(Trainer):  # the plain loop's batch order (the Trainer shuffles by default)
        def _get_train_sampler(self, *args, **kwargs):
            return torch.utils.data.SequentialSampler(self.train_dataset)

    model, optimizer, x, y = setup()
    sparse = attach(model, optimizer, total_steps=STEPS, **SETTINGS)
    rows = [{"x": xi, "labels": yi} for xi, yi in zip(x, y)]
    with tempfile.TemporaryDirectory() as out:
        args = TrainingArguments(out, per_device_train_batch_size=BATCH, num_train_epochs=1, max_grad_norm=0,
                                 report_to="none", save_strategy="no", logging_strategy="no", use_cpu=True,
                                 dataloader_drop_last=False)
        constant = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda step: 1.0)
        InOrder(WithLoss(model), args, train_dataset=rows, optimizers=(optimizer, constant),
                callbacks=[SparseStep()]).train()
    return model, sparse


def _loader(x, y):
    return torch.utils.data.DataLoader(torch.utils.data.TensorDataset(x, y), batch_size=BATCH, shuffle=False)


def _lightning_trainer():
    import lightning as L

    return L.Trainer(max_epochs=1, accelerator="cpu", devices=1, logger=False, enable_checkpointing=False,
                     enable_progress_bar=False, enable_model_summary=False)


def check(recipe) -> str:
    """Run ``recipe`` and the plain loop; the line that says they agree (or an AssertionError)."""
    (plain, plain_sparse), (framed, framed_sparse) = plain_loop(), recipe()
    assert framed_sparse.steps == plain_sparse.steps == STEPS, (framed_sparse.steps, plain_sparse.steps)
    assert framed_sparse.updater.n_updates == plain_sparse.updater.n_updates == 4
    for name, value in plain.state_dict().items():
        assert torch.equal(value, framed.state_dict()[name]), f"{recipe.__name__}: {name} differs"
    for name in plain_sparse.masks:
        assert torch.equal(plain_sparse.masks[name], framed_sparse.masks[name]), f"{recipe.__name__}: mask {name}"
    return f"{recipe.__name__}: {STEPS} optimizer steps, 4 updates, weights and masks equal to the plain loop's"


if __name__ == "__main__":
    for recipe in (lightning_automatic, lightning_manual, huggingface_trainer):
        print(check(recipe))
