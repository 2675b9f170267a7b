"""The console's store: recorded callbacks in batches, in SQLite (default) or PostgreSQL.

``console_batches`` holds one row per flushed batch (:class:`~.record.Packed`): how many callbacks
it holds, when the first and the last came, their call keys and numbers as text (one per line: the
quick test of which batches may hold a call or a number) and the callbacks themselves, packed
(MessagePack) and compressed (zstd): their summaries (:class:`~.record.Stored`, the trace included)
and, apart, their details (request headers and body, answer).  Each callback has an id: its batch's
``first_id`` plus its place in the batch.  ``console_sequence`` hands the ids out inside the batch's
transaction, so ids grow in the order batches commit, whichever instance wrote them, and the live
view reads the callbacks after the last id it has shown.  Batches are only ever inserted and purged
(by age and by count, oldest first, whole batches).

Why batches, not a row per callback: a row per callback cost more than the console may cost the
server (docs/console.md, "Cost").  Storing a ~1.3 KB callback as a SQLite row, with an index to find
its call, took 19-36 us of CPU with its purge, building it on the event loop 16-24 us more; a batch
is one row of packed bytes for hundreds of callbacks.  The price is on the reading side, which is an
operator's click: a search or a call's page decodes the batches that may hold it (those whose keys
or numbers match, in its time range): a few milliseconds in a store of 100,000 callbacks, and it
grows with the store.

In SQLite, the writes (every batch, the purge) run on the console's writer thread (:mod:`.writer`),
so the event loop that answers callbacks never runs them; the reads run through callgate.storage.
"""

from __future__ import annotations

import re
from collections.abc import AsyncIterator, Callable, Sequence
from dataclasses import dataclass
from typing import Any

from callgate.storage import Connection, Database, SQLiteDatabase

from . import record
from .record import Capture, Stored
from .schema import COMPONENT, INSERT, MAX_BATCH, TAKE_IDS, migrations
from .writer import SQLiteWriter

#: Batches read per query while walking the store newest first (a batch holds up to ``MAX_BATCH`` callbacks).
PAGE = 16
#: Batches per DELETE transaction when purging (a long purge never holds the database for long).
PURGE_CHUNK = 50
#: The page size of a SQLite store the console creates.  A batch is a row of a megabyte or two, stored across
#: pages; with 64 KiB pages instead of SQLite's 4 KiB, writing a batch and purging it later take a third of the
#: CPU (SQLite alone, batches of 1,250 callbacks: 3.7 -> 1.3 us a callback; docs/console.md, "Cost").
SQLITE_PAGE_SIZE = 65536


#: A search's number written as a phone number: some digits, with ``+``, spaces and ``-./()`` around them.
_WRITTEN_AS_A_NUMBER = re.compile(r"[+\s\-./()]*[0-9][0-9+\s\-./()]*")

@dataclass(frozen=True, slots=True)
class Search:
    """What the search page asks for; every field optional."""

    number: str | None = None
    callid: str | None = None
    decision: str | None = None
    plugin: str | None = None
    since: float | None = None
    until: float | None = None

    def keys(self) -> list[str]:
        """The call keys a call id may have: a v1 callid is its call key, a v2 callId's key is ``"v2:"`` + it."""
        if not self.callid:
            return []
        return sorted({self.callid, self.callid if self.callid.startswith("v2:") else "v2:" + self.callid})

    def needle(self) -> str | None:
        """The number searched for: its digits when it is written as a phone number (digits, ``+``, spaces and the
        punctuation of numbers: ``+46 70-123``), else the text as typed (a SIP URI, a user name: ``alice1``);
        matched anywhere in the caller or the callee, ignoring case."""
        if not self.number:
            return None
        if _WRITTEN_AS_A_NUMBER.fullmatch(self.number):
            return "".join(ch for ch in self.number if ch.isdigit())
        return self.number.casefold()

    def matcher(self) -> Callable[[Stored], bool]:
        """Whether a callback's summary matches every field given (the needle and keys worked out once)."""
        needle, keys = self.needle(), self.keys()

        def matches(callback: Stored) -> bool:
            if needle is not None and not any(needle in (side or "").casefold()
                                              for side in (callback.caller, callback.callee)):
                return False
            if keys and callback.call_key not in keys:
                return False
            if self.decision and callback.decision != self.decision:
                return False
            if self.plugin and callback.deciding_plugin != self.plugin:
                return False
            if self.since is not None and callback.received_at < self.since:
                return False
            return self.until is None or callback.received_at < self.until
        return matches


class ConsoleStore:
    """The recorded callbacks (see the module docstring)."""

    def __init__(self, db: Database, writer: SQLiteWriter | None = None) -> None:
        self.db = db
        #: The writer thread of a SQLite file (None: PostgreSQL, whose writes never hold the loop, or :memory:).
        self.writer = writer

    @classmethod
    async def open(cls, url: str) -> ConsoleStore:
        db = await Database.connect(url, page_size=SQLITE_PAGE_SIZE)
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

    async def insert(self, captures: Sequence[Capture]) -> None:
        """Write ``captures`` (:func:`~.record.capture`, at most ``MAX_BATCH``) as one batch, in one transaction
        (SQLite: packed and written by one job on the writer thread)."""
        if not captures:
            return
        if len(captures) > MAX_BATCH:
            raise ValueError(f"a batch holds at most {MAX_BATCH} callbacks, not {len(captures)}")
        if self.writer is not None:
            await self.writer.insert(captures)
            return
        packed = record.pack(captures)

        async def write(tx: Connection) -> None:
            first_id = await tx.fetchval(TAKE_IDS, packed.size)
            await tx.execute(INSERT, first_id, *packed)
        await self.db.run_transaction(write)

    async def purge(self, older_than: float, keep: int) -> int:
        """Remove the batches whose callbacks all came before ``older_than`` (unix seconds), then those whose
        callbacks are all older than the newest ``keep``; oldest first, in short transactions.  Returns how many
        callbacks were removed."""
        writes: Database | SQLiteWriter = self.writer or self.db
        removed = await _delete_oldest(writes, "last_at < $1", older_than)
        end = await writes.fetchval("SELECT MAX(first_id + size) FROM console_batches")
        if end is not None:
            removed += await _delete_oldest(writes, "first_id + size <= $1", int(end) - keep)
        return removed

    # --- reading --------------------------------------------------------------------------------

    async def _newest(self, where: str = "", *args: Any, columns: str = "first_id, summaries"
                      ) -> AsyncIterator[dict[str, Any]]:
        """The batches matching ``where`` (``$1``... = ``args``), newest first, ``PAGE`` per query."""
        condition = f"({where}) AND " if where else ""
        below = None
        while True:
            bound = "" if below is None else f"id < ${len(args) + 1} AND "
            rows = await self.db.fetch(
                f"SELECT id, {columns} FROM console_batches WHERE {condition}{bound}TRUE ORDER BY id DESC "
                f"LIMIT {PAGE}", *args, *(() if below is None else (below,)))
            for row in rows:
                yield row
            if len(rows) < PAGE:
                return
            below = rows[-1]["id"]

    async def _summaries(self, where: str, *args: Any) -> AsyncIterator[tuple[int, list[Stored]]]:
        """``(first_id, summaries)`` of the batches matching ``where``, newest first: their callbacks' summaries
        in the order they came."""
        async for batch in self._newest(where, *args):
            yield batch["first_id"], record.unpack(batch["summaries"])

    async def _callbacks(self, where: str, *args: Any, wanted: Callable[[Stored], bool] | None = None,
                         after: int = 0, limit: int | None = None) -> list[dict[str, Any]]:
        """The summaries of the callbacks after id ``after`` in the batches matching ``where`` for which
        ``wanted`` is true, newest first, at most ``limit``."""
        found: list[dict[str, Any]] = []
        async for first_id, rows in self._summaries(where, *args):
            for n in range(len(rows) - 1, -1, -1):
                if first_id + n <= after:
                    return found
                if wanted is None or wanted(rows[n]):
                    found.append(rows[n].as_dict(first_id + n))
                    if limit is not None and len(found) >= limit:
                        return found
        return found

    async def latest(self, limit: int = 50) -> list[dict[str, Any]]:
        """The newest callbacks' summaries, newest first."""
        return sorted(await self._callbacks("", limit=limit), key=_in_time_order, reverse=True)

    async def after(self, last_id: int, limit: int) -> list[dict[str, Any]]:
        """The summaries of the callbacks after ``last_id``, oldest first: the newest ``limit`` of them."""
        fresh = await self._callbacks("first_id > $1 AND first_id + size > $2", last_id - MAX_BATCH, last_id + 1,
                                      after=last_id, limit=limit)
        return fresh[::-1]

    async def last_id(self) -> int:
        return int(await self.db.fetchval("SELECT next_id - 1 FROM console_sequence") or 0)

    async def in_progress(self, since: float, limit: int = 100) -> list[dict[str, Any]]:
        """Calls whose incoming callback came after ``since`` and which have not ended, newest first, each with its
        ``open_legs`` and ``ended_legs`` (the call keys of its legs still on, and of those ended): a call has ended
        when each of its legs seen has (a v2 session's legs: the caller's and those a ``dial`` made; a v1 call is
        one), as its page says (:func:`~.present.call_summary`)."""
        started: list[tuple[int, Stored]] = []       # the incoming callbacks, newest first
        legs: dict[str | None, set[str | None]] = {}    # a call (its session, else its key) -> its legs seen
        ended: set[str | None] = set()
        async for first_id, rows in self._summaries("last_at >= $1", since):
            for n in range(len(rows) - 1, -1, -1):
                callback = rows[n]
                legs.setdefault(callback.session or callback.call_key, set()).add(callback.call_key)
                if callback.kind == "ended":
                    ended.add(callback.call_key)
                elif callback.kind == "incoming" and callback.received_at >= since:
                    started.append((first_id + n, callback))
        shown = []
        for i, callback in started:
            seen = legs[callback.session or callback.call_key]
            open_legs = seen - ended
            if open_legs:                           # a dict only for those shown
                shown.append({**callback.as_dict(i), "open_legs": sorted(leg for leg in open_legs if leg),
                              "ended_legs": sorted(leg for leg in seen & ended if leg)})
                if len(shown) == limit:
                    break
        return sorted(shown, key=_in_time_order, reverse=True)

    async def call(self, key: str) -> list[dict[str, Any]]:
        """Every recorded callback of the call ``key``, in the order they came, with its details; for a v2 call, with
        those of the other legs of its session (the leg a ``dial`` made has a callId of its own)."""
        found = await self._with_details([key], lambda callback: callback.call_key == key)
        sessions = {c["session"] for c in found if c["session"]}
        if sessions:
            found += await self._with_details([record.session_key(s) for s in sorted(sessions)], lambda callback:
                                              callback.session in sessions and callback.call_key != key)
        return sorted(found, key=_in_time_order)

    async def _with_details(self, terms: list[str], wanted: Callable[[Stored], bool]) -> list[dict[str, Any]]:
        """The callbacks for which ``wanted`` is true, with their details, in the batches whose call keys hold one
        of ``terms``, newest batch first."""
        where = " OR ".join(_contains(self.db, "calls", n) for n in range(1, len(terms) + 1))
        found: list[dict[str, Any]] = []
        async for batch in self._newest(where, *map(record.searchable, terms), columns="first_id, summaries, details"):
            rows = record.unpack(batch["summaries"])
            mine = [n for n, callback in enumerate(rows) if wanted(callback)]
            if mine:
                details = record.details(batch["details"])
                found += [{**rows[n].as_dict(batch["first_id"] + n), **details[n]} for n in mine]
        return found

    async def search(self, query: Search, limit: int = 200) -> list[dict[str, Any]]:
        """The callbacks that match every field given in ``query``, newest first."""
        where: list[str] = []
        args: list[Any] = []
        needle = query.needle()
        if needle is not None:
            args.append(record.searchable(needle))
            where.append(_contains(self.db, "numbers", len(args)))
        if query.callid:
            terms = []
            for key in query.keys():
                args.append(record.searchable(key))
                terms.append(_contains(self.db, "calls", len(args)))
            where.append(f"({' OR '.join(terms)})")
        if query.since is not None:
            args.append(query.since)
            where.append(f"last_at >= ${len(args)}")
        if query.until is not None:
            args.append(query.until)
            where.append(f"first_at < ${len(args)}")
        found = await self._callbacks(" AND ".join(where), *args, wanted=query.matcher(), limit=limit)
        return sorted(found, key=_in_time_order, reverse=True)

    async def per_minute(self, since_minute: int) -> list[dict[str, Any]]:
        """Callbacks, denials and errors per minute (``minute``: unix minutes) from ``since_minute`` on."""
        counts: dict[int, list[int]] = {}
        since = since_minute * 60.0
        async for _, rows in self._summaries("last_at >= $1", since):
            for callback in rows:
                if callback.received_at < since:
                    continue
                row = counts.setdefault(record.minute(callback.received_at), [0, 0, 0])
                row[0] += 1
                decision = callback.decision
                if decision == "denied":
                    row[1] += 1
                elif decision == "error":
                    row[2] += 1
        return [{"minute": m, "callbacks": c, "denials": d, "errors": e} for m, (c, d, e) in sorted(counts.items())]

    async def traces(self, since: float, limit: int) -> list[list[dict[str, Any]]]:
        """The plugin traces of the newest callbacks after ``since``, at most ``limit`` of them."""
        traces: list[list[dict[str, Any]]] = []
        async for _, rows in self._summaries("last_at >= $1", since):
            for callback in reversed(rows):
                if callback.received_at >= since:
                    traces.append(callback.plugin_trace())
                    if len(traces) >= limit:
                        return traces
        return traces


def _in_time_order(callback: dict[str, Any]) -> tuple[float, int]:
    """A callback's place in time.  Ids follow the order the batches were written, which with several instances or
    ``--workers`` is not the order the callbacks came in (an instance's batch of older callbacks may be written
    after another's): pages show callbacks in the order they were received, ids breaking ties."""
    return callback["received_at"], callback["id"]


def _contains(db: Database, column: str, n: int) -> str:
    """SQL: whether ``column`` (text, one value per line) holds the text ``$n``.  Only a quick test of which
    batches to read: a batch it selects is then checked callback by callback."""
    if db.dialect == "postgresql":
        return f"strpos({column}, ${n}) > 0"
    return f"instr({column}, ${n}) > 0"


async def _delete_oldest(writes: Database | SQLiteWriter, condition: str, value: Any) -> int:
    """Delete the batches matching ``condition`` (on ``$1`` = ``value``), oldest first, ``PURGE_CHUNK`` per
    transaction, until none is left; returns how many callbacks they held."""
    removed = 0
    while True:
        oldest = await writes.fetchrow(
            "SELECT COUNT(*) AS batches, COALESCE(SUM(size), 0) AS callbacks, COALESCE(MAX(id), 0) AS last "
            f"FROM (SELECT id, size FROM console_batches WHERE {condition} ORDER BY id LIMIT {PURGE_CHUNK}) oldest",
            value)
        if oldest is None or not oldest["batches"]:
            return removed
        await writes.execute(f"DELETE FROM console_batches WHERE id <= $2 AND {condition}", value, oldest["last"])
        removed += int(oldest["callbacks"])
        if oldest["batches"] < PURGE_CHUNK:
            return removed
