"""The console's SQLite writes, on a thread of their own with a connection of their own.

callgate.storage runs SQLite statements on the event loop's thread (they take microseconds for
the answer path's small transactions).  A console batch is hundreds of rows inserted in one go, and
the retention purge deletes thousands: on the loop thread that work would hold every answer
waiting behind it (the p99).  So a SQLite console store writes through a :class:`SQLiteWriter`:
one job per batch on its thread (packing the batch, its INSERT and the COMMIT), and the purge there too.
The store's :class:`~callgate.storage.Database` only reads (WAL: readers see every committed batch
and never wait for the writer).

Durability is SQLite's ``synchronous = FULL`` as everywhere in callgate: a batch written is on disk.
"""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any, TypeVar

from callgate.storage import DatabaseError, sqlite_sql

from . import record
from .record import Capture
from .schema import INSERT, TAKE_IDS

T = TypeVar("T")
#: How long a write waits for another process's write lock (several instances may share the file).
BUSY_TIMEOUT_MS = 5000
#: Pages of write-ahead log after which a commit copies them into the file (SQLite's 1,000 pages are 64 MiB of
#: the console's 64 KiB pages; this keeps the log near 16 MiB).
WAL_AUTOCHECKPOINT_PAGES = 256


class SQLiteWriter:
    """One thread and one connection writing the console's SQLite file (see the module docstring)."""

    def __init__(self, path: str) -> None:
        self.path = path
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="callgate-console-writer")
        self._conn: sqlite3.Connection | None = None

    async def open(self) -> None:
        def connect() -> sqlite3.Connection:
            conn = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False)
            conn.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")
            conn.execute("PRAGMA synchronous = FULL")
            conn.execute(f"PRAGMA wal_autocheckpoint = {WAL_AUTOCHECKPOINT_PAGES}")
            # Zero what a purge deletes only where that writes nothing more (the b-tree pages it writes anyway):
            # Debian's SQLite zeroes every freed page (secure_delete = ON), which made the purge of a batch cost as
            # much CPU as writing it.  Freed pages are reused by the next batches.
            conn.execute("PRAGMA secure_delete = FAST")
            return conn
        self._conn = await self._run(connect)

    async def close(self) -> None:
        conn, self._conn = self._conn, None
        if conn is not None:
            await self._run(conn.close)
        self._executor.shutdown(wait=False)

    async def _run(self, job: Callable[[], T]) -> T:
        try:
            return await asyncio.get_running_loop().run_in_executor(self._executor, job)
        except sqlite3.Error as exc:
            raise DatabaseError(f"SQLite: {exc}") from None

    def _transaction(self, work: Callable[[sqlite3.Connection], T]) -> T:
        """On the thread: ``work`` in one write transaction, committed (or rolled back if it raises)."""
        conn = self._conn
        if conn is None:
            raise DatabaseError("the console's store is closed")
        conn.execute("BEGIN IMMEDIATE")
        try:
            result = work(conn)
        except BaseException:
            conn.execute("ROLLBACK")
            raise
        conn.execute("COMMIT")
        return result

    async def insert(self, captures: Sequence[Capture]) -> None:
        """Pack ``captures`` (:func:`~callgate_console.record.capture`) and write them as one batch, in one
        transaction: one job on the thread."""
        def write(conn: sqlite3.Connection) -> None:
            packed = record.pack(captures)
            first_id = conn.execute(sqlite_sql(TAKE_IDS), (packed.size,)).fetchone()[0]
            conn.execute(sqlite_sql(INSERT), (first_id, *packed))
        await self._run(lambda: self._transaction(write))

    async def execute(self, sql: str, *args: Any) -> int:
        """One statement in a transaction of its own; returns its row count.  ``$1`` placeholders, as for
        callgate.storage."""
        sql = sqlite_sql(sql)
        return await self._run(lambda: self._transaction(lambda conn: conn.execute(sql, args).rowcount))

    async def fetchrow(self, sql: str, *args: Any) -> dict[str, Any] | None:
        """The first row of a read (``$1`` placeholders) by column name, or None."""
        sql = sqlite_sql(sql)

        def read() -> dict[str, Any] | None:
            if self._conn is None:
                raise DatabaseError("the console's store is closed")
            cursor = self._conn.execute(sql, args)
            found = cursor.fetchone()
            return None if found is None else dict(zip([c[0] for c in cursor.description], found, strict=True))
        return await self._run(read)

    async def fetchval(self, sql: str, *args: Any) -> Any:
        """The first column of the first row of a read (``$1`` placeholders), or None."""
        found = await self.fetchrow(sql, *args)
        return None if found is None else next(iter(found.values()))
