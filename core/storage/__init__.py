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
  a lock, and other processes wait (at most ``busy_timeout``) for the write lock, taking turns
  (a process that waits says so in ``<database>-waiters``, and the writer lets it go first,
  see :mod:`.sqlite_waiters`).  Transactions are
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
  Connections go back to the pool as they are (no ``RESET ALL``, which would cost a round trip
  per transaction): change nothing that outlives a transaction, i.e. ``SET LOCAL`` (inside
  a transaction) rather than ``SET``, no ``LISTEN``, no session advisory lock.
"""

from .base import (
    RETRY_PAUSE_SECONDS,
    TRANSACTION_ATTEMPTS,
    Connection,
    Database,
    DatabaseError,
    DeadlockError,
    MissingDatabaseError,
    SerializationError,
    TransactionConflict,
    connect_for_dry_run,
    redact,
)
from .postgres import IDLE_IN_TRANSACTION_TIMEOUT_MS, KEEPALIVE_DETECTION_SECONDS, TCP_KEEPALIVE, PostgresDatabase
from .sqlite import SQLiteDatabase, sqlite_sql, sqlite_statements

__all__ = [
    "IDLE_IN_TRANSACTION_TIMEOUT_MS",
    "KEEPALIVE_DETECTION_SECONDS",
    "RETRY_PAUSE_SECONDS",
    "TCP_KEEPALIVE",
    "TRANSACTION_ATTEMPTS",
    "Connection",
    "Database",
    "DatabaseError",
    "DeadlockError",
    "MissingDatabaseError",
    "PostgresDatabase",
    "SQLiteDatabase",
    "SerializationError",
    "TransactionConflict",
    "connect_for_dry_run",
    "redact",
    "sqlite_sql",
    "sqlite_statements",
]
