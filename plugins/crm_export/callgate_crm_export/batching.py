"""Group commit: many concurrent writes, one transaction.

Each DICE must be committed before it is answered, and every commit costs a disk flush
(SQLite) or a round trip (PostgreSQL).  A :class:`Batcher` runs the first request at once and
puts every request that arrives meanwhile into the next batch, so a burst of DICEs costs one
commit per batch instead of one per DICE, and a lone DICE waits for nothing.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Sequence
from typing import Generic, TypeVar

T = TypeVar("T")
R = TypeVar("R")


class Batcher(Generic[T, R]):
    """``await batcher.submit(item)`` -> the item's result from ``run_batch(items)`` (results in item order).

    If the batch fails, every submitter of that batch gets the exception; ``run_batch`` may also
    return an exception in an item's place, for that item's submitter alone.  A submitter that is
    cancelled (its hook timed out) does not cancel the batch: its item is still committed or
    rolled back as a whole, never cut in the middle of a transaction.
    """

    def __init__(self, run_batch: Callable[[list[T]], Awaitable[Sequence[R | Exception]]], max_batch: int = 256) -> None:
        self.run_batch = run_batch
        self.max_batch = max_batch
        self._queue: list[tuple[T, asyncio.Future]] = []
        self._task: asyncio.Task | None = None

    async def submit(self, item: T) -> R:
        future = asyncio.get_running_loop().create_future()
        self._queue.append((item, future))
        if self._task is None:
            self._task = asyncio.create_task(self._drain())
        return await future

    async def _drain(self) -> None:
        try:
            while self._queue:
                batch, self._queue = self._queue[:self.max_batch], self._queue[self.max_batch:]
                try:
                    results = await self.run_batch([item for item, _ in batch])
                except asyncio.CancelledError:
                    for _, future in batch + self._queue:
                        future.cancel()
                    raise
                except Exception as exc:
                    for _, future in batch:
                        if not future.done():
                            future.set_exception(exc)
                else:
                    for (_, future), result in zip(batch, results, strict=True):
                        if future.done():
                            continue
                        if isinstance(result, Exception):     # this item alone failed
                            future.set_exception(result)
                        else:
                            future.set_result(result)
        finally:
            self._task = None

    async def wait_idle(self) -> None:
        """Wait until every submitted item has been run."""
        while self._task is not None:
            await asyncio.gather(self._task, return_exceptions=True)
