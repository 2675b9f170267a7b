"""The msgspec v1 decoder against the hand-written one it replaced (tests/v1_decode_reference.py): on every body,
the same neutral call (fields and ``raw``) or the same error (class, code, message).

The bodies are the fuzz test's (mutated events, junk, truncations, deep nesting, duplicate keys:
``test_reliability_fuzz.bodies``), each sent as bytes and, when it is UTF-8 text, as a str;
plus the leniencies the new decoder reads on its slow path, one by one.
``CALLGATE_AGREEMENT_EXAMPLES`` sets how many generated bodies (default 1500).
"""

from __future__ import annotations

import dataclasses
import json
import os
from decimal import Decimal
from pathlib import Path

import pytest
import v1_decode_reference as reference
from hypothesis import HealthCheck, given, seed, settings
from test_reliability_fuzz import bodies

from callgate import samples
from callgate.protocols.errors import EventError
from callgate.protocols.v1 import decode as decoder
from callgate.protocols.v1.decode import decode_event

FIXTURES = Path(__file__).parent / "fixtures"
EXAMPLES = int(os.environ.get("CALLGATE_AGREEMENT_EXAMPLES", "1500"))


def outcome(decode, body):
    """What ``decode`` makes of ``body``: ``("event", type, fields, raw)`` or ``("error", type, code, message)``."""
    try:
        event = decode(body)
    except EventError as error:
        return "error", type(error).__name__, error.code, str(error)
    fields = {f.name: getattr(event, f.name) for f in dataclasses.fields(event) if f.name != "raw"}
    return "event", type(event).__name__, fields, event.raw


def assert_agree(body) -> None:
    new, old = outcome(decode_event, body), outcome(reference.decode_event, body)
    assert new == old, body[:300]
    if new[0] == "event":  # == would take Decimal("1") for 1: the values must be the same types as well
        assert repr(new[2]) == repr(old[2]) and repr(new[3]) == repr(old[3])


@seed(16)
@settings(max_examples=EXAMPLES, deadline=None, suppress_health_check=list(HealthCheck))
@given(bodies())
def test_both_decoders_agree_on_fuzzed_bodies(labelled):
    _, body = labelled
    assert_agree(body)
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError:
        return
    assert_agree(text)


LENIENT = [
    {"event": "ICE", "callid": "c"},
    {"event": " Dice\n", "callid": "c", "reason": " CALLERHANGUP "},
    {"event": "ace", "callId": "c"},
    {"event": "ace", "callid": None, "callId": "c"},
    {"event": "pie", "callId": "c", "menuResult": {"type": "Timeout"}},
    {"event": "notify", "callId": "c"},
    {"event": "notify", "callid": None, "callId": "c"},
    {"event": "ice", "callid": "c", "version": "2"},
    {"event": "ice", "callid": "c", "version": " 7 "},
    {"event": "ice", "callid": "call\u00a0one", "user": "ann\u2028", "applicationKey": "k\u200b"},  # not printable,
    {"event": "ice", "callid": "c", "userRate": {"amount": 3}},                                    # not control
    b'{"event":"ice","callid":"c","callid":"d"}',                         # the last duplicate counts, as in json
    b'{"event":"ice","event":"ace","callid":"c"}',
]


@pytest.mark.parametrize("body", LENIENT)
def test_what_the_slow_path_accepts_it_accepts_as_before(body):
    encoded = body if isinstance(body, bytes) else json.dumps(body).encode()
    assert_agree(encoded)
    decode_event(encoded)  # and it is accepted



def test_the_slow_path_values():
    dice = decode_event(b'{"event":" Dice\\n","callId":"c","reason":" CALLERHANGUP ","version":" 7 ","debit":{"amount":3}}')
    assert (dice.event, dice.callid, dice.reason, dice.version) == ("dice", "c", "CALLERHANGUP", 7)
    assert dice.debit.amount == Decimal(3) and type(dice.debit.amount) is Decimal
    assert dice.raw["event"] == " Dice\n" and "callid" not in dice.raw  # raw is the body as sent
    ice = decode_event('{"event":"ICE","callid":"call\u00a0one","user":"ann\u2028"}'.encode())
    assert (ice.callid, ice.user) == ("call\u00a0one", "ann\u2028")  # not printable, but no control character


REFUSED = [
    b'{"event":"ice","callid":"c","userRate":{"amount":"0.1"}}',         # msgspec's Decimal would take it
    b'{"event":"ice","callid":"c\\u0000"}',
    b'{"event":"notify","callid":"c\\n"}',
    b'{"event":"ace","callid":"c","user":"\\u0085x"}',
    b'{"event":"ice","callid":1,"callid":"c","cli":5}',                  # the last duplicate counts, as in json
    b'{"event":"ice","callid":"c","timestamp":"2025-02-30T10:00:00Z"}',
    b'{"event":"ice","callid":"c","version":"x","cli":1}',               # the first bad field in v1's order
    b'{"event":"pie","cli":1,"menuResult":5}',
    b'{"event":"dice","callid":"c","duration":1.0}',
    b'{"event":"dice","callid":"c","debit":{"amount":1,"currencyId":2}}',
    b'{"event":"ice","callid":"c","x":' + b"[" * 65 + b"]" * 65 + b"}",
    b'{"event":"ice","callid":"c","x":"\\ud800"}',
    b'\xef\xbb\xbf{"event":"ice","callid":"c"}',
    b'{"event":"ice","callid":"c","d":' + b"9" * 4301 + b"}",
]


@pytest.mark.parametrize("body", REFUSED)
def test_what_the_slow_path_refuses_it_refuses_as_before(body):
    assert_agree(body)
    with pytest.raises(EventError):
        decode_event(body)



def _second_look(body):
    raise AssertionError(f"read a second time: {body[:200]!r}")


def test_the_usual_bodies_take_the_fast_path(monkeypatch):
    """Every fixture example and sample body is decoded by the wire types alone, never read a second time."""
    monkeypatch.setattr(decoder, "_decode_again", _second_look)
    for event, build in samples.BUILDERS.items():
        fixture = json.loads((FIXTURES / f"{event}.json").read_text(encoding="utf-8"))
        for body in [build(), *(example["body"] for example in fixture["examples"])]:
            assert decode_event(json.dumps(body).encode()).event == event
