"""The database layer's contract: errors, ``Connection``, ``Database`` (connect, transactions, retries,
migrations) and dry-run stores.  The two implementations are :mod:`.sqlite` and :mod:`.postgres`."""


from __future__ import annotations

import asyncio
import random
from collections.abc import Awaitable, Callable, Sequence
from typing import Any, TypeVar
from urllib.parse import urlsplit

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

    async def fetch_committed(self, sql: str, *args: Any) -> list[dict[str, Any]]:
        """A read of what committed transactions wrote, answered without waiting for any transaction.

        ``fetch`` on SQLite may read the open group's writes (this process's connection), and so waits for
        that group's flush before it answers; this reads the file as another process would (a reader
        connection of its own: in WAL mode it sees only flushed commits) and waits for nothing.  On PostgreSQL
        it is ``fetch`` (a statement outside a transaction reads committed rows).  So it may miss a write
        that is about to commit: use it where that cannot matter, e.g. to find out that nothing needs to be
        written (credit_check's end event of a call it never reserved, or already settled), and do the
        write, if any, in a transaction that reads again under its lock.  (A SQLite ``:memory:`` database
        has no second connection: ``fetch``.)
        """
        return await self.fetch(sql, *args)

    async def fetchrow_committed(self, sql: str, *args: Any) -> dict[str, Any] | None:
        """The first row of :meth:`fetch_committed`, or None."""
        rows = await self.fetch_committed(sql, *args)
        return rows[0] if rows else None

    @staticmethod
    async def connect(url: str, *, create: bool = True, shared: bool = False, page_size: int | None = None,
                      **options: Any) -> Database:
        """``sqlite:///relative.db``, ``sqlite:////abs/path.db``, ``sqlite://:memory:``, or ``postgresql://...``.

        ``create=False``: a SQLite file that does not exist is not created (``MissingDatabaseError``, naming
        its absolute path): for commands that only read.

        ``shared=True`` (SQLite files): one database object per file in this event loop for every caller that
        asks for it shared (plugins configured with one URL), closed when the last of them closes it.  One
        connection, so their transactions are group-committed together (one disk flush), instead of two
        connections of one process waiting for each other's write lock.  PostgreSQL: not shared (each
        caller has its own pool).

        ``page_size``: the page size of a SQLite file this call creates (SQLite's default when None); a
        PostgreSQL URL has no such setting and ignores it, so a component can ask for it whatever its URL.
        """
        scheme = urlsplit(url).scheme
        if scheme == "sqlite":
            from .sqlite import SQLiteDatabase, open_shared
            if shared and create and not options and page_size is None:
                return await open_shared(url)
            db: Database = SQLiteDatabase(url, create=create, page_size=page_size, **options)
        elif scheme in ("postgresql", "postgres"):
            from .postgres import PostgresDatabase
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
                    from .sqlite import sqlite_statements
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


