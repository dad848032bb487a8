"""Content-addressed trial ids: the same normalised config always gets the same id."""

from __future__ import annotations

import hashlib
import json
from typing import Any, Mapping

from dst_core import TrainConfig

__all__ = ["trial_id"]


def trial_id(config: TrainConfig | Mapping[str, Any]) -> str:
    """16 hex digits of the sha256 of the config's identity as canonical JSON.

    The identity leaves out run-only fields (device, data folder, eval batch size), and names are
    canonical (``SNIP`` and ``snip`` give one id), so a trial keeps its id wherever it runs.
    """
    cfg = config if isinstance(config, TrainConfig) else TrainConfig.from_dict(config)
    canonical = json.dumps(cfg.identity(), sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(canonical.encode()).hexdigest()[:16]
