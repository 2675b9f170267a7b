"""Background delivery: one worker per sink claims due records and sends them, off the answer path.

Per sink: at most ``concurrency`` requests in flight; a failed attempt is retried after a
full-jitter backoff, never sooner than the receiver's Retry-After; a 429/503 pauses the whole
sink; after ``max_attempts`` (or a permanent refusal) the record is a dead letter.  A record is
marked delivered only after a 2xx, so a crash at any point means the record is sent again
(same Idempotency-Key), never lost.
"""

from __future__ import annotations

import asyncio
import math
import random
import time
from collections.abc import Awaitable, Callable

import structlog

from .config import DeliverySettings
from .outbox import Claim, DeliveryOutcome, Outbox
from .retry import AttemptResult, next_delay
from .sinks import Sender

log = structlog.get_logger("callgate.crm_export")


class SinkWorker:
    """Delivers one sink's queue from one instance."""

    def __init__(self, outbox: Outbox, sender: Sender, settings: DeliverySettings, instance: str, *,
                 poll_interval: float, save: Callable[[DeliveryOutcome], Awaitable[str | None]] | None = None,
                 clock: Callable[[], float] = time.time, rng: random.Random | None = None) -> None:
        self.outbox = outbox
        #: Saves one attempt's outcome (the plugin passes a group-committing Batcher's submit).
        self.save = save or (lambda outcome: self._save_one(outcome))
        self.sender = sender
        self.settings = settings
        self.instance = instance
        self.poll_interval = poll_interval
        self.clock = clock
        self.rng = rng or random.Random()
        self.paused_until = 0.0
        self._next_due = math.inf
        self._wake = asyncio.Event()
        self._stopping = False
        self._inflight: dict[asyncio.Task, Claim] = {}
        self._task: asyncio.Task | None = None

    @property
    def name(self) -> str:
        return self.settings.name

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name=f"crm_export:{self.name}")

    def wake(self) -> None:
        """New records are queued: look now instead of at the next poll."""
        self._next_due = 0.0
        self._wake.set()

    async def stop(self, grace: float) -> None:
        """Stop claiming; give in-flight requests ``grace`` seconds, then abandon them (their leases are
        released, so they are sent again soon, by this instance after a restart or by another one)."""
        self._stopping = True
        self._wake.set()
        if self._task is not None:
            await asyncio.gather(self._task, return_exceptions=True)
        inflight = dict(self._inflight)
        if inflight:
            _, unfinished = await asyncio.wait(inflight, timeout=grace) if grace > 0 else (set(), set(inflight))
            for task in unfinished:
                task.cancel()
            await asyncio.gather(*unfinished, return_exceptions=True)
            abandoned = [inflight[t].callid for t in unfinished]
            if abandoned:
                try:
                    await self.outbox.release(self.instance, abandoned)
                except Exception as exc:  # the leases then simply expire
                    log.warning("crm_release_failed", sink=self.name, error=str(exc))
                log.info("crm_delivery_abandoned", sink=self.name, records=len(abandoned))

    async def _run(self) -> None:
        settings = self.settings
        while not self._stopping:
            now = self.clock()
            if now < self.paused_until:
                await self._sleep(self.paused_until - now)
                continue
            free = settings.concurrency - len(self._inflight)
            if free < max(1, settings.concurrency // 2):   # claim in batches: one transaction for several
                await self._sleep(self.poll_interval)
                continue
            self._wake.clear()
            try:
                claims = await self.outbox.claim(self.name, free, self.instance, settings.lease_seconds, now)
            except Exception as exc:
                log.error("crm_claim_failed", sink=self.name, error=str(exc))
                await self._sleep(self.poll_interval)
                continue
            for claim in claims:
                task = asyncio.create_task(self._deliver(claim))
                self._inflight[task] = claim
                task.add_done_callback(self._done)
            if len(claims) < free:      # nothing more is due now: wait for news, a retry coming due, or the poll
                if not claims and self._next_due <= now:
                    self._next_due = math.inf
                await self._sleep(min(self.poll_interval, max(0.0, self._next_due - self.clock())))

    def _done(self, task: asyncio.Task) -> None:
        self._inflight.pop(task, None)
        self._wake.set()

    async def _sleep(self, seconds: float) -> None:
        try:
            await asyncio.wait_for(self._wake.wait(), timeout=max(seconds, 0.001))
        except TimeoutError:
            pass
        self._wake.clear()

    async def _deliver(self, claim: Claim) -> None:
        settings = self.settings
        try:
            result = await self.sender.send(claim)
        except Exception as exc:  # a bug in a sender is a failed attempt, never a lost record
            result = AttemptResult("retry", None, f"{type(exc).__name__}: {exc}")
        now = self.clock()
        if result.kind == "delivered":
            await self._persist(DeliveryOutcome(claim, result))
            log.info("crm_delivered", sink=self.name, callid=claim.callid, version=claim.version,
                     attempt=claim.attempts + 1, status=result.status)
            return
        delay = next_delay(result, claim.attempts + 1, initial=settings.backoff_initial_seconds,
                           maximum=settings.backoff_max_seconds, max_retry_after=settings.max_retry_after_seconds,
                           rng=self.rng)
        if result.throttled:
            self.paused_until = max(self.paused_until, now + delay)
        state = await self._persist(DeliveryOutcome(claim, result, now + delay, settings.max_attempts))
        self._next_due = min(self._next_due, now + delay)
        event = "crm_dead_letter" if state == "dead" else "crm_retry_scheduled"
        (log.error if state == "dead" else log.warning)(
            event, sink=self.name, callid=claim.callid, version=claim.version, attempt=claim.attempts + 1,
            status=result.status, error=result.error, retry_in=None if state == "dead" else round(delay, 3))

    async def _save_one(self, outcome: DeliveryOutcome) -> str | None:
        [state] = await self.outbox.save_outcomes([outcome], self.instance, self.clock())
        return state

    async def _persist(self, outcome: DeliveryOutcome) -> str | None:
        """Save a delivery's outcome, retrying while the database is briefly unavailable (within the lease)."""
        deadline = self.clock() + self.settings.lease_seconds
        pause = 0.05
        while True:
            try:
                return await self.save(outcome)
            except Exception as exc:
                if self.clock() + pause > deadline:
                    log.error("crm_outcome_not_saved", sink=self.name, error=str(exc))
                    return None
                await asyncio.sleep(pause)
                pause = min(pause * 2, 2.0)
