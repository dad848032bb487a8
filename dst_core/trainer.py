"""One training run: a plain function of its config that yields per-epoch metrics.

:func:`train` runs one: ``for metrics in train(config, checkpoint_dir=d): ...`` (each ``metrics``
a dict of :class:`~dst_core.summary.EpochMetrics`' fields). :class:`Trainer` is the same run as an
object, for callers that need its state between epochs (its history, device, position, whether the
epoch just yielded was checkpointed), as ``study``'s trials do. With a
``checkpoint_dir`` the run writes a checkpoint after an epoch when ``checkpoint_seconds`` have
passed since the last one (0, the default: after every epoch), always after the last epoch and when
``should_stop()`` asks it to stop between two batches; started again with the same directory, it
continues where it stopped. A resumed run ends with bit-identical weights, masks and metrics to an uninterrupted one
on the same device: data order, augmentation, mask draws and the reads of a data set given as
Datasets (:mod:`dst_core.batches`) use generators derived from (seed, epoch or step), and everything
else that carries state is in the checkpoint.

One iteration: forward, backward, optimizer step, masks re-applied so masked weights are exactly
0; at scheduled steps the topology update runs on this minibatch's gradient, before the optimizer
step or after the mask (``update_order``, see :mod:`dst_core.topology`). The masks and updates are
a :class:`~dst_core.sparse_training.SparseTraining`, what :func:`dst_core.attach` gives a loop of
one's own, so such a loop can repeat a run of this trainer bit for bit. After each epoch the model
is evaluated on the held-out validation images (``val_fraction``) and on the test set;
:func:`dst_core.summary.summarise` picks the epoch a run reports.
"""

from __future__ import annotations

import dataclasses
import math
import time
import warnings
from pathlib import Path
from typing import Any, Callable, Iterator, Mapping

import torch
import torch.nn.functional as F

from . import checkpoint, rng
from .analytics import removal_overlap
from .batches import Split, splits
from .config import ALGORITHM_REVISION, TrainConfig
from .criteria import CRITERIA
from .data import load_dataset
from .errors import ConfigError, ContractError, Diverged, DstError, DstWarning, Interrupted
from .masks import MaskSet, sparsifiable
from .models import build_model, output_problem
from .sparse_training import SparseTraining, never_updates
from .summary import EpochMetrics
from .topology import TopologyUpdater, derive_generator, resolve_order

__all__ = ["Diverged", "Interrupted", "Trainer", "n_kept_for_training", "resolve_device", "static_reason", "train"]

# stream ids for derive_generator, so no two kinds of draw share a generator (-2: the first masks)
_DATA_ORDER, _AUGMENT, _TRAIN_READ, _EVAL_READ = -3, -4, -5, -6


def resolve_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    device = torch.device(name)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise DstError(f"device: got {name!r} but CUDA is not available here; use 'cpu' or 'auto'")
    return device


def n_kept_for_training(n: int, val_fraction: float) -> int:
    """Training examples left after holding out ``val_fraction``: the paper's ``floor((1 - f) n)``."""
    kept = math.floor(round((1 - val_fraction) * n, 6))
    if val_fraction > 0 and not 0 < kept < n:
        raise ConfigError(f"val_fraction: {val_fraction} of {n} training examples leaves {kept} to train on "
                          f"and {n - kept} to validate; expected both to be at least 1")
    return kept


def static_reason(cfg: TrainConfig, train_examples: int) -> str | None:
    """Why a DST run of ``cfg`` on ``train_examples`` training examples (before the validation split)
    would never change its mask, or None. The trainer warns with it, and a study names such cells
    before any trial runs (a data set registers its ``train_size`` for that)."""
    steps = math.ceil(n_kept_for_training(train_examples, cfg.val_fraction) / cfg.batch_size)
    return never_updates(cfg, cfg.epochs * steps, f"{cfg.epochs} epochs x {steps} steps")


def _warn_if_static(cfg: TrainConfig, train_examples: int) -> None:
    """Settings under which a DST run never changes its mask deserve a word before it trains."""
    reason = static_reason(cfg, train_examples)
    if reason:
        warnings.warn(reason, DstWarning, stacklevel=3)


def _loss_and_correct(out: torch.Tensor, y: torch.Tensor, num_classes: int,
                      model: str) -> tuple[torch.Tensor, torch.Tensor]:
    """Mean loss and number of correct predictions; one output column means a binary task. ``model``
    names the model and its data for the error of an output that is not one row of logits per example."""
    problem = output_problem(out, len(y), num_classes)
    if problem:
        raise ContractError(f"{model} {problem}")
    if out.shape[-1] == 1:
        logit = out.squeeze(-1)
        return F.binary_cross_entropy_with_logits(logit, y.to(logit.dtype)), ((logit > 0).long() == y).sum()
    return F.cross_entropy(out, y), (out.argmax(-1) == y).sum()


def _optimizer(cfg: TrainConfig, params: Iterator[torch.nn.Parameter]) -> torch.optim.Optimizer:
    """``cfg.optimizer`` over all parameters. Masked weights are not the optimizer's business: a
    hook multiplies them back to 0 after every step (Adam moves a weight whose gradient is 0, and
    AdamW's decay scales it, so the step alone would not keep them 0)."""
    if cfg.optimizer == "sgd":
        return torch.optim.SGD(params, lr=cfg.lr, momentum=cfg.momentum, nesterov=cfg.nesterov,
                               weight_decay=cfg.weight_decay)
    adam = torch.optim.Adam if cfg.optimizer == "adam" else torch.optim.AdamW
    return adam(params, lr=cfg.lr, betas=cfg.betas, eps=cfg.eps, weight_decay=cfg.weight_decay)


class Trainer:
    """The state of one run; :meth:`epochs` trains the epochs that are left."""

    def __init__(self, config: TrainConfig | Mapping[str, Any], *,
                 checkpoint_dir: str | Path | None = None, resume: bool = True, checkpoint_seconds: float = 0.0,
                 plugin_sources: Mapping[str, str] | None = None):
        """``plugin_sources`` (module -> sha256 of its source) names the user code that the config's
        components run: a checkpoint records it, and one made by other code is never resumed."""
        self.config = cfg = config if isinstance(config, TrainConfig) else TrainConfig.from_dict(config)
        self.device = resolve_device(cfg.device)
        self.data = load_dataset(cfg.dataset, cfg.data_root)
        n_train = n_kept_for_training(self.data.train_size, cfg.val_fraction)
        self.train_set, self.val_set, self.test_set = splits(self.data, n_train, self.device, cfg.num_workers)
        rng.seed_everything(cfg.seed)
        self.model = build_model(cfg.model, self.data.input_shape, self.data.num_classes).to(self.device)
        self._model_named = f"model {cfg.model!r} on dataset {cfg.dataset!r} ({self.data.num_classes} classes)"
        self.optimizer = _optimizer(cfg, self.model.parameters())
        self.steps_per_epoch = math.ceil(len(self.train_set) / cfg.batch_size)
        self.total_steps = cfg.epochs * self.steps_per_epoch
        # masks and updates, kept by hooks on the optimizer (none for a dense run)
        self.sparse = None if cfg.is_dense else SparseTraining(self.model, self.optimizer, cfg, self.total_steps)
        self.params = self.sparse.params if self.sparse else sparsifiable(self.model, cfg.sparsify_also, cfg.keep_dense)
        self.masks: MaskSet | None = self.sparse.masks if self.sparse else None
        self.updater: TopologyUpdater | None = self.sparse.updater if self.sparse else None
        if cfg.kind == "dst":
            _warn_if_static(cfg, self.data.train_size)
        self.update_order = resolve_order(cfg.update_order, cfg.criterion)
        # position and progress (all in the checkpoint)
        self.epoch = 0  # epochs completed
        self.batch = 0  # batches completed in the current epoch
        self.step = 0  # optimizer steps completed
        self.history: list[dict[str, Any]] = []
        self._running = self._zero_running()
        self.checkpoint_path = Path(checkpoint_dir) / checkpoint.FILENAME if checkpoint_dir else None
        # Saving costs ~10 ms: on 40 ms epochs (MNIST-1D) a save per epoch is a quarter of the run
        self.checkpoint_seconds = checkpoint_seconds
        self.saved_at: float | None = None  # perf_counter() of the last save
        self.saved = False  # whether the epoch just yielded was checkpointed
        self.resumed_from: int | None = None  # epoch the checkpoint was at, when one was loaded
        self.plugin_sources = dict(plugin_sources or {})
        self.started_over: str | None = None  # why a checkpoint found was not resumed
        if self.checkpoint_path and resume and self.checkpoint_path.exists():
            state = checkpoint.load(self.checkpoint_path, map_location=self.device)
            checkpoint.check_identity(self.checkpoint_path, state["config"], cfg.identity())
            self.started_over = checkpoint.other_code(state, self.plugin_sources)
            if self.started_over:  # its weights were computed by other code: continuing would mix the two
                warnings.warn(f"checkpoint {self.checkpoint_path} {self.started_over}: the run starts over",
                              DstWarning, stacklevel=2)
            else:
                self.load_state_dict(state)
                self.resumed_from = self.epoch

    @property
    def done(self) -> bool:
        return self.epoch >= self.config.epochs

    def lr_at(self, epoch: int) -> float:
        cfg = self.config
        passed = sum(epoch >= math.floor(m * cfg.epochs) for m in cfg.lr_milestones)
        return cfg.lr * cfg.lr_gamma ** passed

    def epochs(self, should_stop: Callable[[], bool] | None = None) -> Iterator[dict[str, Any]]:
        """Train the remaining epochs, yielding each epoch's metrics (after its checkpoint when one is due:
        ``self.saved`` says whether it was)."""
        if self.saved_at is None:
            self.saved_at = time.perf_counter()
        while not self.done:
            try:
                metrics = self._train_epoch(should_stop)
            except Interrupted:
                self.save()
                raise
            self.history.append(metrics)
            self.saved = self.checkpoint_path is not None and (
                self.done or time.perf_counter() - self.saved_at >= self.checkpoint_seconds)
            if self.saved:
                self.save()
            yield metrics

    def _train_epoch(self, should_stop: Callable[[], bool] | None) -> dict[str, Any]:
        cfg, start = self.config, time.perf_counter()
        lr = self.lr_at(self.epoch)
        for group in self.optimizer.param_groups:
            group["lr"] = lr
        self.model.train()
        for x, y in self.batches(self.epoch, start=self.batch):
            if should_stop is not None and should_stop():
                raise Interrupted(f"stopped at epoch {self.epoch + 1}, batch {self.batch}")
            self._train_step(x, y)
            self.batch += 1
        self.batch, self.epoch = 0, self.epoch + 1
        run, self._running = self._running, self._zero_running()
        train_loss = float(run["loss_sum"]) / max(run["count"], 1)
        if not math.isfinite(train_loss):  # never a "completed" run at chance level to be averaged
            raise Diverged(f"training diverged: the train loss is {train_loss} in epoch {self.epoch} "
                           f"(lr {lr:g}); a lower lr or another seed may train")
        val_loss, val_acc = self.evaluate(self.val_set) if len(self.val_set) else (None, None)
        test_loss, test_acc = self.evaluate()
        sparse, dynamic = self.masks is not None, self.updater is not None
        metrics = dataclasses.asdict(EpochMetrics(
            epoch=self.epoch,
            step=self.step,
            lr=lr,
            train_loss=train_loss,
            train_accuracy=float(run["correct"]) / max(run["count"], 1),
            val_loss=val_loss,
            val_accuracy=val_acc,
            test_loss=test_loss,
            test_accuracy=test_acc,
            density=self.masks.density() if sparse else 1.0,
            density_all=self.sparse.density_all() if sparse else 1.0,
            drop_fraction=self.updater.drop_schedule(self.step) if dynamic else 0.0,
            itop_rate=self.masks.itop_rate() if sparse else 1.0,
            n_updates=run["n_updates"],
            update_seconds=run["update_seconds"],
            epoch_seconds=time.perf_counter() - start,
        ))
        if dynamic and cfg.jaccard_every and self.epoch % cfg.jaccard_every == 0:
            metrics["jaccard"] = self.removal_overlap()
        return metrics

    def removal_overlap(self) -> dict[tuple[str, str], float]:
        """Jaccard overlap of what every criterion would remove now (last minibatch's gradient)."""
        weights = {n: p.detach() for n, p in self.params.items()}
        grads = {n: p.grad for n, p in self.params.items() if p.grad is not None}
        names = [c for c in CRITERIA.names() if len(grads) == len(weights) or not CRITERIA.get(c).needs_grad]
        params = {self.config.criterion: self.config.criterion_params}
        return removal_overlap(names, weights, grads, self.masks.masks, self.updater.drop_schedule(self.step),
                               scope=self.config.scope, seed=self.config.seed, criterion_params=params)

    def batches(self, epoch: int, start: int = 0) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        """The training minibatches of ``epoch`` (0-based) from batch ``start`` on, in this run's seeded
        order and augmented as it trains on them: what a loop of one's own iterates to repeat
        :func:`train` bit for bit (README, "DST in your own loop")."""
        cfg = self.config
        order = torch.randperm(len(self.train_set), generator=derive_generator(cfg.seed, epoch, _DATA_ORDER))
        first_step = epoch * self.steps_per_epoch  # every epoch takes steps_per_epoch optimizer steps
        reads = lambda b: derive_generator(cfg.seed, first_step + b, _TRAIN_READ).initial_seed()  # noqa: E731
        for b, (x, y) in enumerate(self.train_set.batches(cfg.batch_size, reads, order, start=start), start):
            if self.data.augment is not None:
                x = self.data.augment(x, derive_generator(cfg.seed, first_step + b, _AUGMENT, self.device))
            yield x, y

    def _train_step(self, x: torch.Tensor, y: torch.Tensor) -> None:
        loss, correct = _loss_and_correct(self.model(x), y, self.data.num_classes, self._model_named)
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        self.optimizer.step()  # a before_step update just before, the masks re-applied after (hooks)
        self.step += 1
        run = self._running
        stats = self.sparse.step() if self.sparse is not None else None  # count; a due after_step update
        if stats is not None:
            run["n_updates"] += 1
            run["update_seconds"] += stats.seconds
        run["loss_sum"] += loss.detach().double() * len(y)  # stays on the device: no sync per step
        run["correct"] += correct
        run["count"] += len(y)

    def _zero_running(self) -> dict[str, Any]:
        zero = lambda dtype: torch.zeros((), dtype=dtype, device=self.device)  # noqa: E731
        return {"loss_sum": zero(torch.float64), "correct": zero(torch.int64), "count": 0,
                "n_updates": 0, "update_seconds": 0.0}

    @torch.no_grad()
    def evaluate(self, split: Split | None = None) -> tuple[float, float]:
        """Mean loss and accuracy on ``split``, the test set by default (never augmented)."""
        split = self.test_set if split is None else split
        self.model.eval()
        loss_sum = torch.zeros((), dtype=torch.float64, device=self.device)
        correct = torch.zeros((), dtype=torch.int64, device=self.device)
        reads = lambda b: derive_generator(self.config.seed, b, _EVAL_READ).initial_seed()  # noqa: E731
        for x, y in split.batches(self.config.eval_batch_size, reads):
            loss, c = _loss_and_correct(self.model(x), y, self.data.num_classes, self._model_named)
            loss_sum += loss.double() * len(y)
            correct += c
        self.model.train()
        n = len(split)
        return float(loss_sum) / n, float(correct) / n

    def state_dict(self) -> dict[str, Any]:
        return {
            "config": self.config.identity(),
            "algorithm_revision": ALGORITHM_REVISION,
            "plugin_sources": self.plugin_sources,
            "position": {"epoch": self.epoch, "batch": self.batch, "step": self.step},
            "model": self.model.state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "sparse": self.sparse.state_dict() if self.sparse else None,
            "rng": rng.capture(),
            "running": self._running,
            "history": self.history,
        }

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        pos = state["position"]
        self.epoch, self.batch, self.step = pos["epoch"], pos["batch"], pos["step"]
        self.model.load_state_dict(state["model"])
        self.optimizer.load_state_dict(state["optimizer"])
        if self.sparse is not None:
            sparse = state.get("sparse")
            if sparse is None:  # format 2: no step count; the masks under "updater", of DST runs only
                sparse = {**(state["updater"] or self.sparse.state_dict()), "step": self.step}
            self.sparse.load_state_dict(sparse)
        rng.restore(state["rng"])
        self._running = {k: v.to(self.device) if torch.is_tensor(v) else v for k, v in state["running"].items()}
        self.history = list(state["history"])

    def save(self) -> None:
        if self.checkpoint_path is not None:
            checkpoint.save(self.checkpoint_path, self.state_dict())
            self.saved_at = time.perf_counter()


def train(config: TrainConfig | Mapping[str, Any], *, checkpoint_dir: str | Path | None = None,
          resume: bool = True, should_stop: Callable[[], bool] | None = None,
          checkpoint_seconds: float = 0.0) -> Iterator[dict[str, Any]]:
    """Train one run, yielding the metrics of each epoch it trains (see module docstring).

    The config is checked, the data loaded and any checkpoint read before this returns.
    """
    return Trainer(config, checkpoint_dir=checkpoint_dir, resume=resume,
                   checkpoint_seconds=checkpoint_seconds).epochs(should_stop)
