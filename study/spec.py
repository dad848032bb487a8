"""Study specs: one YAML file describing a grid (or search) of DST trials, checked before anything runs.

    name: quick                     # the study lands in <storage>/<name>/
    storage: results                # a directory or a pyarrow filesystem URI (s3://bucket/prefix)
    base: {dataset: mnist1d, epochs: 20, lr: 0.1}        # TrainConfig fields shared by every trial
    grid: {criterion: [magnitude, snip], density: [0.05, 0.2], seed: [0, 1]}   # axes to cross
    include:                        # extra cells: each entry crossed with the grid axes it leaves out
      - {static: true}              # the static baseline at every density and seed
      - {density: 1.0}              # the dense baseline at every seed
    resources: {cpu: 1, gpu: 0.25}  # per trial; fractions pack trials on one GPU
    retries: 2                      # attempts after the first, each from the last checkpoint
    checkpoint_seconds: 10          # a trial checkpoints at most this often (and after its last epoch)
    plugins: [my_criteria]          # modules imported first (run, validate): they register their own names
    search:                         # instead of grid: an Optuna search, resumable (see SearchSpec)
      space: {density: {loguniform: [0.02, 0.5]}, criterion: {choice: [magnitude, snip]}}
      metric: best_val_accuracy     # the default; a test metric needs select_on_test: true
      scheduler: asha               # stop poor trials early (grace_period, reduction_factor); none: the default
      mode: max
      n_trials: 20

:func:`load` collects every problem of a spec (unknown keys with a did-you-mean, invalid values
with the valid choices, missing data folders, an empty grid) and raises one :class:`SpecError`
listing them all, so a spec is fixed in one pass and nothing starts before it is valid. A spec's
``plugins`` are imported (:func:`study.plugins.load_plugins`) only where the caller passes ``plugins``
(the commands that run or validate a spec), before its configs are checked; read-only commands never do.

``include`` adds cells and never edits the grid's: an entry's keys replace the grid's values of
those axes, the grid axes it does not name are crossed with it, and its own lists are crossed too.
Unlike the ``include`` of a GitHub Actions matrix, an entry never adds its keys to existing
combinations: ``{lr: 0.01}`` beside ``grid: {density: [0.1, 0.2]}`` is two more trials (lr 0.01 at
each density), not lr set on the grid's two. A spec with no ``grid:`` (or an empty or null one)
runs exactly its ``include`` entries; with neither, it is refused. Since a baseline's identity
ignores the fields it never reads (:data:`dst_core.config.UNUSED_BY_KIND`), ``{static: true}``
crossed with criteria × growth × density × seed is one trial per density and seed, and
``{density: 1.0}`` one per seed.
"""

from __future__ import annotations

import dataclasses
import itertools
import math
import re
from pathlib import Path
from typing import Any, Iterator, Literal, Sequence

import yaml
from pydantic import BaseModel, ConfigDict, Field, PrivateAttr, ValidationError, ValidationInfo, field_validator

from dst_core import TrainConfig
from dst_core.config import UNUSED_BY_KIND
from dst_core.errors import ConfigError, DstError
from dst_core.registry import did_you_mean

from .folder import uri_problem
from .plugins import MODULE_NAME, load_plugins
from .store.parquet import ParquetStore, StoreError
from .store.schema import METRICS, TRIALS
from .trial import Trial

__all__ = ["SearchSpec", "SpecError", "StudySpec", "from_yaml", "load", "oversubscribed", "parse"]

CONFIG_FIELDS = [f.name for f in dataclasses.fields(TrainConfig)]
# What a search may optimise: an epoch's metric as the trial reports it to Tune (its last report's:
# final_*) or the running best_val_accuracy it reports beside them, where the trials table has the
# same column for `run`'s closing ranking
SEARCH_METRICS = sorted({f"final_{m}" for m in METRICS} & set(TRIALS.names) | {"best_val_accuracy"})


class SpecError(ConfigError):
    """Everything wrong with a spec, one problem per line."""


class Resources(BaseModel):
    model_config = ConfigDict(extra="forbid")
    cpu: float = Field(1.0, gt=0, description="CPUs per trial")
    gpu: float = Field(0.0, ge=0, description="GPUs per trial; 0.25 packs four trials on one GPU")


class SearchSpec(BaseModel):
    """An Optuna search over ``space`` (on top of ``base``), run through Ray Tune."""

    model_config = ConfigDict(extra="forbid")
    space: dict[str, dict[Literal["uniform", "loguniform", "int", "choice"], list[Any]]]
    # Configs are chosen on validation data; the test set is read once per chosen config. The default
    # is the best epoch's validation accuracy rather than the last's: the study's test number,
    # test_accuracy_at_best_val, is that same epoch's (the paper's best-validation model), so the
    # search ranks configs by the model whose test accuracy it then reports.
    metric: str = "best_val_accuracy"
    select_on_test: bool = False  # allows a test metric above, knowing its test accuracies read optimistic
    mode: Literal["max", "min"] = "max"
    n_trials: int = Field(gt=0)
    seed: int = 0  # the sampler's seed
    # Early stopping: asha (Ray Tune's ASHAScheduler) compares trials on ``metric`` at rungs of
    # grace_period x reduction_factor^k epochs up to the trials' epochs and stops the worst; a
    # stopped trial is stored as ``stopped`` with the epochs it trained. none trains every trial to the end.
    scheduler: Literal["none", "asha"] = "none"
    grace_period: int = Field(1, ge=1)  # epochs every trial trains before it can be stopped
    reduction_factor: float = Field(3.0, gt=1)  # 1 in reduction_factor trials goes on at each rung


MAX_TRIALS = 100_000  # a grid's trials unless the spec's max_trials says more


class StudySpec(BaseModel):
    model_config = ConfigDict(extra="forbid")
    _trials: list[Trial] | None = PrivateAttr(None)  # trials(), expanded once
    name: str = Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]*$", max_length=200)
    storage: str = Field("results", min_length=1)
    base: dict[str, Any] = {}
    grid: dict[str, list[Any]] = {}
    include: list[dict[str, Any]] = []
    search: SearchSpec | None = None
    resources: Resources = Resources()
    retries: int = Field(2, ge=0)
    max_concurrent: int | None = Field(None, gt=0)
    # A trial checkpoints after an epoch once this many seconds passed since its last checkpoint, and
    # after its last epoch: a retry repeats at most that much work. Slower epochs (CIFAR) checkpoint
    # every epoch; 40 ms MNIST-1D epochs would otherwise spend a fifth of their time saving.
    checkpoint_seconds: float = Field(10.0, ge=0)
    # modules that register components (criteria, models, ...) under their own names: imported before the
    # configs are checked, by the commands that run or validate a spec, and by every Ray worker
    plugins: list[str] = []
    # the most trials the grid may expand to (default MAX_TRIALS): validate and run count them first and
    # refuse more, before building a config for each (about a millisecond and a kilobyte apiece)
    max_trials: int | None = Field(None, gt=0)

    @field_validator("plugins")
    @classmethod
    def _module_names(cls, value: list[str]) -> list[str]:
        bad = [v for v in value if not MODULE_NAME.match(v)]
        if bad:
            raise ValueError(f"not a module name: {', '.join(map(repr, bad))} (e.g. my_criteria or mypkg.models)")
        return list(dict.fromkeys(value))

    @field_validator("base", "grid", "include", mode="before")
    @classmethod
    def _null_is_empty(cls, value: Any, info: ValidationInfo) -> Any:
        # `grid:` with every axis commented out is YAML null: the same as no grid, not a type error
        return ([] if info.field_name == "include" else {}) if value is None else value

    @property
    def study_dir(self) -> str:
        return f"{self.storage.rstrip('/')}/{self.name}"

    def at(self, study_dir: str) -> "StudySpec":
        """This spec with its results in ``study_dir`` (a study folder that was moved or copied)."""
        parent, _, name = str(study_dir).rstrip("/").rpartition("/")
        return self.model_copy(update={"storage": parent or ".", "name": name})

    @property
    def axes(self) -> list[str]:
        """The config fields this study varies: grid axes with more than one value, the keys of
        ``include`` entries, a search's space. Progress lines and listings name them."""
        if self.search is not None:
            return list(self.search.space)
        varied = [k for k, v in self.grid.items() if len({repr(x) for x in v}) > 1]
        return list(dict.fromkeys(varied + [k for entry in self.include for k in entry]))

    def cells(self) -> Iterator[dict[str, Any]]:
        """The grid's cells, then each ``include`` entry crossed with the grid axes it leaves out."""
        yield from _cross(self.grid)
        for entry in self.include:
            rest = {k: v for k, v in self.grid.items() if k not in entry}
            for own in _cross({k: v if isinstance(v, list) else [v] for k, v in entry.items()}):
                for cell in _cross(rest):
                    yield {**cell, **own}

    def n_cells(self) -> int:
        """How many cells :meth:`cells` yields, counted without yielding them."""
        count = math.prod(len(v) for v in self.grid.values()) if self.grid else 0
        for entry in self.include:
            own = math.prod(len(v) if isinstance(v, list) else 1 for v in entry.values())
            count += own * math.prod(len(v) for k, v in self.grid.items() if k not in entry)
        return count

    def trials(self) -> list[Trial]:
        """The trials in a stable order (grid, then includes), each once. Cells that a trial's kind
        cannot tell apart (a static baseline crossed with every criterion) collapse before a config
        is built, the rest (a name spelt two ways) by id: each trial's config is built and hashed once,
        and the spec keeps the list."""
        if self._trials is None:
            axes, cells, seen = self.axes, set(), {}
            for cell in self.cells():
                values = {**self.base, **cell}
                key = _cell_key(values)
                if key not in cells:
                    cells.add(key)
                    trial = Trial.of(TrainConfig.from_dict(values), axes)
                    seen.setdefault(trial.id, trial)
            self._trials = list(seen.values())
        return self._trials


def _sparsity_cases(configs) -> dict[tuple, TrainConfig]:
    """One config per model, data set and rule of what is sparsified (the lowest density of its sparse
    trials: the one that tells most), keyed by what decides the layout."""
    cases: dict[tuple, TrainConfig] = {}
    for c in configs:
        if c.kind == "dense":
            continue
        key = (c.model, c.dataset, c.init, c.erk_power, c.sparsify_also, c.keep_dense)
        if key not in cases or c.density < cases[key].density:
            cases[key] = c
    return cases


def sparsity_layouts(spec: StudySpec) -> list[str]:
    """For ``validate --show-sparsity``: per model, data set and rule of the spec, what its trials
    sparsify at their lowest density, headed by what the layout is of."""
    from dst_core.sparse_training import describe_config

    configs = [t.config for t in spec.trials()] if spec.search is None else [TrainConfig.from_dict(spec.base)]
    return [f"{c.model} on {c.dataset}, {c.init} at density {c.density:g}:\n{describe_config(c)}"
            for c in _sparsity_cases(configs).values()]


def oversubscribed(spec: StudySpec) -> list[str]:
    """A line when trials start more DataLoader workers than the CPUs they reserve: Ray places other
    trials on the CPUs those workers use, and every trial slows down. Said, not refused: data in
    memory ignores num_workers, and only a run can tell which data a plugin's data set gives."""
    if spec.search is None:  # from the cells: trials that differ only in a run-only field collapse to one
        workers = max((int({**spec.base, **cell}.get("num_workers", 0)) for cell in spec.cells()), default=0)
    else:
        domain = spec.search.space.get("num_workers", {})
        workers = max(next(iter(domain.values()), [spec.base.get("num_workers", 0)]))
    cpu = spec.resources.cpu
    if workers == 0 or workers + 1 <= cpu:
        return []
    return [f"num_workers {workers}: a trial reads with {workers} DataLoader worker process"
            f"{'es' * (workers > 1)} besides its own, but resources.cpu {cpu:g} reserves {cpu:g} CPU"
            f"{'s' * (cpu != 1)}; set resources.cpu: {workers + 1} so that Ray does not place other trials "
            "on them (data sets held in memory ignore num_workers)"]


def _cell_key(values: dict[str, Any]) -> str:
    """A cell's values without the fields its kind never reads, where the kind is plain from the
    values (a spelling the config would normalise only costs a duplicate build, collapsed by id)."""
    density = values.get("density")
    kind = "dense" if type(density) in (int, float) and density == 1 else "static" if values.get("static") is True \
        else "dst"
    unused = set(UNUSED_BY_KIND[kind])
    return repr(sorted((k, repr(v)) for k, v in values.items() if k not in unused))


def _cross(axes: dict[str, list[Any]]) -> Iterator[dict[str, Any]]:
    names = list(axes)
    for values in itertools.product(*(axes[a] for a in names)):
        yield dict(zip(names, values))


def _where(loc: tuple) -> str:
    return ".".join(str(p) if not isinstance(p, int) else f"[{p}]" for p in loc).replace(".[", "[")


def _pydantic_problems(error: ValidationError) -> list[str]:
    problems = []
    for e in error.errors():
        where = _where(e["loc"])
        if e["type"] == "extra_forbidden":
            parent = StudySpec
            for part in e["loc"][:-1]:
                parent = {"resources": Resources, "search": SearchSpec}.get(part, parent)
            choices = sorted(parent.model_fields)
            key = e["loc"][-1]
            problems.append(f"{where}: unknown key {key!r}{did_you_mean(key, choices)} (keys: {', '.join(choices)})")
        else:
            got = repr(e.get("input"))
            problems.append(f"{where}: {e['msg']}; got {got if len(got) <= 80 else got[:80] + '…'}")
    return problems


def _config_problems(spec: StudySpec, data: bool = True, storage: bool = True) -> list[str]:
    limit, cells = spec.max_trials or MAX_TRIALS, spec.n_cells()
    if spec.search is None and cells > limit:  # said before a single cell is expanded
        axes = " x ".join(f"{k} {len(v)}" for k, v in spec.grid.items())
        more = f" and {len(spec.include)} include entries" if spec.include else ""
        return [f"grid: {cells:,} trials ({axes}{more}), more than max_trials ({limit:,}); give max_trials: {cells} "
                "in the spec to run them all (validate then builds a config for each), or narrow an axis"]
    problems = []
    for section in ("base", "grid"):
        for key in getattr(spec, section):
            if key not in CONFIG_FIELDS:
                problems.append(f"{section}.{key}: unknown config key {key!r}{did_you_mean(key, CONFIG_FIELDS)} "
                                f"(keys: {', '.join(sorted(CONFIG_FIELDS))})")
    # Each grid or include value is checked on top of base. A mistake in base itself would fail every
    # value the same way: it is reported once, as base's.
    known_base = {k: v for k, v in spec.base.items() if k in CONFIG_FIELDS}
    try:
        TrainConfig.from_dict(known_base)
        base_error = None
    except ConfigError as e:
        base_error = str(e)
    blamed_on_base = False

    def check(where: str, key: str, value: Any) -> None:
        nonlocal blamed_on_base
        try:
            TrainConfig.from_dict({**known_base, key: value})
        except ConfigError as e:
            if str(e) == base_error:
                blamed_on_base = True
            else:
                problems.append(f"{where}: {e}")

    for key, values in spec.grid.items():
        if not values:
            problems.append(f"grid.{key}: empty list; give at least one value")
        for i, value in enumerate(values):
            if key in CONFIG_FIELDS:
                check(f"grid.{key}[{i}]", key, value)
    for i, entry in enumerate(spec.include):
        for key, value in entry.items():
            if key not in CONFIG_FIELDS:
                problems.append(f"include[{i}].{key}: unknown config key {key!r}{did_you_mean(key, CONFIG_FIELDS)} "
                                f"(keys: {', '.join(sorted(CONFIG_FIELDS))})")
                continue
            for j, v in enumerate(value if isinstance(value, list) else [value]):
                check(f"include[{i}].{key}" + (f"[{j}]" if isinstance(value, list) else ""), key, v)
    if blamed_on_base or (base_error and not spec.grid and not spec.include):
        problems.insert(0, f"base: {base_error}")
    if spec.search is not None:
        problems += _metric_problems(spec.search, known_base)
        for key, domain in spec.search.space.items():
            if key not in CONFIG_FIELDS:
                problems.append(f"search.space.{key}: unknown config key {key!r}"
                                f"{did_you_mean(key, CONFIG_FIELDS)}")
                continue
            problems += _domain_problems(f"search.space.{key}", key, domain, known_base)
        if spec.grid or spec.include:
            problems.append("grid and search: give one of them (a search samples its own configs)")
        problems += _scheduler_problems(spec.search, known_base)
    elif not spec.grid and not spec.include and not problems:
        problems.append("grid: empty; give at least one axis (e.g. density: [0.05, 0.1]) or a search")
    if uri_problem(spec.storage):
        problems.append(f"storage: {uri_problem(spec.storage)}")
    if data and storage and "://" not in spec.storage:  # as `run` checks it, creating nothing
        try:
            ParquetStore(spec.study_dir).check_writable(create=False)
        except StoreError as e:
            problems.append(f"storage: {e}")
    if problems or not data:
        return problems
    try:
        base = TrainConfig.from_dict(spec.base)
    except ConfigError as e:
        return [f"base: {e}"]
    problems += _data_problems(spec, base)
    return problems


def _scheduler_problems(search: SearchSpec, base: dict[str, Any]) -> list[str]:
    """ASHA's rungs count epochs up to the trials' one number of epochs."""
    if search.scheduler == "none":
        return []
    if "epochs" in search.space:
        return ["search.scheduler: asha stops trials at rungs up to one number of epochs; it cannot search "
                "epochs (give epochs in base)"]
    epochs = base.get("epochs", TrainConfig.epochs)
    if isinstance(epochs, int) and search.grace_period >= epochs:
        return [f"search.grace_period: {search.grace_period} epochs is not less than the trials' {epochs}, so "
                "asha would stop nothing; choose fewer (e.g. a tenth of the epochs)"]
    return []


def _metric_problems(search: SearchSpec, base: dict[str, Any]) -> list[str]:
    """A metric the trials report to Tune and the trials table holds (the closing ranking reads the
    value the search optimised); a test metric only with ``select_on_test``; a validation metric
    only where the trials hold validation data out."""
    metric = search.metric
    if metric not in SEARCH_METRICS:
        return [f"search.metric: got {metric!r}{did_you_mean(metric, SEARCH_METRICS)} "
                f"(choices: {', '.join(SEARCH_METRICS)})"]
    if "test" in metric and not search.select_on_test:
        return [f"search.metric: {metric} selects configs on the test set, which biases the test accuracy reported "
                "for them upward; use a validation metric (best_val_accuracy, final_val_accuracy) or set "
                "search.select_on_test: true to select on test data knowingly"]
    domain = search.space.get("val_fraction", {})  # a sampled val_fraction: its choices or bounds
    fractions = next(iter(domain.values()), [base.get("val_fraction", TrainConfig.val_fraction)])
    if "val_" in metric and 0 in fractions:
        return [f"search.metric: {metric} needs validation data, but val_fraction 0 holds none out; set "
                "val_fraction > 0 (e.g. 0.1), or choose a test metric with search.select_on_test: true"]
    return []


def _domain_problems(where: str, key: str, domain: dict[str, list[Any]], base: dict[str, Any]) -> list[str]:
    """A search dimension: one kind, bounds that make a range, every value valid for the field."""
    if len(domain) != 1:
        return [f"{where}: give exactly one of uniform, loguniform, int, choice; got {', '.join(domain) or 'none'}"]
    (kind, args), = domain.items()
    if kind == "choice":
        if not args:
            return [f"{where}.choice: empty list; give at least one value"]
        values = args
    else:
        numeric = all(isinstance(a, (int, float)) and not isinstance(a, bool) and math.isfinite(a) for a in args)
        if len(args) != 2 or not numeric:
            return [f"{where}.{kind}: got {str(args)[:80]}; expected [low, high], two finite numbers"]
        low, high = args
        if not low < high:
            return [f"{where}.{kind}: got low {low} >= high {high}; expected low < high"]
        if kind == "loguniform" and low <= 0:
            return [f"{where}.loguniform: got low {low}; expected low > 0 (a log scale)"]
        if kind == "int" and not all(isinstance(a, int) for a in args):
            return [f"{where}.int: got {args}; expected two integers"]
        values = args
    problems = []
    for value in values:
        try:
            TrainConfig.from_dict({**base, key: value})
        except ConfigError as e:
            problems.append(f"{where}.{kind}: {e}")
    return problems


def _data_problems(spec: StudySpec, base: TrainConfig) -> list[str]:
    """File-based data sets must be where the spec says, and every model must take its data set's
    inputs, before any trial starts."""
    from dst_core.data import DATASETS, check_dataset  # torch: only a spec being checked to run needs it
    from dst_core.models import check_compatible

    configs = [t.config for t in spec.trials()] if spec.search is None else [base]
    problems = []
    for model, dataset in sorted({(c.model, c.dataset) for c in configs}):
        meta = DATASETS.get(dataset).meta
        try:
            check_compatible(model, meta["input_shape"], meta["num_classes"], f"dataset {dataset!r}")
        except ConfigError as e:
            problems.append(f"model: {e}")
    from dst_core.sparse_training import describe_config

    for config in _sparsity_cases(configs).values():  # patterns that match something, a density the model takes
        try:
            describe_config(config)
        except ConfigError as e:
            problems.append(f"model {config.model!r}: {e}")
    pairs = {(c.dataset, c.data_root) for c in configs}
    for dataset, root in sorted(pairs, key=str):
        try:
            check_dataset(dataset, root)
        except DstError as e:
            problems.append(f"data: {e}")
    return problems


_UNKNOWN_COMPONENT = re.compile(r"unknown (criterion|growth|schedule|init|model|dataset|density) '[^']*' \(choices")


def _plugin_hint(problem: str) -> str:
    """An unknown component's name that resembles none of the registered ones may be a plugin's that
    was not imported: say where to name it."""
    if _UNKNOWN_COMPONENT.search(problem) and "did you mean" not in problem:
        return problem + "; a plugin's? name its module under plugins: in the spec (or give --plugin MODULE)"
    return problem


def parse(data: Any, source: str = "spec", storage: bool = True, plugins: Sequence[str] | None = None) -> StudySpec:
    """Validate a spec given as a mapping; raise one SpecError listing every problem. ``storage``
    False leaves out the check that the study folder can be written (a saved spec's storage only
    says where the study began). ``plugins`` None imports nothing; a list (``--plugin``, maybe empty)
    imports the spec's own ``plugins:`` and these, before the configs are checked, and the spec lists
    them all (a resumed study and its workers import the same)."""
    if not isinstance(data, dict):
        raise SpecError(f"{source}: expected a mapping of spec keys, got {type(data).__name__}")
    if plugins is not None:
        named = data.get("plugins") or []
        if isinstance(named, list) and all(isinstance(n, str) for n in named):
            names = list(dict.fromkeys([*named, *plugins]))
            try:
                load_plugins(names)
            except ConfigError as e:
                raise SpecError(f"{source}: {e}") from None
            if names:
                data = {**data, "plugins": names}
    try:
        spec = StudySpec.model_validate(data)
    except ValidationError as e:
        problems = _pydantic_problems(e)
        # still report the trial-config problems of the parts that parsed, so one pass fixes all: a
        # part pydantic refused (an include entry that is not a mapping, ...) is left out, keeping the
        # include entries' numbers
        base, grid, include = data.get("base") or {}, data.get("grid") or {}, data.get("include") or []
        axes = {k: v for k, v in grid.items() if isinstance(v, list)} if isinstance(grid, dict) else {}
        entries = [e if isinstance(e, dict) else {} for e in include] if isinstance(include, list) else []
        rest = _config_problems(StudySpec.model_construct(base=base if isinstance(base, dict) else {}, grid=axes,
                                                          include=entries, search=None), data=False)
        empty = "search" in data or axes != grid  # then "grid: empty" says nothing true
        problems += [p for p in rest if not (empty and p.startswith("grid: empty"))]
    else:
        problems = _config_problems(spec, storage=storage)
    if problems:
        lines = "\n".join(f"  {source}: {_plugin_hint(p)}" for p in problems)
        raise SpecError(f"{source}: {len(problems)} problem{'s' if len(problems) > 1 else ''}:\n{lines}")
    return spec


def load(path: str | Path, plugins: Sequence[str] | None = None) -> StudySpec:
    """The spec in the file ``path``; ``plugins`` as for :func:`parse`."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as e:
        raise SpecError(f"{path}: cannot read the spec ({e.strerror})") from None
    except UnicodeDecodeError as e:
        line = path.read_bytes()[:e.start].count(b"\n") + 1
        raise SpecError(f"{path}: not UTF-8 text (byte {e.object[e.start]:#04x} on line {line}); save the spec as "
                        "UTF-8") from None
    return from_yaml(text, str(path), plugins=plugins)


class _UniqueKeyLoader(yaml.SafeLoader):
    """PyYAML's safe loader, refusing a key given twice in one mapping (plain YAML keeps the last one
    silently: a second ``grid:`` would drop the first)."""

    def construct_mapping(self, node, deep=False):
        seen: dict[Any, int] = {}
        for key_node, _ in node.value:
            if key_node.tag == "tag:yaml.org,2002:merge":  # '<<: *anchor' merges keys that may be overridden
                continue
            key = self.construct_object(key_node, deep=True)
            if isinstance(key, (str, int, float, bool)) and key in seen:
                raise yaml.constructor.ConstructorError(
                    None, None, f"key {key!r} given twice (first at line {seen[key] + 1}): a mapping takes each key "
                    "once; merge the two", key_node.start_mark)
            seen.setdefault(key, key_node.start_mark.line)
        return super().construct_mapping(node, deep)


def from_yaml(text: str, source: str, storage: bool = True, plugins: Sequence[str] | None = None) -> StudySpec:
    """:func:`parse` of a spec's YAML text; a YAML mistake is one line naming ``source`` and where."""
    try:
        data = yaml.load(text, Loader=_UniqueKeyLoader)
    except yaml.YAMLError as e:
        mark, context, context_mark = (getattr(e, a, None) for a in ("problem_mark", "context", "context_mark"))
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        started = f" ({context} from line {context_mark.line + 1}, column {context_mark.column + 1})" \
            if context and context_mark else ""
        problem = getattr(e, "problem", None) or " ".join(str(e).split())  # PyYAML's own text spans lines
        raise SpecError(f"{source}: not valid YAML: {problem}{where}{started}") from None
    return parse(data, source, storage, plugins)
