"""callgate.protocols.v2: webhook events decode like v1's (codes, limits, leniency); SVAML v2 answers load in Sinch's SDK.

The official SDK (``sinch`` 2.x) is the reference the answers and the test event bodies are checked
against: a model must load with no unknown field left over (``model_extra``), no union member
falling back to ``SinchRawResponse``, and (for answers) serialise back to the very same JSON.
"""

from __future__ import annotations

import copy
import json
from datetime import datetime, timezone
from decimal import Decimal
from pathlib import Path
from typing import Any

import msgspec
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from sinch.domains.voice.api.v2.sinch_events import SinchEvents
from sinch.domains.voice.models.v2.sinch_events import VoiceSinchEventRequest
from v2_sdk_checks import assert_sdk_accepts_answer, assert_sdk_understood

from callgate.protocols.errors import MAX_DEPTH, EventError, UnknownEvent
from callgate.protocols.v1.decode import decode_event
from callgate.protocols.v2 import wire
from callgate.protocols.v2.decode import UnknownCallEvent, decode_v2_event
from callgate.protocols.v2.wire import (
    END_EVENT_NAMES,
    EVENT_NAMES,
    KNOWN_EVENT_TYPES,
    InvalidV2Answer,
    V2AmdCommand,
    V2AmdEvent,
    V2AmdEvents,
    V2Answer,
    V2AnswerCommand,
    V2BridgeCallCommand,
    V2CallAnswered,
    V2CallBusy,
    V2CallEvents,
    V2CallHangup,
    V2CallIncoming,
    V2CallMenu,
    V2CustomEvent,
    V2DialCommand,
    V2EndEvent,
    V2GotoMenuCommand,
    V2HangupCommand,
    V2IncomingCallEvents,
    V2MenuCommand,
    V2MenuItem,
    V2MenuPrompt,
    V2MessageEvents,
    V2MessagesCommand,
    V2PauseCommand,
    V2Phone,
    V2PhoneDetails,
    V2Play,
    V2PlayMessage,
    V2RecordingEvent,
    V2RecordingEvents,
    V2RecordingOptions,
    V2Say,
    V2SayMessage,
    V2Sip,
    V2SipCallHeader,
    V2SipDetails,
    V2SipFrom,
    V2SipFromDetails,
    V2StartRecordingCommand,
    V2StopMessagesCommand,
    V2StopRecordingCommand,
    V2Stream,
    V2StreamDetails,
    V2StreamOptions,
    V2TranscriptionOptions,
    V2VoiceRelay,
    V2VoiceRelayDetails,
    V2WebhookCommand,
    decode_v2_answer,
    encode_v2_answer,
)

#: Sinch Voice v2 fixtures checked with the official SDK (copies of the shared protocol notes' fixtures).
FIXTURES = Path(__file__).parent / "fixtures" / "v2"
UTC = timezone.utc

EVENT_FIXTURES = sorted(p.name for p in FIXTURES.glob("call.*.json"))
ANSWER_FIXTURES = sorted(p.name for p in FIXTURES.glob("answer.*.json"))


def fixture(name: str) -> dict[str, Any]:
    return json.loads((FIXTURES / name).read_text(encoding="utf-8"))


def encode(body: Any) -> bytes:
    return json.dumps(body).encode("utf-8")


def error_of(body: bytes) -> EventError:
    with pytest.raises(EventError) as info:
        decode_v2_event(body)
    return info.value


def event_body(event: str, **call: Any) -> dict[str, Any]:
    """A complete event body (every field the SDK requires), from the call.incoming fixture."""
    body = fixture("call.incoming.json")
    body["event"] = event
    body["call"].update(call)
    if event == "call.menu" or event.lower().startswith(("call.webhook.", "call.customevent.")):
        body["menu"] = {"menuName": "main", "input": "1#"}
    return body


# --------------------------------------------------------------------------- the SDK as the reference


def sdk_event(body: bytes) -> VoiceSinchEventRequest:
    model = SinchEvents().parse_event(body, {"Content-Type": "application/json"})
    assert_sdk_understood(model)
    return model


# --------------------------------------------------------------------------- fixtures decode


FIXTURE_TYPES = {"call.incoming.json": V2CallIncoming, "call.answered.json": V2CallAnswered, "call.menu.json": V2CallMenu,
                 "call.hangup.json": V2CallHangup, "call.busy.json": V2CallBusy}


def test_every_event_fixture_has_an_expected_type():
    assert set(EVENT_FIXTURES) == set(FIXTURE_TYPES)


@pytest.mark.parametrize("name", EVENT_FIXTURES)
def test_every_event_fixture_decodes_to_its_type(name):
    raw = (FIXTURES / name).read_bytes()
    body = json.loads(raw)
    event = decode_v2_event(raw)
    assert type(event) is FIXTURE_TYPES[name]
    assert event.event == body["event"]
    call, sent = event.call, body["call"]
    assert call.call_id == sent["callId"]
    assert call.project_id == sent["projectId"] and call.service_id == sent["serviceId"]
    assert call.session_id == sent["sessionId"] and call.call_name == sent.get("callName")
    assert call.from_ is not None and call.from_.type == "PHONE" and call.from_.endpoint == sent["from"]["phone"]["number"]
    assert call.to is not None and call.to.type == "PHONE" and call.to.endpoint == sent["to"]["phone"]["number"]
    assert call.start_time == datetime.fromisoformat(sent["startTime"]) and call.start_time.tzinfo is UTC
    assert call.call_type == sent["callType"] and call.direction == sent["direction"]
    assert call.call_result == sent["callResult"] and call.call_reason == sent.get("callReason")
    assert call.origination_type == sent["originationType"]
    assert call.call_rate is not None
    assert call.call_rate.currency_code == sent["callRate"]["currencyCode"]
    assert call.call_rate.amount == Decimal(sent["callRate"]["amount"])
    assert str(call.call_rate.amount) == sent["callRate"]["amount"]  # exact, trailing zeros kept
    assert call.call_resource_url == sent["callResourceUrl"]
    sdk = sdk_event(raw)  # and the fixture is what the SDK reads too
    assert sdk.call.call_id == call.call_id and sdk.event == event.event


def test_hangup_fixture_carries_what_billing_needs():
    event = decode_v2_event((FIXTURES / "call.hangup.json").read_bytes())
    assert isinstance(event, V2CallHangup) and isinstance(event, V2EndEvent)
    call = event.call
    assert call.call_duration_seconds == 168
    assert (call.call_result, call.call_reason) == ("COMPLETED", "CALLER_HANGUP")
    assert call.answer_time == datetime(2026, 3, 14, 9, 27, 1, tzinfo=UTC)
    assert call.end_time == datetime(2026, 3, 14, 9, 29, 49, tzinfo=UTC)
    assert call.bridge_name == "main" and call.direction == "INBOUND"
    assert call.call_rate == wire.V2CallRate(currency_code="EUR", amount=Decimal("0.0030"))


def test_menu_fixture_carries_the_input():
    event = decode_v2_event((FIXTURES / "call.menu.json").read_bytes())
    assert isinstance(event, V2CallMenu)
    assert (event.menu.menu_name, event.menu.input) == ("main", "4821#")


def test_busy_fixture_is_an_end_event_without_duration():
    event = decode_v2_event((FIXTURES / "call.busy.json").read_bytes())
    assert isinstance(event, V2CallBusy) and isinstance(event, V2EndEvent)
    assert event.call.call_duration_seconds is None and event.call.answer_time is None


# --------------------------------------------------------------------------- every event name


@pytest.mark.parametrize("name", sorted(EVENT_NAMES))
def test_every_known_event_decodes_to_its_type_and_loads_in_the_sdk(name):
    body = encode(event_body(name, callName="caller"))
    event = decode_v2_event(body)
    assert type(event) is KNOWN_EVENT_TYPES[name]
    assert event.event == name and event.call.call_name == "caller"
    assert isinstance(event, V2EndEvent) == (name in END_EVENT_NAMES)
    assert isinstance(event, V2AmdEvent) == name.startswith("call.amd.")
    assert isinstance(event, V2RecordingEvent) == name.startswith("call.recording.")
    sdk = sdk_event(body)
    assert sdk.event == name and sdk.call.call_id == event.call.call_id


def test_known_events_are_all_the_sdk_knows():
    sdk_names = set(VoiceSinchEventRequest.model_fields["event"].annotation.__args__[0].__args__)
    assert sdk_names == EVENT_NAMES


@pytest.mark.parametrize("sent", ["CALL.INCOMING", " call.incoming ", "Call.Incoming", "call.incoming\n"])
def test_event_names_are_matched_case_insensitively(sent):
    event = decode_v2_event(encode(event_body(sent)))
    assert type(event) is V2CallIncoming and event.event == "call.incoming"


def test_odd_case_names_are_checked_like_the_others():
    assert error_of(encode({"event": "CALL.HANGUP", "call": {"callId": 5}})).message.startswith("call.callId:")
    assert "menu: missing" in error_of(encode({"event": "Call.Menu", "call": {"callId": "c"}})).message


@pytest.mark.parametrize(("sent", "name"), [("call.webhook.checkBalance", "checkBalance"),
                                            ("call.customEvent.checkBalance", "checkBalance"),
                                            ("CALL.WEBHOOK.Mixed.Case", "Mixed.Case")])
def test_custom_events_decode_with_their_name(sent, name):
    body = event_body(sent)
    event = decode_v2_event(encode(body))
    assert isinstance(event, V2CustomEvent)
    assert event.event == sent and event.webhook_name == name
    assert event.menu == wire.V2MenuSelection(menu_name="main", input="1#")
    assert event.call.call_id == body["call"]["callId"]


def test_custom_event_without_menu_and_in_the_sdk():
    body = event_body("call.webhook.lookup")
    del body["menu"]
    event = decode_v2_event(encode(body))
    assert isinstance(event, V2CustomEvent) and event.menu is None
    assert sdk_event(encode(body)).event == "call.customEvent.lookup"  # the SDK's rewrite of the wire name


def test_custom_events_are_checked_like_the_others():
    assert error_of(encode({"event": "call.webhook.x", "call": {}})).message == "call.callId: missing"
    assert error_of(encode({"event": "call.webhook.x", "call": {"callId": "a\x00"}})).code == "invalid_field"


@pytest.mark.parametrize("sent", ["call.ringing", "call.recording.available", "call.webhook.", "CALL.Transferred",
                                  "call.customEvent."])
def test_unknown_call_events_are_unknown_call_events(sent):
    with pytest.raises(UnknownCallEvent) as info:
        decode_v2_event(encode({"event": sent, "call": {"callId": "c"}}))
    assert isinstance(info.value, UnknownEvent) and info.value.code == "unknown_event"
    assert info.value.event == sent


@pytest.mark.parametrize("sent", ["ice", "dice", "sms.inbound", "callincoming", "conversation.call.incoming"])
def test_other_unknown_events_are_unknown_events_but_not_call_events(sent):
    with pytest.raises(UnknownEvent) as info:
        decode_v2_event(encode({"event": sent, "call": {"callId": "c"}}))
    assert not isinstance(info.value, UnknownCallEvent)
    assert info.value.code == "unknown_event" and info.value.event == sent


def test_unknown_event_wins_over_its_bad_fields():
    with pytest.raises(UnknownCallEvent):
        decode_v2_event(encode({"event": "call.new", "call": "not an object"}))


# --------------------------------------------------------------------------- leniency


def test_sinch_signing_example_body_decodes():
    """The body of Sinch's own signing example has only call.callId: callgate requires no more."""
    event = decode_v2_event(b'{"event":"call.incoming","call":{"callId":"01AN4Z07BY79KA1307SR9X4MV3"}}')
    assert isinstance(event, V2CallIncoming) and event.call.call_id == "01AN4Z07BY79KA1307SR9X4MV3"
    assert event.call.call_rate is None and event.call.from_ is None and event.call.start_time is None


def test_unknown_fields_are_ignored_everywhere():
    body = event_body("call.hangup")
    body["cloudEvent"] = {"nested": [1, 2, {"x": None}]}
    body["call"]["futureField"] = 123456789012345678901234567890  # not a field: no 64-bit limit
    body["call"]["from"]["phone"]["carrier"] = "x"
    body["call"]["callRate"]["vat"] = "0.25"
    event = decode_v2_event(encode(body))
    assert isinstance(event, V2CallHangup) and event.call.from_ is not None
    assert event.call.from_.endpoint == body["call"]["from"]["phone"]["number"]


def test_unknown_enum_values_are_kept_as_sent():
    event = decode_v2_event(encode(event_body("call.hangup", callType="WHATSAPP", direction="SIDEWAYS",
                                              callResult="TRANSFERRED", callReason="Moon_Phase",
                                              originationType="satellite")))
    call = event.call
    assert (call.call_type, call.direction, call.call_result, call.call_reason, call.origination_type) == (
        "WHATSAPP", "SIDEWAYS", "TRANSFERRED", "Moon_Phase", "satellite")


def test_parties_of_every_type_and_of_an_unknown_one():
    event = decode_v2_event(encode(event_body("call.answered", **{
        "from": {"type": "SIP", "sip": {"endpoint": "sip:alice@pbx.example.com", "displayName": "Alice"}},
        "to": {"type": "SIP", "sip": {"endpoint": "sips:bob@example.com", "transport": "TLS",
                                      "callHeaders": [{"key": "X-Ref", "value": "42"}]}}})))
    assert event.call.from_ is not None and event.call.to is not None
    assert event.call.from_.endpoint == "sip:alice@pbx.example.com"
    assert event.call.from_.sip is not None and event.call.from_.sip.display_name == "Alice"
    assert event.call.to.sip is not None and event.call.to.sip.call_headers == (wire.V2SipHeader(key="X-Ref", value="42"),)
    for to, endpoint in [({"type": "STREAM", "stream": {"endpoint": "wss://s.example.com"}}, "wss://s.example.com"),
                         ({"type": "VOICE_RELAY", "voiceRelay": {"endpoint": "wss://r.example.com", "ttsVoice": "Emma",
                                                                 "sttLanguage": "en-US"}}, "wss://r.example.com"),
                         ({"type": "phone", "phone": {"number": "+46701234567"}}, "+46701234567"),
                         ({"type": "WHATSAPP", "whatsapp": {"id": "x"}}, None),
                         ({"type": "PHONE"}, None)]:
        call = decode_v2_event(encode(event_body("call.answered", to=to))).call
        assert call.to is not None and call.to.type == to["type"] and call.to.endpoint == endpoint


def test_timestamps_are_aware_utc():
    call = decode_v2_event(encode(event_body("call.hangup", startTime="2026-09-04T10:14:55.0000000",
                                             answerTime="2026-09-04T12:15:00.1234567+02:00",
                                             endTime="2026-09-04T10:16:00.5Z",
                                             updateTime="2026-09-04T10:16:00.123456789Z"))).call
    assert call.update_time == datetime(2026, 9, 4, 10, 16, 0, 123457, tzinfo=UTC)
    assert call.start_time == datetime(2026, 9, 4, 10, 14, 55, tzinfo=UTC) and call.start_time.tzinfo is UTC
    assert call.answer_time is not None and call.answer_time.tzinfo is UTC
    assert call.answer_time.replace(microsecond=0) == datetime(2026, 9, 4, 10, 15, 0, tzinfo=UTC)
    assert call.end_time == datetime(2026, 9, 4, 10, 16, 0, 500000, tzinfo=UTC)


def test_rate_as_a_json_number_is_exact():
    call = decode_v2_event(b'{"event":"call.hangup","call":{"callId":"c","callRate":{"currencyCode":"EUR",'
                           b'"amount":0.0030}}}').call
    assert call.call_rate is not None and str(call.call_rate.amount) == "0.0030"


def test_menu_input_may_be_left_out():
    event = decode_v2_event(b'{"event":"call.menu","call":{"callId":"c"},"menu":{"menuName":"main"}}')
    assert isinstance(event, V2CallMenu) and event.menu.input is None


def test_null_means_absent():
    call = decode_v2_event(b'{"event":"call.hangup","call":{"callId":"c","callDurationSeconds":null,"to":null,'
                           b'"callRate":null}}').call
    assert call.call_duration_seconds is None and call.to is None and call.call_rate is None


def test_events_are_frozen():
    event = decode_v2_event((FIXTURES / "call.incoming.json").read_bytes())
    with pytest.raises(AttributeError):
        event.call.call_id = "other"  # type: ignore[misc]


def test_durations_up_to_31_bits_and_nesting_up_to_the_limit_are_accepted():
    body = event_body("call.hangup", callDurationSeconds=2 ** 31 - 1)
    nested: Any = "leaf"
    for _ in range(MAX_DEPTH - 1):  # the body object itself is level 1
        nested = [nested]
    body["deep"] = nested
    assert decode_v2_event(encode(body)).call.call_duration_seconds == 2 ** 31 - 1
    longer = event_body("call.hangup", callDurationSeconds=2 ** 31)   # more seconds than a store's integer holds
    assert error_of(encode(longer)).message == "call.callDurationSeconds: expected an integer <= 2147483647"


# --------------------------------------------------------------------------- refusals


def deep_body(levels: int) -> bytes:
    nested: Any = {}
    for _ in range(levels - 2):
        nested = {"a": nested}
    return encode({"event": "call.incoming", "call": {"callId": "c"}, "x": nested})


REFUSALS = [
    (b"\xff\xfe{}", "invalid_json", "not UTF-8"),
    (b'{"event":"call.incoming","call":{"callId":"a\xff"}}', "invalid_json", "not UTF-8"),
    (b"", "invalid_json", "not JSON"),
    (b"{", "invalid_json", "not JSON"),
    (b'{"event":"call.incoming","call":{"callId":"c"}} trailing', "invalid_json", "not JSON"),
    (b'{"event":"call.incoming","call":{"callId":"c"},"x":NaN}', "invalid_json", "not JSON"),
    (b'{"event":"call.incoming","call":{"callId":"\\ud800"}}', "invalid_json", "not JSON"),
    (b'{"event":"call.incoming","call":{"callId":5},"x":nope}', "invalid_json", "not JSON"),  # JSON before fields
    (deep_body(MAX_DEPTH + 1), "invalid_json", "nested deeper than 64"),
    (b'{"event":"call.incoming","call":{"callId":"c"},"x":' + b"[" * 100_000 + b"]" * 100_000 + b"}",
     "invalid_json", "nested deeper than 64"),
    (b"[]", "not_an_object", "a list"),
    (b'"call.incoming"', "not_an_object", "a string"),
    (b"12", "not_an_object", "an integer"),
    (b"null", "not_an_object", "null"),
    (b"{}", "missing_event", "event: missing"),
    (b'{"event":null,"call":{"callId":"c"}}', "missing_event", "event: missing"),
    (b'{"event":5,"call":{"callId":"c"}}', "missing_event", "event: expected a string, got an integer"),
    (b'{"event":["call.incoming"]}', "missing_event", "got a list"),
    (b'{"event":"  ","call":{"callId":"c"}}', "missing_event", "event: empty"),
    (b'{"event":"call.incoming"}', "invalid_field", "call: missing"),
    (b'{"event":"call.incoming","call":null}', "invalid_field", "call: expected an object, got null"),
    (b'{"event":"call.incoming","call":{}}', "invalid_field", "call.callId: missing"),
    (b'{"event":"call.incoming","call":{"callId":5}}', "invalid_field", "call.callId: expected a string, got an integer"),
    (b'{"event":"call.incoming","call":{"callId":""}}', "invalid_field", "call.callId: expected a string of length >= 1"),
    (b'{"event":"call.incoming","call":{"callId":"' + b"c" * 257 + b'"}}', "invalid_field",
     "call.callId: expected a string of length <= 256"),
    (b'{"event":"call.hangup","call":{"callId":"c","sessionId":""}}', "invalid_field",
     "call.sessionId: expected a string of length >= 1"),
    (b'{"event":"call.hangup","call":{"callId":"c","callDurationSeconds":9223372036854775808}}',
     "invalid_field", "call.callDurationSeconds:"),
    (b'{"event":"call.hangup","call":{"callId":"c","callDurationSeconds":-9223372036854775809}}',
     "invalid_field", "call.callDurationSeconds:"),
    (b'{"event":"call.hangup","call":{"callId":"c","callDurationSeconds":1' + b"0" * 400 + b"}}",
     "invalid_field", "call.callDurationSeconds:"),
    (b'{"event":"call.hangup","call":{"callId":"c","callDurationSeconds":true}}', "invalid_field",
     "call.callDurationSeconds:"),
    (b'{"event":"call.hangup","call":{"callId":"c","callDurationSeconds":4.0}}', "invalid_field",
     "call.callDurationSeconds:"),
    (b'{"event":"call.hangup","call":{"callId":"c","callDurationSeconds":"42"}}', "invalid_field",
     "call.callDurationSeconds:"),
    (b'{"event":"call.incoming","call":{"callId":"a\\u0000b"}}', "invalid_field", "call.callId: a control character"),
    (b'{"event":"call.incoming","call":{"callId":"a\\nb"}}', "invalid_field", "call.callId: a control character"),
    (b'{"event":"call.incoming","call":{"callId":"c","sessionId":"s\\u0085"}}', "invalid_field",
     "call.sessionId: a control character"),
    (b'{"event":"call.incoming","call":{"callId":"c","serviceId":"\\t"}}', "invalid_field", "call.serviceId:"),
    # written as they are, not escaped: DEL and a C1 character (UTF-8); a C0 one is not JSON at all
    (b'{"event":"call.incoming","call":{"callId":"a\x7fb"}}', "invalid_field", "call.callId: a control character"),
    (b'{"event":"call.incoming","call":{"callId":"c","projectId":"p\xc2\x85"}}', "invalid_field",
     "call.projectId: a control character"),
    (b'{"event":"call.incoming","call":{"callId":"a\x01b"}}', "invalid_json", "body is not JSON"),
    (b'{"event":"call.incoming","call":{"callId":"c","callName":"a\\rb"}}', "invalid_field", "call.callName:"),
    (b'{"event":"call.incoming","call":{"callId":"c","callRate":{"amount":"NaN"}}}', "invalid_field",
     "call.callRate.amount: not a finite number"),
    (b'{"event":"call.incoming","call":{"callId":"c","callRate":{"amount":"ten"}}}', "invalid_field",
     "call.callRate.amount:"),
    (b'{"event":"call.incoming","call":{"callId":"c","callRate":{"amount":true}}}', "invalid_field",
     "call.callRate.amount:"),
    (b'{"event":"call.incoming","call":{"callId":"c","startTime":"yesterday"}}', "invalid_field", "call.startTime:"),
    (b'{"event":"call.incoming","call":{"callId":"c","startTime":1700000000}}', "invalid_field", "call.startTime:"),
    (b'{"event":"call.incoming","call":{"callId":"c","to":"+46701234567"}}', "invalid_field", "call.to:"),
    (b'{"event":"call.incoming","call":{"callId":"c","to":{"type":"PHONE","phone":{"number":46701234567}}}}',
     "invalid_field", "call.to.phone.number:"),
    (b'{"event":"call.incoming","call":{"callId":"c","from":{"type":"SIP","sip":{"callHeaders":[{"value":"v"}]}}}}',
     "invalid_field", "call.from.sip.callHeaders[0].key: missing"),
    (b'{"event":"call.menu","call":{"callId":"c"}}', "invalid_field", "menu: missing (required in call.menu)"),
    (b'{"event":"call.menu","call":{"callId":"c"},"menu":"1#"}', "invalid_field", "menu:"),
    (b'{"event":"call.menu","call":{"callId":"c"},"menu":{"input":1}}', "invalid_field", "menu.input:"),
]


@pytest.mark.parametrize(("body", "code", "message"), REFUSALS, ids=[f"{c}-{i}" for i, (_, c, _) in enumerate(REFUSALS)])
def test_refusals_have_v1_codes_and_name_the_field(body, code, message):
    error = error_of(body)
    assert type(error) is EventError
    assert error.code == code
    assert message in error.message, error.message
    assert str(error) == error.message
    # callgate's words, never the decoder's (msgspec writes `str`, "JSON is malformed", "(byte N)")
    assert "`" not in error.message and "malformed:" not in error.message and "(byte" not in error.message


@pytest.mark.parametrize(("body", "message"), [
    (b'{"event":"call.incoming","call":{"callId":"c"}}x', "body is not JSON: malformed at line 1 column 48"),
    (b'{"event":"call.incoming",\n "call":{"callId":"c",}}', "body is not JSON: malformed at line 2 column 23"),
    (b'{"event":"call.incoming","call":{"callId":"c"', "body is not JSON: it ends before its JSON value does"),
    (b'', "body is not JSON: it is empty (Sinch sends a JSON object)"),
    # an unpaired surrogate escape was "malformed at line 1 column ..." (a paired one is a character)
    (b'{"event":"call.incoming","call":{"callId":"c","callName":"\\ud800"}}',
     "body is not JSON callgate accepts: a \\u escape of an unpaired UTF-16 surrogate (not Unicode text)"),
    (b'{"event":"call.incoming","x":"\\udc00 \\ud83d\\ude00","call":{"callId":"c"}}',
     "body is not JSON callgate accepts: a \\u escape of an unpaired UTF-16 surrogate (not Unicode text)"),
    (b'{"event":"conference.started"}', "unknown event 'conference.started': expected a Voice API v2 call.* event"),
    (b'{"event":"call.incoming","call":{"callId":["c"]}}', "call.callId: expected a string, got a list"),
    (b'{"event":"call.hangup","call":{"callId":"c","callDurationSeconds":"42"}}',
     "call.callDurationSeconds: expected an integer or null, got a string"),
])
def test_refusal_messages_say_where_and_what_in_callgates_words(body, message):
    assert error_of(body).message == message


GENERIC_REFUSALS = [(body, code) for body, code, _ in REFUSALS if code in ("invalid_json", "not_an_object",
                                                                           "missing_event")]


@pytest.mark.parametrize(("body", "code"), GENERIC_REFUSALS)
def test_refusals_before_the_event_type_are_the_ones_v1_gives(body, code):
    with pytest.raises(EventError) as v1:
        decode_event(body)
    assert v1.value.code == code == error_of(body).code


def test_messages_never_echo_long_values():
    error = error_of(encode({"event": "call.incoming", "call": {"callId": "c", "callDurationSeconds": "x" * 10_000}}))
    assert len(error.message) < 200


def test_unknown_event_names_are_clipped_in_the_message():
    with pytest.raises(UnknownCallEvent) as info:
        decode_v2_event(encode({"event": "call." + "x" * 1000, "call": {"callId": "c"}}))
    assert len(info.value.message) < 120 and info.value.event == "call." + "x" * 1000


def test_str_bytearray_and_memoryview_bodies():
    raw = (FIXTURES / "call.incoming.json").read_bytes()
    for body in (raw.decode(), bytearray(raw), memoryview(raw)):
        assert isinstance(decode_v2_event(body), V2CallIncoming)
    assert error_of('{"event":"call.incoming","call":{"callId":"\ud800"}}').code == "invalid_json"  # type: ignore[arg-type]


# --------------------------------------------------------------------------- fuzz


@settings(max_examples=300)
@given(st.binary(max_size=96))
def test_arbitrary_bytes_only_ever_raise_event_errors(body):
    try:
        decode_v2_event(body)
    except EventError:
        pass


JSON_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False, allow_infinity=False) | st.text(),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=12), children, max_size=4),
    max_leaves=20)
CALL_FIELDS = ["callId", "projectId", "serviceId", "sessionId", "callName", "bridgeName", "from", "to", "startTime",
               "answerTime", "callType", "callDurationSeconds", "callResult", "callRate", "callResourceUrl"]


@settings(max_examples=300)
@given(JSON_VALUES, st.sampled_from(sorted(EVENT_NAMES) + ["call.webhook.x", "CALL.HANGUP", "call.new", "ice"]),
       st.sampled_from(CALL_FIELDS + ["menu", "call", "event"]))
def test_any_field_value_only_ever_gives_an_event_or_an_event_error(value, name, key):
    body = event_body(name)
    if key in ("menu", "call", "event"):
        body[key] = value
    else:
        body["call"][key] = value
    try:
        event = decode_v2_event(encode(body))
    except UnknownEvent as exc:
        assert exc.code == "unknown_event"
    except EventError as exc:
        assert exc.code in {"invalid_field", "missing_event"}, exc.message
    else:
        assert isinstance(event, (wire.V2TaggedEvent, V2CustomEvent))


@settings(max_examples=200)
@given(st.sampled_from(EVENT_FIXTURES), st.data())
def test_mangled_fixture_bytes_only_ever_raise_event_errors(name, data):
    raw = bytearray((FIXTURES / name).read_bytes())
    for _ in range(data.draw(st.integers(1, 4))):
        position = data.draw(st.integers(0, len(raw) - 1))
        raw[position] = data.draw(st.integers(0, 255))
    try:
        decode_v2_event(bytes(raw))
    except EventError:
        pass


# --------------------------------------------------------------------------- SVAML v2 answers


@pytest.mark.parametrize("name", ANSWER_FIXTURES)
def test_every_answer_fixture_round_trips(name):
    sent = fixture(name)
    answer = decode_v2_answer((FIXTURES / name).read_bytes())
    assert isinstance(answer, V2Answer)
    body = encode_v2_answer(answer)
    assert json.loads(body) == sent
    assert decode_v2_answer(sent) == answer  # from a plugin's dict too
    assert_sdk_accepts_answer(body)


def test_dial_fixture_is_what_callgate_builds():
    answer = V2Answer(call_name="caller", commands=[
        V2BridgeCallCommand(bridge_name="main"),
        V2DialCommand(call_name="callee", from_=V2Phone(phone=V2PhoneDetails(number="+46850001234")),
                    to=V2Phone(phone=V2PhoneDetails(number="+46731112233")), dial_timeout_duration_seconds=30,
                    max_call_duration_seconds=3600)])
    assert json.loads(encode_v2_answer(answer)) == fixture("answer.call.incoming.dial-phone.json")


def test_say_hangup_fixture_is_what_callgate_builds():
    text = "Our office is closed. Please call again between 8 and 17. Goodbye."
    answer = V2Answer(commands=[V2AnswerCommand(),
                                V2MessagesCommand(messages_name="closed",
                                                messages=[V2SayMessage(say=V2Say(text=text, voice_name="Emma"))],
                                                events=V2MessageEvents(on_finish=[V2HangupCommand()]))])
    assert json.loads(encode_v2_answer(answer)) == fixture("answer.call.incoming.say-hangup.json")


def test_nothing_to_do_is_an_empty_command_list():
    assert encode_v2_answer(V2Answer(commands=[])) == b'{"commands":[]}'
    assert_sdk_accepts_answer(b'{"commands":[]}')


def test_unset_fields_are_left_out_and_empty_events_are_kept():
    assert encode_v2_answer(V2Answer(commands=[V2HangupCommand()])) == b'{"commands":[{"command":"hangup"}]}'
    dial = V2DialCommand(to=V2Phone(phone=V2PhoneDetails(number="+46731112233")), events=V2CallEvents())
    assert json.loads(encode_v2_answer(V2Answer(commands=[dial])))["commands"][0] == {
        "command": "dial", "to": {"type": "PHONE", "phone": {"number": "+46731112233"}}, "events": {}}


RECORDING = V2RecordingOptions(destination="AWS", destination_url="s3://bucket/calls", credentials="key:secret",
                             format="WAV", recording_type="COMBINED",
                             transcription_options=V2TranscriptionOptions(is_enabled=True, locale="sv-SE"))
SAY = V2SayMessage(say=V2Say(text="Hello", voice_name="Emma", format="TEXT"))
PLAY = V2PlayMessage(play=V2Play(url="https://example.com/hello.mp3"))

#: Every command callgate can produce, each with every field it has set.
HANGUP = V2HangupCommand()
EVERY_COMMAND = {
    "answer": V2AnswerCommand(),
    "hangup": V2HangupCommand(call_name="callee"),
    "dial-phone": V2DialCommand(
        to=V2Phone(phone=V2PhoneDetails(number="+46731112233")), from_=V2Phone(phone=V2PhoneDetails(number="+46850001234")),
        call_name="callee", dial_timeout_duration_seconds=30, max_call_duration_seconds=3600,
        events=V2CallEvents(on_answer=[V2BridgeCallCommand(bridge_name="main")], on_busy=[V2HangupCommand(call_name="caller")],
                          on_reject=[HANGUP], on_timeout=[HANGUP], on_hangup=[HANGUP], on_failure=[HANGUP])),
    "dial-sip": V2DialCommand(
        to=V2Sip(sip=V2SipDetails(endpoint="sips:bob@pbx.example.com", transport="TLS",
                              call_headers=[V2SipCallHeader(key="X-Ref", value="42")])),
        from_=V2SipFrom(sip=V2SipFromDetails(endpoint="sip:alice@example.com", display_name="Alice"))),
    "dial-stream": V2DialCommand(
        to=V2Stream(stream=V2StreamDetails(endpoint="wss://s.example.com/audio",
                                       stream_options=V2StreamOptions(version=1, codec="PCM", sample_rate=16000),
                                       call_headers=[V2SipCallHeader(key="X-A")]))),
    "dial-voice-relay": V2DialCommand(
        to=V2VoiceRelay(voice_relay=V2VoiceRelayDetails(endpoint="wss://r.example.com", tts_voice="Emma",
                                                    stt_language="en-US", enable_interruptions=False))),
    "bridgeCall": V2BridgeCallCommand(bridge_name="main"),
    "messages": V2MessagesCommand(messages=[SAY, PLAY], messages_name="greeting",
                                events=V2MessageEvents(on_finish=[HANGUP])),
    "stopMessages": V2StopMessagesCommand(messages_name="greeting"),
    "menu": V2MenuCommand(start_menu="main", menus={
        "main": V2MenuItem(prompt=V2MenuPrompt(messages=[SAY], allow_barge_in=False),
                         repeat_prompt=V2MenuPrompt(messages=[PLAY]), input_timeout_duration_seconds=5, repeat_count=2,
                         minimum_input_length=1, maximum_input_length=6, terminating_sequence="#",
                         input_methods=["DTMF"], matches={"1": [V2GotoMenuCommand(menu_name="sub")], "\\*": [HANGUP]},
                         on_failure=[HANGUP]),
        "sub": V2MenuItem(prompt=V2MenuPrompt(messages=[PLAY]))}),
    "gotoMenu": V2GotoMenuCommand(menu_name="main"),
    "pause": V2PauseCommand(duration_milliseconds=1500),
    "amd": V2AmdCommand(events=V2AmdEvents(on_human=[V2BridgeCallCommand(bridge_name="main")], on_machine=[HANGUP],
                                       on_beep=[HANGUP], on_unknown=[HANGUP])),
    "amd-webhooks": V2AmdCommand(),
    "startRecording": V2StartRecordingCommand(
        recording_options=RECORDING, recording_name="rec1",
        events=V2RecordingEvents(on_finish=[V2PauseCommand(duration_milliseconds=1)], on_failure=[HANGUP])),
    "stopRecording": V2StopRecordingCommand(recording_name="rec1"),
    "webhook": V2WebhookCommand(webhook_name="checkBalance", url="https://example.com/hook",
                              fallback_url="https://fallback.example.com/hook"),
}


def test_every_command_type_is_covered():
    produced = {type(command) for command in EVERY_COMMAND.values()}
    assert produced == set(wire.V2Command.__args__)  # type: ignore[attr-defined]


@pytest.mark.parametrize("name", sorted(EVERY_COMMAND))
def test_every_command_loads_in_the_sdk_and_round_trips(name):
    command = EVERY_COMMAND[name]
    body = encode_v2_answer(V2Answer(commands=[command]))
    sent = json.loads(body)
    assert sent["commands"][0]["command"] == command.command
    assert_sdk_accepts_answer(body)
    assert decode_v2_answer(body) == V2Answer(commands=[command])


def test_an_incoming_call_answer_with_everything_loads_in_the_sdk():
    answer = V2Answer(call_name="caller", commands=list(EVERY_COMMAND.values()),
                      events=V2IncomingCallEvents(on_hangup=[V2HangupCommand(call_name="callee")]))
    body = encode_v2_answer(answer)
    assert_sdk_accepts_answer(body)
    assert decode_v2_answer(body) == answer


def test_the_webhook_command_uses_the_wire_names():
    body = json.loads(encode_v2_answer(V2Answer(commands=[EVERY_COMMAND["webhook"]])))
    assert body["commands"][0] == {"command": "webhook", "webhookName": "checkBalance", "url": "https://example.com/hook",
                                   "fallbackUrl": "https://fallback.example.com/hook"}


INVALID_ANSWERS = [
    (V2Answer(commands=[], call_name="x" * 33), "callName:"),
    (V2Answer(commands=[], call_name="two words"), "callName:"),
    (V2Answer(commands=[V2HangupCommand(call_name="")]), "commands[0].callName:"),
    (V2Answer(commands=[V2AnswerCommand(), V2DialCommand(to=V2Phone(phone=V2PhoneDetails(number="0701234567")))]),
     "commands[1].to.phone.number:"),
    (V2Answer(commands=[V2DialCommand(to=V2Sip(sip=V2SipDetails(endpoint="tel:+4670")))]), "commands[0].to.sip.endpoint:"),
    (V2Answer(commands=[V2DialCommand(to=V2Phone(phone=V2PhoneDetails(number="+46701234567")), max_call_duration_seconds=-1)]),
     "commands[0].maxCallDurationSeconds:"),
    (V2Answer(commands=[V2MessagesCommand(messages=[])]), "commands[0].messages:"),
    (V2Answer(commands=[V2MessagesCommand(messages=[SAY] * 11)]), "commands[0].messages:"),
    (V2Answer(commands=[V2MessagesCommand(messages=[V2SayMessage(say=V2Say(text="x" * 601, voice_name="Emma"))])]),
     "commands[0].messages[0].say.text:"),
    (V2Answer(commands=[V2MessagesCommand(messages=[V2SayMessage(say=V2Say(text="Hi", voice_name=""))])]),
     "commands[0].messages[0].say.voiceName:"),
    (V2Answer(commands=[V2MenuCommand(start_menu="main", menus={"a-very-long-menu-name": V2MenuItem()})]), "commands[0].menus"),
    (V2Answer(commands=[V2MenuCommand(start_menu="m", menus={"m": V2MenuItem(repeat_count=11)})]),
     "commands[0].menus[...].repeatCount:"),
    (V2Answer(commands=[V2DialCommand(to=V2Phone(phone=V2PhoneDetails(number="+46701234567")),
                                    events=V2CallEvents(on_answer=[V2BridgeCallCommand(bridge_name="has space")]))]),
     "commands[0].events.onAnswer[0].bridgeName:"),
    (V2Answer(commands=[V2DialCommand(to=V2Sip(sip=V2SipDetails(endpoint="sip:a@b",
                                                          call_headers=[V2SipCallHeader(key="X", value="line\nbreak")])))]),
     "commands[0].to.sip.callHeaders[0].value:"),
]


@pytest.mark.parametrize(("answer", "path"), INVALID_ANSWERS, ids=[p for _, p in INVALID_ANSWERS])
def test_invalid_answers_are_refused_with_the_field_path(answer, path):
    with pytest.raises(InvalidV2Answer) as info:
        encode_v2_answer(answer)
    assert info.value.message.startswith(path), info.value.message


def test_decoding_an_answer_refuses_unknown_fields_and_commands():
    for body, path in [({"commands": [{"command": "hangup", "callname": "x"}]}, "commands[0]"),
                       ({"commands": [{"command": "connectPstn", "number": "+46701234567"}]}, "commands[0]"),
                       ({"commands": [{"command": "customEvent", "webhookName": "x", "url": "u"}]}, "commands[0]"),
                       ({"action": {"name": "hangup"}}, "answer"),
                       ({"commands": {}}, "commands"),
                       ({"callName": "caller"}, "commands: missing")]:
        with pytest.raises(InvalidV2Answer) as info:
            decode_v2_answer(body)
        assert info.value.message.startswith(path), info.value.message
    with pytest.raises(InvalidV2Answer, match="not JSON"):
        decode_v2_answer(b"{")


def test_nulls_in_a_decoded_answer_are_not_written_back():
    answer = decode_v2_answer({"commands": [{"command": "hangup", "callName": None}], "callName": None, "events": None})
    assert encode_v2_answer(answer) == b'{"commands":[{"command":"hangup"}]}'


def test_answers_are_plain_structs_a_plugin_can_copy():
    answer = V2Answer(commands=[EVERY_COMMAND["menu"]])
    assert copy.deepcopy(answer) == answer
    assert msgspec.to_builtins(answer) == json.loads(encode_v2_answer(answer))
