"""The durable outbox: call facts, call records, and each sink's delivery queue, in one database.

Two tables (SQLite by default, PostgreSQL for several instances):

* ``crm_calls``: one row per call, by its key (``call.key``, in the ``callid`` column: the v1 callid as
  before 0.3, ``"v2:"`` + the callid of a v2 leg): the facts gathered so far (JSON), and once the
  call's end is known the record (JSON) and its ``version``;
* ``crm_deliveries``: one row per (sink, callid): the version to deliver, the version delivered,
  ``state`` (``pending``, ``delivered``, ``dead``), attempts, when to try next, and a lease
  (``claimed_by``/``claimed_until``) held by the instance delivering it.

Every change to a call happens in one transaction that locks its ``crm_calls`` row, so a DICE
received twice (primary and fallback URL, at two instances at once) makes one record.  Records
are claimed for delivery with ``FOR UPDATE SKIP LOCKED`` on PostgreSQL (``BEGIN IMMEDIATE`` on
SQLite), each with a lease: one instance delivers a record, and the lease of an instance that
died expires so another takes over.  Nothing here deletes a record that some sink has not yet
received.

Lock order (PostgreSQL): every statement that may wait for rows takes them in one order, by
callid, and for one callid its ``crm_calls`` row before its ``crm_deliveries`` rows (by sink), so
that two instances' DICE batches, facts flushes, delivery marks and commands never wait for each
other in a circle.  Should PostgreSQL end a transaction anyway (a deadlock or a serialization
failure), ``Database.run_transaction`` runs it again: every transaction here only reads and
writes the database and returns what it found, so it is safe to run twice.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any

import orjson
import structlog

from callgate.storage import Connection, Database, connect_for_dry_run, redact

from .facts import Facts, merge_facts
from .record import build_record
from .retry import AttemptResult

log = structlog.get_logger("callgate.crm_export")
COMPONENT = "crm_export"
MIGRATIONS = [
    """
    CREATE TABLE crm_calls (
        callid TEXT PRIMARY KEY,
        facts TEXT NOT NULL,
        record TEXT,
        version INTEGER NOT NULL DEFAULT 0,
        ended_at DOUBLE PRECISION,
        created_at DOUBLE PRECISION NOT NULL,
        updated_at DOUBLE PRECISION NOT NULL
    );
    CREATE INDEX crm_calls_ended ON crm_calls (ended_at);
    CREATE INDEX crm_calls_updated ON crm_calls (updated_at);
    CREATE TABLE crm_deliveries (
        sink TEXT NOT NULL,
        callid TEXT NOT NULL,
        version INTEGER NOT NULL,
        delivered_version INTEGER NOT NULL DEFAULT 0,
        state TEXT NOT NULL,
        attempts INTEGER NOT NULL DEFAULT 0,
        next_attempt_at DOUBLE PRECISION NOT NULL,
        claimed_by TEXT,
        claimed_until DOUBLE PRECISION,
        remote_id TEXT,
        last_status INTEGER,
        last_error TEXT,
        pending_since DOUBLE PRECISION,
        delivered_at DOUBLE PRECISION,
        created_at DOUBLE PRECISION NOT NULL,
        updated_at DOUBLE PRECISION NOT NULL,
        PRIMARY KEY (sink, callid)
    );
    CREATE INDEX crm_deliveries_due ON crm_deliveries (sink, state, next_attempt_at)
    """,
]
PENDING, DELIVERED, DEAD = "pending", "delivered", "dead"
STATES = (PENDING, DELIVERED, DEAD)
#: Errors kept in the database are cut to this length.
MAX_ERROR_CHARS = 500

_ENQUEUE = """
    INSERT INTO crm_deliveries (sink, callid, version, state, attempts, next_attempt_at, pending_since,
                                created_at, updated_at)
    {source}
    ON CONFLICT (sink, callid) DO UPDATE SET
        version = excluded.version, state = 'pending', attempts = 0, next_attempt_at = excluded.next_attempt_at,
        pending_since = CASE WHEN crm_deliveries.state = 'pending' THEN crm_deliveries.pending_since
                             ELSE excluded.pending_since END,
        updated_at = excluded.updated_at
"""


#: PostgreSQL's claim in one statement: lock the due rows nobody holds (never waiting), lease them, and read
#: their records; in the order they came due.
_CLAIM = """
    WITH due AS (
        SELECT sink, callid FROM crm_deliveries
        WHERE sink = $1 AND state = 'pending' AND next_attempt_at <= $2 AND (claimed_until IS NULL OR claimed_until < $2)
        ORDER BY next_attempt_at LIMIT $3 FOR UPDATE SKIP LOCKED),
    leased AS (
        UPDATE crm_deliveries AS d SET claimed_by = $4, claimed_until = $5 FROM due
        WHERE d.sink = due.sink AND d.callid = due.callid
        RETURNING d.callid, d.delivered_version, d.attempts, d.remote_id, d.next_attempt_at)
    SELECT leased.callid, c.version, leased.delivered_version, leased.attempts, leased.remote_id, c.record
    FROM leased JOIN crm_calls AS c ON c.callid = leased.callid
    ORDER BY leased.next_attempt_at, leased.callid
"""


#: PostgreSQL: several 2xx saved in one statement (see ``Outbox._delivered``, which it does row by row).
_SAVE_DELIVERED = """
    UPDATE crm_deliveries AS d SET
        delivered_version = CASE WHEN d.delivered_version > o.version THEN d.delivered_version ELSE o.version END,
        state = CASE WHEN d.version <= o.version THEN 'delivered' ELSE d.state END,
        attempts = CASE WHEN d.version <= o.version THEN d.attempts + 1 ELSE d.attempts END,
        pending_since = CASE WHEN d.version <= o.version THEN NULL ELSE d.pending_since END,
        remote_id = COALESCE(o.remote_id, d.remote_id), last_status = o.status, last_error = NULL,
        delivered_at = $1, next_attempt_at = $1, updated_at = $1,
        claimed_until = CASE WHEN d.claimed_by = $2 THEN NULL ELSE d.claimed_until END,
        claimed_by = CASE WHEN d.claimed_by = $2 THEN NULL ELSE d.claimed_by END
    FROM (SELECT o.sink, o.callid, o.version, o.remote_id, o.status
          FROM unnest($3::text[], $4::text[], $5::int[], $6::text[], $7::int[])
               AS o(sink, callid, version, remote_id, status)
          JOIN crm_deliveries AS l ON l.sink = o.sink AND l.callid = o.callid
          ORDER BY l.callid, l.sink FOR UPDATE OF l) AS o
    WHERE d.sink = o.sink AND d.callid = o.callid
    RETURNING d.sink, d.callid, d.state
"""


@dataclass(frozen=True, slots=True)
class Change:
    """What :meth:`Outbox.add_facts` did: ``version`` is the record's version (0: no record yet, no DICE);
    ``enqueued`` is true when a new record or a new version was queued for the sinks."""

    callid: str
    version: int
    enqueued: bool


@dataclass(frozen=True, slots=True)
class Claim:
    """One record claimed for delivery to one sink."""

    sink: str
    callid: str
    version: int
    delivered_version: int
    attempts: int
    remote_id: str | None
    record_json: str

    @property
    def record(self) -> dict[str, Any]:
        return json.loads(self.record_json)

    @property
    def idempotency_key(self) -> str:
        """The call's key for a record's first version (v1: the callid; v2: ``v2:<callid>``); ``<key>:v<n>`` for
        version n of an update."""
        return idempotency_key(self.callid, self.version)


@dataclass(frozen=True, slots=True)
class DeliveryOutcome:
    """How one delivery attempt ended, to be saved: for a failure, when to try next and the attempt limit."""

    claim: Claim
    result: AttemptResult
    next_attempt_at: float = 0.0
    max_attempts: int = 1


@dataclass(frozen=True, slots=True)
class SinkStatus:
    """A sink's queue, for ``callgate crm status``."""

    sink: str
    pending: int = 0
    in_flight: int = 0
    delivered: int = 0
    dead: int = 0
    oldest_pending: float | None = None
    last_error: str | None = None
    last_error_callid: str | None = None


def facts_json(facts: Facts) -> str:
    """A call's facts as compact JSON text, as stored in ``crm_calls.facts``.

    orjson (issue 17: the stdlib encoder was about 4 % of the full stack's instructions per callback).  The facts'
    integers come from callgate's wire types, which are 64-bit, so orjson writes and reads them exactly; should it
    refuse a value all the same (a key that is not text), the stdlib encoder writes it as before, so that no fact
    ever costs a record.  orjson keeps non-ASCII characters as UTF-8 instead of ``\\u`` escapes: the same JSON.
    """
    try:
        return orjson.dumps(facts).decode()
    except orjson.JSONEncodeError:
        return json.dumps(facts, separators=(",", ":"))


def parse_facts(text: str) -> Facts:
    """Stored facts back to a dict (see :func:`facts_json`; the stdlib parser for text orjson does not take, such
    as a ``NaN`` the stdlib encoder may have written)."""
    try:
        facts: Facts = orjson.loads(text)
    except orjson.JSONDecodeError:
        facts = json.loads(text)
    return facts


def idempotency_key(callid: str, version: int) -> str:
    return callid if version <= 1 else f"{callid}:v{version}"


def _in_list(values: Sequence[Any], start: int) -> str:
    return ", ".join(f"${i}" for i in range(start, start + len(values)))


def _ended_in(since: float, until: float | None, callids: Sequence[str], *, first: int) -> tuple[str, list[Any]]:
    """The condition "a record that ended in [since, until), among ``callids`` if any are given" and its
    arguments, numbered from ``$first``."""
    where = f"version > 0 AND ended_at >= ${first}"
    args: list[Any] = [since]
    if until is not None:
        where += f" AND ended_at < ${first + 1}"
        args.append(until)
    if callids:
        where += f" AND callid IN ({_in_list(callids, first + len(args))})"
        args += list(callids)
    return where, args


def _only(where: str, args: list[Any], sinks: Sequence[str], callids: Sequence[str]) -> tuple[str, list[Any]]:
    """``where`` narrowed to these sinks and these calls (each: all when empty), and its arguments."""
    args = list(args)
    if sinks:
        where += f" AND sink IN ({_in_list(sinks, len(args) + 1)})"
        args += list(sinks)
    if callids:
        where += f" AND callid IN ({_in_list(callids, len(args) + 1)})"
        args += list(callids)
    return where, args


class Outbox:
    """The outbox over one database, for a fixed list of sink names."""

    def __init__(self, db: Database, sinks: Sequence[str]) -> None:
        self.db = db
        self.sinks = tuple(sinks)
        #: A call's delivery rows are written (and so locked) in sink name order, whatever the config's order.
        self._sinks_in_lock_order = tuple(sorted(set(self.sinks)))
        self._lock_row = " FOR UPDATE" if db.dialect == "postgresql" else ""
        self._skip_locked = " FOR UPDATE SKIP LOCKED" if db.dialect == "postgresql" else ""

    @classmethod
    async def open(cls, url: str, sinks: Sequence[str], *, create: bool = True) -> Outbox:
        db = await Database.connect(url, create=create, shared=True)
        try:
            await db.migrate(COMPONENT, MIGRATIONS)
        except BaseException:
            await db.close()
            raise
        return cls(db, sinks)

    @classmethod
    async def open_dry_run(cls, url: str, sinks: Sequence[str]) -> Outbox:
        """The outbox for a dry run (``callgate simulate``): opened as it is, never created or migrated; one that
        does not exist yet is simulated as an empty one, in memory."""
        db, stand_in = await connect_for_dry_run(url, COMPONENT, lambda dialect: MIGRATIONS)
        if stand_in:
            log.warning("crm_dry_run_on_empty_outbox", database=redact(url),
                        why="the outbox does not exist yet: simulating against an empty one, creating nothing")
        return cls(db, sinks)

    async def close(self) -> None:
        await self.db.close()

    # --- writing facts and records ---------------------------------------------------------

    async def add_facts(self, callid: str, facts: Facts, now: float, *, dry_run: bool = False) -> Change:
        """Merge ``facts`` into the call's row; when the call has a DICE and anything changed, (re)build its
        record with the next version and queue it for every sink.  One transaction; ``dry_run``: rolled back
        (the record is built and checked, nothing is written or queued)."""
        return await self.db.run_transaction(lambda tx: self._add(tx, callid, facts, now), rollback=dry_run)

    async def add_many(self, items: Sequence[tuple[str, Facts]], now: float) -> list[Change]:
        """:meth:`add_facts` for several calls in one transaction; results in the order of ``items``.

        Rows are locked in callid order (see the lock order above).
        """
        if not items:
            return []
        if self.db.dialect == "postgresql":
            return await self.db.run_transaction(lambda tx: self._add_set(tx, items, now))
        order = sorted(range(len(items)), key=lambda i: items[i][0])

        async def add(tx: Connection) -> list[Change]:
            changes: dict[int, Change] = {}
            for i in order:
                changes[i] = await self._add(tx, items[i][0], items[i][1], now)
            return [changes[i] for i in range(len(items))]
        return await self.db.run_transaction(add)

    async def _add(self, tx: Connection, callid: str, facts: Facts, now: float) -> Change:
        first, _ = merge_facts({}, facts)
        if first.get("dice") is None:
            # A call's first facts without its end (the usual flush of ICE and ACE facts): one statement.  A call
            # that has a row already conflicts, inserts nothing, and is merged below.
            if await tx.execute("INSERT INTO crm_calls (callid, facts, version, created_at, updated_at) "
                                "VALUES ($1, $2, 0, $3, $3) ON CONFLICT (callid) DO NOTHING",
                                callid, facts_json(first), now):
                return Change(callid, 0, False)
        else:
            await tx.execute("INSERT INTO crm_calls (callid, facts, version, created_at, updated_at) "
                             "VALUES ($1, '{}', 0, $2, $2) ON CONFLICT (callid) DO NOTHING", callid, now)
        row = await tx.fetchrow(f"SELECT facts, version FROM crm_calls WHERE callid = $1{self._lock_row}", callid)
        assert row is not None, "inserted just above if it was missing"
        merged, changed = merge_facts(parse_facts(row["facts"]), facts)
        if not changed:
            return Change(callid, row["version"], False)
        merged_json = facts_json(merged)
        if merged.get("dice") is None:
            await tx.execute("UPDATE crm_calls SET facts = $1, updated_at = $2 WHERE callid = $3",
                             merged_json, now, callid)
            return Change(callid, 0, False)
        version = row["version"] + 1
        record = build_record(callid, merged, version, datetime.fromtimestamp(now, timezone.utc))
        await tx.execute("UPDATE crm_calls SET facts = $1, record = $2, version = $3, ended_at = $4, updated_at = $5 "
                         "WHERE callid = $6", merged_json, record.model_dump_json(), version,
                         record.ended_at.timestamp(), now, callid)
        values = ", ".join(f"(${i * 2 + 3}, $1, $2, 'pending', 0, ${i * 2 + 4}, ${i * 2 + 4}, ${i * 2 + 4}, "
                           f"${i * 2 + 4})" for i in range(len(self._sinks_in_lock_order)))
        args: list[Any] = [callid, version]
        for sink in self._sinks_in_lock_order:
            args += [sink, now]
        await tx.execute(_ENQUEUE.format(source=f"VALUES {values}"), *args)
        return Change(callid, version, True)

    async def _add_set(self, tx: Connection, items: Sequence[tuple[str, Facts]], now: float) -> list[Change]:
        """:meth:`_add` for a whole batch in two statements whatever its size (PostgreSQL): lock and read every
        call's row (inserting the missing ones), write the changed ones, queue the new versions.

        Under load a round trip costs an event-loop turn of an instance that shares its CPU, so a batch of
        DICEs written row by row (four statements a call) was slower than the DICEs arrived.  The result is
        the row-by-row one: items of the same call are merged in their order, each gets the Change it would
        have got, and the row is written once.
        """
        callids = sorted({callid for callid, _ in items})
        # Locks every row in callid order (the lock order): a conflict locks the existing row (DO UPDATE, changing
        # nothing) and RETURNING gives it as committed; a missing row is inserted, locked, and returned empty.
        rows = await tx.fetch(
            "INSERT INTO crm_calls AS c (callid, facts, version, created_at, updated_at) "
            "SELECT callid, '{}', 0, $2, $2 FROM unnest($1::text[]) AS callid ORDER BY callid "
            "ON CONFLICT (callid) DO UPDATE SET callid = excluded.callid RETURNING c.callid, c.facts, c.version",
            callids, now)
        calls = {r["callid"]: (parse_facts(r["facts"]), r["version"]) for r in rows}
        changed: dict[str, int] = {}          # callid -> its version after the batch (0: no record yet)
        changes = []
        for callid, facts in items:
            current, version = calls[callid]
            merged, is_new = merge_facts(current, facts)
            if not is_new:
                changes.append(Change(callid, version, False))
                continue
            if merged.get("dice") is not None:
                version += 1
            calls[callid] = (merged, version)
            changed[callid] = version
            changes.append(Change(callid, version, merged.get("dice") is not None))
        if not changed:
            return changes
        written = sorted(changed)
        facts_texts: list[str] = []
        records: list[str | None] = []
        ended: list[float | None] = []
        for callid in written:
            merged, version = calls[callid]
            facts_texts.append(facts_json(merged))
            if merged.get("dice") is None:
                records.append(None)
                ended.append(None)
                continue
            record = build_record(callid, merged, version, datetime.fromtimestamp(now, timezone.utc))
            records.append(record.model_dump_json())
            ended.append(record.ended_at.timestamp())
        queued = [c for c in written if changed[c]]
        # The rows written (already locked), then the new versions queued for every sink, by callid then sink.
        await tx.execute(
            "WITH written AS (UPDATE crm_calls AS c SET facts = u.facts, record = COALESCE(u.record, c.record), "
            "version = u.version, ended_at = COALESCE(u.ended_at, c.ended_at), updated_at = $1 "
            "FROM unnest($2::text[], $3::text[], $4::text[], $5::int[], $6::float8[]) "
            "AS u(callid, facts, record, version, ended_at) WHERE c.callid = u.callid) "
            + _ENQUEUE.format(source="SELECT s.sink, q.callid, q.version, 'pending', 0, $1, $1, $1, $1 "
                                     "FROM unnest($7::text[], $8::int[]) AS q(callid, version) "
                                     "CROSS JOIN unnest($9::text[]) AS s(sink) ORDER BY q.callid, s.sink"),
            now, written, facts_texts, records, [changed[c] for c in written], ended,
            queued, [changed[c] for c in queued], list(self._sinks_in_lock_order))
        return changes

    async def record(self, callid: str) -> dict[str, Any] | None:
        """The current record of a call (None before its DICE)."""
        text = await self.db.fetchval("SELECT record FROM crm_calls WHERE callid = $1", callid)
        return json.loads(text) if text else None

    # --- delivering ----------------------------------------------------------------------------

    async def claim(self, sink: str, limit: int, instance: str, lease_seconds: float, now: float) -> list[Claim]:
        """Up to ``limit`` due records of ``sink`` nobody holds, leased to ``instance`` for ``lease_seconds``.

        Never waits for a lock (``SKIP LOCKED``): rows another transaction holds are left for the next claim."""
        if self.db.dialect == "postgresql":     # one statement (its own transaction): one round trip, not five
            claimed = await self.db.fetch(_CLAIM, sink, now, limit, instance, now + lease_seconds)
            return [Claim(sink, r["callid"], r["version"], r["delivered_version"], r["attempts"], r["remote_id"],
                          r["record"]) for r in claimed]

        async def claim(tx: Connection) -> tuple[list[str], list[dict[str, Any]]]:
            rows = await tx.fetch(
                "SELECT callid FROM crm_deliveries WHERE sink = $1 AND state = 'pending' AND next_attempt_at <= $2 "
                "AND (claimed_until IS NULL OR claimed_until < $2) ORDER BY next_attempt_at LIMIT $3"
                + self._skip_locked, sink, now, limit)
            if not rows:
                return [], []
            callids = [r["callid"] for r in rows]
            await tx.execute(f"UPDATE crm_deliveries SET claimed_by = $1, claimed_until = $2 "
                             f"WHERE sink = $3 AND callid IN ({_in_list(callids, 4)})",
                             instance, now + lease_seconds, sink, *callids)
            return callids, await tx.fetch(
                "SELECT d.callid, c.version, d.delivered_version, d.attempts, d.remote_id, c.record "
                "FROM crm_deliveries d JOIN crm_calls c ON c.callid = d.callid "
                f"WHERE d.sink = $1 AND d.callid IN ({_in_list(callids, 2)})", sink, *callids)
        callids, claimed = await self.db.run_transaction(claim)
        order = {callid: i for i, callid in enumerate(callids)}
        return sorted((Claim(sink, r["callid"], r["version"], r["delivered_version"], r["attempts"], r["remote_id"],
                             r["record"]) for r in claimed), key=lambda c: order[c.callid])

    async def mark_delivered(self, claim: Claim, instance: str, result: AttemptResult, now: float) -> str | None:
        """A 2xx for ``claim.version``: delivered, unless a newer version arrived meanwhile (then still pending)."""
        [state] = await self.save_outcomes([DeliveryOutcome(claim, result)], instance, now)
        return state

    async def mark_failed(self, claim: Claim, instance: str, result: AttemptResult, next_attempt_at: float,
                          max_attempts: int, now: float) -> str | None:
        """A failed attempt: pending again at ``next_attempt_at``, or dead (a permanent refusal, or the last
        attempt).  Returns the new state (None when this instance no longer held the lease)."""
        [state] = await self.save_outcomes([DeliveryOutcome(claim, result, next_attempt_at, max_attempts)], instance, now)
        return state

    async def save_outcomes(self, outcomes: Sequence[DeliveryOutcome], instance: str, now: float) -> list[str | None]:
        """Record delivery attempts, several in one transaction; returns each row's new state, in the order of
        ``outcomes``.  Rows are updated by callid, then sink (the lock order), not in the order the deliveries
        finished."""
        rows = {(o.claim.sink, o.claim.callid) for o in outcomes}
        if self.db.dialect == "postgresql" and len(rows) == len(outcomes) \
                and all(o.result.kind == "delivered" for o in outcomes):
            return await self._delivered_set(outcomes, instance, now)
        order = sorted(range(len(outcomes)), key=lambda i: (outcomes[i].claim.callid, outcomes[i].claim.sink))

        async def save(tx: Connection) -> list[str | None]:
            states: dict[int, str | None] = {}
            for i in order:
                o = outcomes[i]
                states[i] = await (self._delivered(tx, o, instance, now) if o.result.kind == "delivered"
                                   else self._failed(tx, o, instance, now))
            return [states[i] for i in range(len(outcomes))]
        return await self.db.run_transaction(save)

    async def _delivered_set(self, outcomes: Sequence[DeliveryOutcome], instance: str, now: float) -> list[str | None]:
        """:meth:`_delivered` for every outcome (each of its own row) in one statement, its own transaction
        (PostgreSQL): the usual batch, where every attempt succeeded, costs one round trip.  Rows are locked
        in the lock order (callid, then sink) by the sub-select before they are updated."""
        rows = await self.db.fetch(
            _SAVE_DELIVERED, now, instance, [o.claim.sink for o in outcomes], [o.claim.callid for o in outcomes],
            [o.claim.version for o in outcomes], [o.result.remote_id for o in outcomes],
            [o.result.status for o in outcomes])
        states = {(r["sink"], r["callid"]): r["state"] for r in rows}
        return [states.get((o.claim.sink, o.claim.callid)) for o in outcomes]

    async def _delivered(self, tx: Connection, outcome: DeliveryOutcome, instance: str, now: float) -> str | None:
        claim, result = outcome.claim, outcome.result
        row = await tx.fetchrow(
            """UPDATE crm_deliveries SET
                   delivered_version = CASE WHEN delivered_version > $3 THEN delivered_version ELSE $3 END,
                   state = CASE WHEN version <= $3 THEN 'delivered' ELSE state END,
                   attempts = CASE WHEN version <= $3 THEN attempts + 1 ELSE attempts END,
                   pending_since = CASE WHEN version <= $3 THEN NULL ELSE pending_since END,
                   remote_id = COALESCE($4, remote_id), last_status = $5, last_error = NULL,
                   delivered_at = $6, next_attempt_at = $6, updated_at = $6,
                   claimed_until = CASE WHEN claimed_by = $7 THEN NULL ELSE claimed_until END,
                   claimed_by = CASE WHEN claimed_by = $7 THEN NULL ELSE claimed_by END
               WHERE sink = $1 AND callid = $2
               RETURNING state""",
            claim.sink, claim.callid, claim.version, result.remote_id, result.status, now, instance)
        return row["state"] if row else None

    async def _failed(self, tx: Connection, outcome: DeliveryOutcome, instance: str, now: float) -> str | None:
        claim, result = outcome.claim, outcome.result
        row = await tx.fetchrow(
            """UPDATE crm_deliveries SET
                   attempts = attempts + 1,
                   state = CASE WHEN $3 OR attempts + 1 >= $4 THEN 'dead' ELSE 'pending' END,
                   next_attempt_at = $5, last_status = $6, last_error = $7, updated_at = $8,
                   claimed_by = NULL, claimed_until = NULL
               WHERE sink = $1 AND callid = $2 AND claimed_by = $9
               RETURNING state""",
            claim.sink, claim.callid, result.kind == "permanent", outcome.max_attempts, outcome.next_attempt_at,
            result.status, (result.error or "")[:MAX_ERROR_CHARS], now, instance)
        return row["state"] if row else None

    async def release(self, instance: str, callids: Sequence[str] | None = None) -> int:
        """Give up this instance's leases (at shutdown) without counting an attempt: sent again soon."""
        if callids is not None and not callids:
            return 0
        where = "" if callids is None else f" AND callid IN ({_in_list(callids, 2)})"
        return await self.db.execute(
            self._update_deliveries("claimed_by = NULL, claimed_until = NULL", f"claimed_by = $1{where}"),
            instance, *(callids or ()))

    def _update_deliveries(self, assignments: str, where: str) -> str:
        """``UPDATE crm_deliveries SET <assignments> WHERE <where>``, its rows locked in the lock order (by
        callid, then sink) on PostgreSQL, where a plain UPDATE locks them in whatever order it finds them.
        ``assignments`` must not name ``sink`` or ``callid`` (they are ambiguous in the PostgreSQL form)."""
        if self.db.dialect != "postgresql":
            return f"UPDATE crm_deliveries SET {assignments} WHERE {where}"     # SQLite: one writer at a time
        return (f"UPDATE crm_deliveries SET {assignments} FROM (SELECT sink, callid FROM crm_deliveries "
                f"WHERE {where} ORDER BY callid, sink FOR UPDATE) AS locked "
                f"WHERE crm_deliveries.sink = locked.sink AND crm_deliveries.callid = locked.callid")

    # --- operating -----------------------------------------------------------------------------

    async def status(self, now: float) -> list[SinkStatus]:
        """Every sink's queue: configured sinks first, then any sink the database still has rows for."""
        rows = await self.db.fetch(
            "SELECT sink, state, COUNT(*) AS n, MIN(pending_since) AS oldest, "
            "SUM(CASE WHEN claimed_until IS NOT NULL AND claimed_until >= $1 THEN 1 ELSE 0 END) AS in_flight "
            "FROM crm_deliveries GROUP BY sink, state", now)
        names = list(self.sinks) + sorted({r["sink"] for r in rows} - set(self.sinks))
        result = []
        for name in names:
            counts = {r["state"]: r for r in rows if r["sink"] == name}
            pending = counts.get(PENDING)
            dead_row = await self.db.fetchrow(
                "SELECT callid, last_error FROM crm_deliveries WHERE sink = $1 AND state = 'dead' "
                "ORDER BY updated_at DESC LIMIT 1", name)
            result.append(SinkStatus(
                sink=name,
                pending=int(pending["n"]) if pending else 0,
                in_flight=int(pending["in_flight"] or 0) if pending else 0,
                delivered=int(counts[DELIVERED]["n"]) if DELIVERED in counts else 0,
                dead=int(counts[DEAD]["n"]) if DEAD in counts else 0,
                oldest_pending=pending["oldest"] if pending else None,
                last_error=dead_row["last_error"] if dead_row else None,
                last_error_callid=dead_row["callid"] if dead_row else None,
            ))
        return result

    async def depth(self, now: float) -> dict[str, float]:
        """Gauges for ``/metrics``: records waiting for delivery (``outbox_depth``, in total and per sink as
        ``outbox_depth:<sink>``), dead letters (``outbox_dead``), and the age in seconds of the oldest waiting
        record (``outbox_oldest_pending_seconds``, 0 when none waits).

        One query over the ``(sink, state, ...)`` index: delivered rows, however many, are not read.
        """
        if not self.sinks:
            return {"outbox_depth": 0.0, "outbox_dead": 0.0, "outbox_oldest_pending_seconds": 0.0}
        rows = await self.db.fetch(
            "SELECT sink, state, COUNT(*) AS n, MIN(pending_since) AS oldest FROM crm_deliveries "
            f"WHERE sink IN ({_in_list(self.sinks, 1)}) AND state IN ('pending', 'dead') GROUP BY sink, state",
            *self.sinks)
        per_sink = {sink: 0 for sink in self.sinks}
        dead, oldest = 0, None
        for row in rows:
            if row["state"] == PENDING:
                per_sink[row["sink"]] = int(row["n"])
                if row["oldest"] is not None:
                    oldest = row["oldest"] if oldest is None else min(oldest, row["oldest"])
            else:
                dead += int(row["n"])
        gauges = {"outbox_depth": float(sum(per_sink.values())), "outbox_dead": float(dead),
                  "outbox_oldest_pending_seconds": 0.0 if oldest is None else max(0.0, now - float(oldest))}
        gauges.update({f"outbox_depth:{sink}": float(n) for sink, n in per_sink.items()})
        return gauges

    async def deliveries(self, callid: str) -> dict[str, dict[str, Any]]:
        """Every sink's delivery row for one call (for tests and diagnostics)."""
        rows = await self.db.fetch("SELECT * FROM crm_deliveries WHERE callid = $1", callid)
        return {r["sink"]: r for r in rows}

    async def retry_dead(self, now: float, sinks: Sequence[str] = (), callids: Sequence[str] = ()) -> int:
        """Dead letters (of these sinks / calls, or all) back to pending, attempts from zero."""
        where, args = _only("state = 'dead'", [now], sinks, callids)
        return await self.db.execute(self._update_deliveries(
            "state = 'pending', attempts = 0, next_attempt_at = $1, pending_since = $1, updated_at = $1", where), *args)

    async def deliver_now(self, now: float, sinks: Sequence[str] = (), callids: Sequence[str] = ()) -> int:
        """Pending records waiting for a later attempt (of these sinks / calls, or all) become due now: every
        running worker sends them at its next poll instead of after their backoff.  Their attempts are kept
        (``max_attempts`` still counts); records being delivered (a lease held) are left alone.  Returns how
        many (sink, record) deliveries were made due."""
        waiting = "state = 'pending' AND next_attempt_at > $1 AND (claimed_until IS NULL OR claimed_until < $1)"
        where, args = _only(waiting, [now], sinks, callids)
        return await self.db.execute(self._update_deliveries("next_attempt_at = $1, updated_at = $1", where), *args)

    async def replay(self, now: float, since: float, until: float | None = None, sinks: Sequence[str] = (),
                     callids: Sequence[str] = ()) -> int:
        """Queue the current version of every record that ended in [since, until) for delivery again, to
        these sinks (default: every configured sink, including one added after the calls).  Only states
        change: no record is ever deleted.  Returns the number of (sink, record) deliveries queued."""
        names = sorted(set(sinks or self.sinks))
        if not names:
            return 0
        # One statement for every sink, in the lock order: a call's row, then its deliveries by sink.
        sink_rows = " UNION ALL ".join(f"SELECT CAST(${i} AS TEXT) AS sink" for i in range(1, len(names) + 1))
        moment = f"CAST(${len(names) + 1} AS DOUBLE PRECISION)"
        where, base = _ended_in(since, until, callids, first=len(names) + 2)
        source = (f"SELECT s.sink, callid, version, 'pending', 0, {moment}, {moment}, {moment}, {moment} "
                  f"FROM crm_calls CROSS JOIN ({sink_rows}) AS s WHERE {where} ORDER BY callid, s.sink"
                  + (" FOR UPDATE OF crm_calls" if self.db.dialect == "postgresql" else ""))
        return await self.db.execute(_ENQUEUE.format(source=source), *names, now, *base)

    async def count_records(self, since: float, until: float | None = None, callids: Sequence[str] = ()) -> int:
        """How many records ended in [since, until) (what :meth:`replay` would queue per sink)."""
        where, args = _ended_in(since, until, callids, first=1)
        return int(await self.db.fetchval(f"SELECT COUNT(*) FROM crm_calls WHERE {where}", *args))

    async def purge(self, before: float) -> int:
        """Remove calls last changed before ``before`` that every sink has received (or that never ended):
        never a pending or dead-letter record.  Returns the number of calls removed."""
        keep = "EXISTS (SELECT 1 FROM crm_deliveries d WHERE d.callid = crm_calls.callid AND d.state <> 'delivered')"

        async def purge(tx: Connection) -> int:
            if self.db.dialect == "postgresql":    # the calls' rows first, by callid (the lock order)
                await tx.fetchval(f"SELECT COUNT(*) FROM (SELECT callid FROM crm_calls WHERE updated_at < $1 "
                                  f"AND NOT {keep} ORDER BY callid FOR UPDATE) AS doomed", before)
            await tx.execute(f"DELETE FROM crm_deliveries WHERE callid IN "
                             f"(SELECT callid FROM crm_calls WHERE updated_at < $1 AND NOT {keep})", before)
            return await tx.execute(
                "DELETE FROM crm_calls WHERE updated_at < $1 AND NOT EXISTS "
                "(SELECT 1 FROM crm_deliveries d WHERE d.callid = crm_calls.callid)", before)
        return await self.db.run_transaction(purge)
