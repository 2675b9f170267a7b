"""Recording off the answer path: the hook queues the exchange's capture, a background task writes batches.

``add`` is all the answer path pays: the capture (:func:`~.record.capture`: the summary's few
values, the trace and the headers packed, references to the body and the answer) and a
``deque.append``.  The capture, not the exchange, is queued: an exchange keeps its call (with the
decoded body), decision and outcomes alive, objects the garbage collector tracks, and with
thousands of them waiting for the flush the collector walks them again and again (bench/run.py
router-console, with nothing written: p99 33 ms queueing exchanges, 16 ms queueing rows of strings
and numbers).  A capture is made of objects the collector does not even count (``gc=False``
structs, strings, numbers, bytes), so the queue never brings a collection nearer.
Every ``flush_interval_ms`` the flush task writes what is queued as one batch (SQLite: packed and
written by one job on the store's writer thread, off the event loop).  A full queue drops the new
callback and counts it; a write that fails is logged (its error, never a request's content) and
counted, and its batch is dropped, so memory stays bounded whatever the store does.
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Callable

import structlog

from callgate.exchange import Exchange

from .record import Capture, capture
from .schema import MAX_BATCH
from .store import ConsoleStore
from .throttle import Throttle

log = structlog.get_logger("callgate.console")


class Recorder:
    """The queue of exchanges to write, and the counts ``collect_metrics`` reports."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        #: The captures (:func:`~.record.capture`) waiting to be written.
        self.pending: deque[Capture] = deque()
        self.recorded = 0
        self.dropped = 0
        self.failed_writes = 0
        self.lost = 0
        #: A failing store is logged at most every 10 s (every failure is counted).
        self._failure_log = Throttle()

    def add(self, exchange: Exchange) -> None:
        """Queue ``exchange``'s capture (the hook; never waits)."""
        if len(self.pending) >= self.limit:
            self.dropped += 1
            return
        self.pending.append(capture(exchange))

    async def flush(self, store: ConsoleStore) -> None:
        """Write what was queued when it started, in batches of at most ``MAX_BATCH`` callbacks.  What comes while
        it writes waits for the next flush: draining the queue until it is empty would write, after each batch, the
        few callbacks answered during that batch's commit, a small batch after a small batch, each paying a whole
        commit."""
        waiting = len(self.pending)
        while waiting:
            size = min(waiting, MAX_BATCH)
            waiting -= size
            batch = [self.pending.popleft() for _ in range(size)]
            try:
                await store.insert(batch)
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                self.failed_writes += 1
                self.lost += len(batch)
                self._log_failure(exc, len(batch))
                return
            self.recorded += len(batch)

    def _log_failure(self, exc: Exception, size: int) -> None:
        if not self._failure_log.due():
            return
        # DatabaseError messages never hold a password; the rows (requests) are never logged.
        log.error("console_store_failed", error=f"{type(exc).__name__}: {exc}", batch=size,
                  failed_writes=self.failed_writes, lost=self.lost)

    async def run(self, store: Callable[[], ConsoleStore | None], interval: float, stopping: asyncio.Event) -> None:
        """Flush every ``interval`` seconds until ``stopping`` is set, then once more."""
        while True:
            try:
                await asyncio.wait_for(stopping.wait(), interval)
            except TimeoutError:
                pass
            current = store()
            if current is not None:
                await self.flush(current)
            if stopping.is_set():
                return

    def metrics(self) -> dict[str, float]:
        return {"queued": len(self.pending), "recorded": self.recorded, "dropped": self.dropped,
                "failed_writes": self.failed_writes, "lost": self.lost}
