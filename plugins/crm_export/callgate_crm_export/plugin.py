"""The crm_export plugin: hooks that gather a call's facts, and the background work that exports its record.

Both API generations, one configuration: facts and records are kept by ``call.key`` (the v1 callid;
``"v2:"`` + the callid of a v2 leg).  In v2 every leg is a call of its own: the inbound leg and each
dialled leg end with their own event, and each gets its own record (``session_id`` ties them).

* ``call_decided`` (ICE) and ``on_answer`` (ACE) only note facts in memory (microseconds; the
  answer path never waits for a disk), written by a background flush.  ``on_answer`` always
  returns None: this plugin never changes how a call is answered.
* ``on_disconnect`` (DICE) writes the record to the outbox before DICE is answered; if it cannot,
  it raises, so callgate answers 503 and Sinch sends the DICE to the fallback URL.  It runs at the
  same time as credit_check's settlement and waits only for credit_check's cost note
  (``callgate.wait_for_note``), not for its write.
* ``on_notify`` adds a recording/transcription location to the same record (a new version).
* ``startup`` opens the outbox and starts one delivery worker per sink; ``shutdown`` stops them at
  a safe point (a record is only marked delivered after a 2xx).
* Dry runs (``callgate simulate``): ``startup(dry_run=True)`` opens the outbox as it is (never created
  or migrated; a missing one is simulated as empty) and starts no worker, flush or purge;
  ``on_disconnect``/``on_notify`` build the record in a transaction that is rolled back (nothing is
  queued, no sink receives anything, no file is written); ``call_decided``/``on_answer`` keep nothing.
"""

from __future__ import annotations

import asyncio
import os
import socket
import time
import uuid
from collections.abc import Sequence
from datetime import datetime, timezone
from urllib.parse import urlsplit

import aiohttp
import structlog

from callgate import hookimpl, wait_for_note
from callgate.calls import Answered, Ended, Incoming, Notice
from callgate.results import Decision
from callgate.storage import DatabaseError

from . import cli
from .batching import Batcher
from .buffer import FactBuffer
from .config import CrmExportConfig
from .delivery import SinkWorker
from .facts import Facts, answer_facts, dice_facts, ice_facts, merge_facts, notify_facts
from .outbox import Change, DeliveryOutcome, Outbox
from .sinks import Sender, build_sender

log = structlog.get_logger("callgate.crm_export")
#: How often the background task removes records every sink has received (``retention_days``).
PURGE_INTERVAL_SECONDS = 3600.0
#: What ``/readyz`` says while the outbox's database does not answer (the error itself is logged).
READY_PROBLEM = "outbox database unreachable (see the log: crm_outbox_unreachable)"
#: How many calls' buffered facts one flush transaction writes.
FLUSH_CHUNK = 32


def _now() -> datetime:
    return datetime.now(timezone.utc)


class CrmExport:
    """Export every finished call to CRMs through a durable outbox."""

    Config = CrmExportConfig
    #: A DICE write may wait for the database under load; the DICE deadline is 4 s.
    default_timeout_ms = 3000
    #: Never hang up a call because the export failed (a DICE that was not recorded still gets 503).
    default_on_error = "skip"

    def __init__(self, config: CrmExportConfig) -> None:
        self.config = config
        self.instance = f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"
        self.buffer = FactBuffer()
        self.outbox: Outbox | None = None
        self.workers: list[SinkWorker] = []
        self._senders: list[Sender] = []
        self._session: aiohttp.ClientSession | None = None
        self._tasks: list[asyncio.Task] = []
        #: Set by shutdown(): the background tasks end (made anew by each startup()).
        self._stopping = asyncio.Event()
        #: Opening the outbox again and again while its PostgreSQL server is unreachable at start-up.
        self._opening: asyncio.Task | None = None
        self._error: str | None = None
        #: Started with dry_run (callgate simulate): no background work, nothing written.
        self._dry_run = False
        #: DICE/Notify writes, group-committed: one transaction for every write that arrives while one runs.
        self._writes: Batcher[tuple[str, Facts], Change] = Batcher(self._write_batch)
        #: Delivery outcomes, group-committed the same way.
        self._outcomes: Batcher[DeliveryOutcome, str | None] = Batcher(self._save_outcomes)

    # --- lifecycle -----------------------------------------------------------------------------

    async def startup(self, dry_run: bool = False) -> None:
        """Open the outbox and start delivering.  A SQLite file that cannot be opened stops start-up (a
        configuration error); an unreachable PostgreSQL server does not: callgate starts, DICEs are answered
        503 and ``/readyz`` says why until the outbox opens, tried again every ``reconnect_seconds``.

        ``dry_run``: only open the outbox as it is (``Outbox.open_dry_run``); no delivery, flush or purge.
        """
        self._stopping = asyncio.Event()
        url = self.config.database_url.get_secret_value()
        if dry_run:
            self._dry_run = True
            try:
                self.outbox = await Outbox.open_dry_run(url, [s.name for s in self.config.sinks])
            except DatabaseError as exc:
                if urlsplit(url).scheme == "sqlite":
                    raise
                self._error = str(exc)      # as on the server: the DICE is not recorded (503)
            return
        try:
            await self._open()
        except DatabaseError as exc:
            if urlsplit(url).scheme == "sqlite":
                raise
            self._error = str(exc)
            log.error("crm_outbox_unreachable", error=str(exc), retry_seconds=self.config.reconnect_seconds)
            self._opening = asyncio.create_task(self._open_when_reachable(), name="crm_export:open")

    async def _open_when_reachable(self) -> None:
        while not await self._wait_stopping(self.config.reconnect_seconds):
            try:
                await self._open()
            except DatabaseError as exc:
                self._error = str(exc)
                log.warning("crm_outbox_unreachable", error=str(exc), retry_seconds=self.config.reconnect_seconds)
                continue
            except Exception:   # a bug must not end the attempts: DICEs would get 503 until a restart
                log.exception("crm_outbox_open_failed")
                continue
            self._error = None
            log.info("crm_outbox_reconnected")
            return

    async def _open(self) -> None:
        config = self.config
        outbox = await Outbox.open(config.database_url.get_secret_value(), [s.name for s in config.sinks])
        if self._stopping.is_set():      # shut down while the outbox was opening
            await outbox.close()
            return
        self.outbox = outbox
        self._session = aiohttp.ClientSession()
        for sink in config.sinks:
            sender = build_sender(sink, self._session)
            self._senders.append(sender)
            self.workers.append(SinkWorker(self.outbox, sender, sink, self.instance,
                                           poll_interval=config.poll_interval_seconds, save=self._outcomes.submit))
        for worker in self.workers:
            worker.start()
        self._tasks = [asyncio.create_task(self._flush_forever(), name="crm_export:flush")]
        if config.retention_days:
            self._tasks.append(asyncio.create_task(self._purge_forever(), name="crm_export:purge"))
        log.info("crm_export_started", sinks=[s.name for s in config.sinks], instance=self.instance,
                 database=self.outbox.db.dialect)

    async def shutdown(self) -> None:
        self._stopping.set()
        if self._opening is not None:
            self._opening.cancel()           # an attempt in progress closes what it opened
            await asyncio.gather(self._opening, return_exceptions=True)
        if self.outbox is None:
            return
        if self._dry_run:
            await self.outbox.close()
            self.outbox = None
            return
        await asyncio.gather(*self._tasks, return_exceptions=True)
        await self.flush()
        await self._writes.wait_idle()
        await asyncio.gather(*(w.stop(self.config.shutdown_grace_seconds) for w in self.workers))
        await self._outcomes.wait_idle()
        for sender in self._senders:
            await sender.close()
        if self._session is not None:
            await self._session.close()
        await self.outbox.close()
        self.outbox = None

    # --- hooks ---------------------------------------------------------------------------------

    @hookimpl
    def call_decided(self, call: Incoming, decision: Decision, dry_run: bool = False) -> None:
        if not dry_run:          # a dry run keeps nothing for a later write
            self.buffer.add(call.key, ice_facts(call, decision, _now()))

    @hookimpl
    def on_answer(self, call: Answered, dry_run: bool = False) -> None:
        if not dry_run:
            self.buffer.add(call.key, answer_facts(call, _now()))
        return None

    @hookimpl
    async def on_disconnect(self, call: Ended, dry_run: bool = False) -> None:
        outbox = self._started()
        received = _now()
        # credit_check's cost: recording hooks run at the same time, and credit_check leaves its cost as soon as
        # it knows it (before its settlement's commit), so both writes wait for their commits together.
        cost = await wait_for_note(call, "credit_check")
        facts = dice_facts(call, received, {"credit_check": cost} if cost is not None else None)
        if dry_run:              # the record built and checked, in a transaction that is rolled back
            await outbox.add_facts(call.key, facts, time.time(), dry_run=True)
            return
        early = self.buffer.take(call.key)
        if early:
            facts = merge_facts(early, facts)[0]
        await self._write(call.key, facts)

    @hookimpl
    async def on_notify(self, call: Notice, dry_run: bool = False) -> None:
        facts = notify_facts(call, _now())
        key = call.key
        if facts is None or not call.callid or key is None:
            return
        outbox = self._started()
        if dry_run:
            await outbox.add_facts(key, facts, time.time(), dry_run=True)
            return
        await self._write(key, facts)

    @hookimpl
    async def check_ready(self) -> str | None:
        """Not ready while the outbox's database does not answer: in a few words on ``/readyz`` (which carries no
        exception's text, host or database name), with the error in the log."""
        if self.outbox is None:
            return READY_PROBLEM if self._error else "not started"     # the attempt to open it logged the error
        try:
            await self.outbox.db.ping()
        except Exception as exc:
            log.warning("crm_outbox_unreachable", error=str(exc))
            return READY_PROBLEM
        return None

    @hookimpl
    async def collect_metrics(self) -> dict[str, float] | None:
        """The outbox's depth for ``/metrics`` (``callgate_plugin_gauge{plugin="crm_export", name=...}``): a CRM
        that is down shows as ``outbox_depth`` growing while DICEs are still answered 200.  ``outbox_up`` is 0
        while the outbox database does not answer (the other gauges then keep their last values)."""
        if self.outbox is None:
            return None
        try:
            gauges = await self.outbox.depth(time.time())
        except DatabaseError:
            return {"outbox_up": 0.0}
        return {"outbox_up": 1.0, **gauges, "facts_buffered": float(len(self.buffer))}

    @hookimpl
    def register_commands(self, subparsers) -> None:
        cli.register(subparsers, self.config)

    # --- background ----------------------------------------------------------------------------

    def _started(self) -> Outbox:
        if self.outbox is None:
            if self._error:
                raise DatabaseError(f"the outbox is not open: {self._error}")
            raise RuntimeError("crm_export is not started (its outbox is not open)")
        return self.outbox

    async def _write(self, callid: str, facts: Facts) -> None:
        """Write facts durably before the callback is answered (group-committed with concurrent writes).

        When the hook runs out of time (DICE answered 503), its write still commits or rolls back
        as a whole, never cut in the middle; the DICE Sinch sends again then finds its record and
        changes nothing.
        """
        await self._writes.submit((callid, facts))

    async def _write_batch(self, items: list[tuple[str, Facts]]) -> Sequence[Change | Exception]:
        """One transaction for the batch.  Should one call's facts break it (a bug, not the database), each call
        is written on its own, so that one bad DICE never costs the others their 200."""
        outbox = self._started()
        changes: Sequence[Change | Exception]
        try:
            changes = await outbox.add_many(items, time.time())
        except DatabaseError:
            raise
        except Exception:
            if len(items) == 1:
                raise
            log.exception("crm_batch_failed", calls=len(items))
            one_by_one: list[Change | Exception] = []
            for callid, facts in items:
                try:
                    one_by_one.append(await outbox.add_facts(callid, facts, time.time()))
                except Exception as exc:
                    one_by_one.append(exc)
            changes = one_by_one
        self._queued([c for c in changes if isinstance(c, Change)])
        return changes

    async def _save_outcomes(self, outcomes: list[DeliveryOutcome]) -> list[str | None]:
        return await self._started().save_outcomes(outcomes, self.instance, time.time())

    def _queued(self, changes: list[Change]) -> None:
        """Records were queued: the workers look now rather than at their next poll."""
        if any(change.enqueued for change in changes):
            for worker in self.workers:
                worker.wake()

    async def flush(self) -> int:
        """Write the buffered ICE/ACE facts now; returns how many calls were written."""
        items = self.buffer.start_flush()
        if not items:
            self.buffer.end_flush(True)
            return 0
        try:
            # In transactions of FLUSH_CHUNK calls: SQLite's statements run on the event loop's thread, so
            # one transaction for a whole interval's calls would hold up every callback for its duration.
            outbox = self._started()
            for start in range(0, len(items), FLUSH_CHUNK):
                self._queued(await outbox.add_many(items[start:start + FLUSH_CHUNK], time.time()))
        except Exception as exc:
            self.buffer.end_flush(False)     # all again at the next flush (facts already written merge unchanged)
            log.warning("crm_facts_not_flushed", calls=len(items), error=str(exc))
            return 0
        self.buffer.end_flush(True)
        return len(items)

    async def _flush_forever(self) -> None:
        while not await self._wait_stopping(self.config.facts_flush_interval_seconds):
            await self.flush()

    async def _purge_forever(self) -> None:
        while True:
            try:
                removed = await self._started().purge(time.time() - self.config.retention_days * 86400)
                if removed:
                    log.info("crm_purged", calls=removed, retention_days=self.config.retention_days)
            except Exception as exc:
                log.warning("crm_purge_failed", error=str(exc))
            if await self._wait_stopping(PURGE_INTERVAL_SECONDS):
                return

    async def _wait_stopping(self, seconds: float) -> bool:
        try:
            await asyncio.wait_for(self._stopping.wait(), timeout=seconds)
        except TimeoutError:
            return False
        return True
