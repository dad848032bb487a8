"""Registries: the one place where each name (criterion, model, dataset, ...) is defined.

Look-ups ignore case, ``_`` and ``-`` so the paper's spellings work (``SET``, ``SNIP``,
``ReciprocalSensitivity``). Unknown names raise :class:`UnknownNameError` with a did-you-mean.

Entries are typed: each registry declares its required and optional metadata (:class:`Meta`, a key's
type or its allowed values) and how many positional arguments its objects take (``arity``, checked
with :func:`inspect.signature`; a registry whose entries may also ``select`` says how many those take).
A missing ``description`` is the first line of the registered object's docstring. A missing or
wrong key, a name already taken (by a built-in or another plugin) or an object of the
wrong signature is refused at registration with :class:`RegistrationError`: one line naming who
registered it (the plugin module, or ``dst_core``), the entry and the problem. Each entry records the
plugin module that registered it (``None`` for built-ins): a trial's provenance names it.
"""

from __future__ import annotations

import contextlib
import difflib
import inspect
import types
from dataclasses import dataclass, field
from typing import Any, Callable, Generic, Iterator, Mapping, TypeVar

from .errors import ConfigError, UnknownNameError

__all__ = ["Entry", "Meta", "RegistrationError", "Registry", "did_you_mean", "loading_plugin", "normalize"]

T = TypeVar("T")


def did_you_mean(name: object, choices: list[str]) -> str:
    """``"; did you mean 'x'?"`` for the closest choice, or ``""`` when none is close."""
    close = difflib.get_close_matches(str(name).lower(), choices, n=1, cutoff=0.6)
    return f"; did you mean {close[0]!r}?" if close else ""


def normalize(name: str) -> str:
    """Canonical look-up key: lower case without ``_``, ``-`` or spaces."""
    return "".join(ch for ch in str(name).lower() if ch not in "_- ")


class RegistrationError(ConfigError):
    """An entry refused at registration: ``"plugin 'p': criterion 'x': <problem>"`` on one line."""


# The plugin module being imported (set by the one function that imports plugins): its registrations
# are recorded as its own, whatever module the registered object was defined in (a wrapped library model)
_loading: list[str] = []


@contextlib.contextmanager
def loading_plugin(module: str) -> Iterator[None]:
    """Registrations made inside this block are the plugin ``module``'s."""
    _loading.append(module)
    try:
        yield
    finally:
        _loading.pop()


def _plugin_of(obj: object) -> str | None:
    """The plugin module registering ``obj`` now, or None for dst_core's own entries."""
    if _loading:
        return _loading[-1]
    module = getattr(obj, "__module__", None) or "dst_core"
    return None if module == "dst_core" or module.startswith("dst_core.") else module


@dataclass(frozen=True)
class Meta:
    """A registry's metadata schema: each key's type (or tuple of types), or a frozenset of its
    allowed values; ``required`` keys must be given, ``optional`` ones may be."""
    required: Mapping[str, Any] = field(default_factory=dict)
    optional: Mapping[str, Any] = field(default_factory=dict)

    def problems(self, meta: Mapping[str, Any]) -> list[str]:
        known = {**self.required, **self.optional}
        out = [f"missing metadata {k!r}" for k in self.required if k not in meta]
        for key, value in meta.items():
            if key not in known:
                out.append(f"unknown metadata {key!r}{did_you_mean(key, list(known))} "
                           f"(keys: {', '.join(sorted(known))})")
            elif not _fits(value, known[key]):
                out.append(f"metadata {key!r}: got {value!r}; expected {_expected(known[key])}")
        return out


def _fits(value: Any, kind: Any) -> bool:
    if isinstance(kind, frozenset):
        return value in kind
    if kind is tuple:  # a shape: a tuple of positive ints
        return isinstance(value, tuple) and all(isinstance(d, int) and not isinstance(d, bool) and d > 0
                                                for d in value)
    if kind in (int, float) or (isinstance(kind, tuple) and int in kind):
        return isinstance(value, kind) and not isinstance(value, bool)
    return isinstance(value, kind)


def _expected(kind: Any) -> str:
    if isinstance(kind, frozenset):
        return "one of " + ", ".join(sorted(map(str, kind)))
    if kind is tuple:
        return "a tuple of positive ints (a shape)"
    return " or ".join(k.__name__ for k in (kind if isinstance(kind, tuple) else (kind,)))


def _takes(obj: Any, n: int) -> bool:
    """Whether ``obj`` can be called with ``n`` positional arguments (and nothing else)."""
    try:
        inspect.signature(obj).bind(*range(n))
    except TypeError:
        return False
    except ValueError:  # no signature to read (some builtins): taken on trust
        return True
    return True


@dataclass(frozen=True)
class Entry(Generic[T]):
    name: str  # canonical lower_snake name
    obj: T  # the registered function or class
    meta: dict[str, Any] = field(default_factory=dict)
    plugin: str | None = None  # the plugin module that registered it; None: dst_core's own

    def __getattr__(self, key: str) -> Any:  # entry.needs_grad reads meta
        try:
            return self.meta[key]
        except KeyError:
            raise AttributeError(key) from None


class Registry(Generic[T]):
    """Maps names to objects plus metadata; ``register`` is used as a decorator."""

    def __init__(self, kind: str, meta: Meta | None = None, arity: int | None = None, signature: str = "",
                 select_arity: int | None = None, select_signature: str = "", allow_none: bool = False):
        self.kind = kind  # 'criterion', 'model', ... used in messages
        self.meta, self.arity, self.signature = meta, arity, signature  # meta None: any metadata
        self.select_arity, self.select_signature = select_arity, select_signature  # entries with meta selects=True
        self.allow_none = allow_none  # an entry with no object (uniform density)
        self._entries: dict[str, Entry[T]] = {}

    def register(self, name: str, **meta: Any) -> Callable[[T], T]:
        key = normalize(name)

        def decorator(obj: T) -> T:
            plugin = _plugin_of(obj)
            who = f"plugin {plugin!r}" if plugin else "dst_core"

            def refuse(problem: str) -> RegistrationError:
                return RegistrationError(f"{who}: {self.kind} {name!r}: {problem}")

            if not isinstance(name, str) or not key or not name.replace("_", "").replace("-", "").isalnum():
                raise refuse("a name is letters, digits, '_' and '-'")
            if key in self._entries:
                other = self._entries[key].plugin
                owner = f"plugin {other!r}" if other else "a built-in"
                raise refuse(f"the name is taken by {owner} ({self.kind} {self._entries[key].name!r}); "
                             "choose another name")
            # its own docstring (a function's, a class's; never one inherited, as inspect.getdoc would give)
            doc = obj.__doc__ if isinstance(obj, (types.FunctionType, type)) and "description" not in meta else None
            if doc and doc.strip() and self.meta is not None and "description" in self.meta.required:
                meta["description"] = doc.strip().splitlines()[0]
            problems = self.meta.problems(meta) if self.meta is not None else []
            if problems:
                raise refuse("; ".join(problems))
            selects = bool(meta.get("selects"))
            arity, signature = (self.select_arity, self.select_signature) if selects else (self.arity, self.signature)
            if obj is None and not self.allow_none or obj is not None and not callable(obj):
                raise refuse(f"got {obj!r}; expected a callable {signature}")
            if obj is not None and arity is not None and not _takes(obj, arity):
                try:
                    got = f"{getattr(obj, '__name__', type(obj).__name__)}{inspect.signature(obj)}"
                except (TypeError, ValueError):
                    got = repr(obj)
                raise refuse(f"got {got}; expected {signature}")
            self._entries[key] = Entry(name, obj, dict(meta), plugin)
            return obj

        return decorator

    def get(self, name: str) -> Entry[T]:
        try:
            return self._entries[normalize(name)]
        except KeyError:
            raise UnknownNameError(self.unknown_message(name)) from None

    def unknown_message(self, name: object) -> str:
        names = self.names()
        return f"unknown {self.kind} {name!r}{did_you_mean(name, names)} (choices: {', '.join(names)})"

    def canonical(self, name: str) -> str:
        """The registered spelling of ``name`` (raises if unknown)."""
        return self.get(name).name

    def names(self) -> list[str]:
        return sorted(e.name for e in self._entries.values())

    def __contains__(self, name: object) -> bool:
        return normalize(str(name)) in self._entries

    def __iter__(self) -> Iterator[Entry[T]]:
        return iter(sorted(self._entries.values(), key=lambda e: e.name))
