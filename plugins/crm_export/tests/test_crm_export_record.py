"""The call record: built from a call's facts, documented by a JSON Schema that cannot drift from the code."""

import json
from datetime import datetime, timezone
from decimal import Decimal
from importlib import resources

from callgate.decisions import PhoneNumber, Route
from callgate.protocols.v1.decode import decode_event
from callgate.protocols.v1.svaml import ConnectPstn, Svaml
from callgate.results import Decision, Outcome
from callgate.samples import ace, dice, ice, notify
from callgate_crm_export.facts import answer_facts, cost_facts, dice_facts, ice_facts, merge_facts, notify_facts
from callgate_crm_export.record import CallRecord, build_record, direction_of, json_schema

T0 = datetime(2025, 3, 14, 9, 26, 53, tzinfo=timezone.utc)


def event(body):
    return decode_event(json.dumps(body))


def decision():
    route = Route(PhoneNumber("+15612600684"), name="us", max_duration=600)
    svaml = Svaml(action=ConnectPstn(number="+15612600684", max_duration=600))
    return Decision(allowed=True, decided_by="allowlist, credit_check", reason="allowed", svaml=svaml,
                    route=route, routed_by="router", cli="+46850001234", max_duration=600,
                    outcomes=(Outcome("allowlist", "authorize_call", None), Outcome("router", "route_call", route)))


def whole_call():
    facts = ice_facts(event(ice(callid="c1", caller="46701234567", to="+15612600684", domain="mxp",
                                origination="MXP", timestamp="2025-03-14T09:26:53Z")), decision(), T0)
    for more in (answer_facts(event(ace(callid="c1", timestamp="2025-03-14T09:27:03Z")), T0),
                 dice_facts(event(dice(callid="c1", caller="46701234567", to="+15612600684", duration=158,
                                       debit=0.0231, rate=0.0083, timestamp="2025-03-14T09:29:41Z")), T0,
                            {"credit_check": {"account": "acme", "cost": Decimal("0.05"), "currency": "EUR",
                                              "billed_seconds": 180, "sinch_debit": Decimal("0.0231")}}),
                 notify_facts(event(notify(callid="c1", destination="s3://rec/c1.mp3")), T0)):
        facts = merge_facts(facts, more)[0]
    return facts


def test_a_whole_call_makes_a_complete_record():
    record = build_record("c1", whole_call(), 1, T0)
    data = json.loads(record.model_dump_json())
    assert data["started_at"] == "2025-03-14T09:26:53Z" and data["answered_at"] == "2025-03-14T09:27:03Z"
    assert data["ended_at"] == "2025-03-14T09:29:41Z" and data["duration_seconds"] == 158
    assert data["direction"] == "outbound" and data["domain"] == "mxp" and data["origination_type"] == "mxp"
    assert data["caller"]["number"] == "+46701234567" and data["callee"]["number"] == "+15612600684"
    assert data["debit"] == {"amount": "0.0231", "currency": "EUR"}
    assert data["cost"] == {"source": "credit_check", "account": "acme", "amount": "0.05", "currency": "EUR",
                            "billed_seconds": 180, "sinch_debit": "0.0231"}
    assert data["decision"]["decided_by"] == "allowlist, credit_check" and data["decision"]["route"] == "us"
    assert [o["plugin"] for o in data["decision"]["outcomes"]] == ["allowlist", "router"]
    assert data["decision"]["outcomes"][1]["verdict"] == "route us"
    assert data["recording"] == {"location": "s3://rec/c1.mp3", "notified_at": data["recording"]["notified_at"],
                                 "type": "recording_available"}
    assert CallRecord.model_validate_json(record.model_dump_json()) == record          # it reads back


def test_a_dice_alone_makes_a_record():
    facts = dice_facts(event(dice(callid="c2", caller="private", to="+46850001234", result="BUSY",
                                  reason="CALLEEHANGUP", duration=None)), T0)
    record = build_record("c2", facts, 1, T0)
    assert record.started_at is None and record.answered_at is None and record.decision is None
    assert record.caller.type == "private" and record.caller.number is None
    assert record.duration_seconds is None and record.result == "BUSY" and record.cost is None


def test_the_shipped_schema_is_the_models_schema():
    shipped = json.loads(resources.files("callgate_crm_export").joinpath("call-record.schema.json").read_text())
    assert shipped == json_schema()
    assert shipped["properties"]["schema_version"]["const"] == 1
    assert set(shipped["required"]) >= {"callid", "version", "caller", "callee", "ended_at", "updated_at"}


def test_merge_first_wins_recording_latest_wins():
    a = {"dice": {"duration": 1}}
    merged, changed = merge_facts(a, {"dice": {"duration": 2}, "answer": {"answered_at": "x"}})
    assert changed and merged == {"dice": {"duration": 1}, "answer": {"answered_at": "x"}}
    assert merge_facts(merged, {"dice": {"duration": 3}}) == (merged, False)
    rec1 = {"recording": {"location": "s3://1"}}
    merged, _ = merge_facts(merged, rec1)
    assert merge_facts(merged, rec1)[1] is False
    assert merge_facts(merged, {"recording": {"location": "s3://2"}})[0]["recording"] == {"location": "s3://2"}


def test_only_recording_and_transcription_notifies_count():
    assert notify_facts(event(notify(callid="c", type="amd", destination=None)), T0) is None
    assert notify_facts(event(notify(callid="c", type="callingerror", destination=None)), T0) is None
    assert set(notify_facts(event(notify(callid="c", type="transcription_available", destination="s3://t")), T0)) == \
        {"call", "transcription"}                                        # "call": generation, callid, session


def test_a_cost_note_of_the_wrong_shape_is_ignored():
    assert cost_facts("0.05") is None and cost_facts(None) is None
    assert cost_facts({"cost": 1, "billed_seconds": True})["billed_seconds"] is None


def test_direction():
    assert direction_of("did") == "inbound"
    assert direction_of("number") == "outbound" and direction_of("sip") == "outbound"
    assert direction_of("username") is None and direction_of("conference") is None and direction_of(None) is None


def test_an_in_app_caller_is_carried_as_a_user():
    """App-to-phone from a Sinch SDK client: the ICE has cli "private" and user "alice", the DICE from "alice"."""
    facts = ice_facts(event(ice(callid="c3", caller="private", to="+14155550123", user="alice", domain="pstn",
                                origination="MXP")), None, T0)
    facts = merge_facts(facts, dice_facts(event(dice(callid="c3", caller="alice", to="+14155550123")), T0))[0]
    record = build_record("c3", facts, 1, T0)
    data = json.loads(record.model_dump_json())
    assert data["caller"] == {"number": None, "raw": "private", "type": "user", "user": "alice"}
    assert data["callee"] == {"number": "+14155550123", "raw": "+14155550123", "type": "number", "user": None}
    # the DICE alone (the ICE reached another instance): its "from" is the user id
    alone = build_record("c3", dice_facts(event(dice(callid="c3", caller="alice", to="+14155550123")), T0), 1, T0)
    assert (alone.caller.type, alone.caller.user) == ("user", "alice")
    # a phone caller has no user; an app-to-app callee is a user
    assert build_record("c1", whole_call(), 1, T0).caller.user is None
    app_to_app = ice_facts(event(ice(callid="c4", caller=None, to="bob", to_type="username", user="alice",
                                     domain="mxp", origination="MXP")), None, T0)
    app_to_app = merge_facts(app_to_app, dice_facts(event(dice(callid="c4", caller="alice", to="bob")), T0))[0]
    record = build_record("c4", app_to_app, 1, T0)
    assert (record.caller.user, record.callee.user, record.callee.type) == ("alice", "bob", "username")
