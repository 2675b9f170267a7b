"""A log line that a lasting failure would repeat (a store that is down: every flush, every poll, every page),
let through at most once per interval; what it reports is counted, or answered, each time all the same."""

from __future__ import annotations

import time

#: How often a failing store is logged, at most, by each of the console's parts.
LOG_EVERY_SECONDS = 10.0


class Throttle:
    """``due()`` is true at most once per ``seconds`` (the first time at once)."""

    def __init__(self, seconds: float = LOG_EVERY_SECONDS) -> None:
        self.seconds = seconds
        self._last: float | None = None

    def due(self) -> bool:
        now = time.monotonic()
        if self._last is not None and now - self._last < self.seconds:
            return False
        self._last = now
        return True
