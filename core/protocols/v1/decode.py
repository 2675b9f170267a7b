"""Sinch Voice v1 callbacks (ICE, ACE, PIE, DICE, Notify) decoded into neutral calls.

``decode_event(body)`` turns the raw request body into one of the neutral calls of
:mod:`callgate.calls`, with ``generation="v1"``: ICE -> :class:`~callgate.calls.Incoming`,
ACE -> :class:`~callgate.calls.Answered`, PIE -> :class:`~callgate.calls.MenuInput`,
DICE -> :class:`~callgate.calls.Ended`, Notify -> :class:`~callgate.calls.Notice`.

The usual body is decoded in C by msgspec: once into the tagged union of
:mod:`callgate.protocols.v1.wire` (which checks every field's type) and once into a plain ``dict``
(the event's ``raw``), numbers that are not integers as :class:`~decimal.Decimal` of their literal,
so money is never a float.  A body that union refuses, or whose values need a second look (an
identifier with a control character, a timestamp that does not parse, an amount that is not a
number, nesting deeper than 64 levels), is read again by
:func:`callgate.protocols.v1.refusals.recheck`, which accepts what v1 leniently accepts or raises
exactly the error v1 has always raised.

The decoder is strict about *types* and lenient about *values*, because Sinch is:

* unknown fields are kept (``event.raw`` is the whole decoded object);
* open enums stay plain strings -- a new DICE reason, Notify type or AMD status
  never makes a body undecodable; the ``*_REASONS``/``*_TYPES`` constants below
  list the values known today, for documentation and tests only;
* values Sinch sends in varying case (``domain``, ``originationType``,
  ``to.type``, ``menuResult.type``, ``menuResult.inputMethod``, ``amd.status``)
  are stored lower-case; DICE ``reason``/``result`` are kept upper-case as sent
  (only stripped);
* the event name is matched case-insensitively after stripping (``" ICE "``);
* ``callid`` is also accepted as ``callId``; ``null`` means absent; a ``version`` may be a string of digits;
* identifiers plugins key their records by (``callid``, ``applicationKey``,
  ``user``) may not hold a control character (NUL, a line break, ...): such a
  value could not be stored or delivered everywhere, so it is ``invalid_field``;
* v1's names become the neutral ones: ``applicationKey`` -> ``application``,
  ``userRate`` -> ``rate``, ``callHeaders`` -> ``headers``, DICE ``from`` -> ``cli``,
  ``currencyId`` -> ``Money.currency``;
* ``timestamp`` is a timezone-aware UTC datetime: ``Z``, ``+hh:mm`` offsets and
  up to 9 fractional digits (.NET sends 7) are accepted, a value without zone is
  taken as UTC.

A string field holding a number, an integer field holding ``true`` or ``4.0``,
an object field holding a string, ... is an :class:`EventError` whose message
names the field path (``to.endpoint: expected a string, got a number``).
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from decimal import Decimal
from typing import Any

import msgspec

from ...calls import (
    AmdResult,
    Answered,
    Callee,
    Ended,
    Header,
    Incoming,
    MenuInput,
    Money,
    Notice,
    new_amd,
    new_answered,
    new_callee,
    new_ended,
    new_header,
    new_incoming,
    new_menu_input,
    new_menu_result,
    new_money,
    new_notice,
)
from ..errors import CALLID_MAX, EventError, UnknownEvent, may_nest_too_deep
from ..timestamps import parse_timestamp
from .refusals import CONTROL, recheck, refuse_deep_nesting
from .wire import V1Ace, V1Amd, V1Callee, V1CallHeader, V1Dice, V1EventBase, V1Ice, V1Money, V1Notify, V1Pie, V1WireEvent

__all__ = [
    "AMD_REASONS",
    "AMD_STATUSES",
    "DESTINATION_TYPES",
    "DICE_REASONS",
    "DICE_RESULTS",
    "DOMAINS",
    "EVENT_TYPES",
    "MENU_INPUT_METHODS",
    "MENU_RESULT_TYPES",
    "NOTIFY_TYPES",
    "ORIGINATION_TYPES",
    "EventError",
    "UnknownEvent",
    "V1Event",
    "decode_event",
]

# --------------------------------------------------------------------------- known values
# Documentation and tests only: the decoder never rejects a value missing from these.

#: The ``event`` values callgate decodes.
EVENT_TYPES = frozenset({"ice", "ace", "pie", "dice", "notify"})
#: DICE ``reason`` (SDK enum plus the OAS additions), upper-case as sent.
DICE_REASONS = frozenset({
    "N/A", "TIMEOUT", "CALLERHANGUP", "CALLEEHANGUP", "BLOCKED", "MANAGERHANGUP", "NOCREDITPARTNER",
    "GENERALERROR", "CANCEL", "USERNOTFOUND", "CALLBACKERROR", "ESTABLISHED", "OTHERPEERANSWERED",
    "CLIENTNETWORK", "CONGESTION",
})
#: DICE ``result``, upper-case as sent.
DICE_RESULTS = frozenset({"ANSWERED", "BUSY", "NOANSWER", "FAILED", "N/A"})
#: PIE ``menuResult.type`` (stored lower-case).
MENU_RESULT_TYPES = frozenset({"sequence", "return", "timeout", "hangup", "invalidinput", "error"})
#: PIE ``menuResult.inputMethod`` (stored lower-case).
MENU_INPUT_METHODS = frozenset({"dtmf", "voice"})
#: ``amd.status`` (stored lower-case); async AMD may report others (e.g. ``inprogress``).
AMD_STATUSES = frozenset({"machine", "human", "notsure", "hangup"})
#: ``amd.reason``.
AMD_REASONS = frozenset({"longgreeting", "initialsilence", "beep", "n/a"})
#: Notify ``type``.
NOTIFY_TYPES = frozenset({
    "recording_finished", "recording_available", "transcription_available", "amd", "amd_beep", "callingerror",
})
#: ``to.type`` (stored lower-case).
DESTINATION_TYPES = frozenset({"did", "number", "username", "sip", "conference"})
#: ICE ``domain`` (stored lower-case).
DOMAINS = frozenset({"pstn", "mxp", "conference"})
#: ICE ``originationType`` (stored lower-case; Sinch sends ``PSTN``/``MXP``).
ORIGINATION_TYPES = frozenset({"pstn", "mxp"})


#: What :func:`decode_event` returns.
V1Event = Incoming | Answered | MenuInput | Ended | Notice

_EVENTS = msgspec.json.Decoder(V1WireEvent, float_hook=Decimal)
_RAW = msgspec.json.Decoder(dict[str, Any], float_hook=Decimal)


class _SecondLook(Exception):
    """A value the wire types let through but v1 may refuse: :func:`recheck` decides."""


# --------------------------------------------------------------------------- neutral objects
# Built through callgate.calls' positional builders (new_incoming, ...): see there why.


# --------------------------------------------------------------------------- values
# Each returns the neutral value of a wire value, or raises _SecondLook when only recheck() can say.

def _lower(value: str | None) -> str | None:
    return None if value is None else value.strip().lower()


def _identifier(value: str | None) -> str | None:
    if value is None or value.isprintable() or CONTROL.search(value) is None:
        return value
    raise _SecondLook


def _required_callid(wire: V1EventBase) -> str:
    callid = wire.callid
    if callid and len(callid) <= CALLID_MAX and not callid.startswith("v2:") \
            and (callid.isprintable() or CONTROL.search(callid) is None):
        return callid
    raise _SecondLook  # missing (or spelt callId), empty, too long, a v2 call's key, or a control character


def _timestamp(value: str | None) -> datetime | None:
    if value is None:
        return None
    parsed = parse_timestamp(value)
    if parsed is None:
        raise _SecondLook
    return parsed


def _money(money: V1Money | None) -> Money | None:
    if money is None:
        return None
    amount = money.amount
    if amount is not None and not isinstance(amount, Decimal):
        if not isinstance(amount, int) or isinstance(amount, bool):  # a string (msgspec's Decimal would take it), a list, ...
            raise _SecondLook
        amount = Decimal(amount)
    return new_money(money.currency_id, amount)


def _callee(to: V1Callee | None) -> Callee | None:
    return None if to is None else new_callee(_lower(to.type), to.endpoint)


def _amd(amd: V1Amd | None) -> AmdResult | None:
    return None if amd is None else new_amd(_lower(amd.status), amd.reason, amd.duration)


def _headers(headers: tuple[V1CallHeader, ...] | None) -> tuple[Header, ...]:
    return () if not headers else tuple(new_header(h.key, h.value or "") for h in headers)


# --------------------------------------------------------------------------- events
# Arguments in field order: CallEvent's (generation, event, raw, notes, version, custom, application,
# timestamp, user, session_id), then the class's own.

def _ice(wire: Any, raw: dict[str, Any]) -> Incoming:
    return new_incoming(
        "v1", "ice", raw, {}, wire.version, wire.custom, _identifier(wire.application_key), _timestamp(wire.timestamp),
        _identifier(wire.user), None,
        _required_callid(wire), wire.call_resource_url, _money(wire.user_rate), wire.cli, _callee(wire.to),
        _lower(wire.domain), _lower(wire.origination_type), wire.duration, wire.rdnis, _headers(wire.call_headers))


def _ace(wire: Any, raw: dict[str, Any]) -> Answered:
    return new_answered(
        "v1", "ace", raw, {}, wire.version, wire.custom, _identifier(wire.application_key), _timestamp(wire.timestamp),
        _identifier(wire.user), None,
        _required_callid(wire), _amd(wire.amd), wire.conference_id,
        None, None)  # cli, to: v1 ACE names neither caller nor callee


def _pie(wire: Any, raw: dict[str, Any]) -> MenuInput:
    menu = wire.menu_result
    if menu is None:
        raise _SecondLook
    return new_menu_input(
        "v1", "pie", raw, {}, wire.version, wire.custom, _identifier(wire.application_key), _timestamp(wire.timestamp),
        _identifier(wire.user), None,
        _required_callid(wire),
        new_menu_result(menu.menu_id, _lower(menu.type), menu.value, _lower(menu.input_method)),
        None, None)  # cli, to: v1 PIE names neither caller nor callee


def _dice(wire: Any, raw: dict[str, Any]) -> Ended:
    reason, result = wire.reason, wire.result
    return new_ended(
        "v1", "dice", raw, {}, wire.version, wire.custom, _identifier(wire.application_key), _timestamp(wire.timestamp),
        _identifier(wire.user), None,
        _required_callid(wire), None if reason is None else reason.strip(), None if result is None else result.strip(),
        _money(wire.debit), _money(wire.user_rate), _callee(wire.to), wire.duration, wire.from_,
        _headers(wire.call_headers),
        None, None)  # answered_at, ended_at: v2 only


def _notify(wire: Any, raw: dict[str, Any]) -> Notice:
    if not wire.callid and (wire.callid == "" or raw.get("callId") not in (None, "")):  # empty, or the other spelling
        raise _SecondLook
    if wire.callid is not None and (len(wire.callid) > CALLID_MAX or wire.callid.startswith("v2:")):
        raise _SecondLook
    return new_notice(
        "v1", "notify", raw, {}, wire.version, wire.custom, _identifier(wire.application_key), _timestamp(wire.timestamp),
        _identifier(wire.user), None,
        _identifier(wire.callid), wire.conference_id, wire.type, wire.destination, _amd(wire.amd), wire.error_code,
        wire.error_msg)


_NEUTRAL: dict[type, Callable[[Any, dict[str, Any]], V1Event]] = {
    V1Ice: _ice, V1Ace: _ace, V1Pie: _pie, V1Dice: _dice, V1Notify: _notify,
}


def _neutral(wire: V1EventBase, raw: dict[str, Any]) -> V1Event:
    return _NEUTRAL[wire.__class__](wire, raw)


def _decode_again(body: bytes | bytearray | memoryview | str) -> V1Event:
    """A body the fast path did not take: refused by :func:`recheck`, or decoded from its canonical shape."""
    raw, canonical = recheck(body)
    wire = msgspec.convert(canonical, V1WireEvent)
    return _neutral(wire, raw)


def decode_event(body: bytes | bytearray | memoryview | str) -> V1Event:
    """Decode a v1 callback body (the raw request bytes, UTF-8 JSON) into a neutral call (``generation="v1"``).

    Raises :class:`EventError` (``invalid_json``, ``not_an_object``, ``missing_event``,
    ``invalid_field``) or :class:`UnknownEvent` (``unknown_event``).
    """
    data = body
    if not isinstance(data, bytes):
        data = body.encode("utf-8", "surrogatepass") if isinstance(body, str) else bytes(body)
    try:
        wire = _EVENTS.decode(data)
        raw = _RAW.decode(data)
        if may_nest_too_deep(data):
            refuse_deep_nesting(raw)
        return _neutral(wire, raw)
    except (msgspec.DecodeError, msgspec.ValidationError, RecursionError, EventError, _SecondLook):
        return _decode_again(body)
