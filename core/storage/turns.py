"""A lock for one database connection that hands itself to every waiter in one turn of the event loop.

``asyncio.Lock`` wakes one waiter per release, and a woken waiter runs on the loop's next turn: N
transactions queued behind a SQLite COMMIT then take N turns to get through, although each one's
statements run on the loop's thread without awaiting anything (microseconds).  Under load a turn of the
loop is every other request's work too, so the queue became a convoy: 41 transactions waiting at the
median, 45 turns before a reservation's first statement (``bench/run.py --config full``, v1).

:class:`TurnLock` keeps ``asyncio.Lock``'s contract (one holder at a time; first come, first served; a
newcomer never goes before a waiter), but a release wakes every waiter at once: they run on the next turn
in the order they came, and each takes the lock in its turn when the one before has let it go.  A holder
that awaits while holding it (a COMMIT on the database's thread) makes the rest wait again, in the same
order, ahead of anyone who came later.
"""

from __future__ import annotations

import asyncio
from collections import deque
from types import TracebackType


class TurnLock:
    """``async with lock:`` as with ``asyncio.Lock``; see the module docstring for how it differs."""

    def __init__(self) -> None:
        self._locked = False
        #: Waiters not yet woken, in the order they came.
        self._waiting: deque[asyncio.Future[None]] = deque()
        #: Woken waiters that have not yet run (each takes the lock or waits again, in order).
        self._woken: deque[asyncio.Future[None]] = deque()
        #: How many woken waiters found the lock taken since the last release: they wait again at the front.
        self._again = 0

    def locked(self) -> bool:
        return self._locked

    async def acquire(self) -> None:
        if not (self._locked or self._waiting or self._woken):
            self._locked = True
            return
        waiter = asyncio.get_running_loop().create_future()
        self._waiting.append(waiter)
        while True:
            try:
                await waiter
            except asyncio.CancelledError:
                self._forget(waiter)
                raise
            # Woken: the waiters woken before this one have run (they were scheduled first).
            self._woken.remove(waiter)
            if not self._locked:
                self._locked = True
                return
            # Taken by a waiter before this one that still holds it: wait again, in front of everyone who came
            # after the last release, behind the waiters woken before this one that found it taken too.
            waiter = asyncio.get_running_loop().create_future()
            self._waiting.insert(self._again, waiter)
            self._again += 1

    def release(self) -> None:
        if not self._locked:
            raise RuntimeError("TurnLock is not acquired")
        self._locked = False
        self._wake_all()

    def _wake_all(self) -> None:
        """Everyone waiting may try, in the order they came, on the loop's next turn."""
        self._again = 0
        while self._waiting:
            waiter = self._waiting.popleft()
            if not waiter.done():
                waiter.set_result(None)
                self._woken.append(waiter)

    async def __aenter__(self) -> None:
        await self.acquire()

    async def __aexit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                        tb: TracebackType | None) -> None:
        self.release()

    def _forget(self, waiter: asyncio.Future[None]) -> None:
        """A cancelled waiter leaves the line.  If it was the last woken one and the lock is free, those who came
        after it (who waited for the woken to go first) may try."""
        if waiter in self._waiting:
            index = self._waiting.index(waiter)
            del self._waiting[index]
            if index < self._again:
                self._again -= 1
        elif waiter in self._woken:
            self._woken.remove(waiter)
            if not self._locked and not self._woken:
                self._wake_all()
