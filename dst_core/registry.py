"""Registries: the one place where each name (criterion, model, dataset, ...) is defined.

Look-ups ignore case, ``_`` and ``-`` so the paper's spellings work (``SET``, ``SNIP``,
``ReciprocalSensitivity``). Unknown names raise :class:`UnknownNameError` with a did-you-mean.
"""

from __future__ import annotations

import difflib
from dataclasses import dataclass, field
from typing import Any, Callable, Generic, Iterator, TypeVar

from .errors import UnknownNameError

__all__ = ["Entry", "Registry", "did_you_mean", "normalize"]

T = TypeVar("T")


def did_you_mean(name: object, choices: list[str]) -> str:
    """``"; did you mean 'x'?"`` for the closest choice, or ``""`` when none is close."""
    close = difflib.get_close_matches(str(name).lower(), choices, n=1, cutoff=0.6)
    return f"; did you mean {close[0]!r}?" if close else ""


def normalize(name: str) -> str:
    """Canonical look-up key: lower case without ``_``, ``-`` or spaces."""
    return "".join(ch for ch in str(name).lower() if ch not in "_- ")


@dataclass(frozen=True)
class Entry(Generic[T]):
    name: str  # canonical lower_snake name
    obj: T  # the registered function or class
    meta: dict[str, Any] = field(default_factory=dict)

    def __getattr__(self, key: str) -> Any:  # entry.needs_grad reads meta
        try:
            return self.meta[key]
        except KeyError:
            raise AttributeError(key) from None


class Registry(Generic[T]):
    """Maps names to objects plus metadata; ``register`` is used as a decorator."""

    def __init__(self, kind: str):
        self.kind = kind  # 'criterion', 'model', ... used in messages
        self._entries: dict[str, Entry[T]] = {}

    def register(self, name: str, **meta: Any) -> Callable[[T], T]:
        key = normalize(name)

        def decorator(obj: T) -> T:
            if key in self._entries:
                raise ValueError(f"{self.kind} {name!r} is registered twice")
            self._entries[key] = Entry(name, obj, dict(meta))
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
