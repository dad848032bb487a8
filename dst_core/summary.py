"""What a finished run reports, from its per-epoch metrics.

Two numbers describe a run's test accuracy, as in the paper's code:

* ``final_test_accuracy``: the last epoch's;
* ``test_accuracy_at_best_val``: the test accuracy of the epoch with the best validation accuracy
  (the first such epoch). The paper's code saves the model whenever validation accuracy improves
  and reports that model's test accuracy, so this is the number that compares with its figures.
  It is None when the run held out no validation set (``val_fraction: 0``).

``best_test_accuracy`` (the best epoch by test accuracy) selects on the test set and is optimistic;
it is kept for reference only.
"""

from __future__ import annotations

from typing import Any, Sequence

__all__ = ["METRICS", "summarise"]

# The metrics of each epoch that :class:`dst_core.Trainer` yields, in its order (``jaccard`` aside)
METRICS = ("epoch", "step", "lr", "train_loss", "train_accuracy", "val_loss", "val_accuracy", "test_loss",
           "test_accuracy", "density", "drop_fraction", "itop_rate", "n_updates", "update_seconds", "epoch_seconds")


def summarise(history: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """Final and selected metrics of a run from its history (one dict per epoch, in order)."""
    if not history:
        return {"epochs_done": 0}
    final = history[-1]
    best_test = max(history, key=lambda m: m["test_accuracy"])  # max keeps the first of equals
    validated = [m for m in history if m.get("val_accuracy") is not None]
    best_val = max(validated, key=lambda m: m["val_accuracy"]) if validated else None
    return {
        "epochs_done": final["epoch"],
        "final_test_accuracy": final["test_accuracy"],
        "final_test_loss": final["test_loss"],
        "final_val_accuracy": final.get("val_accuracy"),
        "final_train_accuracy": final["train_accuracy"],
        "final_train_loss": final["train_loss"],
        "final_density": final["density"],
        "final_itop_rate": final["itop_rate"],
        "best_val_accuracy": best_val and best_val["val_accuracy"],
        "best_val_epoch": best_val and best_val["epoch"],
        "test_accuracy_at_best_val": best_val and best_val["test_accuracy"],
        "best_test_accuracy": best_test["test_accuracy"],
        "best_epoch": best_test["epoch"],
        "update_seconds": sum(m["update_seconds"] for m in history),
        "n_updates": sum(m.get("n_updates") or 0 for m in history),  # 0: the mask never changed
    }
