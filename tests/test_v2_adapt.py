"""callgate.protocols.v2.adapt: every v2 webhook body becomes the neutral call plugins see, or is refused as decode.py
refuses it; custom and unknown ``call.*`` events surface as UnknownCallEvent."""

from __future__ import annotations

import dataclasses
import json
from datetime import datetime, timezone
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from callgate.calls import AmdResult, Answered, Callee, Ended, Header, Incoming, MenuInput, MenuResult, Money, Notice
from callgate.protocols.errors import EventError, UnknownEvent
from callgate.protocols.v2.adapt import UnhandledCustomEvent, decode_event
from callgate.protocols.v2.decode import UnknownCallEvent

FIXTURES = Path(__file__).parent / "fixtures" / "v2"
UTC = timezone.utc
SERVICE = "b7e4c2d9-3a5f-4e61-8d2c-9f0a1b3c5e77"
X_TIMESTAMP = datetime(2026, 3, 14, 9, 26, 53, 471123, tzinfo=UTC)


def fixture(name: str) -> dict[str, Any]:
    return json.loads((FIXTURES / name).read_text(encoding="utf-8"))


def encode(body: Any) -> bytes:
    return json.dumps(body).encode("utf-8")


def event_body(event: str, **call: Any) -> dict[str, Any]:
    """A complete event body from the call.incoming fixture, with ``call`` fields replaced (None removes one)."""
    body = fixture("call.incoming.json")
    body["event"] = event
    for key, value in call.items():
        if value is None:
            body["call"].pop(key, None)
        else:
            body["call"][key] = value
    if event == "call.menu":
        body["menu"] = {"menuName": "main", "input": "1#"}
    return body


# --------------------------------------------------------------------------- the shared fixtures

EXPECTED = {
    "call.incoming.json": Incoming(
        generation="v2", event="call.incoming", raw={}, application=SERVICE, timestamp=X_TIMESTAMP,
        session_id="01JQ8ZK3V7N5W2R4T6Y8B0C1DE", callid="01JQ8ZK3V9A4B6C8D0E2F4G6H8",
        call_resource_url="https://voice.api.sinch.com/v2/projects/5f2c9a41-7d3e-4b8a-9c61-2e8f0d4b7a13/calls/"
                          "01JQ8ZK3V9A4B6C8D0E2F4G6H8",
        rate=Money("EUR", Decimal("0.0030")), cli="+46701234567", to=Callee("did", "+46850001234"), domain="pstn",
        origination_type="pstn"),
    "call.answered.json": Answered(
        generation="v2", event="call.answered", raw={}, application=SERVICE, timestamp=X_TIMESTAMP,
        session_id="01JQ8ZK3V7N5W2R4T6Y8B0C1DE", callid="01JQ8ZK6M1P3Q5R7S9T1V3W5X7", cli="+46850001234",
        to=Callee("number", "+46731112233")),
    "call.menu.json": MenuInput(
        generation="v2", event="call.menu", raw={}, application=SERVICE, timestamp=X_TIMESTAMP,
        session_id="01JQ90B2C4D6E8F0G2H4J6K8MN", callid="01JQ90B2C6E8G0J2K4M6N8P0QR",
        menu_result=MenuResult(menu_id="main", type="sequence", value="4821", input_method="dtmf"),
        cli="+46709876543", to=Callee("did", "+46850001234")),
    "call.hangup.json": Ended(
        generation="v2", event="call.hangup", raw={}, application=SERVICE, timestamp=X_TIMESTAMP,
        session_id="01JQ8ZK3V7N5W2R4T6Y8B0C1DE", callid="01JQ8ZK3V9A4B6C8D0E2F4G6H8", reason="CALLER_HANGUP",
        result="COMPLETED", rate=Money("EUR", Decimal("0.0030")), to=Callee("did", "+46850001234"), duration=168,
        cli="+46701234567", answered_at=datetime(2026, 3, 14, 9, 27, 1, tzinfo=UTC),
        ended_at=datetime(2026, 3, 14, 9, 29, 49, tzinfo=UTC)),
    "call.busy.json": Ended(
        generation="v2", event="call.busy", raw={}, application=SERVICE, timestamp=X_TIMESTAMP,
        session_id="01JQ91C3D5F7H9K1M3N5P7R9ST", callid="01JQ91C3D7G9J1K3M5P7Q9S1TV", reason="NOT_AVAILABLE",
        result="BUSY", rate=Money("EUR", Decimal("0.0095")), to=Callee("number", "+46731112233"), duration=0,
        cli="+46850001234", answered_at=None, ended_at=datetime(2026, 3, 14, 11, 2, 15, tzinfo=UTC)),
}


def test_every_event_fixture_has_an_expectation():
    assert sorted(EXPECTED) == sorted(p.name for p in FIXTURES.glob("call.*.json"))


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_fixture_decodes_to_the_expected_neutral_call(name):
    body = (FIXTURES / name).read_bytes()
    call = decode_event(body, timestamp=X_TIMESTAMP)
    assert type(call) is type(EXPECTED[name])
    assert call == EXPECTED[name]  # every field but raw and notes (not compared)
    assert call.raw == json.loads(body)  # the whole body, as sent (amounts stay strings)
    assert call.notes == {}
    assert call.key == "v2:" + EXPECTED[name].callid  # type: ignore[attr-defined]


def test_incoming_caller_and_answered_flag():
    incoming = decode_event((FIXTURES / "call.incoming.json").read_bytes())
    assert isinstance(incoming, Incoming)
    assert incoming.caller == "+46701234567" and incoming.timestamp is None
    hangup = decode_event((FIXTURES / "call.hangup.json").read_bytes())
    busy = decode_event((FIXTURES / "call.busy.json").read_bytes())
    assert isinstance(hangup, Ended) and isinstance(busy, Ended)
    assert hangup.answered and not busy.answered and hangup.debit is None


@pytest.mark.parametrize("body_type", [bytes, bytearray, memoryview, str])
def test_body_may_be_any_buffer_or_text(body_type):
    raw = (FIXTURES / "call.menu.json").read_bytes()
    body = raw.decode() if body_type is str else body_type(raw)
    assert decode_event(body) == decode_event(raw)


# --------------------------------------------------------------------------- events without a fixture

@pytest.mark.parametrize("event", ["call.hangup", "call.busy", "call.rejected", "call.timeout", "call.failed"])
def test_every_end_state_is_ended(event):
    body = event_body(event, direction="OUTBOUND", callResult="NO_ANSWER", callReason="NO_MORE_ROUTES",
                      endTime="2026-03-14T09:27:23Z")
    call = decode_event(encode(body))
    assert isinstance(call, Ended)
    assert (call.event, call.result, call.reason, call.duration) == (event, "NO_ANSWER", "NO_MORE_ROUTES", 0)
    assert call.ended_at == datetime(2026, 3, 14, 9, 27, 23, tzinfo=UTC) and call.answered_at is None
    assert call.to == Callee("number", "+46850001234")


@pytest.mark.parametrize(("event", "kind", "status"), [
    ("call.amd.human", "amd", "human"),
    ("call.amd.machine", "amd", "machine"),
    ("call.amd.unknown", "amd", "unknown"),
    ("call.amd.beep", "amd_beep", "beep"),
    ("call.recording.finished", "recording_finished", None),
    ("call.recording.failed", "recording_failed", None),
    ("call.message.finished", "message_finished", None),
])
def test_notices(event, kind, status):
    call = decode_event(encode(event_body(event)), timestamp=X_TIMESTAMP)
    assert isinstance(call, Notice)
    assert (call.event, call.type, call.callid, call.timestamp) == (event, kind, "01JQ8ZK3V9A4B6C8D0E2F4G6H8",
                                                                    X_TIMESTAMP)
    assert call.amd == (None if status is None else AmdResult(status=status, reason=None, duration=None))
    assert call.key == "v2:01JQ8ZK3V9A4B6C8D0E2F4G6H8"


def test_event_name_is_the_wire_name_in_lower_case():
    call = decode_event(encode(event_body(" Call.Incoming ")))
    assert isinstance(call, Incoming) and call.event == "call.incoming"


def test_menu_without_input_values():
    body = event_body("call.menu")
    body["menu"] = {}
    call = decode_event(encode(body))
    assert isinstance(call, MenuInput)
    assert call.menu_result == MenuResult(menu_id=None, type="sequence", value=None, input_method="dtmf")


# --------------------------------------------------------------------------- parties, kinds, headers

SIP_TO = {"type": "SIP", "sip": {"endpoint": "sip:support@pbx.example.com", "transport": "TLS",
                                 "callHeaders": [{"key": "X-Ref", "value": "42"}, {"key": "X-Empty"}]}}


@pytest.mark.parametrize(("to", "direction", "event", "callee"), [
    ({"type": "PHONE", "phone": {"number": "+46850001234"}}, "INBOUND", "call.hangup", Callee("did", "+46850001234")),
    ({"type": "PHONE", "phone": {"number": "+46850001234"}}, "OUTBOUND", "call.incoming",
     Callee("number", "+46850001234")),
    ({"type": "PHONE", "phone": {"number": "+46850001234"}}, None, "call.incoming", Callee("did", "+46850001234")),
    ({"type": "PHONE", "phone": {"number": "+46850001234"}}, None, "call.hangup", Callee("number", "+46850001234")),
    ({"type": "PHONE", "phone": {"number": "+46850001234"}}, None, "call.menu", Callee("did", "+46850001234")),
    ({"type": "PHONE", "phone": {"number": "+46731112233"}}, "OUTBOUND", "call.menu", Callee("number", "+46731112233")),
    (SIP_TO, "INBOUND", "call.incoming", Callee("sip", "sip:support@pbx.example.com")),
    ({"type": "STREAM", "stream": {"endpoint": "wss://audio.example.com/s"}}, "OUTBOUND", "call.answered",
     Callee("stream", "wss://audio.example.com/s")),
    ({"type": "VOICE_RELAY", "voiceRelay": {"endpoint": "wss://relay.example.com/r"}}, "OUTBOUND", "call.hangup",
     Callee("voice_relay", "wss://relay.example.com/r")),
    ({"type": "CARRIER_PIGEON"}, "OUTBOUND", "call.hangup", Callee("carrier_pigeon", None)),
    ({}, "OUTBOUND", "call.hangup", Callee(None, None)),
])
def test_callee_type_follows_the_leg(to, direction, event, callee):
    call = decode_event(encode(event_body(event, to=to, direction=direction)))
    assert call.to == callee  # type: ignore[union-attr]


@pytest.mark.parametrize("event", ["call.incoming", "call.answered", "call.menu", "call.hangup"])
def test_missing_parties_are_none(event):
    call = decode_event(encode(event_body(event, to=None, **{"from": None})))
    assert call.to is None and call.cli is None  # type: ignore[union-attr]


@pytest.mark.parametrize("event", ["call.incoming", "call.hangup"])
def test_sip_headers_of_the_destination(event):
    call = decode_event(encode(event_body(event, to=SIP_TO, callType="SIP", originationType="SIP")))
    assert call.headers == (Header("X-Ref", "42"), Header("X-Empty", ""))  # type: ignore[union-attr]


def test_sip_caller_and_kinds():
    body = event_body("call.incoming", to=SIP_TO, callType="SIP", originationType="SIP",
                      **{"from": {"type": "SIP", "sip": {"endpoint": "sip:alice@pbx.example.com", "displayName": "A"}}})
    call = decode_event(encode(body))
    assert isinstance(call, Incoming)
    assert (call.cli, call.domain, call.origination_type) == ("sip:alice@pbx.example.com", "sip", "sip")


@pytest.mark.parametrize(("call_type", "origination", "domain", "origination_type"), [
    ("PHONE", "PHONE", "pstn", "pstn"),
    ("SIP", "SERVER", "sip", "server"),
    ("STREAM", "SERVER", "stream", "server"),
    ("VOICE_RELAY", "SIP", "voice_relay", "sip"),
    ("HOLOGRAM", "TELEPATHY", "hologram", "telepathy"),
    (None, None, None, None),
])
def test_domain_and_origination_type(call_type, origination, domain, origination_type):
    call = decode_event(encode(event_body("call.incoming", callType=call_type, originationType=origination)))
    assert isinstance(call, Incoming)
    assert (call.domain, call.origination_type) == (domain, origination_type)


def test_minimal_body_sinch_signs_in_its_example():
    call = decode_event(b'{"event":"call.incoming","call":{"callId":"01AN4Z07BY79KA1307SR9X4MV3"}}')
    assert isinstance(call, Incoming)
    assert (call.callid, call.application, call.rate, call.to, call.cli, call.domain) == (
        "01AN4Z07BY79KA1307SR9X4MV3", None, None, None, None, None)


# --------------------------------------------------------------------------- what is not a neutral call

@pytest.mark.parametrize("name", ["call.webhook.checkBalance", "call.customEvent.checkBalance"])
def test_custom_event_is_reported_as_an_unhandled_call_event(name):
    body = event_body("call.incoming")
    body["event"] = name
    with pytest.raises(UnhandledCustomEvent) as info:
        decode_event(encode(body))
    error = info.value
    assert isinstance(error, UnknownCallEvent) and error.code == "unknown_event"
    assert (error.event, error.webhook_name, error.callid) == (name, "checkBalance", "01JQ8ZK3V9A4B6C8D0E2F4G6H8")
    assert name in error.message


def test_unknown_call_event():
    with pytest.raises(UnknownCallEvent) as info:
        decode_event(encode(event_body("call.teleported")))
    assert not isinstance(info.value, UnhandledCustomEvent)
    assert info.value.event == "call.teleported"


def test_unknown_event_of_another_kind():
    with pytest.raises(UnknownEvent) as info:
        decode_event(encode(event_body("sms.delivered")))
    assert not isinstance(info.value, UnknownCallEvent)


@pytest.mark.parametrize(("body", "code"), [
    (b"\xff", "invalid_json"),
    (b"{", "invalid_json"),
    (b"[]", "not_an_object"),
    (b'{"call": {"callId": "c"}}', "missing_event"),
    (b'{"event": "call.incoming"}', "invalid_field"),
    (b'{"event": "call.incoming", "call": {"callId": 7}}', "invalid_field"),
    (b'{"event": "call.menu", "call": {"callId": "c"}}', "invalid_field"),
    (b'{"event": "call.webhook.x", "call": {}}', "invalid_field"),
])
def test_refusals_are_decode_v2_events(body, code):
    with pytest.raises(EventError) as info:
        decode_event(body)
    assert info.value.code == code


@pytest.mark.parametrize("junk", [b"\xed\xa0\x80", b"\xff", b"\xc0\xaf", b"\xe2\x82"])
def test_bytes_that_are_not_utf8_in_a_field_callgate_does_not_read_are_invalid_json(junk):
    """The event's types skip an unknown field unread; the body's raw decoding does not, and its error escaped as a
    400 invalid_body ("a bug") with a decode_failed traceback. Now v1's words, with the place."""
    body = b'{"event":"call.incoming","call":{"callId":"c"},"x":"' + junk + b'"}'
    with pytest.raises(EventError) as info:
        decode_event(body)
    assert (info.value.code, str(info.value)) == ("invalid_json", f"body is not UTF-8: invalid byte at position "
                                                                   f"{body.index(junk)}")


@pytest.mark.parametrize("number", [b"1e400", b"-1e400", b"1" * 5000])
@pytest.mark.parametrize("where", ["top", "call", "callRate"])
def test_a_number_too_large_anywhere_is_invalid_json_not_a_decoder_failure(number, where):
    """A number the event's types do not read (an unknown field) still has to fit the body's raw decoding: it used to
    escape as msgspec's error, answered 400 invalid_body ("a bug") with a decode_failed traceback."""
    call = b'{"callId":"c"' + (b',"x":' + number if where == "call" else b"") \
        + (b',"callRate":{"currencyId":"EUR","amount":' + number + b"}" if where == "callRate" else b"") + b"}"
    body = b'{"event":"call.incoming","call":' + call + (b',"x":' + number if where == "top" else b"") + b"}"
    with pytest.raises(EventError) as info:
        decode_event(body)
    assert (info.value.code, str(info.value)) == ("invalid_json", "body is not JSON callgate accepts: a number too "
                                                                   "large (an integer of over 4300 digits, or over 1.8e308)")


# --------------------------------------------------------------------------- how the adapter builds calls
# Through callgate.calls' positional builders (drafts), not the classes' __init__: the result must be the object
# the keyword constructor builds, in every way.

def _built_by_hand(value: Any) -> Any:
    if type(value) is tuple:
        return tuple(_built_by_hand(item) for item in value)
    if not dataclasses.is_dataclass(value):
        return value
    return type(value)(**{f.name: _built_by_hand(getattr(value, f.name)) for f in dataclasses.fields(value)})


@pytest.mark.parametrize("body", [
    *(fixture(p.name) for p in sorted(FIXTURES.glob("call.*.json"))),
    *(event_body(e) for e in ("call.amd.human", "call.amd.beep", "call.recording.finished", "call.timeout")),
    event_body("call.incoming", to=SIP_TO, callRate=None),      # headers, no rate
], ids=lambda body: body["event"])
def test_decoded_calls_are_the_objects_their_constructors_build(body):
    call = decode_event(encode(body), timestamp=X_TIMESTAMP)
    values: list[Any] = [call]
    while values:           # every slot of every object set (reading one a builder never set would raise)
        value = values.pop()
        for f in dataclasses.fields(value):
            item = getattr(value, f.name)
            values.extend(v for v in (item if type(item) is tuple else (item,)) if dataclasses.is_dataclass(v))
    by_hand = _built_by_hand(call)
    assert by_hand == call and repr(by_hand) == repr(call) and by_hand.raw is call.raw
    assert call.notes == {} and type(call.notes) is dict and not hasattr(call, "__dict__")
    with pytest.raises(dataclasses.FrozenInstanceError):
        call.event = "other"  # type: ignore[misc]
    call.notes["plugin"] = 1
    assert decode_event(encode(body)).notes == {}          # a fresh notes dict per call
