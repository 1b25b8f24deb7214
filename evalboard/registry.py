"""A small typed registry: things registered by name, with "did you mean" on a miss."""

from __future__ import annotations

import difflib
from collections.abc import Iterator
from typing import Generic, TypeVar

from evalboard.errors import BadInputError

T = TypeVar("T")


class Registry(Generic[T]):
    """Named entries of one kind (tasks, evaluation specs, metrics)."""

    def __init__(self, kind: str) -> None:
        self.kind = kind
        self._entries: dict[str, T] = {}

    def register(self, name: str, entry: T, *, replace: bool = False) -> T:
        """Add ``entry`` under ``name``; ``replace`` lets a plugin supersede an entry."""
        if name in self._entries and not replace:
            raise ValueError(f"{self.kind} {name!r} is already registered")
        self._entries[name] = entry
        return entry

    def unregister(self, name: str) -> None:
        self._entries.pop(name, None)

    def get(self, name: str) -> T:
        try:
            return self._entries[name]
        except KeyError:
            raise BadInputError(self.unknown_message(name)) from None

    def unknown_message(self, name: str) -> str:
        """``unknown <kind> 'x'; did you mean 'y'? (known: …)``."""
        close = difflib.get_close_matches(str(name), self._entries, n=3)
        hint = f"; did you mean {', '.join(repr(c) for c in close)}?" if close else ""
        known = ", ".join(sorted(self._entries))
        return f"unknown {self.kind} {str(name)!r}{hint} (known: {known})"

    def names(self) -> list[str]:
        return list(self._entries)

    def __contains__(self, name: object) -> bool:
        return name in self._entries

    def __iter__(self) -> Iterator[T]:
        return iter(list(self._entries.values()))
