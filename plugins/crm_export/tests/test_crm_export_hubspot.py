"""HubSpot: its field names and units, against a real HTTP stand-in for its calls API."""

import asyncio
import json
from datetime import datetime, timezone

import pytest
from crm_export_receiver import OK, Receiver, ReceiverReply
from crm_export_setup import crm_config, eventually, hubspot_sink, plugin_of

from callgate.protocols.v1.decode import decode_event
from callgate.samples import dice
from callgate_crm_export import CrmExport
from callgate_crm_export.config import HubSpotSink
from callgate_crm_export.facts import dice_facts, notify_facts
from callgate_crm_export.record import build_record
from callgate_crm_export.sinks.hubspot import call_status, properties

PLUGINS = {"crm_export": CrmExport}
NOW = datetime(2025, 3, 14, 9, 30, tzinfo=timezone.utc)


def record_of(**kw):
    facts = dice_facts(decode_event(json.dumps(dice(callid="c1", **kw))), NOW)
    return build_record("c1", facts, 1, NOW)


def hubspot(**kw):
    return HubSpotSink(name="hs", type="hubspot", token="t", **kw)


@pytest.mark.parametrize("result,reason,duration,status", [
    ("ANSWERED", "CALLERHANGUP", 60, "COMPLETED"),
    ("BUSY", "N/A", None, "BUSY"),
    ("NOANSWER", "TIMEOUT", None, "NO_ANSWER"),
    ("FAILED", "GENERALERROR", None, "FAILED"),
    ("N/A", "CANCEL", None, "CANCELED"),
    ("N/A", "TIMEOUT", None, "NO_ANSWER"),
    (None, "SOMETHINGNEW", 12, "COMPLETED"),
    (None, None, None, "FAILED"),
])
def test_call_status_values(result, reason, duration, status):
    assert call_status(result, reason, duration) == status


def test_properties_use_hubspot_names_and_units():
    record = record_of(caller="46701234567", to="+15612600684", duration=168, timestamp="2025-03-14T09:29:41Z",
                       result="ANSWERED")
    props = properties(record, hubspot(owner_id="42", dispositions={"answered": "f240bbac-87c9-4f6e-bf70-924b57d47db7"}))
    end_ms = int(datetime(2025, 3, 14, 9, 29, 41, tzinfo=timezone.utc).timestamp() * 1000)
    assert props["hs_timestamp"] == str(end_ms - 168_000)           # no ICE seen: end minus duration, in ms
    assert props["hs_call_duration"] == "168000"                    # milliseconds
    assert props["hs_call_from_number"] == "+46701234567"           # E.164, though Sinch sent no +
    assert props["hs_call_to_number"] == "+15612600684"
    assert props["hs_call_status"] == "COMPLETED"
    assert props["hs_call_direction"] == "OUTBOUND"                 # to.type number: the app called out
    assert props["hs_call_disposition"] == "f240bbac-87c9-4f6e-bf70-924b57d47db7"
    assert props["hubspot_owner_id"] == "42"
    assert "Sinch callid: c1" in props["hs_call_body"] and "0.0083 EUR" in props["hs_call_body"]
    assert "hs_call_recording_url" not in props


def test_only_https_recordings_go_in_the_recording_url():
    base = dice_facts(decode_event(json.dumps(dice(callid="c1"))), NOW)
    for location, in_url in (("https://rec.example/c1.mp3", True), ("s3://bucket/c1.mp3", False)):
        note = notify_facts(decode_event(json.dumps({"event": "notify", "callid": "c1", "type": "recording_available",
                                                     "destination": location})), NOW)
        props = properties(build_record("c1", {**base, **note}, 2, NOW), hubspot())
        assert ("hs_call_recording_url" in props) is in_url
        assert (location in props["hs_call_body"]) is not in_url


def test_a_username_caller_has_no_from_number():
    props = properties(record_of(caller="alice", to="bob"), hubspot())
    assert "hs_call_from_number" not in props and "alice" in props["hs_call_title"]


def test_an_in_app_caller_is_named_by_user_in_the_title():
    facts = dice_facts(decode_event(json.dumps(dice(callid="c1", caller="private", to="+14155550123",
                                                    user="alice"))), NOW)
    props = properties(build_record("c1", facts, 1, NOW), hubspot())
    assert "hs_call_from_number" not in props
    assert props["hs_call_title"] == "Outbound call from user alice to +14155550123"


async def test_calls_are_created_then_updated_in_place(callgate_client, callgate_events, tmp_path):
    async with Receiver(token="test-token") as crm:
        client = await callgate_client(crm_config(f"sqlite:///{tmp_path}/crm.sqlite3", hubspot_sink(crm.url)),
                                       plugins=PLUGINS)
        await client.event(callgate_events.ice(callid="h1", caller="46701234567", to="+46850001234", to_type="did"))
        assert await client.event(callgate_events.dice(callid="h1", duration=30)) == (200, {})
        await crm.wait_for(lambda: len(crm.accepted) == 1)
        create = crm.accepted[0]
        assert (create.method, create.path) == ("POST", "/crm/v3/objects/calls")
        assert create.headers["Authorization"] == "Bearer test-token" and create.headers["Idempotency-Key"] == "h1"
        props = create.json()["properties"]
        assert props["hs_call_direction"] == "INBOUND" and props["hs_call_duration"] == "30000"
        assert props["hs_call_from_number"] == "+46701234567" and props["hs_call_to_number"] == "+46850001234"
        assert "Decided by:" in props["hs_call_body"]

        notify = callgate_events.notify(callid="h1", destination="https://rec.example/h1.mp3")
        assert await client.event(notify) == (200, {})
        await crm.wait_for(lambda: len(crm.accepted) == 2)
        update = crm.accepted[1]
        assert (update.method, update.path) == ("PATCH", "/crm/v3/objects/calls/1")
        assert update.headers["Idempotency-Key"] == "h1:v2"
        assert list(crm.hubspot_calls) == ["1"]
        assert crm.hubspot_calls["1"]["hs_call_recording_url"] == "https://rec.example/h1.mp3"


@pytest.mark.slow
async def test_with_a_callid_property_a_retried_request_never_makes_a_second_call(
        callgate_client, callgate_events, tmp_path):
    # HubSpot stores the first request but answers after our timeout: the retry must update, not create.
    async with Receiver(token="test-token", behave=lambda n, c: ReceiverReply(200, delay=0.8) if n == 1 else OK) as crm:
        sink = hubspot_sink(crm.url, callid_property="sinch_callid")
        client = await callgate_client(crm_config(f"sqlite:///{tmp_path}/crm.sqlite3", sink), plugins=PLUGINS)
        assert await client.event(callgate_events.dice(callid="u1")) == (200, {})
        await eventually(lambda: _delivered(plugin_of(client).outbox, "u1"))
        await asyncio.sleep(0.9)                       # the slow first request has finished at HubSpot too
        assert len(crm.seen) == 2 and all(s.path.endswith("/batch/upsert") for s in crm.seen)
        assert len(crm.hubspot_calls) == 1
        [stored] = crm.hubspot_calls.values()
        assert stored["sinch_callid"] == "u1"


async def test_a_wrong_token_is_a_dead_letter_whose_error_has_no_token(callgate_client, callgate_events, tmp_path):
    async with Receiver(token="the-right-one") as crm:
        client = await callgate_client(crm_config(f"sqlite:///{tmp_path}/crm.sqlite3",
                                                  hubspot_sink(crm.url, token="a-wrong-secret-token")), plugins=PLUGINS)
        await client.event(callgate_events.dice(callid="t1"))
        outbox = plugin_of(client).outbox
        await eventually(lambda: _dead(outbox, "t1"))
        row = (await outbox.deliveries("t1"))["hubspot"]
        assert row["last_status"] == 401 and "a-wrong-secret-token" not in row["last_error"]


async def _delivered(outbox, callid):
    return (await outbox.deliveries(callid))["hubspot"]["state"] == "delivered"


async def _dead(outbox, callid):
    return (await outbox.deliveries(callid))["hubspot"]["state"] == "dead"
