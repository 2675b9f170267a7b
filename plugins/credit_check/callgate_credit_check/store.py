"""Accounts, rates, calls and the ledger in one database (SQLite or PostgreSQL).

Every change of money is one transaction that updates the account row and
appends to the ledger, so the ledger always explains the balance:

* ``balance`` = sum of top-ups and adjustments minus debits;
* ``reserved`` = sum of reservations minus releases;
* ``available`` = ``balance - reserved``, what a new call may reserve.

Correctness under concurrency (several calls on one account, on one instance
or many): the money moves in one conditional statement on the account's row,
``UPDATE credit_accounts SET reserved = reserved + $2 ... WHERE id = $1 AND
balance - reserved >= $2 RETURNING balance, reserved``, which PostgreSQL runs
on the row's newest version under its row lock (SQLite's ``BEGIN IMMEDIATE``
holds the database write lock), so no reservation ever takes more than is
available, and no balance is read first to be written back.  The ledger rows
that explain a change are written from what the statement returned.  A call's
row is changed under its lock (``SELECT ... FOR UPDATE``, or the insert of a
new call) before its account's row, in every transaction, so transactions
cannot wait for each other in a circle; should PostgreSQL end one all the same
(a deadlock or a serialization failure), ``Database.run_transaction`` runs it
again.

Statements per callback (issue 17): a new call's reservation is the read of the rate
table's version row (the rates themselves are kept in memory while it does not change:
see ``_rate_table``), the call's insert, the account's conditional update and the ledger
insert (the account's currency, which never changes, is kept in memory once read); on
PostgreSQL those three writes are one statement (``_RESERVE_PG``: one round trip); only an
account that cannot pay for ``max_duration`` is read, under its lock, to grant
what it can.  A settlement first reads the call's committed row outside any transaction: the end
event of a call never reserved, denied or already settled stops there (no write transaction, no wait for
a group commit).  A held call's settlement then reads its row under its lock, updates it, the account
(release and debit in one statement) and the ledger (both entries in one insert).

Dry runs (``callgate simulate``): ``reserve``, ``limit``, ``release`` and ``settle`` take
``dry_run=True`` to run the same transaction and roll it back (the same answer, nothing written;
the ledger row is not even inserted, since on PostgreSQL a rolled-back insert still uses up an
id of the ledger's sequence).  :meth:`CreditStore.open_dry_run` opens a store without creating
or migrating it.

Calls are keyed by the neutral call's ``key``, kept in the ``callid`` columns: Sinch's callid for a v1
call (as before 0.3, so v1 data stays valid), ``"v2:"`` + the callid for a v2 call, so a v1 and a
v2 call never share a row.  A repeated incoming call finds its reservation (or its denial) and
reserves nothing more; a repeated end event finds the call settled and changes nothing; the end
event of a call that was denied, or of a v2 call's dialled leg, changes nothing.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, replace
from datetime import datetime, timezone
from decimal import Decimal
from typing import Any, Literal, TypeVar

import structlog

from callgate.storage import Connection, Database, DatabaseError, connect_for_dry_run, redact

from . import schema
from .money import parse_currency
from .rating import Increments, Rate, charge, grant

Kind = Literal["topup", "adjust", "reserve", "release", "debit"]
CallState = Literal["reserved", "released", "expired", "settled", "denied"]
log = structlog.get_logger("callgate.credit_check")
#: Tries to open the database and migrate it at start-up (see CreditStore.open).
OPEN_ATTEMPTS = 4
#: How many overdue reservations one expiry pass handles at most.
EXPIRY_BATCH = 200


class StoreError(ValueError):
    """An operator request the data does not allow (unknown account, duplicate account, ...)."""


@dataclass(frozen=True, slots=True)
class NoRate:
    """No price for this call, and why (``no rate for +1555... in EUR``)."""

    reason: str


RateLookup = Callable[[Connection, str], Awaitable["Rate | NoRate"]]
T = TypeVar("T")
#: How many accounts' currencies a store keeps in memory (then it forgets them all and reads them again).
CURRENCIES_KEPT = 100_000
#: The longest prefix a rate may have: a whole international number (E.164: at most 15 digits).
MAX_PREFIX_DIGITS = 15
#: A rate kept in memory: ``(per_minute, connect_fee, first_increment, next_increment, prefix, name)``.  A tuple of
#: plain values, which CPython's garbage collector stops tracking, where a ``Rate`` (and its ``Increments``) would
#: stay tracked: a table of 50,000 prefixes would add 100,000 objects to every full collection, each of which
#: stops the event loop (issue 17's p99 tail).  The ``Rate`` is made for the call that uses it.
RateRow = tuple[int, int, int, int, str, str]


def utc_now() -> str:
    """The current time as ISO-8601 UTC text, as stored."""
    return datetime.now(timezone.utc).isoformat(timespec="microseconds").replace("+00:00", "Z")


@dataclass(frozen=True, slots=True)
class Account:
    id: str
    currency: str
    balance: int
    reserved: int
    created_at: str = ""

    @property
    def available(self) -> int:
        return self.balance - self.reserved


@dataclass(frozen=True, slots=True)
class LedgerEntry:
    id: int
    account_id: str
    kind: str
    amount: int
    balance_after: int
    reserved_after: int
    callid: str | None
    note: str
    created_at: str


@dataclass(frozen=True, slots=True)
class CreditCall:
    """One call as the plugin knows it: the rate it was authorized at, what was held, what it cost.

    ``callid`` is the call's key (``call.key``: the v1 callid, ``"v2:"`` + the v2 callid)."""

    callid: str
    account_id: str
    state: str
    currency: str
    destination: str | None
    rate: Rate
    max_duration: int
    reserved: int
    expires_at: int
    reason: str
    duration: int | None
    billed_seconds: int | None
    cost: int | None
    sinch_debit: str | None
    sinch_currency: str | None
    created_at: str
    settled_at: str | None


@dataclass(frozen=True, slots=True)
class Move:
    """One ledger entry's change to an account: ``amount`` (positive) moved as ``kind``, changing the balance by
    ``balance`` and the reserved amount by ``reserved``."""

    kind: Kind
    amount: int
    balance: int = 0
    reserved: int = 0
    note: str = ""


@dataclass(frozen=True, slots=True)
class Reservation:
    """The outcome of ``reserve``: what the call may do, and whether it was answered from an earlier ICE.

    ``available``: the account's available credit before this ICE (for a denial's message); a repeated
    ICE that was allowed the first time does not read the account (0)."""

    status: Literal["reserved", "denied", "no_account", "no_rate"]
    account_id: str | None = None
    currency: str | None = None
    seconds: int = 0
    reserved: int = 0
    available: int = 0
    repeated: bool = False
    reason: str = ""


@dataclass(frozen=True, slots=True)
class Settlement:
    """The outcome of ``settle``: the call's cost, and whether this DICE had already been settled."""

    call: CreditCall
    released: int
    repeated: bool


def _account(row: dict[str, Any]) -> Account:
    return Account(row["id"], row["currency"], int(row["balance"]), int(row["reserved"]), row.get("created_at", ""))


def _call(row: dict[str, Any]) -> CreditCall:
    return CreditCall(
        callid=row["callid"], account_id=row["account_id"], state=row["state"], currency=row["currency"],
        destination=row["destination"], rate=_rate(row), max_duration=int(row["max_duration"]),
        reserved=int(row["reserved"]), expires_at=int(row["expires_at"]), reason=row["reason"],
        duration=row["duration"], billed_seconds=row["billed_seconds"],
        cost=None if row["cost"] is None else int(row["cost"]), sinch_debit=row["sinch_debit"],
        sinch_currency=row["sinch_currency"], created_at=row["created_at"], settled_at=row["settled_at"])


def _ledger(row: dict[str, Any]) -> LedgerEntry:
    return LedgerEntry(int(row["id"]), row["account_id"], row["kind"], int(row["amount"]), int(row["balance_after"]),
                       int(row["reserved_after"]), row["callid"], row["note"], row["created_at"])


def _rate(row: dict[str, Any]) -> Rate:
    """A rate from a ``credit_rates`` row, or the rate a ``credit_calls`` row was authorized at."""
    return Rate(currency=row["currency"], per_minute=int(row["per_minute"]),
                increments=Increments(int(row["first_increment"]), int(row["next_increment"])),
                connect_fee=int(row["connect_fee"]), prefix=row["prefix"], name=row.get("name", ""))


#: A new call's row, reserving ``$11`` (the cost of its whole ``max_duration``); nothing when the call exists.
_INSERT_CALL = (
    "INSERT INTO credit_calls (callid, account_id, state, currency, destination, prefix, per_minute, "
    "connect_fee, first_increment, next_increment, max_duration, reserved, expires_at, reason, "
    "created_at) VALUES ($1, $2, 'reserved', $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, '', $13) "
    "ON CONFLICT (callid) DO NOTHING")
#: PostgreSQL: a new call's whole reservation in one statement (data-modifying CTEs).  ``call`` inserts the call's
#: row (nothing for a repeated ICE: ``inserted`` 0); ``account`` moves the money only if that row was inserted (it
#: reads ``call``, so the call's row is changed before its account's, the lock order of every transaction) and if
#: the account has it available, re-checked on the row's newest version under its lock (as the two statements
#: did); ``ledger`` writes the entry from what ``account`` returned.  ``balance`` NULL: nothing was reserved (a
#: repeated ICE, or an account that cannot pay for the whole cap: the caller grants what it can, as before).
_RESERVE_PG_PARTS = (
    f"WITH call AS ({_INSERT_CALL} RETURNING callid), "
    "account AS (UPDATE credit_accounts SET reserved = reserved + $11, updated_at = $13 "
    "WHERE id = $2 AND balance - reserved >= $11 AND EXISTS (SELECT 1 FROM call) RETURNING balance, reserved)",
    ", ledger AS (INSERT INTO credit_ledger (account_id, kind, amount, balance_after, reserved_after, callid, note, "
    "created_at) SELECT $2, 'reserve', $11, balance, reserved, $1, '', $13 FROM account)",
    " SELECT (SELECT COUNT(*) FROM call) AS inserted, balance, reserved FROM (SELECT 1) AS one "
    "LEFT JOIN account ON TRUE")
_RESERVE_PG = "".join(_RESERVE_PG_PARTS)
#: The same without the ledger entry (a dry run: a rolled-back insert would still use up ids of its sequence).
_RESERVE_PG_DRY_RUN = _RESERVE_PG_PARTS[0] + _RESERVE_PG_PARTS[2]


class CreditStore:
    """Every read and write the plugin and its commands make, each write one transaction."""

    def __init__(self, db: Database) -> None:
        self.db = db
        #: Row lock inside a transaction; SQLite's BEGIN IMMEDIATE already holds the write lock.
        self._for_update = " FOR UPDATE" if db.dialect == "postgresql" else ""
        self._for_no_key_update = " FOR NO KEY UPDATE" if db.dialect == "postgresql" else ""
        #: account id -> its currency (set when the account is opened, never changed; accounts are never deleted).
        self._currencies: dict[str, str] = {}
        #: currency -> prefix -> rate, the rate table as of version ``_rates_version`` (see ``_rate_table``).
        self._rates: dict[str, dict[str, RateRow]] = {}
        self._rates_version: int | None = None

    @classmethod
    async def open(cls, url: str, *, create: bool = True) -> CreditStore:
        """Connect and bring the schema up to date (safe when several instances start at once).

        ``create=False``: a SQLite file that does not exist is not created (``MissingDatabaseError``).

        Instances starting together on a fresh database race in the core's storage layer: on
        SQLite, switching a new file to WAL mode ("database is locked"); on PostgreSQL, the
        ``CREATE TABLE IF NOT EXISTS callgate_migrations`` (a unique violation in pg_type).
        Both are over a moment later, so those failures are tried again, briefly.
        """
        for attempt in range(1, OPEN_ATTEMPTS + 1):
            last = attempt == OPEN_ATTEMPTS
            try:
                db = await Database.connect(url, create=create, shared=True)
            except DatabaseError as exc:
                if last or "locked" not in str(exc):
                    raise
                await asyncio.sleep(0.05 * attempt)
                continue
            try:
                await db.migrate(schema.COMPONENT, schema.migrations(db.dialect))
                return cls(db)
            except DatabaseError:
                await db.close()
                if last:
                    raise
                await asyncio.sleep(0.05 * attempt)
            except BaseException:
                await db.close()
                raise
        raise AssertionError("unreachable")

    @classmethod
    async def open_dry_run(cls, url: str) -> CreditStore:
        """The store for a dry run: opened as it is, never created or migrated.

        A store that does not exist yet (no SQLite file, no credit tables) is simulated as an empty one,
        in memory; one whose schema is older than this plugin's raises DatabaseError (a dry run must not
        migrate it).
        """
        db, stand_in = await connect_for_dry_run(url, schema.COMPONENT, schema.migrations)
        if stand_in:
            log.warning("credit_dry_run_on_empty_store", database=redact(url),
                        why="the credit database does not exist yet: simulating against an empty one, creating "
                            "nothing")
        return cls(db)

    async def close(self) -> None:
        await self.db.close()

    async def ping(self) -> None:
        await self.db.ping()

    # --- accounts ---------------------------------------------------------------------------

    async def add_account(self, account_id: str, currency: str) -> Account:
        currency = parse_currency(currency)
        now = utc_now()
        added = await self.db.execute(
            "INSERT INTO credit_accounts (id, currency, balance, reserved, created_at, updated_at) "
            "VALUES ($1, $2, 0, 0, $3, $3) ON CONFLICT DO NOTHING", account_id, currency, now)
        if not added:
            raise StoreError(f"account {account_id!r} already exists")
        return Account(account_id, currency, 0, 0, now)

    async def account(self, account_id: str) -> Account | None:
        row = await self.db.fetchrow("SELECT * FROM credit_accounts WHERE id = $1", account_id)
        return _account(row) if row else None

    async def accounts(self) -> list[Account]:
        return [_account(r) for r in await self.db.fetch("SELECT * FROM credit_accounts ORDER BY id")]

    async def credit(self, account_id: str, amount: int, *, kind: Literal["topup", "adjust"] = "topup",
                     note: str = "") -> LedgerEntry:
        """Add ``amount`` micro-units to the balance (a top-up is positive; an adjustment any non-zero amount)."""
        if kind == "topup" and amount <= 0:
            raise StoreError("a top-up must be a positive amount")
        if amount == 0:
            raise StoreError("an adjustment of 0 changes nothing")
        async def add_credit(tx: Connection) -> LedgerEntry:
            if await self._apply(tx, account_id, [Move(kind, amount, balance=amount, note=note)]) is None:
                raise StoreError(f"no account {account_id!r} (add it with: callgate credit add {account_id} "
                                 f"--currency EUR)")
            # The account's row is locked: its newest entry is the one just written.
            row = await tx.fetchrow("SELECT * FROM credit_ledger WHERE account_id = $1 ORDER BY id DESC LIMIT 1",
                                    account_id)
            assert row is not None, "written just above"
            return _ledger(row)
        return await self.db.run_transaction(add_credit)

    async def ledger(self, account_id: str, limit: int = 50) -> list[LedgerEntry]:
        """The newest ``limit`` entries, oldest first."""
        rows = await self.db.fetch("SELECT * FROM credit_ledger WHERE account_id = $1 ORDER BY id DESC LIMIT $2",
                                   account_id, limit)
        return [_ledger(r) for r in reversed(rows)]

    async def link_number(self, number: str, account_id: str) -> None:
        """The number-to-account table: calls from ``number`` are paid by ``account_id``."""
        async def link(tx: Connection) -> None:
            if await self._lock_account(tx, account_id) is None:
                raise StoreError(f"no account {account_id!r}")
            await tx.execute("INSERT INTO credit_numbers (number, account_id) VALUES ($1, $2) "
                             "ON CONFLICT (number) DO UPDATE SET account_id = excluded.account_id", number, account_id)
        await self.db.run_transaction(link)

    async def unlink_number(self, number: str) -> bool:
        return bool(await self.db.execute("DELETE FROM credit_numbers WHERE number = $1", number))

    async def account_for_number(self, number: str) -> str | None:
        return await self.db.fetchval("SELECT account_id FROM credit_numbers WHERE number = $1", number)

    async def numbers(self, account_id: str) -> list[str]:
        rows = await self.db.fetch("SELECT number FROM credit_numbers WHERE account_id = $1 ORDER BY number",
                                   account_id)
        return [r["number"] for r in rows]

    async def link_user(self, user: str, account_id: str) -> None:
        """The user-to-account table: calls from the in-app user ``user`` are paid by ``account_id``."""
        async with self.db.transaction() as tx:
            if await self._lock_account(tx, account_id) is None:
                raise StoreError(f"no account {account_id!r}")
            await tx.execute("INSERT INTO credit_users (user_id, account_id) VALUES ($1, $2) "
                             "ON CONFLICT (user_id) DO UPDATE SET account_id = excluded.account_id", user, account_id)

    async def unlink_user(self, user: str) -> bool:
        return bool(await self.db.execute("DELETE FROM credit_users WHERE user_id = $1", user))

    async def account_for_user(self, user: str) -> str | None:
        return await self.db.fetchval("SELECT account_id FROM credit_users WHERE user_id = $1", user)

    async def users(self, account_id: str) -> list[str]:
        rows = await self.db.fetch("SELECT user_id FROM credit_users WHERE account_id = $1 ORDER BY user_id",
                                   account_id)
        return [r["user_id"] for r in rows]

    # --- rates ------------------------------------------------------------------------------

    async def import_rates(self, rates: list[Rate], *, replace: bool = True) -> int:
        """Store ``rates`` in one transaction: replacing the whole table, or adding to / updating it."""
        async def import_all(tx: Connection) -> None:
            if replace:
                await tx.execute("DELETE FROM credit_rates")
            for r in rates:
                await tx.execute(
                    "INSERT INTO credit_rates (currency, prefix, per_minute, connect_fee, first_increment, "
                    "next_increment, name) VALUES ($1, $2, $3, $4, $5, $6, $7) "
                    "ON CONFLICT (currency, prefix) DO UPDATE SET per_minute = excluded.per_minute, "
                    "connect_fee = excluded.connect_fee, first_increment = excluded.first_increment, "
                    "next_increment = excluded.next_increment, name = excluded.name",
                    r.currency, r.prefix, r.per_minute, r.connect_fee, r.increments.first, r.increments.next, r.name)
        await self.db.run_transaction(import_all)
        return len(rates)

    async def rates(self, currency: str | None = None) -> list[Rate]:
        if currency is None:
            rows = await self.db.fetch("SELECT * FROM credit_rates ORDER BY currency, prefix")
        else:
            rows = await self.db.fetch("SELECT * FROM credit_rates WHERE currency = $1 ORDER BY prefix", currency)
        return [_rate(r) for r in rows]

    async def currencies(self) -> list[str]:
        rows = await self.db.fetch("SELECT DISTINCT currency FROM credit_rates ORDER BY currency")
        return [r["currency"] for r in rows]

    async def find_rate(self, conn: Connection | None, currency: str, number: str) -> Rate | NoRate:
        """The rate of the longest prefix of ``number`` (``+46701234567``) in ``currency``, as the rate table is
        now: see :meth:`_rate_table`."""
        digits = number.lstrip("+")
        if not digits.isdigit():
            return NoRate(f"{number!r} is not a phone number")
        table = await self._rate_table(conn or self.db, currency)
        for length in range(min(len(digits), MAX_PREFIX_DIGITS), 0, -1):
            row = table.get(digits[:length])
            if row is not None:
                per_minute, connect_fee, first, step, prefix, name = row
                return Rate(currency, per_minute, Increments(first, step), connect_fee, prefix, name)
        return NoRate(f"no rate for {number} in {currency}")

    async def _rate_table(self, conn: Connection, currency: str) -> dict[str, RateRow]:
        """The rates in ``currency`` by prefix, from memory while the rate table's version row says they are current.

        Every change to ``credit_rates`` (an import by any instance or the CLI, SQL by hand) raises the version
        in its own transaction (schema triggers), so reading the version here, inside the reservation's
        transaction, sees every change committed before it: the next reservation after a change uses it.  The
        version is read before the rates, so rates read after it are never older than the version they are
        kept under (at worst newer: they are read again at the next call).
        """
        version = await conn.fetchval("SELECT version FROM credit_rates_version WHERE id = 1")
        if version != self._rates_version:
            self._rates.clear()
            self._rates_version = version
        table = self._rates.get(currency)
        if table is None:
            rows = await conn.fetch("SELECT * FROM credit_rates WHERE currency = $1", currency)
            table = {row["prefix"]: (int(row["per_minute"]), int(row["connect_fee"]), int(row["first_increment"]),
                                     int(row["next_increment"]), row["prefix"], row["name"]) for row in rows}
            if self._rates_version == version:   # another call meanwhile read a newer version: not kept
                self._rates[currency] = table
        return table

    # --- calls ------------------------------------------------------------------------------

    async def call(self, callid: str) -> CreditCall | None:
        row = await self.db.fetchrow("SELECT * FROM credit_calls WHERE callid = $1", callid)
        return _call(row) if row else None

    async def open_calls(self, account_id: str) -> list[CreditCall]:
        rows = await self.db.fetch("SELECT * FROM credit_calls WHERE account_id = $1 AND state = 'reserved' "
                                   "ORDER BY created_at", account_id)
        return [_call(r) for r in rows]

    async def reserve(self, callid: str, account_id: str, destination: str | None, rate_for: RateLookup, *,
                      cap: int, unit: int, grace: int, now: float | None = None, dry_run: bool = False) -> Reservation:
        """Authorize a call: reserve the cost of the longest affordable time (at most ``cap`` seconds).

        Answers a repeated ICE (same ``callid``) from its first reservation.  A call the
        account cannot pay for is recorded as ``denied`` (so a repeat gets the same answer).
        A call whose reservation was released because it was not connected (``call_decided``)
        is reserved anew by a repeated ICE: a second decision may connect it.
        ``dry_run``: the same answer, nothing written.
        """
        now = time.time() if now is None else now
        async def reserve_call(tx: Connection) -> Reservation:
            currency = await self._currency(tx, account_id)
            if currency is None:
                return Reservation("no_account", account_id, reason=f"no account {account_id!r}")
            rate = await rate_for(tx, currency)
            if isinstance(rate, NoRate):
                existing = await tx.fetchrow("SELECT * FROM credit_calls WHERE callid = $1", callid)
                if existing is not None:
                    return await self._repeated(tx, _call(existing))
                return Reservation("no_rate", account_id, currency, available=await self._available(tx, account_id),
                                   reason=rate.reason)
            # The usual call: the account pays for the whole cap.  Its row is written as such; a repeated ICE conflicts
            # on the callid and inserts nothing.
            whole = charge(rate, cap, unit).cost
            call_values = (callid, account_id, currency, destination, rate.prefix, rate.per_minute, rate.connect_fee,
                           rate.increments.first, rate.increments.next, cap, whole, int(now) + cap + grace, utc_now())
            if whole and self.db.dialect == "postgresql":
                # One data-modifying statement: the call's insert, the account's conditional update and the ledger
                # entry (one round trip instead of three; the same rows, the same lock order: see _RESERVE_PG).
                row = await tx.fetchrow(_RESERVE_PG if not dry_run else _RESERVE_PG_DRY_RUN, *call_values)
                assert row is not None, "the statement always answers one row"
                inserted = int(row["inserted"])
                if row["balance"] is not None:
                    balance, reserved = int(row["balance"]), int(row["reserved"])
                    return Reservation("reserved", account_id, currency, cap, whole, balance - reserved + whole)
            else:
                inserted = await tx.execute(_INSERT_CALL, *call_values)
            if not inserted:
                existing = await tx.fetchrow(f"SELECT * FROM credit_calls WHERE callid = $1{self._for_update}", callid)
                assert existing is not None, "the insert conflicted with it"
                earlier = _call(existing)
                if earlier.state != "released" or earlier.account_id != account_id:
                    return await self._repeated(tx, earlier)
                # The first ICE's call was not connected (another plugin denied it, or nobody routed it) and its
                # reservation was given back: this ICE is a new try and holds credit anew, so that an answer that
                # connects the call now is paid for (the released reservation would have held nothing).
            elif whole and self.db.dialect != "postgresql":
                # Reserved if and only if the account has it available (one conditional statement); else granted
                # below what it can pay for.  Available >= the cap's cost means grant() gives the whole cap.
                after = await self._apply(tx, account_id, [Move("reserve", whole, reserved=whole)], callid=callid,
                                          dry_run=dry_run, only_if_available=whole)
                if after is not None:
                    balance, reserved = after
                    return Reservation("reserved", account_id, currency, cap, whole, balance - reserved + whole)
            # A repeated ICE of a released call, or an account that cannot pay for the whole cap (or a free rate): what
            # its available credit pays for, read under its row's lock.
            available = await self._available(tx, account_id, lock=True)
            granted = grant(rate, available, cap, unit)
            state: Literal["reserved", "denied"] = "reserved" if granted.allowed else "denied"
            reason = "" if granted.allowed else "insufficient credit"
            await tx.execute(
                "UPDATE credit_calls SET state = $1, prefix = $2, per_minute = $3, connect_fee = $4, "
                "first_increment = $5, next_increment = $6, max_duration = $7, reserved = $8, expires_at = $9, "
                "reason = $10 WHERE callid = $11",
                state, rate.prefix, rate.per_minute, rate.connect_fee, rate.increments.first, rate.increments.next,
                granted.seconds, granted.reserve, int(now) + granted.seconds + grace, reason, callid)
            if granted.reserve:
                await self._apply(tx, account_id, [Move("reserve", granted.reserve, reserved=granted.reserve)],
                                  callid=callid, dry_run=dry_run)
            return Reservation(state, account_id, currency, granted.seconds, granted.reserve, available, reason=reason)
        return await self.db.run_transaction(reserve_call, rollback=dry_run)

    async def limit(self, callid: str, max_duration: int, *, unit: int, grace: int, dry_run: bool = False) -> int:
        """The call may last at most ``max_duration`` seconds (another limit won): give back the surplus.

        Returns the micro-units released (0 when nothing changed).  ``dry_run``: the same answer, nothing written.
        """
        async def lower_limit(tx: Connection, call: CreditCall | None) -> int:
            if call is None or call.state != "reserved" or max_duration >= call.max_duration:
                return 0
            held = charge(call.rate, max_duration, unit).cost
            surplus = call.reserved - held
            await tx.execute("UPDATE credit_calls SET max_duration = $1, reserved = $2, expires_at = $3 "
                             "WHERE callid = $4", max_duration, held,
                             call.expires_at - (call.max_duration - max_duration), callid)
            if surplus > 0:
                await self._apply(tx, call.account_id, [Move("release", surplus, reserved=-surplus,
                                                             note=f"maxDuration lowered to {max_duration} s")],
                                  callid=callid, dry_run=dry_run)
            return max(surplus, 0)
        return await self._in_locked_call(callid, lower_limit, rollback=dry_run)

    async def release(self, callid: str, *, state: Literal["released", "expired"] = "released",
                      reason: str = "", dry_run: bool = False) -> CreditCall | None:
        """Give back a reservation that will not be settled: the call was denied, hung up, or its DICE never came.

        Returns the call as it was when released; None when it was not held (already settled, released, ...).
        ``dry_run``: the same answer, nothing written.
        """
        async def release_call(tx: Connection, call: CreditCall | None) -> CreditCall | None:
            if call is None or call.state != "reserved":
                return None
            await tx.execute("UPDATE credit_calls SET state = $1, reserved = 0, reason = $2 WHERE callid = $3",
                             state, reason, callid)
            if call.reserved:
                await self._apply(tx, call.account_id, [Move("release", call.reserved, reserved=-call.reserved,
                                                             note=reason)], callid=callid, dry_run=dry_run)
            return call
        return await self._in_locked_call(callid, release_call, rollback=dry_run)

    async def settle(self, callid: str, duration: int, *, unit: int, sinch_debit: Decimal | None = None,
                     sinch_currency: str | None = None, dry_run: bool = False,
                     priced: Callable[[CreditCall], None] | None = None) -> Settlement | None:
        """Charge a finished call once: cost of ``duration`` at the call's rate, release what was held.

        None: a call this plugin did not authorize, which is never charged, whatever its
        ``duration``: no such call (another destination type, no account, no rate), or one it
        denied.  A call already settled is returned unchanged with ``repeated=True``.  A call
        whose reservation had expired or was released is still charged for the time Sinch reports.
        The time billed is at most the call's granted ``max_duration`` (Sinch ends the call then, and that is
        what was reserved): a longer ``duration`` is stored as reported and billed as ``max_duration``, so an end
        event is never charged more than was reserved for it.  ``dry_run``: the same answer, nothing written.

        Most end events change nothing (a call this plugin never reserved, a v2 call's dialled leg, a
        repeated end event): a read of the committed row says so, with no write transaction and so no
        wait for a group commit (``Database.fetchrow_committed``).  That read is final for those states:
        no call row is ever deleted while its call can still end, a denied or settled call never changes
        again, and a reservation is committed before its incoming call is answered, so before the call
        can end.  A call found held (reserved, released, expired) is settled in the transaction below,
        which reads its row again under its lock: two end events racing settle it once.

        ``priced(call)``: called before that transaction with the call as this end event will settle it
        (its cost at the call's rate), so that the plugin can pass the cost on while the write waits for
        its commit.  A duplicate end event racing this one carries the same duration, so the same cost.
        """
        row = await self.db.fetchrow_committed("SELECT * FROM credit_calls WHERE callid = $1", callid)
        if row is None or row["state"] == "denied":
            return None
        if row["state"] == "settled":
            return Settlement(_call(row), 0, repeated=True)
        duration = max(duration, 0)
        if priced is not None:
            held = _call(row)
            billed = charge(held.rate, min(duration, held.max_duration), unit)
            priced(replace(held, state="settled", reserved=0, duration=duration,
                           billed_seconds=billed.billed_seconds, cost=billed.cost,
                           sinch_debit=None if sinch_debit is None else str(sinch_debit),
                           sinch_currency=sinch_currency))

        async def settle_call(tx: Connection, call: CreditCall | None) -> Settlement | None:
            if call is None or call.state == "denied":
                return None
            if call.state == "settled":
                return Settlement(call, 0, repeated=True)
            billed = charge(call.rate, min(duration, call.max_duration), unit)
            held = call.reserved if call.state == "reserved" else 0
            settled_at = utc_now()
            await tx.execute(
                "UPDATE credit_calls SET state = 'settled', reserved = 0, duration = $1, billed_seconds = $2, "
                "cost = $3, sinch_debit = $4, sinch_currency = $5, settled_at = $6 WHERE callid = $7",
                duration, billed.billed_seconds, billed.cost,
                None if sinch_debit is None else str(sinch_debit), sinch_currency, settled_at, callid)
            moves = [Move("release", held, reserved=-held, note="settled")] if held else []
            if billed.cost:
                moves.append(Move("debit", billed.cost, balance=-billed.cost, note=f"{billed.billed_seconds} s billed"))
            if moves:     # release and debit: one statement on the account, one insert of both ledger entries
                await self._apply(tx, call.account_id, moves, callid=callid, dry_run=dry_run)
            final = replace(call, state="settled", reserved=0, duration=duration,
                            billed_seconds=billed.billed_seconds, cost=billed.cost,
                            sinch_debit=None if sinch_debit is None else str(sinch_debit),
                            sinch_currency=sinch_currency, settled_at=settled_at)
            return Settlement(final, held, repeated=False)
        return await self._in_locked_call(callid, settle_call, rollback=dry_run)

    async def overdue(self, now: float | None = None, limit: int = EXPIRY_BATCH) -> list[str]:
        """Callids of reservations past their expiry time (maxDuration + grace after the ICE)."""
        now = time.time() if now is None else now
        rows = await self.db.fetch("SELECT callid FROM credit_calls WHERE state = 'reserved' AND expires_at < $1 "
                                   "ORDER BY expires_at LIMIT $2", int(now), limit)
        return [r["callid"] for r in rows]

    # --- internals --------------------------------------------------------------------------

    async def _in_locked_call(self, callid: str, work: Callable[[Connection, CreditCall | None], Awaitable[T]], *,
                              rollback: bool = False) -> T:
        """``work(tx, call)`` in a transaction holding the call's row (None for an unknown call), read once; ``work``
        changes the call's account after it (the lock order).  Run again if PostgreSQL ended it all the same (see
        ``Database.run_transaction``): ``work`` only reads and writes through ``tx``.  ``rollback``: a
        rollback-only transaction (a dry run)."""
        async def locked(tx: Connection) -> T:
            row = await tx.fetchrow(f"SELECT * FROM credit_calls WHERE callid = $1{self._for_update}", callid)
            return await work(tx, None if row is None else _call(row))
        return await self.db.run_transaction(locked, rollback=rollback)

    async def _lock_account(self, tx: Connection, account_id: str) -> Account | None:
        row = await tx.fetchrow(f"SELECT * FROM credit_accounts WHERE id = $1{self._for_update}", account_id)
        return _account(row) if row else None

    async def _currency(self, tx: Connection, account_id: str) -> str | None:
        """The account's currency (None: no such account), read once per account (it never changes)."""
        currency = self._currencies.get(account_id)
        if currency is None:
            currency = await tx.fetchval("SELECT currency FROM credit_accounts WHERE id = $1", account_id)
            if currency is not None:
                if len(self._currencies) >= CURRENCIES_KEPT:
                    self._currencies.clear()
                self._currencies[account_id] = currency
        return currency

    async def _available(self, tx: Connection, account_id: str, *, lock: bool = False) -> int:
        """The account's available credit (its row locked until the transaction ends, with ``lock``).

        PostgreSQL: locked ``FOR NO KEY UPDATE``, the lock an UPDATE of the row takes, which does not wait for
        the ``KEY SHARE`` lock a concurrent call's insert holds on its account (its foreign key): ``FOR UPDATE``
        would, while that transaction waits to update the account: a deadlock."""
        row = await tx.fetchrow(f"SELECT balance, reserved FROM credit_accounts WHERE id = $1"
                                f"{self._for_no_key_update if lock else ''}", account_id)
        assert row is not None, "accounts are never deleted"
        return int(row["balance"]) - int(row["reserved"])

    async def _repeated(self, tx: Connection, call: CreditCall) -> Reservation:
        """The answer to a repeated ICE, from the record of the first one.

        A call granted no time was denied, whatever its state says: versions before 0.2.0
        settled the DICE of a denied call, marking it ``settled``.  Only a denial reads the account
        (for its message).
        """
        if call.state == "denied" or call.max_duration <= 0:
            return Reservation("denied", call.account_id, call.currency, call.max_duration, call.reserved,
                               await self._available(tx, call.account_id), repeated=True, reason=call.reason)
        return Reservation("reserved", call.account_id, call.currency, call.max_duration, call.reserved,
                           repeated=True, reason=call.reason)

    async def _apply(self, tx: Connection, account_id: str, moves: list[Move], *, callid: str | None = None,
                     dry_run: bool = False, only_if_available: int | None = None) -> tuple[int, int] | None:
        """Apply ``moves`` to the account in one statement and append the ledger entries that explain them in one
        more; returns the account's ``(balance, reserved)`` after them.

        None when nothing changed: no such account, or (``only_if_available``) its available credit is less than
        that.  ``dry_run`` (in a rollback-only transaction): no ledger entries, whose insert would use up ids of
        PostgreSQL's sequence even when rolled back.
        """
        balance_change, reserved_change = sum(m.balance for m in moves), sum(m.reserved for m in moves)
        now = utc_now()
        condition = "" if only_if_available is None else " AND balance - reserved >= $5"
        row = await tx.fetchrow(
            "UPDATE credit_accounts SET balance = balance + $2, reserved = reserved + $3, updated_at = $4 "
            f"WHERE id = $1{condition} RETURNING balance, reserved",
            account_id, balance_change, reserved_change, now,
            *(() if only_if_available is None else (only_if_available,)))
        if row is None:
            return None
        balance, reserved = int(row["balance"]), int(row["reserved"])
        if not dry_run:
            # Each entry's balance and reserved amount after it, from the account's before all of them.
            entry_balance, entry_reserved = balance - balance_change, reserved - reserved_change
            rows: list[str] = []
            args: list[Any] = [account_id, callid, now]
            for move in moves:
                entry_balance, entry_reserved = entry_balance + move.balance, entry_reserved + move.reserved
                n = len(args)
                rows.append(f"($1, ${n + 1}, ${n + 2}, ${n + 3}, ${n + 4}, $2, ${n + 5}, $3)")
                args += [move.kind, move.amount, entry_balance, entry_reserved, move.note]
            await tx.execute("INSERT INTO credit_ledger (account_id, kind, amount, balance_after, reserved_after, "
                             "callid, note, created_at) VALUES " + ", ".join(rows), *args)
        return balance, reserved
