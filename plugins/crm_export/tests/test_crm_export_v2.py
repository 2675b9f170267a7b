"""The hooks on Voice API v2 calls (neutral ``callgate.calls`` objects), against the real outbox (SQLite and
PostgreSQL) and the file sink: every v2 leg is a record of its own, kept by its key, never mixed with a v1 call."""

import json
from datetime import datetime, timezone
from decimal import Decimal

import pytest
from crm_export_setup import eventually

from callgate.calls import Answered, Callee, Ended, Incoming, Money, Notice
from callgate.decisions import PhoneNumber, Route
from callgate.results import Decision, Outcome
from callgate_crm_export import CrmExport
from callgate_crm_export.config import CrmExportConfig
from callgate_crm_export.record import CallRecord

SERVICE = "b7e4c2d9-1111-2222-3333-444455556666"
SESSION = "01JQ8ZK3V7N5W2R4T6Y8B0C1DE"
LEG = "01JQ8ZK3V9A4B6C8D0E2F4G6H8"          # the inbound leg
CALLEE_LEG = "01JQ8ZK3VBCDEFGHJKMNPQRSTV"   # the leg callgate dialled
ANSWERED_AT = datetime(2026, 3, 14, 9, 27, 5, tzinfo=timezone.utc)
ENDED_AT = datetime(2026, 3, 14, 9, 29, 53, tzinfo=timezone.utc)
OUR_NUMBER = Callee("did", "+46850001234")


def hangup(callid=LEG, *, direction="INBOUND", to=OUR_NUMBER, generation="v2", **fields) -> Ended:
    """A v2 ``call.hangup`` of one leg as the v2 adapter decodes it (``raw`` keeps the leg's direction)."""
    values = {"cli": "+46701234567", "to": to, "application": SERVICE, "result": "COMPLETED",
              "reason": "CALLER_HANGUP", "duration": 168, "rate": Money("EUR", Decimal("0.0083")),
              "session_id": SESSION, "answered_at": ANSWERED_AT, "ended_at": ENDED_AT, **fields}
    if generation == "v1":
        values.update(session_id=None, answered_at=None, ended_at=None, result="ANSWERED", reason="CALLERHANGUP")
    return Ended(generation=generation, event="call.hangup" if generation == "v2" else "dice",
                 raw={"event": "call.hangup", "call": {"callId": callid, "direction": direction}}, callid=callid,
                 **values)


@pytest.fixture
async def crm(callgate_database_url, tmp_path):
    """A started CrmExport on the test database, exporting to a file: ``(plugin, lines)``."""
    out = tmp_path / "records.jsonl"
    config = CrmExportConfig.model_validate({
        "database_url": callgate_database_url, "poll_interval_seconds": 0.05, "facts_flush_interval_seconds": 0.05,
        "sinks": [{"name": "file", "type": "file", "path": str(out), "fsync": False}]})
    plugin = CrmExport(config)
    await plugin.startup()

    def lines() -> list[dict]:
        return [json.loads(line) for line in out.read_text().splitlines()] if out.exists() else []

    yield plugin, lines
    await plugin.shutdown()


async def test_a_v2_call_becomes_a_record_with_its_generation_and_session(crm):
    plugin, lines = crm
    await plugin.on_disconnect(hangup())
    record = await plugin.outbox.record(f"v2:{LEG}")
    CallRecord.model_validate(record)
    assert (record["callid"], record["key"], record["generation"], record["session_id"]) == (
        LEG, f"v2:{LEG}", "v2", SESSION)
    assert record["schema_version"] == 1 and record["version"] == 1
    assert (record["result"], record["reason"], record["duration_seconds"]) == ("COMPLETED", "CALLER_HANGUP", 168)
    assert record["debit"] is None                                            # v2 sends no total cost
    assert record["rate"] == {"amount": "0.0083", "currency": "EUR"}
    assert record["application_key"] == SERVICE and record["direction"] == "inbound"
    assert record["caller"]["number"] == "+46701234567" and record["callee"]["number"] == "+46850001234"
    assert record["answered_at"] == "2026-03-14T09:27:05Z" and record["ended_at"] == "2026-03-14T09:29:53Z"
    await eventually(lambda: len(lines()) == 1)
    assert lines()[0]["key"] == f"v2:{LEG}"


async def test_both_legs_of_a_v2_call_are_recorded_once_each(crm):
    plugin, lines = crm
    callee = hangup(CALLEE_LEG, direction="OUTBOUND", to=Callee("number", "+46731112233"), reason="CALLEE_HANGUP")
    assert plugin.on_answer(Answered(generation="v2", event="call.answered", raw={}, callid=CALLEE_LEG,
                                    session_id=SESSION, timestamp=ANSWERED_AT)) is None
    await plugin.flush()
    for event in (hangup(), callee, hangup()):           # the inbound leg's hangup twice (fallback URL, retry)
        await plugin.on_disconnect(event)
    inbound, outbound = await plugin.outbox.record(f"v2:{LEG}"), await plugin.outbox.record(f"v2:{CALLEE_LEG}")
    assert inbound["version"] == outbound["version"] == 1
    assert (inbound["direction"], outbound["direction"]) == ("inbound", "outbound")
    assert outbound["callee"]["number"] == "+46731112233" and outbound["session_id"] == inbound["session_id"]
    await eventually(lambda: len(lines()) == 2)
    assert sorted(r["key"] for r in lines()) == sorted([f"v2:{LEG}", f"v2:{CALLEE_LEG}"])


async def test_a_v1_and_a_v2_call_with_the_same_callid_are_two_records(crm):
    plugin, lines = crm
    same = "4a1b2c3d-same-callid"
    await plugin.on_disconnect(hangup(same, generation="v1", debit=Money("EUR", Decimal("0.0231"))))
    await plugin.on_disconnect(hangup(same))
    v1, v2 = await plugin.outbox.record(same), await plugin.outbox.record(f"v2:{same}")
    assert (v1["callid"], v1["key"], v1["generation"], v1["session_id"]) == (same, same, "v1", None)
    assert (v2["callid"], v2["key"], v2["generation"]) == (same, f"v2:{same}", "v2")
    assert v1["debit"] == {"amount": "0.0231", "currency": "EUR"} and v2["debit"] is None
    await eventually(lambda: len(lines()) == 2)


async def test_credit_checks_cost_and_a_later_recording_join_the_v2_record(crm):
    plugin, _ = crm
    ended = hangup()
    ended.notes["credit_check"] = {"account": "+46701234567", "cost": "0.30", "currency": "EUR",
                                   "billed_seconds": 180, "sinch_debit": None}
    await plugin.on_disconnect(ended)
    await plugin.on_notify(Notice(generation="v2", event="call.recording.finished", raw={}, callid=LEG,
                                  session_id=SESSION, type="recording_finished", destination="s3://rec/leg.mp3"))
    record = await plugin.outbox.record(f"v2:{LEG}")
    assert record["version"] == 2 and record["recording"]["location"] == "s3://rec/leg.mp3"
    assert record["cost"]["amount"] == "0.30" and record["cost"]["sinch_debit"] is None


async def test_a_v2_call_seen_from_its_incoming_event_keeps_who_called(crm):
    plugin, _ = crm
    call = Incoming(generation="v2", event="call.incoming", raw={}, callid=LEG, session_id=SESSION,
                    application=SERVICE, cli="+46701234567", to=OUR_NUMBER,
                    origination_type="pstn", rate=Money("EUR", Decimal("0.0083")))
    plugin.call_decided(call, None)          # the facts without a decision (the pipeline always gives one)
    await plugin.flush()
    await plugin.on_disconnect(hangup(cli=None))
    record = await plugin.outbox.record(f"v2:{LEG}")
    assert record["caller"]["number"] == "+46701234567" and record["origination_type"] == "pstn"
    assert record["started_at"] is not None and record["generation"] == "v2"


async def test_the_decision_of_a_v2_call_names_its_v2_action_and_route(crm):
    plugin, _ = crm
    call = Incoming(generation="v2", event="call.incoming", raw={}, callid=LEG, session_id=SESSION,
                    application=SERVICE, cli="+46701234567", to=OUR_NUMBER)
    route = Route(PhoneNumber("+46731112233"), name="support", max_duration=600)
    decision = Decision(allowed=True, decided_by="credit_check", reason="allowed", svaml={"commands": []},
                        route=route, routed_by="router", max_duration=600, generation="v2",
                        outcomes=(Outcome("router", "route_call", route),))
    plugin.call_decided(call, decision)
    await plugin.flush()
    await plugin.on_disconnect(hangup())
    info = (await plugin.outbox.record(f"v2:{LEG}"))["decision"]
    assert (info["action"], info["route"], info["routed_by"], info["max_duration"]) == ("dial", "support", "router", 600)
    assert info["outcomes"] == [{"plugin": "router", "hook": "route_call", "verdict": "route support", "status": "ok"}]
