"""PostgreSQL through an asyncpg pool: several callgate instances on one database; see the package docstring."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any
from urllib.parse import parse_qsl, urlsplit

from .base import (
    TRANSACTION_ATTEMPTS,
    Connection,
    Database,
    DatabaseError,
    DeadlockError,
    SerializationError,
    redact,
)


class _PostgresConnection(Connection):
    def __init__(self, conn: Any) -> None:
        self._conn = conn

    async def execute(self, sql: str, *args: Any) -> int:
        status = await _pg(self._conn.execute(sql, *args))
        last = status.rsplit(" ", 1)[-1] if status else ""
        return int(last) if last.isdigit() else 0

    async def fetch(self, sql: str, *args: Any) -> list[dict[str, Any]]:
        return [dict(r) for r in await _pg(self._conn.fetch(sql, *args))]


async def _pg(awaitable: Any) -> Any:
    import asyncpg
    try:
        return await awaitable
    except asyncpg.SerializationError as exc:
        raise SerializationError(f"PostgreSQL: {type(exc).__name__}: {exc}") from exc
    except asyncpg.DeadlockDetectedError as exc:
        raise DeadlockError(f"PostgreSQL: {type(exc).__name__}: {exc}") from exc
    except (asyncpg.PostgresError, asyncpg.InterfaceError, OSError) as exc:
        raise DatabaseError(f"PostgreSQL: {type(exc).__name__}: {exc}") from exc


#: See the module docstring: PostgreSQL ends a session idle inside a transaction for this long (ms), and a
#: statement waits at most this long for a lock.  Longer than any callback's deadline (ICE 2 s, DICE 4 s by
#: default): a living callgate never leaves a transaction idle, nor usefully waits for a lock, that long.
IDLE_IN_TRANSACTION_TIMEOUT_MS = 5_000
TRANSACTION_SETTINGS = ("idle_in_transaction_session_timeout", "lock_timeout")


#: PostgreSQL's keepalive probes on callgate's sessions: the first after this idle time (s), then every
#: interval (s); the session ends after count unanswered ones.  Sent as startup settings of every connection
#: (behind PgBouncer, list them in its ``ignore_startup_parameters``).
TCP_KEEPALIVE = {"tcp_keepalives_idle": 5, "tcp_keepalives_interval": 2, "tcp_keepalives_count": 3}
KEEPALIVE_DETECTION_SECONDS = (TCP_KEEPALIVE["tcp_keepalives_idle"]
                               + TCP_KEEPALIVE["tcp_keepalives_interval"] * TCP_KEEPALIVE["tcp_keepalives_count"])


def _url_settings(url: str) -> set[str]:
    """The settings the URL's query names (asyncpg sends them to the server as the session's settings)."""
    return {key for key, _ in parse_qsl(urlsplit(url).query)}


def _session_settings(url: str) -> dict[str, str]:
    """The TCP_KEEPALIVE settings the URL does not set itself, as the session's startup settings (every
    connection the pool opens has them from its first packet)."""
    named = _url_settings(url)
    return {name: str(value) for name, value in TCP_KEEPALIVE.items() if name not in named}


def _transaction_settings(url: str) -> str:
    """``; SET LOCAL ...`` for each of TRANSACTION_SETTINGS the URL does not set itself (asyncpg sends the
    URL's query parameters to the server as the session's settings)."""
    named = _url_settings(url)
    return "".join(f"; SET LOCAL {name} = {IDLE_IN_TRANSACTION_TIMEOUT_MS}"
                   for name in TRANSACTION_SETTINGS if name not in named)


async def _leave_session_as_it_is(conn: Any) -> None:
    """The pool's reset of a connection given back: nothing is sent.

    asyncpg's default reset sends ``SELECT pg_advisory_unlock_all(); CLOSE ALL; UNLISTEN *; RESET ALL`` each
    time a connection goes back to the pool: one more round trip for every transaction, on every callback's way
    to its answer, undoing what this layer never does: its transactions set their limits with ``SET LOCAL``,
    migrations take a transaction-scoped advisory lock, nothing listens or keeps a cursor past its
    transaction.  (A transaction still open, after a cancelled callback, is rolled back by the pool before
    this is called.)  So SQL run through this layer must not change the session either: no plain ``SET``,
    ``LISTEN`` or session advisory lock (see the package docstring)."""


class PostgresDatabase(Database):
    dialect = "postgresql"

    def __init__(self, url: str, min_size: int = 1, max_size: int = 10, connect_timeout: float = 5.0,
                 command_timeout: float = 10.0, transaction_attempts: int = TRANSACTION_ATTEMPTS) -> None:
        self.url = url
        self.transaction_attempts = max(1, transaction_attempts)
        self._options = {"min_size": min_size, "max_size": max_size, "timeout": connect_timeout,
                         "command_timeout": command_timeout}
        self._pool: Any = None
        self._begin: dict[bool, str] = {}

    async def open(self) -> None:
        try:
            import asyncpg
        except ImportError:
            raise DatabaseError('PostgreSQL needs asyncpg: pip install "callgate[postgres]"') from None
        settings = _transaction_settings(self.url)
        for serializable, level in ((False, "READ COMMITTED"), (True, "SERIALIZABLE")):
            # One round trip: the BEGIN and the transaction's own limits (SET LOCAL ends with the transaction).
            self._begin[serializable] = f"BEGIN ISOLATION LEVEL {level}{settings}"
        try:
            self._pool = await asyncpg.create_pool(self.url, server_settings=_session_settings(self.url),
                                                   reset=_leave_session_as_it_is, **self._options)
        except (TimeoutError, asyncpg.PostgresError, OSError) as exc:
            raise DatabaseError(f"cannot connect to {redact(self.url)}: {type(exc).__name__}: {exc}") from None

    async def close(self) -> None:
        if self._pool is not None:
            pool, self._pool = self._pool, None
            await pool.close()

    async def execute(self, sql: str, *args: Any) -> int:
        """One statement, its own transaction (run again on a TransactionConflict, like run_transaction)."""
        async def attempt() -> int:
            async with self._acquire() as conn:
                return await _PostgresConnection(conn).execute(sql, *args)
        return await self._retrying(attempt)

    async def fetch(self, sql: str, *args: Any) -> list[dict[str, Any]]:
        async def attempt() -> list[dict[str, Any]]:
            async with self._acquire() as conn:
                return await _PostgresConnection(conn).fetch(sql, *args)
        return await self._retrying(attempt)

    @asynccontextmanager
    async def _acquire(self) -> AsyncIterator[Any]:
        if self._pool is None:
            raise DatabaseError("the database is closed")
        try:
            conn = await self._pool.acquire()
        except (TimeoutError, OSError) as exc:
            raise DatabaseError(f"cannot reach {redact(self.url)}: {type(exc).__name__}: {exc}") from exc
        except Exception as exc:
            import asyncpg
            if isinstance(exc, (asyncpg.PostgresError, asyncpg.InterfaceError)):
                raise DatabaseError(f"cannot reach {redact(self.url)}: {type(exc).__name__}: {exc}") from exc
            raise
        try:
            yield conn
        finally:
            await self._pool.release(conn)

    @asynccontextmanager
    async def transaction(self, *, serializable: bool = False, rollback: bool = False) -> AsyncIterator[Connection]:
        async with self._acquire() as conn:
            await _pg(conn.execute(self._begin[serializable]))
            try:
                yield _PostgresConnection(conn)
            except BaseException:
                try:
                    await _pg(conn.execute("ROLLBACK"))
                except DatabaseError:
                    pass   # the connection is broken: the server rolls back, the pool replaces it; keep the cause
                raise
            else:
                await _pg(conn.execute("ROLLBACK" if rollback else "COMMIT"))
