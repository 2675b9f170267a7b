"""The plugin in the real callgate app: events in over signed HTTP, records out to a real receiver."""

import asyncio
import json
from collections import Counter

import pytest
from crm_export_receiver import OK, Receiver, ReceiverReply
from crm_export_setup import WEBHOOK_SECRET, PricesCalls, crm_config, eventually, from_env, plugin_of, webhook_sink

from callgate_crm_export import CrmExport
from callgate_crm_export.signature import verify

PLUGINS = {"crm_export": CrmExport}


async def test_a_call_becomes_one_record_with_every_fact(callgate_client, callgate_events, tmp_path):
    async with Receiver(secret=WEBHOOK_SECRET) as receiver:
        config = crm_config(f"sqlite:///{tmp_path}/crm.sqlite3", webhook_sink(receiver.url))
        client = await callgate_client(config, plugins=PLUGINS)
        callid = "call-1"
        status, answer = await client.event(callgate_events.ice(callid=callid, caller="46701234567",
                                                                to="+46850001234", to_type="did"))
        assert status == 200 and answer["action"]["name"] == "connectPstn"
        status, answer = await client.event(callgate_events.ace(callid=callid))
        assert (status, answer["action"]) == (200, {"name": "continue"})
        dice = callgate_events.dice(callid=callid, caller="46701234567", to="+46850001234", duration=168,
                                    debit=0.0231, rate=0.0083, custom="order-7",
                                    callHeaders=[{"key": "agent", "value": "ann"}])
        assert await client.event(dice) == (200, {})
        await receiver.wait_for(lambda: len(receiver.accepted) == 1)
        seen = receiver.accepted[0]
        verify(WEBHOOK_SECRET, seen.body, seen.headers["X-Callgate-Timestamp"], seen.headers["X-Callgate-Signature"])
        record = seen.json()
        assert seen.headers["Idempotency-Key"] == callid
        assert record["callid"] == callid and record["version"] == 1 and record["schema_version"] == 1
        assert record["caller"] == {"number": "+46701234567", "raw": "46701234567", "type": "number", "user": None}
        assert record["callee"]["number"] == "+46850001234" and record["direction"] == "inbound"
        assert record["duration_seconds"] == 168 and record["result"] == "ANSWERED"
        assert record["debit"] == {"amount": "0.0231", "currency": "EUR"}
        assert record["rate"] == {"amount": "0.0083", "currency": "EUR"}
        assert record["custom"] == "order-7" and record["call_headers"] == [{"key": "agent", "value": "ann"}]
        assert record["started_at"] and record["answered_at"] and record["ended_at"]
        decision = record["decision"]
        assert decision["allowed"] is True and decision["route"] == "sweden" and decision["action"] == "connectPstn"
        assert any(o["plugin"] == "router" and o["hook"] == "route_call" for o in decision["outcomes"])

        # the recording arrives later: the same record, version 2, delivered as an update
        assert await client.event(callgate_events.notify(callid=callid, destination="s3://rec/call-1.mp3")) == (200, {})
        await receiver.wait_for(lambda: len(receiver.accepted) == 2)
        update = receiver.accepted[1]
        assert update.headers["Idempotency-Key"] == f"{callid}:v2"
        assert update.json()["version"] == 2 and update.json()["recording"]["location"] == "s3://rec/call-1.mp3"
        assert update.json()["decision"] == decision


async def test_repeated_dice_gives_one_record(callgate_client, callgate_events, tmp_path):
    async with Receiver() as receiver:
        client = await callgate_client(crm_config(f"sqlite:///{tmp_path}/crm.sqlite3", webhook_sink(receiver.url)),
                                       plugins=PLUGINS)
        dice = callgate_events.dice(callid="twice", result="BUSY", reason="CALLEEHANGUP", duration=None)
        assert await client.event(dice) == (200, {})
        assert await client.event(dice) == (200, {})       # Sinch's fallback URL, or a retry
        assert await client.event(json.loads(json.dumps(dice))) == (200, {})
        await receiver.wait_for(lambda: len(receiver.accepted) >= 1)
        plugin = plugin_of(client)
        record = await plugin.outbox.record("twice")
        assert record["version"] == 1 and record["result"] == "BUSY" and record["decision"] is None
        await plugin.flush()
        assert len(receiver.accepted) == 1


async def test_our_cost_comes_from_credit_check_notes(callgate_client, callgate_events, tmp_path):
    async with Receiver() as receiver:
        config = crm_config(f"sqlite:///{tmp_path}/crm.sqlite3", webhook_sink(receiver.url), enabled=("credit_check",))
        client = await callgate_client(config, plugins={"credit_check": PricesCalls, **PLUGINS})
        assert await client.event(callgate_events.dice(callid="priced", debit=0.0231)) == (200, {})
        await receiver.wait_for(lambda: len(receiver.accepted) == 1)
        assert receiver.accepted[0].json()["cost"] == {
            "source": "credit_check", "account": "acme", "amount": "0.0600", "currency": "EUR",
            "billed_seconds": 180, "sinch_debit": "0.0231"}


@pytest.mark.slow
async def test_two_instances_on_one_database_deliver_each_record_once(
        callgate_client, callgate_events, callgate_database_url):
    async with Receiver(behave=lambda n, c: ReceiverReply(503) if n % 3 == 0 else OK) as receiver:
        config = crm_config(callgate_database_url, webhook_sink(receiver.url, concurrency=2))
        a = await callgate_client(config, plugins=PLUGINS)
        b = await callgate_client(config, plugins=PLUGINS)
        # ICE and ACE reach instance a; the DICE (twice: primary and fallback URL) reaches both.
        callids = [f"shared-{i}" for i in range(30)]
        for callid in callids:
            await a.event(callgate_events.ice(callid=callid, to_type="did"))
            await a.event(callgate_events.ace(callid=callid))
        await plugin_of(a).flush()
        results = await asyncio.gather(*(c.event(callgate_events.dice(callid=callid))
                                         for callid in callids for c in (b, a)))
        assert all(r == (200, {}) for r in results)
        await receiver.wait_for(lambda: set(receiver.accepted_callids()) == set(callids), timeout=20)
        await asyncio.sleep(0.3)
        assert receiver.accepted_callids() == Counter({c: 1 for c in callids})
        assert all(s.json()["decision"] is not None and s.json()["answered_at"] for s in receiver.accepted)


async def test_ice_facts_that_reach_the_database_after_the_dice_update_the_record(
        callgate_client, callgate_events, callgate_database_url):
    async with Receiver() as receiver:
        config = crm_config(callgate_database_url, webhook_sink(receiver.url), facts_flush_interval_seconds=5)
        a = await callgate_client(config, plugins=PLUGINS)
        b = await callgate_client(config, plugins=PLUGINS)
        await a.event(callgate_events.ice(callid="late", to_type="did"))      # held in a's memory for now
        assert await b.event(callgate_events.dice(callid="late")) == (200, {})
        await receiver.wait_for(lambda: len(receiver.accepted) == 1)
        assert receiver.accepted[0].json()["decision"] is None
        await plugin_of(a).flush()
        await receiver.wait_for(lambda: len(receiver.accepted) == 2)
        update = receiver.accepted[1]
        assert update.headers["Idempotency-Key"] == "late:v2" and update.json()["decision"]["allowed"] is True


async def test_the_plugin_is_ready_when_its_outbox_answers(callgate_client, tmp_path):
    async with Receiver() as receiver:
        client = await callgate_client(crm_config(f"sqlite:///{tmp_path}/crm.sqlite3", webhook_sink(receiver.url)),
                                       plugins=PLUGINS)
        response = await client.client.get("/readyz")
        assert response.status == 200
        await plugin_of(client).outbox.db.close()           # the database goes away
        response = await client.client.get("/readyz")
        body = await response.json()
        assert response.status == 503 and body["problems"] == [             # no exception's text or path
            "crm_export: outbox database unreachable (see the log: crm_outbox_unreachable)"]


def _gauge(text, name):
    for line in text.splitlines():
        if line.startswith("callgate_plugin_gauge{") and 'plugin="crm_export"' in line and f'name="{name}"' in line:
            return float(line.rsplit(" ", 1)[1])
    return None


async def test_outbox_depth_is_on_metrics(callgate_client, callgate_events, tmp_path):
    down = True
    async with Receiver(behave=lambda n, callid: ReceiverReply(503) if down else OK) as receiver:
        config = crm_config(f"sqlite:///{tmp_path}/crm.sqlite3", webhook_sink(receiver.url, max_attempts=1000))
        client = await callgate_client(config, plugins=PLUGINS)
        for callid in ("waiting-1", "waiting-2"):
            assert await client.event(callgate_events.dice(callid=callid)) == (200, {})
        await receiver.wait_for(lambda: len(receiver.seen) >= 2)
        text = await (await client.client.get("/metrics")).text()
        assert _gauge(text, "outbox_depth") == 2 and _gauge(text, "outbox_depth:hook") == 2
        assert _gauge(text, "outbox_up") == 1 and _gauge(text, "outbox_dead") == 0
        assert _gauge(text, "outbox_oldest_pending_seconds") > 0
        down = False
        await receiver.wait_for(lambda: len(receiver.accepted) == 2)
        await eventually(lambda: _metrics_depth_is_zero(client))


async def _metrics_depth_is_zero(client):
    text = await (await client.client.get("/metrics")).text()
    return _gauge(text, "outbox_depth") == 0 and _gauge(text, "outbox_oldest_pending_seconds") == 0


async def test_postgresql_unreachable_at_start_up_answers_dice_503_and_says_why(callgate_client, callgate_events):
    from callgate.testing import free_port

    url = from_env("crm_test_database_url", f"postgresql://postgres:not-a-real-password@127.0.0.1:{free_port()}/test")
    client = await callgate_client(crm_config(url, webhook_sink("http://127.0.0.1:9"), reconnect_seconds=0.05),
                                   plugins=PLUGINS)
    response = await client.send(callgate_events.dice(callid="while-down"))
    assert response.status == 503 and (await response.json())["error"] == "not_recorded"
    ready = await client.client.get("/readyz")
    problems = (await ready.json())["problems"]
    assert ready.status == 503 and problems == ["crm_export: outbox database unreachable (see the log: "
                                                "crm_outbox_unreachable)"]
    assert "not-a-real-password" not in " ".join(problems)
    await asyncio.sleep(0.2)                  # attempts go on in the background, and stop with the server


async def test_a_flush_writes_every_buffered_call_in_small_transactions(callgate_client, callgate_events, tmp_path):
    from callgate_crm_export.plugin import FLUSH_CHUNK
    async with Receiver() as receiver:
        config = crm_config(f"sqlite:///{tmp_path}/crm.sqlite3", webhook_sink(receiver.url),
                            facts_flush_interval_seconds=10)       # no background flush during the test
        client = await callgate_client(config, plugins=PLUGINS)
        plugin = plugin_of(client)
        calls = [f"chunked-{i}" for i in range(2 * FLUSH_CHUNK + 3)]
        for callid in calls:
            assert (await client.event(callgate_events.ice(callid=callid)))[0] == 200
        batches = []
        add_many = plugin.outbox.add_many

        async def recording(items, now):
            batches.append(len(items))
            return await add_many(items, now)

        plugin.outbox.add_many = recording
        assert await plugin.flush() == len(calls)
        assert batches == [FLUSH_CHUNK, FLUSH_CHUNK, 3] and len(plugin.buffer) == 0
        for callid in calls:                       # each call's ICE facts are in the outbox, none lost between chunks
            row = await plugin.outbox.db.fetchrow("SELECT facts FROM crm_calls WHERE callid = $1", callid)
            assert row is not None and "ice" in json.loads(row["facts"])


async def outbox_rows(url: str) -> list:
    from callgate.storage import Database

    db = await Database.connect(url)
    try:
        return [await db.fetch("SELECT * FROM crm_calls ORDER BY callid"),
                await db.fetch("SELECT * FROM crm_deliveries ORDER BY sink, callid")]
    finally:
        await db.close()


async def test_a_dry_run_builds_the_record_and_writes_nothing(callgate_database_url, callgate_events, tmp_path):
    """Under callgate simulate (dry_run): DICE and Notify are answered as for real, but the outbox gets no row,
    the JSON-lines sink no line, and nothing is left buffered for a later flush."""
    from callgate.config import PluginsConfig, ServerConfig
    from callgate.manager import load_plugins
    from callgate.pipeline import Pipeline
    from callgate.protocols.v1.decode import decode_event

    sink = tmp_path / "calls.jsonl"
    config = crm_config(callgate_database_url, {"name": "file", "type": "file", "path": str(sink), "fsync": False})

    async def run(events, dry_run):
        plugins = load_plugins(PluginsConfig.model_validate(config["plugins"]), classes=PLUGINS, dry_run=dry_run)
        await plugins.startup()
        pipeline = Pipeline(plugins, ServerConfig())
        answers = [await pipeline.answer(decode_event(json.dumps(e).encode())) for e in events]
        if not dry_run:
            await eventually(lambda: sink.exists() and len(sink.read_text().splitlines()) == 1)
        await plugins.shutdown()
        return [(a.status, a.body) for a in answers]

    real = await run([callgate_events.ice(callid="real"), callgate_events.dice(callid="real")], dry_run=False)
    before, lines = await outbox_rows(callgate_database_url), sink.read_bytes()
    events = [callgate_events.ice(callid="dry"), callgate_events.ace(callid="dry"), callgate_events.dice(callid="dry"),
              callgate_events.notify(callid="real", destination="s3://rec/real.mp3"),
              callgate_events.dice(callid="real")]
    dry = await run(events, dry_run=True)
    assert [status for status, _ in dry] == [200, 200, 200, 200, 200]
    assert dry[0] == real[0] and dry[2] == real[1]                    # the same answers as for real
    assert await outbox_rows(callgate_database_url) == before
    assert sink.read_bytes() == lines


async def test_a_dry_run_with_no_outbox_creates_none(callgate_events, tmp_path):
    from callgate.config import PluginsConfig, ServerConfig
    from callgate.manager import load_plugins
    from callgate.pipeline import Pipeline
    from callgate.protocols.v1.decode import decode_event

    config = crm_config(f"sqlite:///{tmp_path}/db/crm.sqlite3",
                        {"name": "file", "type": "file", "path": str(tmp_path / "calls.jsonl")})
    plugins = load_plugins(PluginsConfig.model_validate(config["plugins"]), classes=PLUGINS, dry_run=True)
    await plugins.startup()
    answer = await Pipeline(plugins, ServerConfig()).answer(decode_event(json.dumps(callgate_events.dice()).encode()))
    await plugins.shutdown()
    assert answer.status == 200
    assert sorted(p.name for p in tmp_path.iterdir()) == []
