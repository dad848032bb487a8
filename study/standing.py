"""Where a study stands, as a value: trials per status and algorithm revision, what its saved spec
still misses and where each missing trial would resume, the last failures.

    >>> from study import status
    >>> s = status("results/mnist1d_fig1")
    >>> s.counts, s.missing_total

Reading a status loads neither torch nor Ray (positions are read from the file beside each
checkpoint; only a checkpoint of a dst-study older than that file is loaded with torch).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from dst_core import ALGORITHM_REVISION
from dst_core.errors import DstError

from .queries import open_study, query
from .store import ParquetStore, revision

__all__ = ["Failure", "Missing", "StudyStatus", "status"]


@dataclass(frozen=True)
class Missing:
    id: str
    label: str
    resumes: str | None  # "checkpoint at epoch 3", why its checkpoint is unusable, or None: none


@dataclass(frozen=True)
class Failure:
    id: str
    what: str  # criterion, density and seed
    error: str  # the last line of its error


@dataclass
class StudyStatus:
    root: str
    counts: dict[str, int]  # trials per status, as stored
    revisions: dict[int, int]  # trials per algorithm revision
    total: int | None  # trials of the saved spec (a search: its n_trials); None without a saved spec
    missing_total: int = 0  # of those, without a row (completed, failed or stopped)
    with_checkpoints: int = 0  # of the missing, how many would resume from a checkpoint
    missing: list[Missing] = field(default_factory=list)  # the first few, in the spec's order
    failures: list[Failure] = field(default_factory=list)  # the latest few
    problems: list[str] = field(default_factory=list)  # unreadable files skipped
    # module -> sha256 of its source -> trials, for plugins whose rows hold more than one version
    plugin_versions: dict[str, dict[str, int]] = field(default_factory=dict)
    superseded: dict[str, int] = field(default_factory=dict)  # folder of rows of older code -> its trials

    @property
    def trials(self) -> int:
        return sum(self.counts.values())

    @property
    def current_revision_only(self) -> bool:
        return not self.revisions or list(self.revisions) == [ALGORITHM_REVISION]


def status(study: str | ParquetStore, show: int = 10, failures: int = 5) -> StudyStatus:
    """The status of ``study`` (a folder, URI or name, as for ``dst-study status``), naming at most
    ``show`` missing trials and the latest ``failures`` failed ones."""
    from .runner import listing

    store = study if isinstance(study, ParquetStore) else open_study(study)
    trials = query(store, columns=["trial_id", "status", "criterion", "density", "seed", "ended_at", "error",
                                   "algorithm_revision", "plugins"])
    result = StudyStatus(store.root, {str(k): int(v) for k, v in trials["status"].value_counts().items()},
                         {int(k): int(v) for k, v in revision(trials).value_counts().sort_index().items()}, None)
    spec = listing(store)
    if spec is not None:  # started by `dst-study run`
        finished = set(trials["trial_id"])  # every status is an end: a stopped trial is not run again
        missing = [(i, label) for i, label in spec.trials if i not in finished]
        found = store.folder.checkpoints({i for i, _ in missing})
        result.total = spec.total
        result.missing_total = max(spec.total - len(finished), 0) if spec.search else len(missing)
        result.with_checkpoints = len(found)
        result.missing = [Missing(i, label, _resumes(store, found[i]) if i in found else None)
                          for i, label in missing[:show]]
    for row in trials[trials["status"] == "failed"].sort_values("ended_at").tail(failures).itertuples():
        last = str(row.error).strip().splitlines()[-1] if isinstance(row.error, str) and row.error.strip() else ""
        result.failures.append(Failure(row.trial_id, f"{row.criterion}, density {row.density:g}, seed {row.seed}",
                                       last))
    result.problems = list(store.problems)
    result.plugin_versions = _plugin_versions(trials["plugins"])
    result.superseded = _superseded(store)
    return result


def _plugin_versions(records) -> dict[str, dict[str, int]]:
    """Per plugin module whose rows name more than one source: trials per sha256 (read from the
    rows' records; no plugin is imported)."""
    from .plugins import recorded_hashes

    counts: dict[str, dict[str, int]] = {}
    for text, n in records.dropna().value_counts().items():
        for module, sha in recorded_hashes(text).items():
            counts.setdefault(module, {}).setdefault(sha, 0)
            counts[module][sha] += int(n)
    return {m: dict(sorted(c.items(), key=lambda kv: -kv[1])) for m, c in sorted(counts.items()) if len(c) > 1}


def _superseded(store: ParquetStore) -> dict[str, int]:
    """The folders of rows of older code (``superseded/<code>/``) and the trials each holds."""
    import pyarrow.fs as pafs

    from .folder import SUPERSEDED

    infos = store.fs.get_file_info(pafs.FileSelector(store.folder.join(SUPERSEDED), allow_not_found=True))
    out = {}
    for info in sorted(infos, key=lambda i: i.path):
        kept = ParquetStore(store.folder.uri(info.path))
        if info.type == pafs.FileType.Directory and kept.exists():
            out[kept.root] = len(kept.trial_ids())
    return out


def _resumes(store: ParquetStore, path: str) -> str:
    """Where a trial's checkpoint would resume it: "checkpoint at epoch 3" (or why it would not). Read
    from the position written beside it; a checkpoint of an older dst-study is loaded (torch)."""
    position = store.folder.read_position(path)
    if position is None:
        from dst_core import checkpoint as ckpt

        try:
            position = ckpt.load(path)["position"]
        except (DstError, KeyError, OSError) as e:  # named whole: a path cut in two helps nobody
            text = str(e).strip()
            return f"an unusable checkpoint: {text.splitlines()[0] if text else type(e).__name__}"
    return f"checkpoint at epoch {position['epoch']}" + (f", batch {position['batch']}" if position.get("batch") else "")
