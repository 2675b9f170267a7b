"""The bounded caches of the answer path."""

from __future__ import annotations

from collections.abc import Callable
from typing import TypeVar

V = TypeVar("V")


class ClearingCache(dict):
    """A dict of at most ``size`` entries that empties itself when a new entry would not fit.

    For values that are cheap to rebuild (built routes, serialised answers, checked SVAML): a hit
    is a plain dict lookup, with none of an LRU's bookkeeping; a workload with more distinct keys
    than ``size`` only rebuilds more often, and memory stays bounded.
    """

    __slots__ = ("size",)

    def __init__(self, size: int) -> None:
        super().__init__()
        self.size = size

    def put(self, key: object, value: V) -> V:
        """Store ``value`` (clearing everything first when full) and return it."""
        if len(self) >= self.size:
            self.clear()
        self[key] = value
        return value

    def through(self, key: object, build: Callable[[], V]) -> V:
        """The value kept for ``key``, else ``build()``'s, kept.  An unhashable key (SVAML holding a list) is
        built every time and never kept."""
        try:
            known = self.get(key)
        except TypeError:
            return build()
        return self.put(key, build()) if known is None else known
