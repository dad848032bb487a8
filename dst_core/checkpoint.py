"""Checkpoints: one dict of named parts, written atomically (temporary file, then rename).

A checkpoint holds the run's identity (its config without run-only fields), its position
(epoch, batch within the epoch, optimizer step), model, optimizer, masks and updater state, RNG
states, the running sums of a partial epoch and the metrics so far. Loading one for a different
config raises :class:`~dst_core.errors.CheckpointMismatchError` listing the differing fields.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import Any, Mapping

import torch

from .errors import CheckpointMismatchError

__all__ = ["FILENAME", "FORMAT", "check_identity", "load", "save"]

FILENAME = "checkpoint.pt"
FORMAT = 1  # bump when the layout changes; load() refuses newer formats


def save(path: str | os.PathLike, state: Mapping[str, Any]) -> None:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=path.name + ".", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            torch.save({"format": FORMAT, **state}, f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def load(path: str | os.PathLike, map_location: str | torch.device = "cpu") -> dict[str, Any]:
    state = torch.load(path, map_location=map_location, weights_only=False)
    if state.get("format", 0) > FORMAT:
        raise CheckpointMismatchError(f"checkpoint {path}: format {state['format']} is newer than "
                                      f"this dst-study understands ({FORMAT}); upgrade dst-study")
    return state


def check_identity(path: str | os.PathLike, saved: Mapping[str, Any], expected: Mapping[str, Any]) -> None:
    """Raise unless the checkpoint's config identity equals the one resuming from it."""
    keys = sorted(set(saved) | set(expected))
    diffs = [f"{k}: checkpoint has {saved.get(k)!r}, config has {expected.get(k)!r}"
             for k in keys if saved.get(k) != expected.get(k)]
    if diffs:
        raise CheckpointMismatchError(
            f"checkpoint {path} was written by a different config ({'; '.join(diffs)}); "
            "use another --checkpoint-dir, or delete the checkpoint to start over")
