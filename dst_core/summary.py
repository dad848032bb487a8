"""The metrics of a run: each epoch's (:class:`EpochMetrics`) and what a finished run reports
(:class:`Summary`, from :func:`summarise`). These two dataclasses are the one definition of the
metric names: the ``history`` and ``trials`` tables' metric columns, the CLI's epoch line and the
figures are derived from their fields.

Two numbers describe a run's test accuracy, as in the paper's code:

* ``final_test_accuracy``: the last epoch's;
* ``test_accuracy_at_best_val``: the test accuracy of the epoch with the best validation accuracy
  (the first such epoch). The paper's code saves the model whenever validation accuracy improves
  and reports that model's test accuracy, so this is the number that compares with its figures.
  It is None when the run held out no validation set (``val_fraction: 0``).

``best_test_accuracy`` (the best epoch by test accuracy) selects on the test set and is optimistic;
it is kept for reference only.

This module imports nothing but the standard library: reading results never loads torch.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any, Sequence

__all__ = ["METRICS", "SUMMARY", "EpochMetrics", "Summary", "summarise"]


def _metric(help: str, shown: str | None = None) -> Any:
    """A metric with its meaning and, for those the CLI's epoch line shows, the format of its value."""
    return field(metadata={"help": help, "shown": shown})


@dataclass(frozen=True)
class EpochMetrics:
    """The metrics of one epoch. :class:`dst_core.Trainer` yields them as a dict (plus ``jaccard``
    when the run records removal overlaps); each field is a column of the ``history`` table."""

    epoch: int = _metric("1-based")
    step: int = _metric("optimizer steps done at the end of the epoch")
    lr: float = _metric("learning rate of the epoch")
    train_loss: float = _metric("mean loss over the epoch's minibatches", "loss {:.4f}")
    train_accuracy: float = _metric("mean accuracy over the epoch's minibatches", "train {:6.2%}")
    val_loss: float | None = _metric("on the held-out validation examples after the epoch (None without them)")
    val_accuracy: float | None = _metric("on the held-out validation examples after the epoch (None without them)",
                                         "val {:6.2%}")
    test_loss: float = _metric("on the test set after the epoch")
    test_accuracy: float = _metric("on the test set after the epoch", "test {:6.2%}")
    density: float = _metric("fraction of the sparsified weights active at the end of the epoch", "density {:.4f}")
    drop_fraction: float = _metric("the drop-fraction schedule's value at the end of the epoch", "drop {:.3f}")
    itop_rate: float = _metric("fraction of the sparsified weights ever active", "itop {:.3f}")
    n_updates: int = _metric("topology updates in the epoch", "updates {}")
    update_seconds: float = _metric("seconds spent in those updates")
    epoch_seconds: float = _metric("wall time of the epoch", "{:.2f}s")
    density_all: float | None = _metric("active weights over all of the model's parameters (dense ones count as "
                                        "active) at the end of the epoch")


@dataclass(frozen=True)
class Summary:
    """What a finished run reports, from its history; each field is a metric column of the ``trials``
    table, in the table's order."""

    epochs_done: int = _metric("epochs trained")
    final_test_accuracy: float = _metric("test accuracy at the last epoch")
    test_accuracy_at_best_val: float | None = _metric(
        "test accuracy at the (first) epoch with the best validation accuracy; None without validation data")
    best_val_accuracy: float | None = _metric("the best validation accuracy")
    best_val_epoch: int | None = _metric("its epoch (1-based)")
    final_val_accuracy: float | None = _metric("validation accuracy at the last epoch")
    best_test_accuracy: float = _metric("the best test accuracy over epochs (selected on the test set: optimistic)")
    best_epoch: int = _metric("its epoch (1-based)")
    final_test_loss: float = _metric("test loss at the last epoch")
    final_train_accuracy: float = _metric("train accuracy at the last epoch")
    final_train_loss: float = _metric("train loss at the last epoch")
    final_density: float = _metric("fraction of the sparsified weights active at the end")
    final_itop_rate: float = _metric("fraction of the sparsified weights ever active")
    final_density_all: float | None = _metric("active weights over all of the model's parameters at the end")
    n_updates: int = _metric("topology updates over the run (0: the mask never changed)")
    update_seconds: float = _metric("seconds spent in topology updates over the run")


METRICS = tuple(f.name for f in dataclasses.fields(EpochMetrics))  # an epoch's metric names, in order
SUMMARY = tuple(f.name for f in dataclasses.fields(Summary))  # a run's summary names, in order


def summarise(history: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """The :class:`Summary` of a run from its history (one dict per epoch, in order), as a dict;
    ``{"epochs_done": 0}`` for a run without a finished epoch."""
    if not history:
        return {"epochs_done": 0}
    final = history[-1]
    best_test = max(history, key=lambda m: m["test_accuracy"])  # max keeps the first of equals
    validated = [m for m in history if m.get("val_accuracy") is not None]
    best_val = max(validated, key=lambda m: m["val_accuracy"]) if validated else None
    return dataclasses.asdict(Summary(
        epochs_done=final["epoch"],
        final_test_accuracy=final["test_accuracy"],
        test_accuracy_at_best_val=best_val and best_val["test_accuracy"],
        best_val_accuracy=best_val and best_val["val_accuracy"],
        best_val_epoch=best_val and best_val["epoch"],
        final_val_accuracy=final.get("val_accuracy"),
        best_test_accuracy=best_test["test_accuracy"],
        best_epoch=best_test["epoch"],
        final_test_loss=final["test_loss"],
        final_train_accuracy=final["train_accuracy"],
        final_train_loss=final["train_loss"],
        final_density=final["density"],
        final_itop_rate=final["itop_rate"],
        final_density_all=final.get("density_all"),  # None in runs recorded before it was
        n_updates=sum(m.get("n_updates") or 0 for m in history),  # 0: the mask never changed
        update_seconds=sum(m["update_seconds"] for m in history),
    ))
