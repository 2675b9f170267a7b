"""Two instances writing one PostgreSQL outbox at once (issue 15, item 5).

DICE batches, facts flushes and delivery marks of two instances run against each other on the
same calls, round after round: no deadlock may reach a caller, and in the end every record is
delivered to every sink exactly once in its last version (no outbox row lost, none duplicated).
"""

import asyncio
import json
import os
import random
from datetime import datetime, timezone

import pytest

from callgate.protocols.v1.decode import decode_event
from callgate.samples import dice, ice, notify
from callgate.storage import Database
from callgate.testing import POSTGRES_DSN_ENV, postgres_schema
from callgate_crm_export.facts import dice_facts, ice_facts, notify_facts
from callgate_crm_export.outbox import COMPONENT, MIGRATIONS, DeliveryOutcome, Outbox
from callgate_crm_export.retry import AttemptResult

NOW = 1_700_000_000.0
WHEN = datetime.fromtimestamp(NOW, timezone.utc)
STAMP = WHEN.isoformat().replace("+00:00", "Z")
SINKS = ("hook", "file")
CALLS = [f"c{i:02d}" for i in range(20)]
ROUNDS = 6


def event(body):
    return decode_event(json.dumps(body))


def dice_of(callid):
    return dice_facts(event(dice(callid=callid, timestamp=STAMP)), WHEN)    # dated WHEN, not when it is made


def ice_of(callid):
    return ice_facts(event(ice(callid=callid)), None, WHEN)


def recording_of(callid, round_):
    return notify_facts(event(notify(callid=callid, destination=f"s3://rec/{callid}-{round_}.mp3")), WHEN)


@pytest.fixture
async def postgres_url():
    dsn = os.environ.get(POSTGRES_DSN_ENV)
    if not dsn:
        pytest.skip(f"a race between PostgreSQL sessions: runs when {POSTGRES_DSN_ENV} is set")
    async with postgres_schema(dsn) as url:
        yield url


async def open_instance(url: str, transaction_attempts: int | None) -> Outbox:
    if transaction_attempts is None:
        return await Outbox.open(url, SINKS)
    db = await Database.connect(url, transaction_attempts=transaction_attempts)
    await db.migrate(COMPONENT, MIGRATIONS)
    return Outbox(db, SINKS)


def outcomes(claims, rng: random.Random, now: float) -> list[DeliveryOutcome]:
    """Delivered or failed (due again at once), in the order the deliveries happened to finish."""
    done = [DeliveryOutcome(c, AttemptResult.delivered(200)) if rng.random() < 0.7
            else DeliveryOutcome(c, AttemptResult("retry", 503, "HTTP 503"), now, 1000) for c in claims]
    rng.shuffle(done)
    return done


@pytest.mark.parametrize("transaction_attempts", [None, 1], ids=["with-retries", "lock-order-alone"])
async def test_two_instances_writing_and_marking_at_once_never_deadlock(postgres_url, transaction_attempts):
    a = await open_instance(postgres_url, transaction_attempts)
    b = await open_instance(postgres_url, transaction_attempts)
    rng = random.Random(15)
    errors: list[BaseException] = []
    try:
        await a.add_many([(c, dice_of(c)) for c in CALLS], NOW)
        for round_ in range(1, ROUNDS + 1):
            now = NOW + round_
            claims_a = await a.claim("hook", len(CALLS), "a", 30, now)
            claims_b = await b.claim("file", len(CALLS), "b", 30, now)
            notes = [(c, recording_of(c, round_)) for c in CALLS]     # the same Notify at both instances
            flush = [(c, ice_of(c)) for c in reversed(CALLS)]           # ICE facts buffered at both
            results = await asyncio.gather(
                a.add_many(notes, now), b.save_outcomes(outcomes(claims_b, rng, now), "b", now),
                b.add_many(notes, now), a.save_outcomes(outcomes(claims_a, rng, now), "a", now),
                a.add_many(flush, now), b.add_many(flush, now),
                return_exceptions=True)
            errors += [r for r in results if isinstance(r, BaseException)]
        deadlocks = sum("Deadlock" in str(e) for e in errors)
        assert not errors, f"{deadlocks} deadlock(s) among {len(errors)} error(s) in {ROUNDS} rounds: {errors[0]}"

        # Deliver what is left, then every (sink, call) must be delivered once, in the last version.
        later = NOW + 100
        for sink in SINKS:
            while claims := await a.claim(sink, 50, "a", 30, later):
                await a.save_outcomes([DeliveryOutcome(c, AttemptResult.delivered(200)) for c in claims], "a", later)
        last_version = 1 + 1 + ROUNDS          # the DICE, the ICE facts, one recording per round
        rows = await a.db.fetch("SELECT sink, callid, state, version, delivered_version FROM crm_deliveries")
        assert sorted((r["sink"], r["callid"]) for r in rows) == sorted((s, c) for s in SINKS for c in CALLS)
        assert {(r["state"], r["version"], r["delivered_version"]) for r in rows} == \
            {("delivered", last_version, last_version)}
        records = await a.db.fetch("SELECT callid, version FROM crm_calls")
        assert sorted((r["callid"], r["version"]) for r in records) == [(c, last_version) for c in CALLS]
    finally:
        await a.close()
        await b.close()
