"""The outbox on SQLite and PostgreSQL: one record per call, versions, claims and leases, dead letters, replay."""

import asyncio
import json
from datetime import datetime, timezone

import pytest

from callgate.protocols.v1.decode import decode_event
from callgate.samples import dice, ice, notify
from callgate.storage import Database
from callgate_crm_export.facts import dice_facts, ice_facts, notify_facts
from callgate_crm_export.outbox import DeliveryOutcome, Outbox
from callgate_crm_export.retry import AttemptResult

NOW = 1_700_000_000.0
WHEN = datetime.fromtimestamp(NOW, timezone.utc)
STAMP = WHEN.isoformat().replace("+00:00", "Z")
SINKS = ("hook", "file")


def dice_of(callid, **kw):
    """A DICE's facts, dated WHEN (a sample's own timestamp is the time it is made: two made a second apart would
    differ in their ended_at)."""
    return dice_facts(decode_event(json.dumps(dice(callid=callid, **{"timestamp": STAMP, **kw}))), WHEN)


@pytest.fixture
async def outbox(callgate_database_url):
    box = await Outbox.open(callgate_database_url, SINKS)
    yield box
    await box.close()


async def test_a_dice_makes_one_record_queued_for_every_sink(outbox):
    change = await outbox.add_facts("c1", dice_of("c1"), NOW)
    assert (change.version, change.enqueued) == (1, True)
    rows = await outbox.deliveries("c1")
    assert set(rows) == set(SINKS)
    assert all(r["state"] == "pending" and r["version"] == 1 and r["attempts"] == 0 for r in rows.values())
    assert (await outbox.record("c1"))["version"] == 1


async def test_the_same_dice_again_changes_nothing(outbox):
    await outbox.add_facts("c1", dice_of("c1", duration=60), NOW)
    again = await outbox.add_facts("c1", dice_of("c1", duration=61), NOW + 5)
    assert (again.version, again.enqueued) == (1, False)
    assert (await outbox.record("c1"))["duration_seconds"] == 60


async def test_concurrent_dice_from_two_instances_make_one_record(outbox, callgate_database_url):
    other = await Outbox.open(callgate_database_url, SINKS)     # a second instance on the same database
    try:
        changes = await asyncio.gather(*[box.add_facts(f"c{i}", dice_of(f"c{i}"), NOW)
                                         for i in range(20) for box in (outbox, other)])
    finally:
        await other.close()
    assert sum(c.enqueued for c in changes) == 20
    assert all(c.version == 1 for c in changes)
    for i in range(20):
        assert {r["version"] for r in (await outbox.deliveries(f"c{i}")).values()} == {1}


async def test_facts_before_the_dice_make_no_record_and_join_it(outbox):
    call = decode_event(json.dumps(ice(callid="c1", to_type="did")))
    change = await outbox.add_facts("c1", ice_facts(call, None, WHEN), NOW)
    assert (change.version, change.enqueued) == (0, False) and await outbox.deliveries("c1") == {}
    await outbox.add_facts("c1", dice_of("c1"), NOW)
    record = await outbox.record("c1")
    assert record["direction"] == "inbound" and record["started_at"] is not None


async def test_a_batch_writes_what_the_same_writes_one_by_one_write(outbox):
    """add_many (one statement per step on PostgreSQL) against add_facts call by call: the same Changes, records
    and queued versions, also when a batch holds several facts of one call, or facts that change nothing."""
    def writes(prefix):
        a, b, c = f"{prefix}a", f"{prefix}b", f"{prefix}c"
        note = notify_facts(decode_event(json.dumps(notify(callid=a, destination="s3://a.mp3"))), WHEN)
        early = ice_facts(decode_event(json.dumps(ice(callid=c, to_type="did"))), None, WHEN)
        return [(a, dice_of(a)), (b, dice_of(b, duration=7)), (a, note), (c, early), (a, note), (b, dice_of(b))]

    await outbox.add_facts("2b", dice_of("2b", duration=7), NOW)      # "b" already ended before the batch
    await outbox.add_facts("1b", dice_of("1b", duration=7), NOW)
    one_by_one = [await outbox.add_facts(callid, facts, NOW + 1) for callid, facts in writes("1")]
    batch = await outbox.add_many(writes("2"), NOW + 1)

    def without_prefix(changes):
        return [(c.callid[1:], c.version, c.enqueued) for c in changes]
    assert without_prefix(batch) == without_prefix(one_by_one) == [
        ("a", 1, True), ("b", 1, False), ("a", 2, True), ("c", 0, False), ("a", 2, False), ("b", 1, False)]
    for name in "abc":
        first, second = await outbox.record(f"1{name}"), await outbox.record(f"2{name}")
        assert (first is None) == (second is None)
        if first is not None:
            assert {k: v for k, v in first.items() if k not in ("callid", "key")} == \
                   {k: v for k, v in second.items() if k not in ("callid", "key")}
        queued = {s: (r["version"], r["state"]) for s, r in (await outbox.deliveries(f"2{name}")).items()}
        assert queued == {s: (r["version"], r["state"]) for s, r in (await outbox.deliveries(f"1{name}")).items()}
    assert (await outbox.record("2a"))["recording"]["location"] == "s3://a.mp3"
    assert await outbox.deliveries("2c") == {}


async def test_several_deliveries_saved_at_once_as_one_by_one(outbox):
    """save_outcomes of several 2xx (one statement on PostgreSQL): each row as mark_delivered leaves it, also
    the one whose newer version arrived during the delivery (still pending), in the order of the outcomes."""
    for callid in ("c1", "c2", "c3"):
        await outbox.add_facts(callid, dice_of(callid), NOW)
    claims = {c.callid: c for c in await outbox.claim("hook", 10, "me", 30, NOW)}
    note = notify_facts(decode_event(json.dumps(notify(callid="c2", destination="s3://c2.mp3"))), WHEN)
    await outbox.add_facts("c2", note, NOW + 0.5)                      # version 2 while version 1 is in flight
    states = await outbox.save_outcomes(
        [DeliveryOutcome(claims[c], AttemptResult.delivered(201, remote_id=f"r-{c}")) for c in ("c3", "c1", "c2")],
        "me", NOW + 1)
    assert states == ["delivered", "delivered", "pending"]
    rows = {c: (await outbox.deliveries(c))["hook"] for c in ("c1", "c2", "c3")}
    assert [(r["state"], r["delivered_version"], r["attempts"], r["remote_id"], r["last_status"], r["claimed_by"])
            for r in rows.values()] == [("delivered", 1, 1, "r-c1", 201, None), ("pending", 1, 0, "r-c2", 201, None),
                                        ("delivered", 1, 1, "r-c3", 201, None)]
    assert rows["c1"]["pending_since"] is None and rows["c2"]["pending_since"] is not None
    assert [(await outbox.deliveries(c))["file"]["state"] for c in ("c1", "c2", "c3")] == ["pending"] * 3


async def test_a_later_fact_is_a_new_version_queued_again(outbox):
    await outbox.add_facts("c1", dice_of("c1"), NOW)
    [claim] = await outbox.claim("hook", 10, "me", 30, NOW)
    await outbox.mark_delivered(claim, "me", AttemptResult.delivered(200), NOW)
    note = notify_facts(decode_event(json.dumps(notify(callid="c1", destination="s3://r.mp3"))), WHEN)
    change = await outbox.add_facts("c1", note, NOW + 1)
    assert (change.version, change.enqueued) == (2, True)
    assert (await outbox.add_facts("c1", note, NOW + 2)).enqueued is False   # the same Notify twice
    rows = await outbox.deliveries("c1")
    assert rows["hook"]["state"] == "pending" and rows["hook"]["version"] == 2 and rows["hook"]["delivered_version"] == 1
    [claim] = await outbox.claim("hook", 10, "me", 30, NOW + 1)
    assert claim.version == 2 and claim.idempotency_key == "c1:v2" and claim.record["recording"]["location"] == "s3://r.mp3"


async def test_a_version_arriving_during_delivery_is_delivered_next(outbox):
    await outbox.add_facts("c1", dice_of("c1"), NOW)
    [claim] = await outbox.claim("hook", 10, "me", 30, NOW)
    note = notify_facts(decode_event(json.dumps(notify(callid="c1"))), WHEN)
    await outbox.add_facts("c1", note, NOW + 0.5)                  # while version 1 is in flight
    await outbox.mark_delivered(claim, "me", AttemptResult.delivered(200), NOW + 1)
    row = (await outbox.deliveries("c1"))["hook"]
    assert (row["state"], row["delivered_version"], row["version"]) == ("pending", 1, 2)
    [next_claim] = await outbox.claim("hook", 10, "me", 30, NOW + 1)
    assert next_claim.version == 2


async def test_claims_are_exclusive_until_the_lease_expires(outbox, callgate_database_url):
    for i in range(10):
        await outbox.add_facts(f"c{i}", dice_of(f"c{i}"), NOW)
    other = await Outbox.open(callgate_database_url, SINKS)
    try:
        a, b = await asyncio.gather(outbox.claim("hook", 6, "a", 30, NOW), other.claim("hook", 6, "b", 30, NOW))
        assert len(a) + len(b) == 10 and not {c.callid for c in a} & {c.callid for c in b}
        assert await outbox.claim("hook", 10, "a", 30, NOW + 29) == []         # all held
        taken_over = await other.claim("hook", 10, "b", 30, NOW + 31)          # a's leases expired
        assert {c.callid for c in taken_over} == {c.callid for c in a + b}
    finally:
        await other.close()
    assert len(await outbox.claim("file", 100, "a", 30, NOW)) == 10            # each sink has its own queue


async def test_failures_back_off_then_dead_letter(outbox):
    await outbox.add_facts("c1", dice_of("c1"), NOW)
    failure = AttemptResult("retry", 500, "HTTP 500")
    for attempt in range(1, 3):
        [claim] = await outbox.claim("hook", 10, "me", 30, NOW + attempt * 10)
        assert claim.attempts == attempt - 1
        assert await outbox.mark_failed(claim, "me", failure, NOW + attempt * 10 + 5, 3, NOW) == "pending"
        assert await outbox.claim("hook", 10, "me", 30, NOW + attempt * 10 + 4) == []   # not yet due
    [claim] = await outbox.claim("hook", 10, "me", 30, NOW + 100)
    assert await outbox.mark_failed(claim, "me", failure, NOW + 200, 3, NOW) == "dead"
    assert await outbox.claim("hook", 10, "me", 30, NOW + 1000) == []
    [status] = [s for s in await outbox.status(NOW) if s.sink == "hook"]
    assert (status.dead, status.pending, status.last_error_callid, status.last_error) == (1, 0, "c1", "HTTP 500")


async def test_a_permanent_refusal_is_dead_at_once_and_retry_revives_it(outbox):
    await outbox.add_facts("c1", dice_of("c1"), NOW)
    await outbox.add_facts("c2", dice_of("c2"), NOW)
    for claim in await outbox.claim("hook", 10, "me", 30, NOW):
        await outbox.mark_failed(claim, "me", AttemptResult("permanent", 400, "HTTP 400"), NOW, 20, NOW)
    assert {r["state"] for c in ("c1", "c2") for s, r in (await outbox.deliveries(c)).items() if s == "hook"} == {"dead"}
    assert await outbox.retry_dead(NOW + 1, sinks=["hook"], callids=["c1"]) == 1
    [claim] = await outbox.claim("hook", 10, "me", 30, NOW + 1)
    assert claim.callid == "c1" and claim.attempts == 0
    assert await outbox.retry_dead(NOW + 2) == 1                                # c2, any sink


async def test_a_lost_lease_does_not_overwrite_the_new_holder(outbox):
    await outbox.add_facts("c1", dice_of("c1"), NOW)
    [old] = await outbox.claim("hook", 1, "a", 30, NOW)
    [_new] = await outbox.claim("hook", 1, "b", 30, NOW + 31)
    assert await outbox.mark_failed(old, "a", AttemptResult("retry", 500, "late"), NOW + 40, 20, NOW + 32) is None
    row = (await outbox.deliveries("c1"))["hook"]
    assert row["claimed_by"] == "b" and row["attempts"] == 0


async def test_release_gives_abandoned_records_back_at_once(outbox):
    await outbox.add_facts("c1", dice_of("c1"), NOW)
    await outbox.claim("hook", 1, "a", 30, NOW)
    assert await outbox.release("a", ["c1"]) == 1
    [claim] = await outbox.claim("hook", 1, "b", 30, NOW)
    assert claim.attempts == 0


async def test_status_counts_per_sink(outbox):
    for i in range(3):
        await outbox.add_facts(f"c{i}", dice_of(f"c{i}"), NOW + i)
    [claim, *_] = await outbox.claim("hook", 2, "me", 30, NOW + 5)
    await outbox.mark_delivered(claim, "me", AttemptResult.delivered(200), NOW + 5)
    status = {s.sink: s for s in await outbox.status(NOW + 6)}
    assert (status["hook"].pending, status["hook"].in_flight, status["hook"].delivered) == (2, 1, 1)
    assert status["hook"].oldest_pending == NOW + 1
    assert (status["file"].pending, status["file"].oldest_pending) == (3, NOW)


async def test_replay_requeues_delivered_records_and_feeds_a_new_sink(outbox, callgate_database_url):
    for i, ended in enumerate(("2025-03-01T10:00:00Z", "2025-03-02T10:00:00Z", "2025-03-03T10:00:00Z")):
        await outbox.add_facts(f"c{i}", dice_of(f"c{i}", timestamp=ended), NOW)
    for sink in SINKS:
        for claim in await outbox.claim(sink, 10, "me", 30, NOW):
            await outbox.mark_delivered(claim, "me", AttemptResult.delivered(200), NOW)
    since = datetime(2025, 3, 2, tzinfo=timezone.utc).timestamp()
    assert await outbox.count_records(since) == 2
    assert await outbox.replay(NOW + 1, since, sinks=["hook"]) == 2
    assert sorted(c.callid for c in await outbox.claim("hook", 10, "me", 30, NOW + 1)) == ["c1", "c2"]
    assert await outbox.claim("file", 10, "me", 30, NOW + 1) == []
    widened = await Outbox.open(callgate_database_url, (*SINKS, "archive"))     # a sink added later
    try:
        assert await widened.replay(NOW + 2, 0, until=since, sinks=["archive"]) == 1
        assert [c.callid for c in await widened.claim("archive", 10, "me", 30, NOW + 2)] == ["c0"]
    finally:
        await widened.close()
    assert await outbox.record("c0") is not None                                 # replay deletes nothing
    # Only some calls, with and without an upper bound (their placeholders are numbered differently).
    assert await outbox.count_records(0, callids=["c0", "c2"]) == 2
    assert await outbox.count_records(0, since, callids=["c0", "c2"]) == 1
    assert await outbox.replay(NOW + 3, 0, since, sinks=["file"], callids=["c0", "c2"]) == 1
    assert await outbox.replay(NOW + 3, since, sinks=["file"], callids=["c2"]) == 1
    assert sorted(c.callid for c in await outbox.claim("file", 10, "me", 30, NOW + 3)) == ["c0", "c2"]


async def test_purge_keeps_every_record_a_sink_still_needs(outbox):
    await outbox.add_facts("delivered", dice_of("delivered"), NOW)
    await outbox.add_facts("pending", dice_of("pending"), NOW)
    await outbox.add_facts("dead", dice_of("dead"), NOW)
    call = decode_event(json.dumps(ice(callid="no-dice")))
    await outbox.add_facts("no-dice", ice_facts(call, None, WHEN), NOW)
    for sink in SINKS:
        for claim in await outbox.claim(sink, 10, "me", 30, NOW):
            if claim.callid == "delivered":
                await outbox.mark_delivered(claim, "me", AttemptResult.delivered(200), NOW)
            elif claim.callid == "dead":
                await outbox.mark_failed(claim, "me", AttemptResult("permanent", 400, "no"), NOW, 20, NOW)
            else:
                await outbox.release("me", [claim.callid])
    assert await outbox.purge(NOW - 1) == 0                                       # nothing old enough
    assert await outbox.purge(NOW + 1) == 2                                       # delivered + no-dice
    assert await outbox.record("delivered") is None
    assert await outbox.record("pending") is not None and await outbox.record("dead") is not None
    assert set(await outbox.deliveries("pending")) == set(SINKS)


async def test_opening_again_applies_no_migration_twice(callgate_database_url):
    for _ in range(2):
        box = await Outbox.open(callgate_database_url, SINKS)
        await box.close()
    db = await Database.connect(callgate_database_url)
    try:
        assert await db.fetchval("SELECT COUNT(*) FROM callgate_migrations WHERE component = 'crm_export'") == 1
    finally:
        await db.close()


async def test_deliver_now_makes_waiting_records_due_and_leaves_the_rest(outbox):
    for callid in ("waiting", "in-flight", "dead", "other"):
        await outbox.add_facts(callid, dice_of(callid), NOW)
    for claim in await outbox.claim("hook", 10, "me", 30, NOW):
        if claim.callid == "dead":
            await outbox.mark_failed(claim, "me", AttemptResult("permanent", 400, "no"), NOW, 20, NOW)
        elif claim.callid != "in-flight":                         # in-flight keeps its lease
            await outbox.mark_failed(claim, "me", AttemptResult("retry", 503, "down"), NOW + 900, 20, NOW)
    assert await outbox.claim("hook", 10, "me", 30, NOW + 1) == []           # nothing due for 15 minutes
    assert await outbox.deliver_now(NOW + 1, sinks=["hook"], callids=["other"]) == 1
    assert await outbox.deliver_now(NOW + 1, sinks=["hook"]) == 1            # "waiting"; not "in-flight", "dead"
    claims = {c.callid: c for c in await outbox.claim("hook", 10, "me", 30, NOW + 1)}
    assert set(claims) == {"waiting", "other"} and claims["waiting"].attempts == 1       # attempts kept
    rows = await outbox.deliveries("dead")
    assert rows["hook"]["state"] == "dead"
    assert await outbox.deliver_now(NOW + 1) == 0     # the file sink's records were due all along


async def test_facts_are_stored_and_merged_unchanged(outbox):
    """Facts are stored with orjson and read back unchanged (non-ASCII text, control characters, 64-bit integers:
    the wire's); what orjson refuses (a key that is not text) is written by the stdlib encoder, as before."""
    odd = {"big": 2 ** 63 - 1, "small": -(2 ** 63), "nested": [1, None, True, {"x": "\u0000", "y": 1.5}]}
    facts = {"call": {"generation": "v1", "callid": "c1", "session_id": None}, "ice": {"custom": "Åsa Öberg ☎"},
             "extra": odd}
    assert (await outbox.add_facts("c1", facts, NOW)).version == 0
    stored = await outbox.db.fetchval("SELECT facts FROM crm_calls WHERE callid = $1", "c1")
    assert json.loads(stored) == facts and "Åsa" in stored
    keyed = {"call": {"generation": "v1", "callid": "c2", "session_id": None}, "extra": {7: "seven"}}
    await outbox.add_facts("c2", keyed, NOW)
    stored = await outbox.db.fetchval("SELECT facts FROM crm_calls WHERE callid = $1", "c2")
    assert json.loads(stored)["extra"] == {"7": "seven"}
    for callid in ("c1", "c2"):                     # the DICE merges into what was stored: the record is made
        change = await outbox.add_facts(callid, dice_of(callid), NOW)
        assert (change.version, change.enqueued) == (1, True)
    stored = json.loads(await outbox.db.fetchval("SELECT facts FROM crm_calls WHERE callid = $1", "c1"))
    assert (stored["ice"], stored["extra"]) == (facts["ice"], odd) and stored["dice"] is not None
    assert type(stored["extra"]["big"]) is int
