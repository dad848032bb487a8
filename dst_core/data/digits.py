"""scikit-learn's bundled 8x8 digits (1797 images): a second tiny offline dataset for quick checks."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from . import DATASETS, DataBundle, standardise

__all__ = ["SPLIT_SEED", "load_digits_bundle"]

SPLIT_SEED = 0  # fixed, so every run sees the same 80/20 split


@DATASETS.register(
    "digits",
    needs_root=False,
    description="scikit-learn digits: 64 pixel features, 10 classes, fixed stratified 80/20 split",
    default_model="mnist1d_mlp",
    input_shape=(64,),
    num_classes=10,
    train_size=1437,
)
def load_digits_bundle(root: Path | None = None) -> DataBundle:
    """Pixels / 16, then standardised with train statistics. ``root`` is ignored."""
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split

    x, y = load_digits(return_X_y=True)
    x_tr, x_te, y_tr, y_te = train_test_split(
        x / 16.0, y, test_size=0.2, stratify=y, random_state=SPLIT_SEED
    )
    x_tr, x_te = standardise(x_tr, x_te)
    return DataBundle(
        name="digits",
        train_x=torch.from_numpy(x_tr),
        train_y=torch.from_numpy(np.asarray(y_tr, dtype=np.int64)),
        test_x=torch.from_numpy(x_te),
        test_y=torch.from_numpy(np.asarray(y_te, dtype=np.int64)),
        num_classes=10,
    )
