"""SQLite: the embedded default (one file, nothing to install); see the package docstring."""

from __future__ import annotations

import asyncio
import re
import sqlite3
import threading
import time
from collections.abc import AsyncIterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import asynccontextmanager
from decimal import Decimal
from functools import lru_cache
from pathlib import Path
from typing import Any

from .base import (
    Connection,
    Database,
    DatabaseError,
    MissingDatabaseError,
    log,
)
from .sqlite_waiters import WriteWaiters
from .turns import TurnLock

#: How often a transaction waiting for another process's write lock tries to take it.
WRITE_LOCK_POLL_SECONDS = 0.0005
#: How long, at most, a process about to write lets a process that waits for the write lock go first.
TURN_SECONDS = 0.005


def _sqlite_path(url: str) -> str:
    rest = url[len("sqlite://"):]
    if rest in (":memory:", "/:memory:"):
        return ":memory:"
    return rest[1:] if rest.startswith("/") else rest


def sqlite_statements(script: str) -> list[str]:
    """The statements of a SQL script, split at each ``;`` that ends a statement for SQLite
    (``sqlite3.complete_statement``): not one inside a string literal, a quoted name, a comment or a
    trigger's ``BEGIN ... END``.  Empty statements are dropped; the last may lack its ``;``."""
    statements: list[str] = []
    current = ""
    pieces = script.split(";")
    for number, piece in enumerate(pieces, start=1):
        current += piece
        if number == len(pieces):
            break
        current += ";"
        if sqlite3.complete_statement(current):
            if current.strip().rstrip(";").strip():
                statements.append(current.strip())
            current = ""
    if current.strip():
        statements.append(current.strip())
    return statements


def _busy(exc: sqlite3.OperationalError) -> bool:
    """The error of a statement that found the database locked by another connection."""
    return "locked" in str(exc) or "busy" in str(exc)


def _switch_to_wal(conn: sqlite3.Connection, patience_s: float) -> None:
    """WAL mode, waiting for a concurrent opener of a new file (SQLite's busy timeout does not cover this)."""
    deadline = time.monotonic() + patience_s
    while True:
        try:
            conn.execute("PRAGMA journal_mode = WAL")
            return
        except sqlite3.OperationalError as exc:
            if "locked" not in str(exc) or time.monotonic() > deadline:
                raise
            time.sleep(0.01)


class _SQLiteConnection(Connection):
    """Statements of the transaction that holds the database's lock, run where they are called."""

    def __init__(self, db: SQLiteDatabase) -> None:
        self._db = db

    async def execute(self, sql: str, *args: Any) -> int:
        return self._db._statement(sql, args).rowcount

    async def fetch(self, sql: str, *args: Any) -> list[dict[str, Any]]:
        return [dict(row) for row in self._db._statement(sql, args).fetchall()]

    async def fetchval(self, sql: str, *args: Any) -> Any:
        row = self._db._statement(sql, args).fetchone()
        return None if row is None else row[0]


#: One token of SQL text that may contain ``$1`` without it being a placeholder (a string literal, a quoted
#: name, a comment, a name such as ``a$1``), or a placeholder ``$<n>``: the tokens SQLite's own tokenizer knows.
_SQLITE_TOKEN = re.compile(r"""
      '(?:[^']|'')*'              # a string literal ('' is a quote inside it)
    | "(?:[^"]|"")*"              # quoted names
    | `(?:[^`]|``)*`
    | \[[^\]]*\]
    | --[^\n]*                    # a comment, to the end of the line
    | /\*.*?(?:\*/|\Z)            # a block comment (the last one may run to the end)
    | [^\W\d][\w$]*               # a name (it may contain $)
    | \$(\d+)                      # a placeholder
""", re.VERBOSE | re.DOTALL)


def _sqlite_placeholder(match: re.Match[str]) -> str:
    number = match.group(1)
    return match.group(0) if number is None else f"?{number}"


@lru_cache(maxsize=1024)
def sqlite_sql(sql: str) -> str:
    """PostgreSQL's ``$1`` placeholders as SQLite's ``?1``; text in literals, quoted names and comments kept
    (for a plugin that runs its own SQL on a ``sqlite3`` connection, as the console's writer thread does)."""
    return _SQLITE_TOKEN.sub(_sqlite_placeholder, sql)


class _Group:
    """One SQLite transaction shared by the callers' transactions that ran while it was open (group commit).

    Each caller waits on a future of its own (:meth:`durable`), resolved the moment the COMMIT's outcome reaches
    the event loop: a cancelled caller cancels only its own wait (its transaction still commits or fails with the
    group), and nothing stands between the COMMIT and its callers (a future shared through ``asyncio.shield``
    would cost every caller two more turns of a busy event loop).
    """

    def __init__(self) -> None:
        self.commit_scheduled = False
        self.broken: DatabaseError | None = None
        #: Set once the group has ended: committed (``error`` None) or not.
        self.ended = False
        self.error: DatabaseError | None = None
        self._waiters: list[asyncio.Future[None]] = []

    async def settled(self) -> None:
        """Return once the group has ended, committed or not."""
        if not self.ended:
            waiter = asyncio.get_running_loop().create_future()
            self._waiters.append(waiter)
            await waiter

    async def durable(self) -> None:
        """Return once the group is committed; raise its DatabaseError if it was not."""
        await self.settled()
        if self.error is not None:
            raise self.error

    def end(self, error: DatabaseError | None) -> None:
        """The group's outcome, given to every caller waiting for it."""
        self.ended, self.error = True, error
        for waiter in self._waiters:
            if not waiter.done():
                waiter.set_result(None)
        self._waiters.clear()


#: The SQLite files opened with ``Database.connect(shared=True)``: (absolute path, event loop) -> the database
#: and its opening.
_SHARED: dict[tuple[str, asyncio.AbstractEventLoop], tuple[SQLiteDatabase, asyncio.Future[None]]] = {}


async def open_shared(url: str) -> SQLiteDatabase:
    """The open database of this file in this event loop, or a new one; each call needs its own ``close()``."""
    path = _sqlite_path(url)
    if path == ":memory:":            # every :memory: connection is a database of its own
        db = SQLiteDatabase(url)
        await db.open()
        return db
    key = (str(Path(path).absolute()), asyncio.get_running_loop())  # noqa: ASYNC240  (no I/O: a path joined)
    entry = _SHARED.get(key)
    if entry is None:
        new = SQLiteDatabase(url)
        entry = _SHARED[key] = (new, asyncio.ensure_future(new.open()))
    db, opening = entry
    try:
        await asyncio.shield(opening)
    except BaseException:
        if _SHARED.get(key) is entry:
            del _SHARED[key]
        raise
    db._users += 1
    db._shared_key = key
    return db


class SQLiteDatabase(Database):
    """One connection per process.  Statements run on the event loop's thread: on a WAL database inside
    a held write lock they never wait for another process, and take microseconds.  What may wait runs on
    the database's own thread: a ``BEGIN IMMEDIATE`` that finds another process writing or waiting to write
    (polled every ``WRITE_LOCK_POLL_SECONDS`` for at most ``busy_timeout``, the processes taking turns: see
    :mod:`.sqlite_waiters`), and every ``COMMIT`` (the disk flush).

    Group commit: every caller's transaction is a savepoint inside one SQLite transaction; the first caller
    to finish schedules the COMMIT behind the callers already waiting for the lock, so a burst of N
    transactions costs one flush instead of N.  Nobody is answered before the flush that makes its
    transaction (or what its read saw) durable; if that flush fails, every caller of the group gets the
    DatabaseError.

    ``page_size``: the page size in bytes of a file this opens for the first time (SQLite's 4096 otherwise;
    a file that already exists keeps its own).  A store of large rows wants large pages: fewer pages to
    write, and to free when they are deleted.
    """

    dialect = "sqlite"

    def __init__(self, url: str, busy_timeout_ms: int = 5000, create: bool = True,
                 page_size: int | None = None) -> None:
        self.url = url
        self.path = _sqlite_path(url)
        self.create = create
        self.page_size = page_size
        self._busy_timeout_ms = busy_timeout_ms
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="callgate-sqlite")
        self._lock = TurnLock()
        self._conn: sqlite3.Connection | None = None
        #: A second connection, for ``fetch_committed`` only (None for ``:memory:``).
        self._reader: sqlite3.Connection | None = None
        self._bare = _SQLiteConnection(self)
        self._group: _Group | None = None
        self._commits: set[asyncio.Task] = set()
        self._waiters = WriteWaiters(None)
        #: Opened with ``shared=True``: how many callers use it (the last ``close()`` closes it), and its key.
        self._users = 0
        self._shared_key: tuple[str, asyncio.AbstractEventLoop] | None = None

    async def open(self) -> None:
        if not self.create and self.path != ":memory:" and not Path(self.path).exists():  # noqa: ASYNC240  (one stat, when the store opens)
            raise MissingDatabaseError(f"no SQLite database at {Path(self.path).absolute()} (none was created)")  # noqa: ASYNC240

        def connect() -> sqlite3.Connection:
            if self.path != ":memory:":
                Path(self.path).parent.mkdir(parents=True, exist_ok=True)
            conn = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False)
            conn.row_factory = sqlite3.Row
            conn.execute(f"PRAGMA busy_timeout = {int(self._busy_timeout_ms)}")
            # Sorting and IN (...) lists use temporary b-trees; in a temporary file (SQLite's default) each
            # such statement costs tens of microseconds more (a rate lookup: 62 -> 17 us).
            conn.execute("PRAGMA temp_store = MEMORY")
            if self.page_size is not None:
                conn.execute(f"PRAGMA page_size = {int(self.page_size)}")   # before WAL: fixed from then on
            if self.path != ":memory:":
                _switch_to_wal(conn, self._busy_timeout_ms / 1000)
                conn.execute("PRAGMA synchronous = FULL")
            return conn

        def connect_reader() -> sqlite3.Connection:
            # Never waits: a WAL reader is refused ("busy") only while the WAL's index is rebuilt, and then
            # fetch_committed reads through the main connection instead.
            reader = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False)
            reader.row_factory = sqlite3.Row
            reader.execute("PRAGMA busy_timeout = 0")
            reader.execute("PRAGMA query_only = ON")
            return reader
        loop = asyncio.get_running_loop()
        try:
            self._conn = await loop.run_in_executor(self._executor, connect)
            if self.path != ":memory:":
                self._reader = await loop.run_in_executor(self._executor, connect_reader)
        except sqlite3.Error as exc:
            raise DatabaseError(f"cannot open SQLite database {self.path}: {exc}") from None
        except OSError as exc:           # its folder cannot be made: a part of the path is a file, or not writable
            why = f"{exc.filename} is a file, not a folder" if isinstance(exc, FileExistsError) else \
                f"{exc.strerror} ({exc.filename})"
            raise DatabaseError(f"cannot create the folder of SQLite database {self.path}: {why}") from None
        self._waiters = WriteWaiters.beside(self.path)

    async def close(self) -> None:
        if self._shared_key is not None:
            self._users -= 1
            if self._users > 0:
                return
            if _SHARED.get(self._shared_key, (None,))[0] is self:
                del _SHARED[self._shared_key]
            self._shared_key = None
        while self._commits:                     # a group still committing: let it finish
            await asyncio.gather(*self._commits, return_exceptions=True)
        if self._reader is not None:
            reader, self._reader = self._reader, None
            await asyncio.get_running_loop().run_in_executor(self._executor, reader.close)
        if self._conn is not None:
            conn, self._conn = self._conn, None
            await asyncio.get_running_loop().run_in_executor(self._executor, conn.close)
        self._waiters.close()
        self._executor.shutdown(wait=False)

    # --- on the event loop's thread, under the lock

    def _connection(self) -> sqlite3.Connection:
        if self._conn is None:
            raise DatabaseError("the database is closed")
        return self._conn

    def _statement(self, sql: str, args: tuple) -> sqlite3.Cursor:
        conn = self._connection()
        try:
            return conn.execute(sqlite_sql(sql), [str(a) if isinstance(a, Decimal) else a for a in args])
        except sqlite3.Error as exc:
            if self._group is not None and not conn.in_transaction:   # SQLite rolled the whole group back
                self._break_group(DatabaseError(f"SQLite rolled back the transaction: {exc}"))
            raise DatabaseError(f"SQLite: {exc}") from exc

    def _break_group(self, error: DatabaseError) -> None:
        """The group's transaction is gone: its members are told at its commit; later callers start a new one."""
        group, self._group = self._group, None
        if group is not None:
            group.broken = error
            self._schedule_commit(group)

    async def _join_group(self) -> _Group:
        """The open group, or a new one: BEGIN IMMEDIATE here if the write lock is free and no other process
        waits for it, else on the thread (taking turns with the other processes, see :mod:`.sqlite_waiters`)."""
        if self._group is not None:
            return self._group
        conn = self._connection()
        began = False
        others_wait = self._waiters.anyone()
        if not others_wait:
            try:
                conn.execute("PRAGMA busy_timeout = 0")
                try:
                    conn.execute("BEGIN IMMEDIATE")
                    began = True
                except sqlite3.OperationalError as exc:
                    if not _busy(exc):
                        raise
                finally:
                    conn.execute(f"PRAGMA busy_timeout = {int(self._busy_timeout_ms)}")
            except sqlite3.Error as exc:
                raise DatabaseError(f"SQLite: {exc}") from exc
        if not began:
            await self._begin_on_thread(conn, others_wait)
        self._group = _Group()
        return self._group

    async def _begin_on_thread(self, conn: sqlite3.Connection, others_wait: bool) -> None:
        """Wait (up to busy_timeout) for the write lock on the thread; if cancelled meanwhile, stop waiting, and
        roll back a BEGIN that succeeded all the same, so the connection never stays in a transaction nobody ends."""
        stop = threading.Event()
        begin = asyncio.get_running_loop().run_in_executor(self._executor, self._begin_in_turn, conn, others_wait,
                                                           stop)
        try:
            await asyncio.shield(begin)
        except asyncio.CancelledError:
            stop.set()
            await asyncio.wait([begin])
            if not begin.cancelled() and begin.exception() is None:
                conn.execute("ROLLBACK")
            raise
        except sqlite3.Error as exc:
            raise DatabaseError(f"SQLite: {exc}") from exc

    def _begin_in_turn(self, conn: sqlite3.Connection, others_wait: bool, stop: threading.Event) -> None:
        """On the database's thread: ``BEGIN IMMEDIATE`` once the write lock is ours.

        SQLite's own wait (busy_timeout) sleeps up to 100 ms between tries and loses the lock to a process
        that writes all the time; here the lock is tried every ``WRITE_LOCK_POLL_SECONDS`` while the other
        processes are told that this one waits.  ``others_wait``: another process waited when this one was
        about to begin: it goes first (this one waits until nobody waits, at most ``TURN_SECONDS``).
        """
        if others_wait:
            until = time.monotonic() + TURN_SECONDS
            while self._waiters.anyone() and time.monotonic() < until and not stop.is_set():
                time.sleep(WRITE_LOCK_POLL_SECONDS / 4)
        deadline = time.monotonic() + self._busy_timeout_ms / 1000
        conn.execute("PRAGMA busy_timeout = 0")
        self._waiters.announce()
        try:
            while True:
                try:
                    conn.execute("BEGIN IMMEDIATE")
                    return
                except sqlite3.OperationalError as exc:
                    if not _busy(exc) or time.monotonic() >= deadline or stop.is_set():
                        raise
                time.sleep(WRITE_LOCK_POLL_SECONDS)
        finally:
            self._waiters.withdraw()
            conn.execute(f"PRAGMA busy_timeout = {int(self._busy_timeout_ms)}")

    def _schedule_commit(self, group: _Group) -> None:
        """COMMIT the group once the callers already waiting for the lock have joined it."""
        if not group.commit_scheduled:
            group.commit_scheduled = True
            task = asyncio.get_running_loop().create_task(self._commit(group))
            self._commits.add(task)
            task.add_done_callback(self._commits.discard)

    async def _commit(self, group: _Group) -> None:
        """Take the lock (behind the callers already waiting for it, who join the group first), then COMMIT on the
        database's thread; :meth:`_committed` releases the lock and tells the group's callers."""
        await self._lock.acquire()
        if self._group is group:
            self._group = None
        if group.broken is not None:
            self._lock.release()
            group.end(group.broken)
            return
        loop = asyncio.get_running_loop()
        ended = loop.create_future()
        conn = self._conn

        def commit() -> None:       # on the database's thread
            error = None
            try:
                if conn is None:
                    raise DatabaseError("the database is closed")
                conn.execute("COMMIT")
            except (sqlite3.Error, DatabaseError) as exc:
                error = DatabaseError(f"SQLite: {exc}")
            loop.call_soon_threadsafe(self._committed, group, error, ended)
        self._executor.submit(commit)
        await asyncio.shield(ended)   # close() waits for this task; cancelling it does not stop the COMMIT

    def _committed(self, group: _Group, error: DatabaseError | None, ended: asyncio.Future[None]) -> None:
        """On the event loop's thread, as soon as the COMMIT has ended: the group's callers are told at once."""
        if error is not None and self._conn is not None and self._conn.in_transaction:
            try:
                self._conn.execute("ROLLBACK")
            except sqlite3.Error as exc:
                log.warning("storage_rollback_failed", error=str(exc))
        self._lock.release()
        group.end(error)
        ended.set_result(None)

    # --- the Database interface

    async def execute(self, sql: str, *args: Any) -> int:
        async with self.transaction() as tx:
            return await tx.execute(sql, *args)

    async def fetch(self, sql: str, *args: Any) -> list[dict[str, Any]]:
        async with self._lock:
            rows = await self._bare.fetch(sql, *args)
            group = self._group
        if group is not None:    # it read the open group's writes: answer once they are durable
            await group.durable()
        return rows

    async def fetch_committed(self, sql: str, *args: Any) -> list[dict[str, Any]]:
        """See :meth:`Database.fetch_committed`: on the reader connection, on the event loop's thread (a WAL read
        takes microseconds and waits neither for the write lock nor for a flush)."""
        reader = self._reader
        if reader is not None:
            try:
                cursor = reader.execute(sqlite_sql(sql), [str(a) if isinstance(a, Decimal) else a for a in args])
                return [dict(row) for row in cursor.fetchall()]
            except sqlite3.OperationalError as exc:
                if not _busy(exc):
                    raise DatabaseError(f"SQLite: {exc}") from exc
            except sqlite3.Error as exc:
                raise DatabaseError(f"SQLite: {exc}") from exc
        return await self.fetch(sql, *args)

    @asynccontextmanager
    async def transaction(self, *, serializable: bool = False, rollback: bool = False) -> AsyncIterator[Connection]:
        if rollback:
            async with self._rolled_back() as tx:
                yield tx
            return
        async with self._lock:
            group = await self._join_group()
            try:
                self._statement("SAVEPOINT tx", ())
                try:
                    yield self._bare
                except BaseException:
                    if self._group is group:
                        try:
                            self._statement("ROLLBACK TO tx", ())
                            self._statement("RELEASE tx", ())
                        except DatabaseError as exc:
                            self._break_group(exc)
                    raise
                self._statement("RELEASE tx", ())
                if self._group is not group:
                    raise group.broken or DatabaseError("SQLite rolled back the transaction")
            finally:
                self._schedule_commit(group)
        await group.durable()

    @asynccontextmanager
    async def _rolled_back(self) -> AsyncIterator[Connection]:
        """A rollback-only transaction: a SQLite transaction of its own, rolled back whole when it ends.

        Not a savepoint in the open group: the pages a savepoint rolled back had touched stay dirty, and
        the group's COMMIT writes them, unchanged, to the file (whose header then changes).  So it waits
        for an open group's COMMIT first, and nobody joins it while it runs (it holds the lock).
        """
        while True:
            async with self._lock:
                open_group = self._group
                if open_group is None:
                    group = await self._join_group()
                    try:
                        yield self._bare
                    finally:
                        self._group = None
                        try:
                            self._connection().execute("ROLLBACK")
                        except sqlite3.Error as exc:
                            log.warning("storage_rollback_failed", error=str(exc))
                        group.end(None)
                    return
            await open_group.settled()     # its outcome is its callers' business


