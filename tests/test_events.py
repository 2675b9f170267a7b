"""callgate.protocols.v1.decode: the fixture bodies decode to the right neutral calls; leniency; every error code."""

from __future__ import annotations

import dataclasses
import json
from datetime import datetime, timedelta, timezone
from decimal import Decimal
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from callgate.calls import AmdResult, Answered, Callee, Ended, Header, Incoming, MenuInput, MenuResult, Money, Notice
from callgate.protocols.timestamps import parse_timestamp
from callgate.protocols.v1.decode import DICE_REASONS, EventError, UnknownEvent, decode_event

FIXTURES = Path(__file__).parent / "fixtures"
UTC = timezone.utc


def examples(event: str) -> dict[str, dict]:
    data = json.loads((FIXTURES / f"{event}.json").read_text(encoding="utf-8"))
    return {ex["name"]: ex["body"] for ex in data["examples"]}


def encode(body: dict) -> bytes:
    return json.dumps(body).encode("utf-8")


def decode(body: dict):
    return decode_event(encode(body))


def error_of(body: bytes) -> EventError:
    with pytest.raises(EventError) as info:
        decode_event(body)
    return info.value


ALL_EXAMPLES = [(event, name, body) for event in ("ice", "ace", "pie", "dice", "notify")
                for name, body in examples(event).items()]
CLASSES = {"ice": Incoming, "ace": Answered, "pie": MenuInput, "dice": Ended, "notify": Notice}


# --------------------------------------------------------------------------- fixtures decode


@pytest.mark.parametrize(("event", "name", "body"), ALL_EXAMPLES, ids=[f"{e}-{n}" for e, n, _ in ALL_EXAMPLES])
def test_every_fixture_example_decodes_to_its_class(event, name, body):
    decoded = decode(body)
    assert type(decoded) is CLASSES[event]
    assert decoded.event == event
    assert decoded.raw == json.loads(json.dumps(body), parse_float=Decimal)
    assert decoded.version == 1
    if "timestamp" in body:
        assert decoded.timestamp is not None and decoded.timestamp.utcoffset() == timedelta(0)
    else:
        assert decoded.timestamp is None
    if "callid" in body:
        assert decoded.callid == body["callid"]


def test_ice_pstn_inbound_to_rented_number():
    ice = decode(examples("ice")["pstn-inbound-to-rented-number"])
    assert isinstance(ice, Incoming)
    assert ice.callid == "4b1d6c0e-92a7-4f3b-8e15-c7a2d9f04e38"
    assert ice.call_resource_url.endswith("/calls/id/4b1d6c0e-92a7-4f3b-8e15-c7a2d9f04e38")
    assert ice.timestamp == datetime(2025, 3, 14, 9, 26, 53, tzinfo=UTC)
    assert ice.timestamp.tzinfo is not None
    assert ice.rate == Money("EUR", Decimal("0.0"))
    assert isinstance(ice.rate.amount, Decimal)
    assert ice.cli == "46701234567"
    assert ice.caller == "+46701234567"
    assert ice.to == Callee("did", "+46850001234")
    assert ice.domain == "pstn"
    assert ice.origination_type == "pstn"  # sent as "PSTN"
    assert ice.application == "7f3c9e21-5b4a-4d8e-a1c2-93e0b7d4f615"
    assert ice.rdnis == ""
    assert ice.headers == ()
    assert ice.custom is None and ice.user is None and ice.duration is None


def test_ice_app_to_phone_with_call_headers():
    ice = decode(examples("ice")["app-to-phone-with-call-headers"])
    assert ice.rate.amount == Decimal("0.0135")
    assert ice.rate.currency == "USD"
    assert ice.user == "alice"
    assert ice.custom == '{"orderId":"A-1009"}'
    assert ice.cli == "private"
    assert ice.caller == "private"
    assert ice.to == Callee("number", "+14155550123")
    assert ice.origination_type == "mxp"
    assert ice.headers == (Header("orderId", "A-1009"),)


def test_ice_app_to_app_and_conference():
    app = decode(examples("ice")["app-to-app"])
    assert app.cli is None and app.caller is None
    assert app.to == Callee("username", "bob")
    assert app.domain == "mxp"
    conf = decode(examples("ice")["app-joins-conference"])
    assert conf.to.type == "conference"
    assert conf.to.endpoint == "room-42"
    assert conf.user == "carol"


def test_ace_examples():
    plain = decode(examples("ace")["answered"])
    assert isinstance(plain, Answered)
    assert plain.amd is None
    assert plain.custom == '{"orderId":"A-1009"}'
    amd = decode(examples("ace")["answered-by-machine-amd"])
    assert amd.amd == AmdResult("machine", "longgreeting", 4)
    assert amd.timestamp == datetime(2025, 3, 14, 11, 15, 4, tzinfo=UTC)
    assert amd.conference_id is None


def test_pie_examples():
    pies = examples("pie")
    digits = decode(pies["digits-collected"])
    assert isinstance(digits, MenuInput)
    assert digits.menu_result == MenuResult("main", "sequence", "4821", "dtmf")
    assert digits.custom == ""
    ret = decode(pies["return-option"])
    assert ret.menu_result.type == "return"
    assert ret.menu_result.value == "support"
    assert ret.raw["menuResult"]["addToContext"] == []  # unknown nested field kept in raw
    assert decode(pies["voice-input"]).menu_result.input_method == "voice"
    assert decode(pies["timeout-no-input"]).menu_result == MenuResult("main", "timeout", "", "dtmf")
    assert decode(pies["caller-hung-up-in-menu"]).menu_result.menu_id == "sales"
    conf = decode(pies["conference-dtmf-detect"])
    assert conf.menu_result.menu_id == "room-42" and conf.menu_result.value == "5"


def test_dice_examples():
    dices = examples("dice")
    hung_up = decode(dices["answered-caller-hung-up"])
    assert isinstance(hung_up, Ended)
    assert hung_up.reason == "CALLERHANGUP"
    assert hung_up.result == "ANSWERED"
    assert hung_up.debit == Money("EUR", Decimal("0.0231"))
    assert hung_up.rate.amount == Decimal("0.0083")
    assert hung_up.duration == 168
    assert hung_up.cli == "46701234567"
    assert hung_up.to == Callee("did", "+46850001234")
    no_answer = decode(dices["no-answer-timeout"])
    assert no_answer.debit.amount == Decimal(0) and isinstance(no_answer.debit.amount, Decimal)  # int 0 in JSON
    assert no_answer.duration is None
    assert no_answer.headers == (Header("orderId", "A-1009"),)
    assert no_answer.cli == "alice"
    assert decode(dices["failed-callback-error"]).reason == "CALLBACKERROR"


def test_notify_examples():
    notes = examples("notify")
    finished = decode(notes["recording-finished"])
    assert isinstance(finished, Notice)
    assert finished.type == "recording_finished"
    assert finished.timestamp is None and finished.application is None
    conf = decode(notes["conference-recording-available"])
    assert conf.callid is None
    assert conf.conference_id == "room-42"
    assert conf.destination == "azure://acmevoice/recordings/room-42.mp3"
    assert decode(notes["amd-result-async"]).amd == AmdResult("human", "n/a", 2)
    assert decode(notes["amd-beep"]).amd.reason == "beep"
    error = decode(notes["calling-error-illegal-svaml"])
    assert error.error_code == 40001
    assert error.error_msg == "Illegal SVAML"
    assert error.user == "alice"


def test_money_is_decimal_of_the_json_literal_never_float():
    body = b'{"event":"dice","callid":"c","debit":{"currencyId":"EUR","amount":0.1},"userRate":{"amount":1e-3}}'
    dice = decode_event(body)
    assert dice.debit.amount == Decimal("0.1")  # Decimal(0.1) (from a float) would not be equal
    assert dice.rate == Money(None, Decimal("0.001"))
    assert dice.raw["debit"]["amount"] == Decimal("0.1")


def test_events_are_frozen():
    ice = decode(examples("ice")["pstn-inbound-to-rented-number"])
    with pytest.raises(dataclasses.FrozenInstanceError):
        ice.callid = "other"  # type: ignore[misc]
    with pytest.raises(dataclasses.FrozenInstanceError):
        ice.to.endpoint = "+1"  # type: ignore[misc]


# --------------------------------------------------------------------------- leniency


def test_callId_spelling_accepted():
    for event in ("ice", "ace", "dice"):
        assert decode({"event": event, "callId": "abc"}).callid == "abc"
    assert decode({"event": "pie", "callId": "abc", "menuResult": {"type": "timeout"}}).callid == "abc"
    assert decode({"event": "notify", "callId": "abc"}).callid == "abc"


def test_unknown_fields_are_kept_in_raw():
    body = dict(examples("dice")["answered-caller-hung-up"], cookies={"flow": "main-ivr"}, somethingNew=[1, 2])
    dice = decode(body)
    assert dice.raw["cookies"] == {"flow": "main-ivr"}
    assert dice.raw["somethingNew"] == [1, 2]
    assert dice.reason == "CALLERHANGUP"


def test_unknown_enum_values_accepted():
    assert "INVALIDSVAMLACTION" not in DICE_REASONS
    dice = decode({"event": "dice", "callid": "c", "reason": " INVALIDSVAMLACTION ", "result": "SOMETHINGNEW"})
    assert dice.reason == "INVALIDSVAMLACTION"
    assert dice.result == "SOMETHINGNEW"
    assert decode({"event": "notify", "type": "call_summary_available"}).type == "call_summary_available"
    assert decode({"event": "ace", "callid": "c", "amd": {"status": "InProgress"}}).amd == AmdResult("inprogress", None, None)
    assert decode({"event": "pie", "callid": "c", "menuResult": {"type": "Barged"}}).menu_result.type == "barged"


def test_case_insensitive_values_stored_lower_case():
    ice = decode({"event": "ICE", "callid": "c", "domain": "PSTN", "originationType": "Mxp",
                  "to": {"type": "Number", "endpoint": "+4670"}})
    assert isinstance(ice, Incoming)
    assert ice.event == "ice"
    assert (ice.domain, ice.origination_type, ice.to.type) == ("pstn", "mxp", "number")
    assert ice.to.endpoint == "+4670"  # values that are not enums keep their case
    assert decode({"event": "ice", "callid": "c", "to": {"type": "Username", "endpoint": "Bob"}}).to == \
        Callee("username", "Bob")
    pie = decode({"event": "Pie", "callid": "c",
                  "menuResult": {"menuId": "Main", "type": "Sequence", "value": "12", "inputMethod": "DTMF"}})
    assert pie.menu_result == MenuResult("Main", "sequence", "12", "dtmf")
    assert decode({"event": "notify", "amd": {"status": "MACHINE", "reason": "beep"}}).amd.status == "machine"


def test_naive_timestamp_is_utc():
    ice = decode({"event": "ice", "callid": "c", "timestamp": "2025-03-14T09:26:53.123"})
    assert ice.timestamp == datetime(2025, 3, 14, 9, 26, 53, 123000, tzinfo=UTC)
    assert ice.timestamp.utcoffset() == timedelta(0)


def test_seven_digit_timestamp():
    ace = decode({"event": "ace", "callid": "c", "timestamp": "2025-03-14T09:26:53.5897932Z"})
    assert ace.timestamp == datetime(2025, 3, 14, 9, 26, 53, 589793, tzinfo=UTC)


def test_timestamp_with_offset_is_the_same_instant():
    dice = decode({"event": "dice", "callid": "c", "timestamp": "2025-03-14T11:26:53+02:00"})
    assert dice.timestamp == datetime(2025, 3, 14, 9, 26, 53, tzinfo=UTC)
    assert dice.timestamp.utcoffset() == timedelta(0)


@pytest.mark.parametrize("value", ["2025-03-14T09:26:53z", "2025-03-14 09:26:53Z", "2025-03-14T09:26:53,5Z",
                                   "2025-03-14T10:26:53+0100", "2025-03-14T09:26:53.000000000Z"])
def test_timestamp_variants(value):
    parsed = parse_timestamp(value)
    assert parsed is not None
    assert parsed.replace(microsecond=0) == datetime(2025, 3, 14, 9, 26, 53, tzinfo=UTC)


@pytest.mark.parametrize("value", ["", "yesterday", "2025-03-14", "2025-02-30T10:00:00Z", "2025-03-14T25:00:00Z",
                                   "2025-03-14T09:26:53+25:00", "1741944413", "2025-03-14T09:26:53.Z",
                                   "2025-03-14T09:26:53Z trailing", "2025-W11-5T09:26:53Z"])
def test_unparsable_timestamps(value):
    assert parse_timestamp(value) is None
    error = error_of(encode({"event": "ice", "callid": "c", "timestamp": value}))
    assert error.code == "invalid_field"
    assert str(error).startswith("timestamp:")


def test_null_means_absent():
    ice = decode({"event": "ice", "callid": "c", "cli": None, "to": None, "userRate": None, "callHeaders": None,
                  "timestamp": None, "version": None, "duration": None})
    assert ice.cli is None and ice.caller is None
    assert ice.to is None and ice.rate is None and ice.timestamp is None and ice.version is None
    assert ice.headers == ()
    money = decode({"event": "dice", "callid": "c", "debit": {"currencyId": None, "amount": None}}).debit
    assert money == Money(None, None)


def test_version_given_as_string_of_digits():
    assert decode({"event": "ace", "callid": "c", "version": "1"}).version == 1


@pytest.mark.parametrize(("cli", "caller"), [
    ("46701234567", "+46701234567"),
    ("+46701234567", "+46701234567"),
    ("+46 70 123 45 67", "+46701234567"),
    ("private", "private"),
    ("Anonymous", "private"),
    ("UNKNOWN", "private"),
    ("", "private"),
    (None, None),
])
def test_caller_normalisation(cli, caller):
    body = {"event": "ice", "callid": "c"}
    if cli is not None:
        body["cli"] = cli
    ice = decode(body)
    assert ice.cli == cli
    assert ice.caller == caller


def test_event_name_is_case_insensitive_and_stripped():
    assert isinstance(decode({"event": " Notify ", "type": "amd"}), Notice)


# --------------------------------------------------------------------------- errors


def test_truncated_json_is_invalid_json():
    body = encode(examples("ice")["pstn-inbound-to-rented-number"])
    error = error_of(body[: len(body) // 2])
    assert error.code == "invalid_json"
    assert not isinstance(error, UnknownEvent)


@pytest.mark.parametrize("body", [b"", b"event=ice&callid=x", b'{"event":"ice",}', b'{"event":"ice"} {}',
                                  b'{"event":"dice","callid":"c","debit":{"amount":NaN}}', b"[" * 100000])
def test_not_json(body):
    assert error_of(body).code == "invalid_json"


def test_invalid_utf8_is_invalid_json():
    error = error_of(b'{"event":"ice","callid":"\xff\xfe","cli":"caf\xe9"}')
    assert error.code == "invalid_json"
    assert "UTF-8" in str(error)


def test_non_ascii_utf8_is_fine():
    ice = decode_event('{"event":"ice","callid":"c","custom":"Café ☎"}'.encode())
    assert ice.custom == "Café ☎"


@pytest.mark.parametrize("body", [b'[{"event":"ice","callid":"c"}]', b'"ice"', b"42", b"null", b"true"])
def test_json_that_is_not_an_object(body):
    assert error_of(body).code == "not_an_object"


@pytest.mark.parametrize("body", [b'{"event": 5}', b'{"callid":"c"}', b'{"event":null}', b'{"event":["ice"]}',
                                  b'{"event":""}', b'{"event":true}'])
def test_missing_event(body):
    assert error_of(body).code == "missing_event"


@pytest.mark.parametrize(("body", "path"), [
    ({"event": "ice", "callid": 123}, "callid"),
    ({"event": "ice", "callId": 123}, "callId"),
    ({"event": "ice", "callid": "x", "to": "bob"}, "to"),
    ({"event": "ice", "callid": "x", "to": {"type": "number", "endpoint": 46701234567}}, "to.endpoint"),
    ({"event": "ice", "callid": "x", "to": {"type": 1, "endpoint": "+4670"}}, "to.type"),
    ({"event": "ice", "callid": "x", "cli": 46701234567}, "cli"),
    ({"event": "ice", "callid": "x", "version": True}, "version"),
    ({"event": "ice", "callid": "x", "version": 1.0}, "version"),
    ({"event": "ice", "callid": "x", "duration": "10"}, "duration"),
    ({"event": "ice", "callid": "x", "timestamp": 1741944413}, "timestamp"),
    ({"event": "ice", "callid": "x", "userRate": {"currencyId": "EUR", "amount": "0.01"}}, "userRate.amount"),
    ({"event": "ice", "callid": "x", "userRate": {"currencyId": "EUR", "amount": True}}, "userRate.amount"),
    ({"event": "ice", "callid": "x", "userRate": {"currencyId": 978, "amount": 0.01}}, "userRate.currencyId"),
    ({"event": "ice", "callid": "x", "userRate": 0.01}, "userRate"),
    ({"event": "ice", "callid": "x", "callHeaders": {"key": "a", "value": "b"}}, "callHeaders"),
    ({"event": "ice", "callid": "x", "callHeaders": [{"key": "a", "value": "b"}, "c=d"]}, "callHeaders[1]"),
    ({"event": "ice", "callid": "x", "callHeaders": [{"key": "a", "value": 7}]}, "callHeaders[0].value"),
    ({"event": "ice", "callid": "x", "callHeaders": [{"value": "b"}]}, "callHeaders[0].key"),
    ({"event": "ace", "callid": "x", "amd": {"status": "machine", "duration": "4"}}, "amd.duration"),
    ({"event": "ace", "callid": "x", "amd": "machine"}, "amd"),
    ({"event": "pie", "callid": "x"}, "menuResult"),
    ({"event": "pie", "callid": "x", "menuResult": "4821"}, "menuResult"),
    ({"event": "pie", "callid": "x", "menuResult": {"type": "sequence", "value": 4821}}, "menuResult.value"),
    ({"event": "dice", "callid": "x", "reason": 3}, "reason"),
    ({"event": "dice", "callid": "x", "from": 46701234567}, "from"),
    ({"event": "dice", "callid": "x", "debit": {"amount": [1]}}, "debit.amount"),
    ({"event": "notify", "errorCode": "40001"}, "errorCode"),
    ({"event": "notify", "callid": 7}, "callid"),
    ({"event": "ice"}, "callid"),
    ({"event": "dice", "reason": "CALLERHANGUP"}, "callid"),
    ({"event": "ice", "callid": ""}, "callid"),
    ({"event": "ace", "callId": ""}, "callid"),
    ({"event": "dice", "callid": "", "callId": "c"}, "callid"),
    ({"event": "pie", "callid": "", "menuResult": {"type": "sequence", "value": "1"}}, "callid"),
])
def test_invalid_field_names_the_path(body, path):
    error = error_of(encode(body))
    assert error.code == "invalid_field"
    assert str(error).startswith(f"{path}: ")


@pytest.mark.parametrize("body", [{"event": "ice", "callid": ""}, {"event": "dice", "callId": ""}])
def test_an_empty_callid_is_refused_as_empty(body):
    """Two calls sent with an empty callid would be one call to every plugin that keys its records by it (a
    reservation, a bill, a CRM record): refused, and the message says it was empty, not missing."""
    error = error_of(encode(body))
    assert (error.code, str(error)) == ("invalid_field", f"callid: empty (required in {body['event'].upper()})")


@pytest.mark.parametrize("body", [{"event": "dice", "callid": "c" * 257}, {"event": "notify", "callId": "c" * 300}])
def test_a_callid_over_256_characters_is_refused(body):
    """A plugin sends the callid in HTTP headers (a CRM delivery's Idempotency-Key): one of 9,000 characters was
    answered 200 and could never be delivered."""
    error = error_of(encode(body))
    assert (error.code, str(error)) == ("invalid_field", "callid: expected a string of length <= 256")
    assert decode({"event": "dice", "callid": "c" * 256}).callid == "c" * 256


@pytest.mark.parametrize("body", [{"event": "dice", "callid": "v2:01JQ8ZK3V9A4B6C8D0E2F4G6H8"},
                                  {"event": "ice", "callId": "v2:x"}, {"event": "notify", "callid": "v2:x"}])
def test_a_v1_callid_written_like_a_v2_calls_key_is_refused(body):
    """A v2 call's records are kept under "v2:" + its callId: a v1 DICE with callid "v2:<that id>" settled the v2
    call's reservation and mixed the two calls in one CRM record."""
    error = error_of(encode(body))
    assert (error.code, str(error)) == ("invalid_field", "callid: may not start with 'v2:' (callgate keeps Voice API "
                                                         "v2 calls' records under such ids)")
    assert decode({"event": "dice", "callid": "xv2:1"}).key == "xv2:1"


@pytest.mark.parametrize(("body", "callid"), [
    ({"event": "notify", "callid": ""}, None),
    ({"event": "notify", "callid": "", "callId": "c"}, "c"),
    ({"event": "notify", "callId": ""}, None),
])
def test_an_empty_notify_callid_is_no_callid(body, callid):
    """A Notify need not be about a call (its callid is optional): an empty one is taken as none."""
    assert decode(body).callid == callid


def test_invalid_field_message_for_a_non_string_endpoint():
    error = error_of(b'{"event":"ice","callid":"x","to":{"type":"number","endpoint":5}}')
    assert str(error).startswith("to.endpoint: expected a string")


def test_unknown_event():
    with pytest.raises(UnknownEvent) as info:
        decode_event(b'{"event":"call.incoming","callid":"c"}')
    assert info.value.code == "unknown_event"
    assert info.value.event == "call.incoming"
    assert isinstance(info.value, EventError) and isinstance(info.value, ValueError)


# --------------------------------------------------------------------------- properties


@given(st.recursive(st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False, allow_infinity=False) | st.text(),
                    lambda children: st.lists(children, max_size=4)
                    | st.dictionaries(st.text(max_size=12), children, max_size=4), max_leaves=20),
       st.sampled_from(["ice", "ace", "pie", "dice", "notify", "Ice", "other"]),
       st.sampled_from(["callid", "to", "userRate", "menuResult", "amd", "callHeaders", "timestamp", "debit",
                        "version", "cli", "reason"]))
def test_decoder_only_ever_raises_event_error(value, event, key):
    body = json.dumps({"event": event, "callid": "c", key: value}).encode()
    try:
        decoded = decode_event(body)
    except EventError as exc:
        assert exc.code in {"invalid_field", "unknown_event"}
    else:
        assert decoded.event == event.lower()


@given(st.binary(max_size=64))
def test_arbitrary_bytes_never_crash(body):
    try:
        decode_event(body)
    except EventError:
        pass


# --------------------------------------------------------------------------- how the decoders build events
# The decoders build events and values through mutable "drafts" (see callgate.drafts), not
# through the classes' __init__: these check that the result is the same object in every way.


def _built_by_hand(value):
    """The same event/value built through its dataclass __init__ (keyword arguments, as plugins do)."""
    if type(value) is tuple:
        return tuple(_built_by_hand(item) for item in value)
    if not dataclasses.is_dataclass(value):
        return value
    return type(value)(**{f.name: _built_by_hand(getattr(value, f.name)) for f in dataclasses.fields(value)})


DRAFTED_BODIES = [body for _, _, body in ALL_EXAMPLES] + [
    {"event": "ice", "callid": "c"},
    {"event": "ace", "callId": "c", "amd": {"status": "Human"}},
    {"event": "pie", "callid": "c", "menuResult": {}},
    {"event": "dice", "callid": "c", "duration": 0, "debit": {"amount": 1}},
    {"event": "notify"},
    {"event": " Ice ", "callid": "c", "callHeaders": [{"key": "k"}], "version": "2"},
]


@pytest.mark.parametrize("body", DRAFTED_BODIES)
def test_decoded_events_are_the_objects_their_constructors_build(body):
    decoded = decode(body)
    assert type(decoded).__name__ in {"Incoming", "Answered", "MenuInput", "Ended", "Notice"}
    assert decoded.generation == "v1"
    values = [decoded]
    while values:  # every field of every object set (reading a slot a decoder never set would raise)
        value = values.pop()
        for f in dataclasses.fields(value):
            field_value = getattr(value, f.name)
            if dataclasses.is_dataclass(field_value):
                assert type(field_value) in {Money, Callee, AmdResult, MenuResult}
                values.append(field_value)
            elif f.name == "headers":
                assert all(type(header) is Header for header in field_value)
                values.extend(field_value)
    by_hand = _built_by_hand(decoded)
    assert by_hand == decoded and repr(by_hand) == repr(decoded)
    assert by_hand.raw is decoded.raw and decoded.notes == {} and type(decoded.notes) is dict
    assert not hasattr(decoded, "__dict__")
    with pytest.raises(dataclasses.FrozenInstanceError):
        decoded.event = "other"  # type: ignore[misc]
    with pytest.raises(dataclasses.FrozenInstanceError):
        del decoded.event  # type: ignore[misc]
    assert dataclasses.replace(decoded) == decoded
    decoded.notes["plugin"] = 1
    assert decode(body).notes == {}  # a fresh notes dict per event


def test_events_built_by_hand_still_use_the_keyword_constructor():
    ice = Incoming(generation="v1", event="ice", raw={}, callid="c", cli="46701234567")
    assert ice.notes == {} and ice.caller == "+46701234567" and ice.to is None and ice.headers == ()
    assert ice == decode({"event": "ice", "callid": "c", "cli": "46701234567"})
    with pytest.raises(TypeError):
        Incoming("ice", {}, callid="c")  # type: ignore[misc]
    with pytest.raises(dataclasses.FrozenInstanceError):
        Money("EUR", Decimal(1)).amount = Decimal(2)  # type: ignore[misc]


@pytest.mark.parametrize("shape", ["2025-03-14T09:26:53Z", *("2025-03-14T09:26:53." + "5897932123"[:k] + "Z"
                                                               for k in range(1, 11))])
def test_utc_timestamp_shortcuts_accept_what_the_regex_does(shape):
    """parse_timestamp's shortcuts for ``2025-03-14T09:26:53Z`` and ``...53.5897932Z`` (1-9 fractional digits) let
    fromisoformat judge the digits: it must accept nothing the general path (the _TIMESTAMP regex) refuses,
    whatever replaces, is inserted before or is removed from one character."""
    from callgate.protocols.timestamps import _TIMESTAMP
    codes = [*range(0x80), 0xA0, 0x660, 0x661, 0x6F1, 0x966, 0xFF11, 0x1D7CF, 0xD800]
    assert (parse_timestamp(shape) is None) == (_TIMESTAMP.fullmatch(shape) is None)
    for i in range(len(shape)):
        for value in [shape[:i] + shape[i + 1:], *(shape[:i] + chr(code) + shape[j:] for code in codes
                                                   for j in (i, i + 1))]:
            parsed = parse_timestamp(value)
            if _TIMESTAMP.fullmatch(value) is None:
                assert parsed is None, value
            if parsed is not None:
                assert parsed.tzinfo is UTC


@pytest.mark.parametrize("text", [' {"event":"ice","callid":"c"}', '{"event":"ice","callid":"c"}\n',
                                  '\t{"event":"ice","callid":"c"} \r\n'])
def test_whitespace_around_the_body_is_fine(text):
    assert decode_event(text.encode()).callid == "c"


@pytest.mark.parametrize(("body", "message"), [
    (b'{"event":"ice","callid":"c"}x', "body is not JSON: malformed at line 1 column 29"),
    (b' {"event":"ice"', "body is not JSON: it ends before its JSON value does"),
    (b'{"event":"ice",\n"callid":"c",}', "body is not JSON: malformed at line 2 column 14"),
])
def test_invalid_json_messages(body, message):
    error = error_of(body)
    assert (error.code, str(error)) == ("invalid_json", message)
