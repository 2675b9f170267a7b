"""The plugin's connection to its database, kept open, and opened again after an outage.

An unreachable PostgreSQL server must not stop callgate from starting or
answering: calls get the plugin's ``on_error`` policy meanwhile, ``/readyz``
says why, and the connection is tried again at most every ``retry_seconds``
(one attempt at a time, however many calls are waiting).  Once connected,
asyncpg's pool replaces broken connections itself.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable

import structlog

from callgate.storage import DatabaseError, redact

from .store import CreditStore

log = structlog.get_logger("callgate.credit_check")


class StoreHandle:
    """``await handle.get()`` -> the open CreditStore, or DatabaseError at once while it is unreachable."""

    def __init__(self, url: str, *, retry_seconds: float = 5.0,
                 opener: Callable[[str], Awaitable[CreditStore]] = CreditStore.open,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self._url = url
        self._retry = retry_seconds
        self._opener = opener
        self._clock = clock
        self._store: CreditStore | None = None
        self._attempt: asyncio.Task[CreditStore] | None = None
        self._error: str | None = None
        self._failed_at = float("-inf")

    @property
    def error(self) -> str | None:
        """Why the last attempt to connect failed (None when connected or not yet tried)."""
        return self._error

    async def get(self) -> CreditStore:
        if self._store is not None:
            return self._store
        if self._attempt is None:
            if self._error is not None and self._clock() - self._failed_at < self._retry:
                raise DatabaseError(f"{self._error} (next attempt within {self._retry:g} s)")
            self._attempt = asyncio.get_running_loop().create_task(self._connect())
            self._attempt.add_done_callback(_retrieve)
        return await asyncio.shield(self._attempt)

    async def _connect(self) -> CreditStore:
        try:
            store = await self._opener(self._url)
        except DatabaseError as exc:
            self._error, self._failed_at = str(exc), self._clock()
            log.error("credit_database_unreachable", database=redact(self._url), error=str(exc),
                      retry_seconds=self._retry)
            raise
        finally:
            self._attempt = None
        if self._error is not None:
            log.info("credit_database_reconnected", database=redact(self._url))
        self._store, self._error = store, None
        return store

    async def close(self) -> None:
        attempt, self._attempt = self._attempt, None
        if attempt is not None:
            attempt.cancel()
            try:
                await attempt
            except (asyncio.CancelledError, DatabaseError):
                pass
        store, self._store = self._store, None
        if store is not None:
            await store.close()


def _retrieve(task: asyncio.Task) -> None:
    """Mark a failed attempt's exception as seen when every waiter has gone (no 'never retrieved' warning)."""
    if not task.cancelled():
        task.exception()
