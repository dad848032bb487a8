"""Plugins: the user's own modules that register criteria, growth rules, schedules, models and data
sets through dst_core's public decorators (``dst_core.register_criterion`` and its siblings).

Naming a module runs its code. Only ``run``, ``resume``, ``validate`` and ``train`` (and ``list
--plugin``) import plugins, only those the spec's ``plugins:`` or ``--plugin`` name, and only through
:func:`load_plugins`, which says which on one line. Read-only commands never call it, whatever a
study folder's spec names. Ray workers import the same modules (shipped by Ray's runtime environment,
:func:`shippable`) before a trial builds its config.

Each trial row records the plugins the trial *used* (a component of its config that a plugin
registered): module, installed version, and a sha256 of its source (:func:`plugins_used`).
"""

from __future__ import annotations

import hashlib
import importlib
import json
import os
import re
import sys
from dataclasses import asdict, dataclass
from pathlib import Path
from types import ModuleType
from typing import Any, Iterable, Mapping

from dst_core.errors import ConfigError

__all__ = ["PluginError", "PluginInfo", "REGISTRY_FIELDS", "load_plugins", "loaded", "outdated_plugins",
           "plugins_used", "recorded_hashes", "shippable"]

MODULE_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)*$")
# the config fields that name a registered component, and their registries in dst_core
REGISTRY_FIELDS = {"dataset": "DATASETS", "model": "MODELS", "init": "DENSITY", "criterion": "CRITERIA",
                   "growth": "GROWTH", "schedule": "SCHEDULES"}


class PluginError(ConfigError):
    """A plugin that cannot be imported: one line naming it and why."""


@dataclass(frozen=True)
class PluginInfo:
    """What a row records of a plugin: its module, installed version (None: not installed) and the
    sha256 of its source (a package: of every ``.py`` file under it, with their paths)."""
    module: str
    version: str | None
    sha256: str

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


_LOADED: dict[str, PluginInfo] = {}  # module name -> its info, as this process imported it
_HELPERS: dict[str, list[str]] = {}  # plugin -> the user's own modules it imported (a sibling helper.py)


def load_plugins(names: Iterable[str], *, announce: bool = True) -> list[PluginInfo]:
    """Import the plugin modules ``names`` (once per process), their registrations recorded as theirs;
    ``announce`` prints ``dst-study: importing plugins: a, b`` on stderr first. A module is looked for
    in the working directory first, as ``python -m`` would, then on the usual path."""
    names = list(dict.fromkeys(names))
    for name in names:
        if not isinstance(name, str) or not MODULE_NAME.match(name):
            raise PluginError(f"plugin {name!r}: not a module name (e.g. my_criteria or mypkg.models)"
                              f"{_as_module(name)}")
    new = [n for n in names if n not in _LOADED]
    if not new:
        return [_LOADED[n] for n in names]
    if announce:
        print(f"dst-study: importing plugins: {', '.join(new)}", file=sys.stderr, flush=True)
    from dst_core.registry import RegistrationError, loading_plugin

    _ = _registries()  # the built-ins register first: a plugin's name that clashes with one is refused
    cwd = os.getcwd()
    if cwd not in sys.path:
        sys.path.insert(0, cwd)
    for name in new:
        before = set(sys.modules)
        with loading_plugin(name):
            try:
                module = importlib.import_module(name)
            except RegistrationError:
                raise
            except ModuleNotFoundError as e:
                if e.name and (name == e.name or name.startswith(e.name + ".")):
                    raise PluginError(f"plugin {name!r}: no such module in {cwd} or on the Python path") from None
                raise PluginError(f"plugin {name!r}: importing it failed: {type(e).__name__}: {e}") from None
            except Exception as e:
                raise PluginError(f"plugin {name!r}: importing it failed: {type(e).__name__}: {e}") from None
        _HELPERS[name] = _local_modules(set(sys.modules) - before, name)
        _LOADED[name] = _info(module, _HELPERS[name])
    return [_LOADED[n] for n in names]


def _as_module(name: object) -> str:
    """For a file path given as a plugin (``./x.py``, ``pkg/models.py``): the module name to give instead."""
    if not isinstance(name, str) or not name.endswith(".py"):
        return ""
    parts = [p for p in Path(name[:-3]).parts if p not in (".", "")]
    module = ".".join(parts)
    if not parts or not MODULE_NAME.match(module):
        return ""
    return (f"; for the file {name} give {module!r}, from the folder that holds "
            f"{parts[0] + ('/' if len(parts) > 1 else '.py')} (or with that folder on PYTHONPATH)")


def loaded() -> dict[str, PluginInfo]:
    """The plugins this process imported, by module name."""
    return dict(_LOADED)


def _registries() -> dict[str, Any]:
    import dst_core

    return {field: getattr(dst_core, registry) for field, registry in REGISTRY_FIELDS.items()}


def _info(module: ModuleType, helpers: Iterable[str] = ()) -> PluginInfo:
    """A plugin's record; its hash covers the helper modules it imported too (their code computes its
    results): the module's own hash when it imported none, as before helpers were counted."""
    own = _source_sha256(module)
    helpers = sorted(helpers)
    if not helpers:
        return PluginInfo(module.__name__, _version(module), own)
    digest = hashlib.sha256(own.encode())
    for helper in helpers:
        digest.update(f"\0{helper}\0{_source_sha256(sys.modules[helper])}".encode())
    return PluginInfo(module.__name__, _version(module), digest.hexdigest())


def _local_modules(imported: set[str], plugin: str) -> list[str]:
    """The top-level modules among ``imported`` that are the user's own files, like the plugin (not
    installed, not the standard library, not dst-study): shipped to workers and hashed with it."""
    import sysconfig

    skip = {plugin.partition(".")[0], "dst_core", "study"}
    stdlib = tuple(os.path.realpath(sysconfig.get_paths()[k]) for k in ("stdlib", "platstdlib"))
    out = set()
    for name in imported:
        top = name.partition(".")[0]
        module = sys.modules.get(top)
        where = os.path.realpath(getattr(module, "__file__", None) or "")
        if top in skip or not where or "-packages" + os.sep in where or where.startswith(stdlib):
            continue
        out.add(top)
    return sorted(out)


def _version(module: ModuleType) -> str | None:
    from importlib import metadata

    try:
        return metadata.version(module.__name__.partition(".")[0])
    except (metadata.PackageNotFoundError, ValueError):
        version = getattr(module, "__version__", None)
        return None if version is None else str(version)


def _source_sha256(module: ModuleType) -> str:
    digest = hashlib.sha256()
    paths = getattr(module, "__path__", None)
    if paths:  # a package: every .py file under it, by relative path
        root = Path(list(paths)[0])
        for path in sorted(root.rglob("*.py")):
            digest.update(str(path.relative_to(root)).encode() + b"\0" + path.read_bytes() + b"\0")
    elif getattr(module, "__file__", None):
        digest.update(Path(module.__file__).read_bytes())
    return digest.hexdigest()


def plugins_used(config) -> list[dict[str, Any]]:
    """The plugins a trial of ``config`` (a TrainConfig) uses, as rows record them: one dict per
    module that registered a component the config names and its kind reads, sorted by module."""
    from dst_core.config import UNUSED_BY_KIND

    unused = UNUSED_BY_KIND[config.kind]
    modules = set()
    for field, registry in _registries().items():
        value = getattr(config, field, None)
        if field in unused or value is None or value not in registry:
            continue
        plugin = registry.get(value).plugin
        if plugin is not None:
            modules.add(plugin)
    out = []
    for name in sorted(modules):
        info = _LOADED.get(name) or (_info(sys.modules[name], _HELPERS.get(name, ())) if name in sys.modules else None)
        if info is not None:
            out.append(info.to_dict())
    return out


def recorded_hashes(recorded: str | None) -> dict[str, str]:
    """A row's ``plugins`` (JSON text) as module -> sha256 of its source; {} for none (null, pandas'
    NA) or text that is not such a record."""
    if not isinstance(recorded, str) or not recorded:
        return {}
    try:
        entries = json.loads(recorded)
    except ValueError:
        return {}
    return {e["module"]: str(e.get("sha256")) for e in entries if isinstance(e, dict) and "module" in e} \
        if isinstance(entries, list) else {}


def outdated_plugins(recorded: str | None, current: Mapping[str, PluginInfo]) -> bool:
    """Whether a row's ``plugins`` (JSON text) names a module whose source differs from ``current``'s
    (a module not loaded now is not judged: the spec no longer names it)."""
    return any(m in current and h != current[m].sha256 for m, h in recorded_hashes(recorded).items())


def shippable(names: Iterable[str]) -> list[ModuleType]:
    """The top-level modules of the plugins ``names`` and of the helper modules they imported, to ship to
    Ray workers (``py_modules``): those that are not installed into site-packages (an installed plugin
    is the cluster's to install)."""
    out: dict[str, ModuleType] = {}
    for name in names:
        for top_name in (name.partition(".")[0], *_HELPERS.get(name, ())):  # its helper modules too
            top = sys.modules.get(top_name)
            where = getattr(top, "__file__", None) or ""
            if top is not None and where and "-packages" + os.sep not in where:
                out[top.__name__] = top
    return list(out.values())
