"""The console's store: one table of recorded callbacks, in SQLite (default) or PostgreSQL.

``console_callbacks`` holds one row per signed callback: when, which call (``call_key``: the v1
callid, ``"v2:"`` + a v2 leg's callid), the caller and callee it names, the answer's status, the
decision and the plugin that made it, the request headers (never ``Authorization``) and body, the
answer, and every plugin's trace (JSON).  ``id`` grows with every row; the live view reads the
rows after the last id it has shown, so any instance writing to the same store shows up in every
instance's console.  Rows are only ever inserted and purged (by age and by count, oldest first).

A call's callbacks are found through ``call_hash`` (:func:`~.record.call_hash`, a 31-bit integer)
and then matched on ``call_key``, not through an index of the keys' text: keys are random, so every
batch touches index pages all over the file, and SQLite writes each touched page to the WAL again
(and later into the file).  In a store of 100,000 callbacks an index of the keys took a row's
insert and purge from about 10 to 36 us of CPU; the integer index, a quarter of its size, to 19 us
(docs/console.md, "Cost").

In SQLite, the writes (every batch, the purge) run on the console's writer thread (:mod:`.writer`), so
the event loop that answers callbacks never runs them; the reads run through callgate.storage.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from functools import lru_cache
from itertools import chain
from typing import Any

from callgate.storage import Connection, Database, SQLiteDatabase

from .record import COLUMNS, call_hash
from .writer import SQLiteWriter

COMPONENT = "console"
_TABLE = """
    CREATE TABLE console_callbacks (
        id {id},
        received_at DOUBLE PRECISION NOT NULL,
        minute BIGINT NOT NULL,
        generation TEXT NOT NULL,
        event TEXT NOT NULL,
        kind TEXT NOT NULL,
        call_key TEXT,
        callid TEXT,
        caller TEXT,
        callee TEXT,
        status INTEGER NOT NULL,
        decision TEXT,
        deciding_plugin TEXT,
        reason TEXT,
        summary TEXT NOT NULL,
        problem TEXT,
        ms DOUBLE PRECISION NOT NULL,
        headers TEXT NOT NULL,
        body TEXT NOT NULL,
        answer TEXT NOT NULL,
        trace TEXT NOT NULL
    );
    CREATE INDEX console_callbacks_time ON console_callbacks (received_at);
    CREATE INDEX console_callbacks_key ON console_callbacks (call_key);
"""
#: 0.4.0: a call is found through ``call_hash`` (see the module docstring); callbacks recorded before it have none
#: and are no longer found by their call id (search by number, decision, plugin and time still finds them).
_CALL_HASH = """
    ALTER TABLE console_callbacks ADD COLUMN call_hash BIGINT;
    DROP INDEX console_callbacks_key;
    CREATE INDEX console_callbacks_call ON console_callbacks (call_hash);
"""


def migrations(dialect: str) -> list[str]:
    """The schema, for ``Database.migrate``: the id column is each dialect's growing integer."""
    return [_TABLE.format(id="BIGSERIAL PRIMARY KEY" if dialect == "postgresql" else
                          "INTEGER PRIMARY KEY AUTOINCREMENT"), _CALL_HASH]


#: The columns of a callback's summary: the live view's rows, search results, the stream's events.
SUMMARY = ("id", "received_at", "generation", "event", "kind", "call_key", "callid", "caller", "callee", "status",
           "decision", "deciding_plugin", "reason", "summary")
_SUMMARY_SQL = ", ".join(SUMMARY)
#: Rows per INSERT statement (20 columns each: far below both databases' limit on parameters).
INSERT_CHUNK = 50
#: Rows per DELETE transaction when purging (a long purge never holds the database for long).
PURGE_CHUNK = 2000


@dataclass(frozen=True, slots=True)
class Search:
    """What the search page asks for; every field optional."""

    number: str | None = None
    callid: str | None = None
    decision: str | None = None
    plugin: str | None = None
    since: float | None = None
    until: float | None = None


@lru_cache(maxsize=INSERT_CHUNK)
def _insert_sql(rows: int) -> str:
    """The INSERT of ``rows`` rows (built once per size: its placeholders cost more than the insert itself)."""
    width = len(COLUMNS)
    values = ", ".join("(" + ", ".join(f"${i * width + j + 1}" for j in range(width)) + ")" for i in range(rows))
    return f"INSERT INTO console_callbacks ({', '.join(COLUMNS)}) VALUES {values}"


class ConsoleStore:
    """The recorded callbacks (see the module docstring)."""

    def __init__(self, db: Database, writer: SQLiteWriter | None = None) -> None:
        self.db = db
        #: The writer thread of a SQLite file (None: PostgreSQL, whose writes never hold the loop, or :memory:).
        self.writer = writer

    @classmethod
    async def open(cls, url: str) -> ConsoleStore:
        db = await Database.connect(url)
        writer = None
        try:
            await db.migrate(COMPONENT, migrations(db.dialect))
            if isinstance(db, SQLiteDatabase) and db.path != ":memory:":
                writer = SQLiteWriter(db.path)
                await writer.open()
        except BaseException:
            if writer is not None:
                await writer.close()
            await db.close()
            raise
        return cls(db, writer)

    async def close(self) -> None:
        if self.writer is not None:
            await self.writer.close()
        await self.db.close()

    # --- writing --------------------------------------------------------------------------------

    async def insert(self, rows: Sequence[tuple[Any, ...]]) -> None:
        """Write ``rows`` (:func:`callgate_console.record.row`) in one transaction (SQLite: one job on the writer
        thread)."""
        if self.writer is not None:
            await self.writer.insert(rows)
            return

        async def write(tx: Connection) -> None:
            for start in range(0, len(rows), INSERT_CHUNK):
                chunk = rows[start:start + INSERT_CHUNK]
                await tx.execute(_insert_sql(len(chunk)), *chain.from_iterable(chunk))
        await self.db.run_transaction(write)

    async def purge(self, older_than: float, keep: int) -> int:
        """Remove the callbacks received before ``older_than`` (unix seconds), then all but the newest ``keep``;
        oldest first, in short transactions.  Returns how many were removed."""
        writes: Database | SQLiteWriter = self.writer or self.db
        removed = await _delete_oldest(writes, "received_at < $1", older_than)
        boundary = await writes.fetchval(
            "SELECT id FROM console_callbacks ORDER BY id DESC LIMIT 1 OFFSET $1", keep)
        if boundary is not None:
            removed += await _delete_oldest(writes, "id <= $1", boundary)
        return removed

    # --- reading --------------------------------------------------------------------------------

    async def latest(self, limit: int = 50) -> list[dict[str, Any]]:
        """The newest callbacks' summaries, newest first."""
        return await self.db.fetch(f"SELECT {_SUMMARY_SQL} FROM console_callbacks ORDER BY id DESC LIMIT $1", limit)

    async def ids_after(self, last_id: int, limit: int) -> list[int]:
        """The ids of the callbacks after ``last_id``, in order (the primary key alone: cheap to poll)."""
        rows = await self.db.fetch("SELECT id FROM console_callbacks WHERE id > $1 ORDER BY id LIMIT $2",
                                   last_id, limit)
        return [r["id"] for r in rows]

    async def summaries(self, ids: Sequence[int]) -> list[dict[str, Any]]:
        """The summaries of the callbacks ``ids``, oldest first (those still there)."""
        if not ids:
            return []
        marks = ", ".join(f"${n}" for n in range(1, len(ids) + 1))
        return await self.db.fetch(f"SELECT {_SUMMARY_SQL} FROM console_callbacks WHERE id IN ({marks}) ORDER BY id",
                                   *ids)

    async def last_id(self) -> int:
        return int(await self.db.fetchval("SELECT COALESCE(MAX(id), 0) FROM console_callbacks") or 0)

    async def in_progress(self, since: float, limit: int = 100) -> list[dict[str, Any]]:
        """Calls whose incoming callback came after ``since`` and whose end has not come, newest first."""
        return await self.db.fetch(
            f"SELECT {', '.join('s.' + c for c in SUMMARY)} FROM console_callbacks s "
            "WHERE s.kind = 'incoming' AND s.received_at >= $1 AND NOT EXISTS (SELECT 1 FROM console_callbacks e "
            "WHERE e.call_hash = s.call_hash AND e.call_key = s.call_key AND e.kind = 'ended') ORDER BY s.id DESC "
            "LIMIT $2", since, limit)

    async def call(self, key: str) -> list[dict[str, Any]]:
        """Every recorded callback of the call ``key``, in the order they came, with all their columns."""
        return await self.db.fetch("SELECT * FROM console_callbacks WHERE call_hash = $1 AND call_key = $2 ORDER BY id",
                                   call_hash(key), key)

    async def search(self, query: Search, limit: int = 200) -> list[dict[str, Any]]:
        """The callbacks that match every field given in ``query``, newest first."""
        where: list[str] = []
        args: list[Any] = []

        def arg(value: Any) -> str:
            args.append(value)
            return f"${len(args)}"

        if query.number:
            digits = "".join(ch for ch in query.number if ch.isdigit()) or query.number
            pattern = arg(f"%{digits}%")
            where.append(f"(caller LIKE {pattern} OR callee LIKE {pattern})")
        if query.callid:            # a v1 callid is its call key; a v2 callId's key is "v2:" + it (both indexed)
            keys = sorted({query.callid, query.callid if query.callid.startswith("v2:") else "v2:" + query.callid})
            where.append(f"call_hash IN ({', '.join(arg(call_hash(key)) for key in keys)}) "
                         f"AND call_key IN ({', '.join(arg(key) for key in keys)})")
        if query.decision:
            where.append(f"decision = {arg(query.decision)}")
        if query.plugin:
            where.append(f"deciding_plugin = {arg(query.plugin)}")
        if query.since is not None:
            where.append(f"received_at >= {arg(query.since)}")
        if query.until is not None:
            where.append(f"received_at < {arg(query.until)}")
        sql = f"SELECT {_SUMMARY_SQL} FROM console_callbacks"
        if where:
            sql += " WHERE " + " AND ".join(where)
        return await self.db.fetch(f"{sql} ORDER BY id DESC LIMIT {arg(limit)}", *args)

    async def per_minute(self, since_minute: int) -> list[dict[str, Any]]:
        """Callbacks, denials and errors per minute (``minute``: unix minutes) from ``since_minute`` on (found by
        the time index)."""
        return await self.db.fetch(
            "SELECT minute, COUNT(*) AS callbacks, "
            "SUM(CASE WHEN decision = 'denied' THEN 1 ELSE 0 END) AS denials, "
            "SUM(CASE WHEN decision = 'error' THEN 1 ELSE 0 END) AS errors "
            "FROM console_callbacks WHERE received_at >= $1 GROUP BY minute ORDER BY minute", since_minute * 60.0)

    async def traces(self, since: float, limit: int) -> list[str]:
        """The plugin traces (JSON) of the newest callbacks after ``since``, at most ``limit`` of them."""
        rows = await self.db.fetch("SELECT trace FROM console_callbacks WHERE received_at >= $1 "
                                   "ORDER BY id DESC LIMIT $2", since, limit)
        return [r["trace"] for r in rows]


async def _delete_oldest(writes: Database | SQLiteWriter, condition: str, value: Any) -> int:
    """Delete the callbacks matching ``condition`` (on ``$1`` = ``value``), oldest first, ``PURGE_CHUNK`` rows per
    statement, until none is left; returns how many were deleted."""
    removed = 0
    while True:
        count = await writes.execute(
            f"DELETE FROM console_callbacks WHERE id IN (SELECT id FROM console_callbacks WHERE {condition} "
            f"ORDER BY id LIMIT $2)", value, PURGE_CHUNK)
        removed += count
        if count < PURGE_CHUNK:
            return removed
