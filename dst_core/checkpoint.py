"""Checkpoints: one dict of named parts, written atomically (temporary file, then rename).

A checkpoint holds the run's identity (its config without run-only fields), its position
(epoch, batch within the epoch, optimizer step), model, optimizer, masks and update count, RNG
states, the running sums of a partial epoch and the metrics so far. Loading one for a different
config raises :class:`~dst_core.errors.CheckpointMismatchError` listing the differing fields.

Checkpoints may sit in a folder others can write (a study's shared storage), so they are loaded
with ``torch.load(weights_only=True)``: tensors, numbers, strings and containers only, never
arbitrary objects, so a planted file cannot run code. Everything a checkpoint holds is of those
types (``rng.capture`` turns NumPy's state into a tensor for this).
"""

from __future__ import annotations

import os
import pickle
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING, Any, Mapping

from .errors import CheckpointMismatchError

if TYPE_CHECKING:
    import torch

__all__ = ["FILENAME", "FORMAT", "check_identity", "load", "other_code", "save"]

FILENAME = "checkpoint.pt"
# Bump when the layout changes; load() refuses newer formats. 2: weights_only-safe RNG state. 3: the
# masks and step count under "sparse" (SparseTraining.state_dict), for static runs too, not "updater"
FORMAT = 3


def save(path: str | os.PathLike, state: Mapping[str, Any]) -> None:
    import torch  # here, not above: a study's driver names checkpoint files without loading torch

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
    import torch

    try:
        state = torch.load(path, map_location=map_location, weights_only=True)
    except pickle.UnpicklingError as e:
        reason = str(e).strip().splitlines()[0][:200]
        raise CheckpointMismatchError(
            f"checkpoint {path}: refused: it holds something other than tensors, numbers and containers "
            f"({reason}); it was written by a dst-study older than checkpoint format 2 or by something else. "
            "Delete it to start that run over") from None
    except (RuntimeError, EOFError, OSError) as e:
        raise CheckpointMismatchError(f"checkpoint {path}: unreadable ({str(e).strip()[:200]}); delete it to "
                                      "start that run over") from None
    if not isinstance(state, dict):
        raise CheckpointMismatchError(f"checkpoint {path}: not a dst-study checkpoint; delete it to start over")
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


def other_code(state: Mapping[str, Any], plugin_sources: Mapping[str, str]) -> str | None:
    """Why the checkpoint ``state`` was made by other code than the run resuming it (another algorithm
    revision, other plugin sources: module -> sha256), or None when it was not. A checkpoint that
    records no plugin sources (written before they were recorded) counts as made without plugins."""
    from .config import ALGORITHM_REVISION

    revision = state.get("algorithm_revision", 1)
    if revision != ALGORITHM_REVISION:
        return f"was written by algorithm revision {revision}, not {ALGORITHM_REVISION}"
    saved = dict(state.get("plugin_sources") or {})
    if saved != dict(plugin_sources):
        changed = sorted(m for m in set(saved) | set(plugin_sources) if saved.get(m) != plugin_sources.get(m))
        return (f"was made by other source code of plugin{'s' * (len(changed) > 1)} {', '.join(changed)} "
                f"({_sources(saved, changed)}, now {_sources(plugin_sources, changed)})")
    return None


def _sources(sources: Mapping[str, str], modules: list[str]) -> str:
    return ", ".join(f"{m} {sources[m][:12]}" if m in sources else f"no {m}" for m in modules)
