"""Delivery to a real HTTP receiver that fails: retries, Retry-After, concurrency, dead letters, restarts."""

import asyncio
import json
import sqlite3
import time
from collections import Counter

import pytest
from crm_export_receiver import OK, Receiver, ReceiverReply
from crm_export_setup import crm_config, eventually, plugin_of, webhook_sink

from callgate_crm_export import CrmExport

PLUGINS = {"crm_export": CrmExport}


async def send_dices(client, events, callids, **kw):
    statuses = await asyncio.gather(*(client.event(events.dice(callid=c, **kw)) for c in callids))
    assert all(s == (200, {}) for s in statuses), statuses


@pytest.mark.slow
async def test_intermittent_failures_are_retried_until_each_call_is_received_exactly_once(
        callgate_client, callgate_events, tmp_path):
    # The first 60 requests fail in turn with a 500, a response slower than the timeout (then 504)
    # and a 503, twice with a 429 and Retry-After; one in four is accepted. Then the receiver recovers.
    def behave(n, callid):
        if n > 60:
            return OK
        if n in (7, 31):
            return ReceiverReply(429, retry_after="1")
        return [OK, ReceiverReply(500), ReceiverReply(504, delay=0.7), ReceiverReply(503)][n % 4]

    async with Receiver(behave=behave) as receiver:
        client = await callgate_client(crm_config(f"sqlite:///{tmp_path}/crm.sqlite3",
                                                  webhook_sink(receiver.url, concurrency=4)), plugins=PLUGINS)
        callids = [f"call-{i}" for i in range(40)]
        await send_dices(client, callgate_events, callids)
        await receiver.wait_for(lambda: set(receiver.accepted_callids()) == set(callids), timeout=30)
        await asyncio.sleep(0.3)          # anything still in flight would show up as a duplicate now
        accepted = receiver.accepted_callids()
        assert accepted == Counter({c: 1 for c in callids})                        # exactly once each
        assert sum(s.status != 200 for s in receiver.seen) >= 40                   # and it did fail a lot
        keys = {s.callid: set() for s in receiver.seen}
        for s in receiver.seen:
            keys[s.callid].add(s.headers["Idempotency-Key"])
        assert all(k == {c} for c, k in keys.items())                              # one key per call, every try
        outbox = plugin_of(client).outbox
        rows = [(await outbox.deliveries(c))["hook"] for c in callids]
        assert all(r["state"] == "delivered" and r["delivered_version"] == 1 for r in rows)
        assert sum(r["attempts"] for r in rows) == len(receiver.seen)              # what the sink sent = what arrived


@pytest.mark.slow
async def test_retry_after_is_respected_for_the_whole_sink(callgate_client, callgate_events, tmp_path):
    async with Receiver(behave=lambda n, c: ReceiverReply(429, retry_after="1") if n == 1 else OK) as receiver:
        client = await callgate_client(crm_config(f"sqlite:///{tmp_path}/crm.sqlite3",
                                                  webhook_sink(receiver.url, concurrency=1)), plugins=PLUGINS)
        await send_dices(client, callgate_events, ["a"])
        await receiver.wait_for(lambda: len(receiver.seen) == 1)
        await send_dices(client, callgate_events, ["b"])
        await receiver.wait_for(lambda: len(receiver.accepted) == 2)
        first, *rest = receiver.seen
        assert first.status == 429
        assert min(s.at for s in rest) - first.at >= 0.95                          # nobody sent during the pause


async def test_concurrency_per_sink_is_limited(callgate_client, callgate_events, tmp_path):
    async with Receiver(behave=lambda n, c: ReceiverReply(200, delay=0.1)) as receiver:
        client = await callgate_client(crm_config(f"sqlite:///{tmp_path}/crm.sqlite3",
                                                  webhook_sink(receiver.url, concurrency=3)), plugins=PLUGINS)
        await send_dices(client, callgate_events, [f"c{i}" for i in range(15)])
        await receiver.wait_for(lambda: len(receiver.accepted) == 15)
        assert receiver.max_in_flight == 3


async def test_dead_letter_after_max_attempts_then_retry_delivers(callgate_client, callgate_events, tmp_path):
    down = True
    async with Receiver(behave=lambda n, c: ReceiverReply(500) if down else OK) as receiver:
        client = await callgate_client(crm_config(f"sqlite:///{tmp_path}/crm.sqlite3",
                                                  webhook_sink(receiver.url, max_attempts=3)), plugins=PLUGINS)
        await send_dices(client, callgate_events, ["doomed"])
        outbox = plugin_of(client).outbox
        await eventually(lambda: _state(outbox, "doomed", "dead"))
        await asyncio.sleep(0.3)
        assert len(receiver.seen) == 3                                             # and no more
        down = False
        assert await outbox.retry_dead(time.time()) == 1
        await receiver.wait_for(lambda: len(receiver.accepted) == 1)


async def test_a_permanent_refusal_is_a_dead_letter_at_once(callgate_client, callgate_events, tmp_path):
    async with Receiver(behave=lambda n, c: ReceiverReply(422)) as receiver:
        client = await callgate_client(crm_config(f"sqlite:///{tmp_path}/crm.sqlite3", webhook_sink(receiver.url)),
                                       plugins=PLUGINS)
        await send_dices(client, callgate_events, ["refused"])
        outbox = plugin_of(client).outbox
        await eventually(lambda: _state(outbox, "refused", "dead"))
        row = (await outbox.deliveries("refused"))["hook"]
        assert row["attempts"] == 1 and row["last_status"] == 422 and "HTTP 422" in row["last_error"]


async def test_each_sink_has_its_own_queue(callgate_client, callgate_events, tmp_path):
    async with Receiver(behave=lambda n, c: ReceiverReply(503)) as down, Receiver() as up:
        path = tmp_path / "export" / "calls-{date}.jsonl"
        config = crm_config(f"sqlite:///{tmp_path}/crm.sqlite3", webhook_sink(down.url, name="down"),
                            webhook_sink(up.url, name="up"), {"name": "file", "type": "file", "path": str(path)})
        client = await callgate_client(config, plugins=PLUGINS)
        await send_dices(client, callgate_events, ["x", "y"], timestamp="2025-03-14T09:29:41Z")
        await up.wait_for(lambda: len(up.accepted) == 2)
        outbox = plugin_of(client).outbox
        await eventually(lambda: _state(outbox, "y", "delivered", sink="file"))
        lines = [json.loads(line) for line in (tmp_path / "export" / "calls-2025-03-14.jsonl").read_text().splitlines()]
        assert sorted(r["callid"] for r in lines) == ["x", "y"]
        assert {r["sink"]: r["state"] for r in (await outbox.deliveries("x")).values()} == \
            {"down": "pending", "up": "delivered", "file": "delivered"}


async def test_pending_records_survive_a_restart(callgate_client, callgate_events, tmp_path):
    database = f"sqlite:///{tmp_path}/crm.sqlite3"
    async with Receiver(behave=lambda n, c: ReceiverReply(503)) as receiver:
        first = await callgate_client(crm_config(database, webhook_sink(receiver.url)), plugins=PLUGINS)
        await send_dices(first, callgate_events, [f"c{i}" for i in range(10)])
        await receiver.wait_for(lambda: len(receiver.seen) >= 1)
        await first.client.close()                       # the server stops with every record still pending
    async with Receiver(port=receiver.port) as receiver:  # the CRM is back, and so is callgate
        await callgate_client(crm_config(database, webhook_sink(receiver.url)), plugins=PLUGINS)
        await receiver.wait_for(lambda: len(receiver.accepted) == 10)
        assert receiver.accepted_callids() == Counter({f"c{i}": 1 for i in range(10)})


@pytest.mark.slow
async def test_shutdown_abandons_a_slow_request_and_the_record_is_sent_after_restart(
        callgate_client, callgate_events, tmp_path):
    database = f"sqlite:///{tmp_path}/crm.sqlite3"
    async with Receiver(behave=lambda n, c: ReceiverReply(503, delay=1.5) if n == 1 else OK) as receiver:
        sink = webhook_sink(receiver.url, timeout_seconds=5)
        first = await callgate_client(crm_config(database, sink, shutdown_grace_seconds=0.1), plugins=PLUGINS)
        await send_dices(first, callgate_events, ["slow"])
        await receiver.wait_for(lambda: len(receiver.seen) == 1)
        await first.client.close()                       # mid-request: abandoned, its lease given back
        second = await callgate_client(crm_config(database, sink), plugins=PLUGINS)
        await receiver.wait_for(lambda: len(receiver.accepted) == 1, timeout=3)  # sooner than the 10 s lease
        row = (await plugin_of(second).outbox.deliveries("slow"))["hook"]
        assert row["state"] == "delivered"


async def test_dice_is_503_when_the_outbox_cannot_be_written(callgate_client, callgate_events, tmp_path):
    path = tmp_path / "crm.sqlite3"
    async with Receiver() as receiver:
        config = crm_config(f"sqlite:///{path}", webhook_sink(receiver.url))
        config["plugins"]["crm_export"]["timeout_ms"] = 300
        client = await callgate_client(config, plugins=PLUGINS)
        dice = callgate_events.dice(callid="locked")
        blocker = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
        await asyncio.to_thread(blocker.execute, "BEGIN EXCLUSIVE")   # another writer holds the database
        try:
            status, body = await client.event(dice)
            assert status == 503 and body["error"] == "not_recorded" and "crm_export" in body["message"]
        finally:
            blocker.execute("ROLLBACK")
            blocker.close()
        assert await client.event(dice) == (200, {})     # Sinch's fallback, or its retry
        await receiver.wait_for(lambda: len(receiver.accepted) == 1)
        await asyncio.sleep(0.2)
        assert receiver.accepted_callids() == Counter({"locked": 1})


async def _state(outbox, callid, state, sink="hook"):
    row = (await outbox.deliveries(callid)).get(sink)
    return row is not None and row["state"] == state
