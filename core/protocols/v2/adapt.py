"""A Voice API v2 webhook body as a neutral call (:mod:`callgate.calls`): what plugins see of a v2 call.

:func:`decode_event` decodes the body with :func:`~callgate.protocols.v2.decode.decode_v2_event` (so it
refuses what that refuses, with the same :class:`~callgate.protocols.errors.EventError` codes) and
maps the typed event:

=============================================  ===============================================================
v2 event                                       neutral call
=============================================  ===============================================================
``call.incoming``                              :class:`~callgate.calls.Incoming`
``call.answered``                              :class:`~callgate.calls.Answered` (the dialled leg's ``callid``)
``call.menu``                                  :class:`~callgate.calls.MenuInput`: ``menu_id`` = ``menuName``,
                                               ``value`` = ``input`` without a final ``#``, ``type`` ``sequence``,
                                               ``input_method`` ``dtmf``
``call.hangup``, ``.busy``, ``.rejected``,     :class:`~callgate.calls.Ended`: ``result``/``reason`` as sent,
``.timeout``, ``.failed``                      ``duration`` = ``callDurationSeconds`` (0 when absent), no ``debit``
``call.amd.human|machine|unknown``             :class:`~callgate.calls.Notice` ``type="amd"``, ``amd.status`` the result
``call.amd.beep``                              :class:`~callgate.calls.Notice` ``type="amd_beep"`` (as v1), status ``beep``
``call.recording.finished`` / ``.failed``      :class:`~callgate.calls.Notice` ``recording_finished`` / ``recording_failed``
``call.message.finished``                      :class:`~callgate.calls.Notice` ``message_finished``
``call.webhook.<name>``                        raises :class:`UnhandledCustomEvent` (not a neutral call)
an unknown ``call.*``                          raises :class:`~callgate.protocols.v2.decode.UnknownCallEvent`
=============================================  ===============================================================

Both :class:`UnhandledCustomEvent` and :class:`UnknownCallEvent` are :class:`~callgate.protocols.errors.UnknownEvent`
with code ``unknown_event``; the webhook answers them ``200 {"commands": []}`` with a warning (catch
``UnknownCallEvent`` before ``EventError``).  Any other unknown name is a plain ``UnknownEvent``.

Fields (see :mod:`callgate.calls`): ``generation`` ``"v2"``, ``event`` the wire name (lower case),
``callid`` ``call.callId``, ``session_id``, ``application`` ``serviceId``, ``timestamp`` the
request's ``x-timestamp`` (the body has none), ``raw`` the decoded JSON object; ``cli`` the
``from`` number or SIP URI; ``to`` a :class:`~callgate.calls.Callee` whose ``type`` is ``did`` for
an inbound ``PHONE`` leg, ``number`` for an outbound one, else ``sip``, ``stream``, ``voice_relay``
(any newer type lower-cased); ``domain`` from ``callType`` and ``origination_type`` from
``originationType`` (``PHONE`` -> ``pstn``, ``SIP`` -> ``sip``, ``SERVER`` -> ``server``, others
lower-cased); ``headers`` the ``callHeaders`` of a SIP ``to``.  A ``PHONE`` ``to`` whose leg has no
``direction`` counts as inbound in ``call.incoming`` and ``call.menu`` (menus run on the caller's leg) and
outbound otherwise.

The body is decoded twice: once into the typed event (validation) and once into a plain ``dict``
for ``raw``.  Measured on the ``call.hangup`` fixture: 5.2 us + 2.6 us; one decode into a dict
followed by a conversion would cost about as much and lose decode.py's error paths.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import Any

import msgspec

from callgate.calls import (
    AmdResult,
    Answered,
    Callee,
    CallEventType,
    Ended,
    Header,
    Incoming,
    MenuInput,
    Money,
    Notice,
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

from ..errors import EventError
from ..wording import not_utf8
from .decode import UnknownCallEvent, decode_v2_event
from .wire import (
    V2AmdBeep,
    V2AmdHuman,
    V2AmdMachine,
    V2AmdUnknown,
    V2Call,
    V2CallAnswered,
    V2CallBusy,
    V2CallFailed,
    V2CallHangup,
    V2CallIncoming,
    V2CallMenu,
    V2CallParty,
    V2CallRate,
    V2CallRejected,
    V2CallTimeout,
    V2CustomEvent,
    V2Event,
    V2MessageFinished,
    V2RecordingFailed,
    V2RecordingFinished,
)

__all__ = ["UnhandledCustomEvent", "UnknownCallEvent", "decode_event", "neutral_call"]

GENERATION = "v2"

#: ``callType`` -> ``domain`` and ``originationType`` -> ``origination_type`` (others are lower-cased).
_KINDS = {"PHONE": "pstn", "SIP": "sip", "SERVER": "server"}
#: ``to.type`` -> ``Callee.type`` for the non-PHONE types (PHONE depends on the direction).
_CALLEE_TYPES = {"SIP": "sip", "STREAM": "stream", "VOICE_RELAY": "voice_relay"}
_RAW = msgspec.json.Decoder(dict[str, Any])
#: What the body's ``raw`` decoder refuses that the event's own types let through (in fields they do not read).
_TOO_LARGE = "body is not JSON callgate accepts: a number too large (an integer of over 4300 digits, or over 1.8e308)"


class UnhandledCustomEvent(UnknownCallEvent):
    """A ``call.webhook.<name>`` (a ``webhook`` command's event): not a neutral call, so no plugin hook receives it.

    The webhook answers it ``200 {"commands": []}`` with a warning, as an unknown ``call.*`` event
    (it is an :class:`UnknownCallEvent`).  ``event`` is the name as sent, ``webhook_name`` its
    ``<name>``, ``callid`` the leg's ``call.callId``.
    """

    def __init__(self, event: V2CustomEvent) -> None:
        super().__init__(event.event)
        self.webhook_name = event.webhook_name
        self.callid = event.call.call_id
        self.message = (f"custom event {event.event[:64]!r}: callgate sends no webhook commands and has no "
                        f"hook for their events")
        self.args = (self.message,)


def _kind(value: str | None) -> str | None:
    if value is None:
        return None
    kind = _KINDS.get(value)  # as Sinch writes them; other spellings folded
    return kind if kind is not None else _KINDS.get(value.upper(), value.lower())


def _money(rate: V2CallRate | None) -> Money | None:
    return None if rate is None else new_money(rate.currency_code, rate.amount)


def _cli(call: V2Call) -> str | None:
    return None if call.from_ is None else call.from_.endpoint


def _callee(call: V2Call, inbound_default: bool) -> Callee | None:
    to = call.to
    if to is None:
        return None
    kind = to.type
    if kind != "PHONE":  # as Sinch writes it; other spellings folded
        kind = (kind or "").upper()
    if kind == "PHONE":
        direction = call.direction
        if direction != "INBOUND" and direction != "OUTBOUND":
            direction = (direction or "").upper()
        inbound = direction == "INBOUND" or (direction != "OUTBOUND" and inbound_default)
        return new_callee("did" if inbound else "number", to.endpoint)
    return new_callee(_CALLEE_TYPES.get(kind, kind.lower() or None), to.endpoint)


def _headers(to: V2CallParty | None) -> tuple[Header, ...]:
    if to is None or to.sip is None or not to.sip.call_headers or (to.type or "").upper() != "SIP":
        return ()
    return tuple(new_header(h.key, h.value or "") for h in to.sip.call_headers)


# The neutral calls are built through callgate.calls' positional builders (see there why), every field in
# declaration order: CallEvent's (generation, event, raw, notes, version, custom, application, timestamp, user,
# session_id; v2 has no version, custom or user), then the class's own.

def _incoming(event: V2Event, raw: dict[str, Any], timestamp: datetime | None) -> Incoming:
    call = event.call
    return new_incoming(
        GENERATION, event.event, raw, {}, None, None, call.service_id, timestamp, None, call.session_id,
        call.call_id, call.call_resource_url, _money(call.call_rate), _cli(call), _callee(call, inbound_default=True),
        _kind(call.call_type), _kind(call.origination_type), None, None, _headers(call.to))  # duration, rdnis: v1 only


def _answered(event: V2Event, raw: dict[str, Any], timestamp: datetime | None) -> Answered:
    call = event.call
    return new_answered(
        GENERATION, event.event, raw, {}, None, None, call.service_id, timestamp, None, call.session_id,
        call.call_id, None, None, _cli(call), _callee(call, inbound_default=False))  # amd, conference_id: v1 only


def _menu(event: V2Event, raw: dict[str, Any], timestamp: datetime | None) -> MenuInput:
    assert isinstance(event, V2CallMenu)
    call = event.call
    # The menus callgate renders end input with "#" (terminatingSequence), which v2 reports in ``input`` and v1
    # leaves out of its value: without it, a plugin compares the same digits whichever generation sent them.
    entered = event.menu.input
    result = new_menu_result(event.menu.menu_name, "sequence",
                             entered[:-1] if entered and entered.endswith("#") else entered, "dtmf")
    return new_menu_input(
        GENERATION, event.event, raw, {}, None, None, call.service_id, timestamp, None, call.session_id,
        call.call_id, result, _cli(call), _callee(call, inbound_default=True))


def _ended(event: V2Event, raw: dict[str, Any], timestamp: datetime | None) -> Ended:
    call = event.call
    return new_ended(
        GENERATION, event.event, raw, {}, None, None, call.service_id, timestamp, None, call.session_id,
        call.call_id, call.call_reason, call.call_result, None, _money(call.call_rate),  # debit: v1 only
        _callee(call, inbound_default=False), call.call_duration_seconds or 0, _cli(call), _headers(call.to),
        call.answer_time, call.end_time)


def _notice(kind: str, amd: str | None = None) -> Callable[[V2Event, dict[str, Any], datetime | None], Notice]:
    result = None if amd is None else AmdResult(status=amd, reason=None, duration=None)

    def build(event: V2Event, raw: dict[str, Any], timestamp: datetime | None) -> Notice:
        call = event.call
        return new_notice(
            GENERATION, event.event, raw, {}, None, None, call.service_id, timestamp, None, call.session_id,
            call.call_id, None, kind, None, result, None, None)  # conference_id, destination, error_*: v1 only

    return build


_BUILDERS: dict[type, Callable[[V2Event, dict[str, Any], datetime | None], CallEventType]] = {
    V2CallIncoming: _incoming,
    V2CallAnswered: _answered,
    V2CallMenu: _menu,
    **{cls: _ended for cls in (V2CallHangup, V2CallBusy, V2CallRejected, V2CallTimeout, V2CallFailed)},
    V2AmdHuman: _notice("amd", "human"),
    V2AmdMachine: _notice("amd", "machine"),
    V2AmdUnknown: _notice("amd", "unknown"),
    V2AmdBeep: _notice("amd_beep", "beep"),
    V2RecordingFinished: _notice("recording_finished"),
    V2RecordingFailed: _notice("recording_failed"),
    V2MessageFinished: _notice("message_finished"),
}


def neutral_call(event: V2Event, raw: dict[str, Any], *, timestamp: datetime | None = None) -> CallEventType:
    """The neutral call of a decoded v2 event (``raw`` its JSON object); raises :class:`UnhandledCustomEvent` for a
    custom event."""
    build = _BUILDERS.get(type(event))
    if build is None:
        assert isinstance(event, V2CustomEvent)
        raise UnhandledCustomEvent(event)
    return build(event, raw, timestamp)


def decode_event(body: bytes | bytearray | memoryview | str, *, timestamp: datetime | None = None) -> CallEventType:
    """Decode a v2 webhook body (the raw request bytes) into a neutral call; ``timestamp`` is the request's
    ``x-timestamp``, parsed.

    Raises :class:`~callgate.protocols.errors.EventError` for a body that is not a v2 event (codes as
    v1's), :class:`UnhandledCustomEvent` for ``call.webhook.<name>`` and :class:`UnknownCallEvent` for
    another unknown ``call.*`` event (both answered ``200 {"commands": []}``), and
    :class:`~callgate.protocols.errors.UnknownEvent` for any other name.
    """
    if not isinstance(body, bytes):
        body = body.encode("utf-8", "surrogatepass") if isinstance(body, str) else bytes(body)
    assert isinstance(body, bytes)
    event = decode_v2_event(body)
    if type(event) is V2CustomEvent:
        raise UnhandledCustomEvent(event)
    try:
        raw = _RAW.decode(body)
    except msgspec.ValidationError:               # a number in a field callgate does not read, too large to hold
        raise EventError("invalid_json", _TOO_LARGE) from None
    except msgspec.DecodeError:                   # bytes that are not UTF-8, in a field the types skipped unread
        raise EventError("invalid_json", not_utf8(body)) from None
    return neutral_call(event, raw, timestamp=timestamp)
