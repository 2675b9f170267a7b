"""The live view's feed: one poller per process reads new rows from the store and fans them out.

Reading the store (not this process's memory) is what makes the live view whole with ``--workers``
and several instances: a callback answered by any of them is in the store within
``flush_interval_ms``, and every poller sees it within ``POLL_SECONDS`` more.  The poller runs only
while a stream is open.  Each stream has a bounded queue: a stream that does not keep up loses
events (counted), it never makes the process hold more.

Callbacks' ids become visible in the order they grow (the store hands them out in each batch's
own transaction, one batch at a time), so the poller only asks for the callbacks after the last id
it sent.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

import structlog

from callgate.storage import DatabaseError

from .store import ConsoleStore
from .throttle import Throttle

log = structlog.get_logger("callgate.console")
POLL_SECONDS = 0.3
#: Events waiting for one stream; beyond it the stream's newest events are dropped.
STREAM_QUEUE = 500
#: At most this many new callbacks per poll are sent (a burst beyond it: only the newest; the others are counted as
#: dropped, and the streams told ``skipped``, so that a page reads its calls in progress again).
MAX_PER_POLL = 200


#: What a stream's queue holds: a callback's summary, a change of the store's state (``"unavailable"``: it cannot be
#: read; ``"ready"``: it can again), ``"skipped"`` (callbacks were left out), or None (the console is shutting down).
Item = dict[str, Any] | str | None


class LiveFeed:
    """Subscribers (one bounded queue per open stream) and the poller that fills them."""

    def __init__(self, store: Callable[[], ConsoleStore | None]) -> None:
        self._store = store
        self._subscribers: set[asyncio.Queue[Item]] = set()
        self._task: asyncio.Task[None] | None = None
        #: The id of the last callback sent (None: no stream open).
        self._cursor: int | None = None
        self.dropped = 0
        #: A store that cannot be read fails every poll (every 0.3 s): logged at most every 10 s.
        self._failure_log = Throttle()
        #: Whether the last poll failed: the open streams were told ``unavailable``, and a new one is refused.
        self.failing = False

    @property
    def streams(self) -> int:
        return len(self._subscribers)

    async def subscribe(self) -> asyncio.Queue[Item]:
        """A new stream's queue: every callback written from now on (the starting point is taken before this
        returns, so a callback answered after the stream says it is ready is never missed).  DatabaseError while the
        store cannot be read."""
        if self.failing:
            raise DatabaseError("the console's store cannot be read now")
        queue: asyncio.Queue[Item] = asyncio.Queue(STREAM_QUEUE)
        store = self._store()
        if self._cursor is None and store is not None:
            self._cursor = await store.last_id()
        self._subscribers.add(queue)
        if self._task is None or self._task.done():
            self._task = asyncio.create_task(self._poll(), name="console:live")
        return queue

    def unsubscribe(self, queue: asyncio.Queue[Item]) -> None:
        self._subscribers.discard(queue)

    async def close(self) -> None:
        """End every stream (each gets None) and the poller."""
        for queue in self._subscribers:
            while queue.full():
                queue.get_nowait()
            queue.put_nowait(None)
        self._subscribers.clear()
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)

    async def _poll(self) -> None:
        while self._subscribers:
            store = self._store()
            if store is not None:
                try:
                    await self._once(store)
                except asyncio.CancelledError:
                    raise
                except Exception as exc:
                    if self._failure_log.due():
                        log.warning("console_live_poll_failed", error=f"{type(exc).__name__}: {exc}")
                    if not self.failing:
                        self.failing = True
                        self._publish("unavailable")
                else:
                    if self.failing:
                        self.failing = False
                        self._publish("ready")
            await asyncio.sleep(POLL_SECONDS)
        self._cursor, self.failing = None, False     # the next stream starts from what is new then

    async def _once(self, store: ConsoleStore) -> None:
        if self._cursor is None:                  # the first poll: from what is there now on
            self._cursor = await store.last_id()
            return
        fresh = await store.after(self._cursor, MAX_PER_POLL)
        if not fresh:
            return
        skipped = fresh[0]["id"] - self._cursor - 1     # ids have no gaps: those between were left out
        self._cursor = fresh[-1]["id"]
        if skipped > 0:
            self.dropped += skipped * len(self._subscribers)
            self._publish("skipped")
        for item in fresh:
            self._publish(item)

    def _publish(self, item: dict[str, Any] | str) -> None:
        for queue in self._subscribers:
            try:
                queue.put_nowait(item)
            except asyncio.QueueFull:
                self.dropped += 1
