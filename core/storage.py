"""One small database layer for plugins with state: SQLite by default, PostgreSQL for several instances.

    db = await Database.connect("sqlite:///var/callgate/credit.sqlite3")   # or "postgresql://user@host/db"
    await db.migrate("credit_check", MIGRATIONS)     # numbered SQL scripts, each applied once
    async def pay(tx):                               # serialized writes, committed or rolled back as one
        row = await tx.fetchrow("SELECT balance FROM accounts WHERE id = $1 FOR UPDATE", account)
        await tx.execute("UPDATE accounts SET balance = $1 WHERE id = $2", new, account)
    await db.run_transaction(pay)                    # run again if it lost a deadlock (PostgreSQL)

``transaction(rollback=True)`` runs the same statements and rolls them back at the end: the answer a
write would give, with nothing written (``callgate simulate`` dry runs use it).

SQL uses PostgreSQL's ``$1, $2`` placeholders on both (rewritten to SQLite's ``?1, ?2``, but never
inside a string literal, a quoted name or a comment).
Write SQL both understand: ``INSERT ... ON CONFLICT DO NOTHING``, ``RETURNING``, TEXT for
Decimal money (compare in Python, or store integer minor units).

Transactions are the unit of correctness:

* SQLite: one connection per process; transactions in one process run one at a time under
  a lock, and other processes wait (``busy_timeout``) for the write lock.  Transactions are
  group-committed: one disk flush for all that ran while the previous flush was under way,
  and none is answered before its flush.  Statements run on the event loop's thread (they
  take microseconds); what may wait (another process's write lock, the flush) runs on the
  database's own thread.  See :class:`SQLiteDatabase`.
* PostgreSQL: an asyncpg pool; ``transaction(serializable=False)`` is READ COMMITTED, so
  take row locks with ``SELECT ... FOR UPDATE`` where two instances may race, or pass
  ``serializable=True``.  Take the locks of several rows in one order everywhere (say, by key),
  so that two transactions do not wait for each other.  Should they anyway, PostgreSQL ends one
  of them (a deadlock, SQLSTATE 40P01; a serializable transaction that lost a race: 40001):
  :meth:`Database.run_transaction` runs such a transaction again, a few times, after a short
  random pause, and so does a single statement run with ``db.execute``/``db.fetch``.
  ``transaction()`` alone does not (a ``with`` block cannot be run twice): its caller gets the
  :class:`TransactionConflict`.
  Every transaction sets ``idle_in_transaction_session_timeout`` and ``lock_timeout`` to
  5 s (a setting the URL names, e.g. ``?lock_timeout=2000``, is left to the URL; ``0``
  turns it off).  A callgate transaction never waits between its statements, so a session
  idle inside one has lost its client (a network partition, a host that died): PostgreSQL
  ends it and releases its row locks, instead of keeping every call on those accounts
  waiting until TCP keepalive notices, hours later; and a statement of such a session
  that was queued for a lock gives up rather than take the lock over, so the locks of
  a cut connection are gone within about twice that time.
  A connection cut *inside* a statement is not idle: asyncpg prepares a statement with
  Parse/Describe/Flush and runs it with Bind/Execute/Sync, and a server that got the
  first and never the second waits for the client, locks held, until TCP gives up.
  So every session also sets PostgreSQL's TCP keepalive (``TCP_KEEPALIVE``): an
  unreachable client is noticed ``KEEPALIVE_DETECTION_SECONDS`` after its last packet
  instead of two hours (Linux's default) later.
"""

from __future__ import annotations

import asyncio
import random
import re
import sqlite3
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import asynccontextmanager
from decimal import Decimal
from functools import lru_cache
from pathlib import Path
from typing import Any, TypeVar
from urllib.parse import parse_qsl, urlsplit

import structlog

T = TypeVar("T")
log = structlog.get_logger("callgate.storage")

#: How many times :meth:`Database.run_transaction` runs a transaction that PostgreSQL ended to break a
#: deadlock or a serialization failure, in all (the first run included).
TRANSACTION_ATTEMPTS = 5
#: The pause before the first retry is random in [0, this] seconds; each next one's bound doubles.  Short:
#: the loser of a deadlock has already waited ``deadlock_timeout`` (1 s by default), and its winner is done.
RETRY_PAUSE_SECONDS = 0.02


class DatabaseError(Exception):
    """The database is unreachable or refused a statement (the message never contains a password)."""


class TransactionConflict(DatabaseError):
    """PostgreSQL ended the transaction so that a concurrent one could go on; running it again is safe
    (nothing of it was committed) and usually succeeds.  :meth:`Database.run_transaction` does."""


class SerializationError(TransactionConflict):
    """A serializable transaction lost a race (SQLSTATE 40001); run it again."""


class DeadlockError(TransactionConflict):
    """The transaction waited for a lock held by one that waited for it (SQLSTATE 40P01); run it again."""


class MissingDatabaseError(DatabaseError):
    """A SQLite file opened with ``create=False`` does not exist (nothing was created)."""


def redact(url: str) -> str:
    """A database URL fit for logs and messages: the password replaced by ***."""
    parts = urlsplit(url)
    if parts.password:
        return url.replace(f":{parts.password}@", ":***@", 1)
    return url


class Connection:
    """What a transaction (or the database itself) offers: execute, fetch, fetchrow, fetchval."""

    async def execute(self, sql: str, *args: Any) -> int:
        """Run a statement; returns the number of rows it changed."""
        raise NotImplementedError

    async def fetch(self, sql: str, *args: Any) -> list[dict[str, Any]]:
        raise NotImplementedError

    async def fetchrow(self, sql: str, *args: Any) -> dict[str, Any] | None:
        rows = await self.fetch(sql, *args)
        return rows[0] if rows else None

    async def fetchval(self, sql: str, *args: Any) -> Any:
        row = await self.fetchrow(sql, *args)
        return next(iter(row.values())) if row else None


class Database(Connection):
    """A SQLite file or a PostgreSQL server, by URL."""

    dialect: str
    url: str

    @staticmethod
    async def connect(url: str, *, create: bool = True, **options: Any) -> Database:
        """``sqlite:///relative.db``, ``sqlite:////abs/path.db``, ``sqlite://:memory:``, or ``postgresql://...``.

        ``create=False``: a SQLite file that does not exist is not created (``MissingDatabaseError``, naming
        its absolute path): for commands that only read.
        """
        scheme = urlsplit(url).scheme
        if scheme == "sqlite":
            db: Database = SQLiteDatabase(url, create=create, **options)
        elif scheme in ("postgresql", "postgres"):
            db = PostgresDatabase(url, **options)
        else:
            raise DatabaseError(f"unsupported database URL {redact(url)!r}: use sqlite:///path or postgresql://...")
        await db.open()
        return db

    async def open(self) -> None:
        raise NotImplementedError

    async def close(self) -> None:
        raise NotImplementedError

    #: How many times run_transaction tries (SQLite never ends a transaction to break a deadlock: once).
    transaction_attempts: int = 1

    def transaction(self, *, serializable: bool = False, rollback: bool = False):
        """``async with db.transaction() as tx``: committed when the block ends, rolled back if it raises.
        Not run again on a :class:`TransactionConflict` (see :meth:`run_transaction`).

        ``rollback=True`` makes it rollback-only: its statements run as in any transaction
        (locks, reads of its own writes, row counts), and it is rolled back when the block
        ends, so it answers what the writes would have given and leaves nothing behind.
        """
        raise NotImplementedError

    async def run_transaction(self, work: Callable[[Connection], Awaitable[T]], *,
                              serializable: bool = False, rollback: bool = False) -> T:
        """``await work(tx)`` in a transaction and commit it; returns what ``work`` returned.

        When PostgreSQL ends the transaction to break a deadlock or a serialization failure
        (:class:`TransactionConflict`), ``work`` runs again from the start in a new transaction, up to
        ``transaction_attempts`` times in all, after a short random pause; the last conflict is raised
        (a :class:`DatabaseError`).  So ``work`` must do nothing but read and write through ``tx`` and
        return what it computed: no change to objects outside it, nothing sent, nothing logged as done.
        ``rollback=True``: rolled back instead of committed (a dry run, see :meth:`transaction`).
        """
        async def attempt() -> T:
            async with self.transaction(serializable=serializable, rollback=rollback) as tx:
                return await work(tx)
        return await self._retrying(attempt)

    async def _retrying(self, attempt: Callable[[], Awaitable[T]]) -> T:
        """``attempt()``, again after a TransactionConflict, up to ``transaction_attempts`` times in all."""
        for number in range(1, self.transaction_attempts):
            try:
                return await attempt()
            except TransactionConflict as exc:
                pause = random.uniform(0.0, RETRY_PAUSE_SECONDS * 2 ** (number - 1))
                log.info("storage_transaction_retried", attempt=number, error=str(exc), pause=round(pause, 4))
                await asyncio.sleep(pause)
        try:
            return await attempt()
        except TransactionConflict as exc:
            if self.transaction_attempts == 1:
                raise
            raise type(exc)(f"{exc} (gave up after {self.transaction_attempts} tries)") from exc

    async def applied_migrations(self, component: str) -> int:
        """How many of ``component``'s migrations this database has (0 for none), without creating anything."""
        if self.dialect == "postgresql":
            exists = await self.fetchval("SELECT to_regclass('callgate_migrations') IS NOT NULL")
        else:
            exists = await self.fetchval(
                "SELECT COUNT(*) FROM sqlite_master WHERE type = 'table' AND name = 'callgate_migrations'")
        if not exists:
            return 0
        version = await self.fetchval("SELECT MAX(version) FROM callgate_migrations WHERE component = $1", component)
        return int(version or 0)

    async def ping(self) -> None:
        """Raise DatabaseError unless the database answers."""
        await self.fetchval("SELECT 1")

    async def migrate(self, component: str, migrations: Sequence[str]) -> int:
        """Apply ``migrations[i]`` (SQL scripts) not yet applied for ``component``; returns the version.

        A script is split into statements where the database itself ends one: PostgreSQL runs the
        whole script, SQLite each statement :func:`sqlite_statements` finds, so a ``;`` inside a
        string literal, a quoted name, a comment, a trigger's ``BEGIN ... END`` or (PostgreSQL) a
        ``$$``-quoted function body does not end a statement.  Each script and its bookkeeping
        row are one transaction with all the others not yet applied.

        Safe when several instances start at once on a fresh database: on PostgreSQL an
        advisory lock serialises them (even the creation of the bookkeeping table), on
        SQLite the write lock does.
        """
        async def apply(tx: Connection) -> None:
            if self.dialect == "postgresql":
                await tx.execute("SELECT pg_advisory_xact_lock($1)", _MIGRATION_LOCK)
            await tx.execute("CREATE TABLE IF NOT EXISTS callgate_migrations "
                             "(component TEXT NOT NULL, version INTEGER NOT NULL, PRIMARY KEY (component, version))")
            done = {r["version"] for r in await tx.fetch(
                "SELECT version FROM callgate_migrations WHERE component = $1", component)}
            for version, script in enumerate(migrations, start=1):
                if version in done:
                    continue
                if self.dialect == "postgresql":
                    await tx.execute(script)     # no arguments: asyncpg sends it as one multi-statement query
                else:
                    for statement in sqlite_statements(script):
                        await tx.execute(statement)
                await tx.execute("INSERT INTO callgate_migrations (component, version) VALUES ($1, $2)",
                                 component, version)
        await self.run_transaction(apply)
        return len(migrations)


async def connect_for_dry_run(url: str, component: str,
                              migrations: Callable[[str], Sequence[str]]) -> tuple[Database, bool]:
    """A plugin's store for a dry run (``callgate simulate``): opened as it is, never created or migrated.

    ``migrations(dialect)`` are the component's scripts.  Returns ``(database, stand_in)``: the store itself
    when its schema is up to date; when it does not exist yet (no SQLite file, or none of the component's
    tables), an empty in-memory SQLite store with the schema, and ``stand_in`` True (the caller should say
    so).  A store whose schema is older than ``migrations`` raises DatabaseError: a dry run does not migrate.
    """
    try:
        existing: Database | None = await Database.connect(url, create=False)
    except MissingDatabaseError:
        existing = None
    if existing is not None:
        db = existing
        try:
            version = await db.applied_migrations(component)
            needed = len(migrations(db.dialect))
        except BaseException:
            await db.close()
            raise
        if version >= needed:
            return db, False
        await db.close()
        if version:
            raise DatabaseError(f"cannot simulate against {redact(url)}: its {component} tables are at schema "
                                f"version {version} and this version needs {needed}; a dry run does not migrate "
                                f"them (callgate serve does, at start-up)")
    db = await Database.connect("sqlite://:memory:")
    try:
        await db.migrate(component, migrations(db.dialect))
    except BaseException:
        await db.close()
        raise
    return db, True


#: pg_advisory_xact_lock key for migrations (any constant shared by every callgate instance).
_MIGRATION_LOCK = 0x63616C6C67617465   # "callgate"


# --- SQLite ---------------------------------------------------------------------------------

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
def _sqlite_sql(sql: str) -> str:
    """PostgreSQL's ``$1`` placeholders as SQLite's ``?1``; text in literals, quoted names and comments kept."""
    return _SQLITE_TOKEN.sub(_sqlite_placeholder, sql)


class _Group:
    """One SQLite transaction shared by the callers' transactions that ran while it was open (group commit)."""

    def __init__(self) -> None:
        self.committed: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self.commit_scheduled = False
        self.broken: DatabaseError | None = None


class SQLiteDatabase(Database):
    """One connection per process.  Statements run on the event loop's thread: on a WAL database inside
    a held write lock they never wait for another process, and take microseconds.  What may wait runs on
    the database's own thread: a ``BEGIN IMMEDIATE`` that finds another process writing (``busy_timeout``),
    and every ``COMMIT`` (the disk flush).

    Group commit: every caller's transaction is a savepoint inside one SQLite transaction; the first caller
    to finish schedules the COMMIT behind the callers already waiting for the lock, so a burst of N
    transactions costs one flush instead of N.  Nobody is answered before the flush that makes its
    transaction (or what its read saw) durable; if that flush fails, every caller of the group gets the
    DatabaseError.
    """

    dialect = "sqlite"

    def __init__(self, url: str, busy_timeout_ms: int = 5000, create: bool = True) -> None:
        self.url = url
        self.path = _sqlite_path(url)
        self.create = create
        self._busy_timeout_ms = busy_timeout_ms
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="callgate-sqlite")
        self._lock = asyncio.Lock()
        self._conn: sqlite3.Connection | None = None
        self._bare = _SQLiteConnection(self)
        self._group: _Group | None = None
        self._commits: set[asyncio.Task] = set()

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
            if self.path != ":memory:":
                _switch_to_wal(conn, self._busy_timeout_ms / 1000)
                conn.execute("PRAGMA synchronous = FULL")
            return conn
        try:
            self._conn = await asyncio.get_running_loop().run_in_executor(self._executor, connect)
        except sqlite3.Error as exc:
            raise DatabaseError(f"cannot open SQLite database {self.path}: {exc}") from None

    async def close(self) -> None:
        while self._commits:                     # a group still committing: let it finish
            await asyncio.gather(*self._commits, return_exceptions=True)
        if self._conn is not None:
            conn, self._conn = self._conn, None
            await asyncio.get_running_loop().run_in_executor(self._executor, conn.close)
        self._executor.shutdown(wait=False)

    # --- on the event loop's thread, under the lock

    def _connection(self) -> sqlite3.Connection:
        if self._conn is None:
            raise DatabaseError("the database is closed")
        return self._conn

    def _statement(self, sql: str, args: tuple) -> sqlite3.Cursor:
        conn = self._connection()
        try:
            return conn.execute(_sqlite_sql(sql), [str(a) if isinstance(a, Decimal) else a for a in args])
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
        """The open group, or a new one: BEGIN IMMEDIATE here if the write lock is free, else on the thread."""
        if self._group is not None:
            return self._group
        conn = self._connection()
        try:
            conn.execute("PRAGMA busy_timeout = 0")
            try:
                conn.execute("BEGIN IMMEDIATE")
                began = True
            except sqlite3.OperationalError as exc:
                if "locked" not in str(exc) and "busy" not in str(exc):
                    raise
                began = False
            finally:
                conn.execute(f"PRAGMA busy_timeout = {int(self._busy_timeout_ms)}")
        except sqlite3.Error as exc:
            raise DatabaseError(f"SQLite: {exc}") from exc
        if not began:
            await self._begin_on_thread(conn)
        self._group = _Group()
        return self._group

    async def _begin_on_thread(self, conn: sqlite3.Connection) -> None:
        """Wait (up to busy_timeout) for another process's write lock; a BEGIN that succeeds after its caller
        was cancelled is rolled back, so the connection never stays in a transaction nobody ends."""
        begin = asyncio.get_running_loop().run_in_executor(self._executor, conn.execute, "BEGIN IMMEDIATE")
        try:
            await asyncio.shield(begin)
        except asyncio.CancelledError:
            await asyncio.wait([begin])
            if not begin.cancelled() and begin.exception() is None:
                conn.execute("ROLLBACK")
            raise
        except sqlite3.Error as exc:
            raise DatabaseError(f"SQLite: {exc}") from exc

    def _schedule_commit(self, group: _Group) -> None:
        """COMMIT the group once the callers already waiting for the lock have joined it."""
        if not group.commit_scheduled:
            group.commit_scheduled = True
            task = asyncio.get_running_loop().create_task(self._commit(group))
            self._commits.add(task)
            task.add_done_callback(self._commits.discard)

    async def _commit(self, group: _Group) -> None:
        async with self._lock:
            if self._group is group:
                self._group = None
            error = group.broken
            if error is None:
                try:
                    await asyncio.shield(asyncio.get_running_loop().run_in_executor(
                        self._executor, self._connection().execute, "COMMIT"))
                except (sqlite3.Error, DatabaseError) as exc:
                    error = DatabaseError(f"SQLite: {exc}")
                    if self._conn is not None and self._conn.in_transaction:
                        self._conn.execute("ROLLBACK")
            if error is None:
                group.committed.set_result(None)
            else:
                group.committed.set_exception(error)
                group.committed.exception()      # retrieved: a group nobody waits for logs nothing

    @staticmethod
    async def _durable(group: _Group) -> None:
        """Wait for the group's COMMIT (a cancelled caller's transaction still commits or fails with it)."""
        await asyncio.shield(group.committed)

    # --- the Database interface

    async def execute(self, sql: str, *args: Any) -> int:
        async with self.transaction() as tx:
            return await tx.execute(sql, *args)

    async def fetch(self, sql: str, *args: Any) -> list[dict[str, Any]]:
        async with self._lock:
            rows = await self._bare.fetch(sql, *args)
            group = self._group
        if group is not None:    # it read the open group's writes: answer once they are durable
            await self._durable(group)
        return rows

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
        await self._durable(group)

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
                        group.committed.set_result(None)
                    return
            await asyncio.wait([open_group.committed])     # its outcome is its callers' business


# --- PostgreSQL -----------------------------------------------------------------------------

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
    """The TCP_KEEPALIVE settings the URL does not set itself, as the session's startup settings (a ``SET``
    would not last: the pool runs ``RESET ALL`` when a connection is given back)."""
    named = _url_settings(url)
    return {name: str(value) for name, value in TCP_KEEPALIVE.items() if name not in named}


def _transaction_settings(url: str) -> str:
    """``; SET LOCAL ...`` for each of TRANSACTION_SETTINGS the URL does not set itself (asyncpg sends the
    URL's query parameters to the server as the session's settings)."""
    named = _url_settings(url)
    return "".join(f"; SET LOCAL {name} = {IDLE_IN_TRANSACTION_TIMEOUT_MS}"
                   for name in TRANSACTION_SETTINGS if name not in named)


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
                                                   **self._options)
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
