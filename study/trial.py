"""The bridge from one dst_core run to the rows of the result store."""

from __future__ import annotations

import functools
import json
import socket
import subprocess
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Sequence

import torch

import dst_core
from dst_core import TrainConfig
from dst_core.config import KINDS, UNUSED_BY_KIND

from .store.schema import METRICS
from .trial_id import trial_id

__all__ = ["count_by_kind", "git_commit", "history_rows", "jaccard_rows", "trial_label", "trial_row", "utc_now"]


def utc_now() -> datetime:
    return datetime.now(timezone.utc)


_LABELLED = ("criterion", "growth", "density", "seed", "static")  # always in a label, in its own words


def trial_label(config: TrainConfig, axes: Sequence[str] = ()) -> str:
    """The grid cell of a trial as progress lines and listings name it: its kind, criterion/growth,
    density and seed, then every other axis of ``axes`` (those the study varies) that it reads."""
    unused = UNUSED_BY_KIND[config.kind]
    extra = "".join(f" {a} {_show(getattr(config, a))}" for a in dict.fromkeys(axes)
                    if a not in _LABELLED and a not in unused and hasattr(config, a))
    if config.kind == "dense":
        return f"dense{extra} seed {config.seed}"
    method = "static" if config.kind == "static" else f"{config.criterion}/{config.growth}"
    return f"{method} density {config.density:g}{extra} seed {config.seed}"


def _show(value: Any) -> str:
    return f"{value:g}" if isinstance(value, float) else str(value)


def count_by_kind(configs: Sequence[TrainConfig]) -> str:
    """``"550 DST, 55 static, 5 dense"``: how many trials of each kind (kinds with none left out)."""
    counts = {kind: sum(c.kind == kind for c in configs) for kind in KINDS}
    return ", ".join(f"{n} {'DST' if kind == 'dst' else kind}" for kind, n in counts.items() if n)


@functools.cache
def git_commit() -> str | None:
    """The commit of the dst-study checkout this code runs from, when it is a git checkout."""
    try:
        out = subprocess.run(["git", "rev-parse", "HEAD"], cwd=Path(__file__).parent, capture_output=True,
                             text=True, timeout=5)
    except (OSError, subprocess.SubprocessError):
        return None
    return out.stdout.strip() or None if out.returncode == 0 else None


def trial_row(config: TrainConfig, history: Sequence[dict[str, Any]], *, status: str, started_at: datetime,
              ended_at: datetime | None = None, device_used: str | None = None, error: str | None = None,
              wall_seconds: float | None = None, resumed_from: int | None = None,
              host: str | None = None) -> dict[str, Any]:
    """One ``trials`` row: id, kind, flat config, status, final and best metrics, provenance (``host``:
    the machine that ran the trial, this one by default). Config fields that the trial's kind never
    reads are null, so a static baseline never reads as the criterion it was crossed with."""
    row: dict[str, Any] = {"trial_id": trial_id(config), "status": status, "kind": config.kind}
    unused = UNUSED_BY_KIND[config.kind]
    for key, value in config.to_dict().items():
        row[key] = None if key in unused else json.dumps(value, sort_keys=True) if isinstance(value, dict) else value
    row.update(dst_core.summarise(history))
    row.update(
        resumed_from=resumed_from, wall_seconds=wall_seconds, host=host or socket.gethostname(),
        device_used=device_used,
        dst_study_version=dst_core.__version__, algorithm_revision=dst_core.ALGORITHM_REVISION,
        torch_version=torch.__version__, git_commit=git_commit(),
        started_at=started_at, ended_at=ended_at, error=error)
    return row


def history_rows(config: TrainConfig, history: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    tid = trial_id(config)
    return [{"trial_id": tid, **{k: m.get(k) for k in METRICS}} for m in history]  # older runs lack some


def jaccard_rows(config: TrainConfig, history: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    """Long-form rows of the removal overlaps the run recorded (``jaccard_every``)."""
    tid = trial_id(config)
    return [{"trial_id": tid, "epoch": m["epoch"], "criterion_a": a, "criterion_b": b, "jaccard": v}
            for m in history if "jaccard" in m for (a, b), v in m["jaccard"].items()]
