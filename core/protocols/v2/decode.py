"""Decoding a Sinch Voice API v2 webhook body into a typed event, with v1's refusal codes and limits.

``decode_v2_event(body)`` returns one of the event types of :mod:`callgate.protocols.v2.wire`
or raises the errors v1's :func:`callgate.protocols.v1.decode.decode_event` raises, with the same codes:

* ``invalid_json``: not UTF-8, not JSON, a ``\\u`` escape of an unpaired surrogate, or nested
  deeper than :data:`callgate.protocols.errors.MAX_DEPTH` (64) levels;
* ``not_an_object``: JSON, but not an object;
* ``missing_event``: no ``event``, or not a string, or empty;
* ``invalid_field``: a field of the wrong type, a required field missing (``call``,
  ``call.callId``, ``menu`` in ``call.menu``), an integer beyond 64 bits, a control character
  in an identifier (``call.callId``, ``sessionId``, ``projectId``, ``serviceId``, ``callName``),
  a rate that is not a finite number, a timestamp that is not RFC 3339.  The message names the
  field path, in callgate's words (``call.callId: expected a string, got an integer``);
* ``unknown_event`` (:class:`~callgate.protocols.errors.UnknownEvent`): an event name callgate has no type
  for.  :class:`UnknownCallEvent`, its subclass, is an unknown ``call.*`` event (a newer Sinch call
  event), which the webhook answers with ``{"commands": []}`` and a warning; any other name is
  not a Voice v2 call event at all.

``call.webhook.<name>`` (and ``call.customEvent.<name>``) decode to
:class:`~callgate.protocols.v2.wire.V2CustomEvent`.

The usual body is decoded once, in C, by the tagged union of the known events; only a body that
union refuses (an error, an unusual case of the name, a custom event) is looked at again to say
exactly what is wrong, in the order v1 checks it.
"""

from __future__ import annotations

import re

import msgspec

from callgate.protocols.errors import MAX_DEPTH, EventError, UnknownEvent, clip, may_nest_too_deep
from callgate.protocols.wording import got, not_json, not_utf8

from .wire import (
    CUSTOM_EVENT_PREFIX,
    KNOWN_EVENT_TYPES,
    SDK_CUSTOM_EVENT_PREFIX,
    V2Call,
    V2CallMenu,
    V2CustomEvent,
    V2Event,
    V2KnownEvent,
    V2MenuSelection,
    error_path,
)

__all__ = ["UnknownCallEvent", "decode_v2_event"]


class UnknownCallEvent(UnknownEvent):
    """An event named ``call.<something>`` callgate has no type for (``code`` is ``unknown_event`` as for any
    unknown event).  ``event`` is the name as sent."""

    def __init__(self, event: str) -> None:
        super().__init__(event)
        self.message = f"unknown call event {clip(event)!r}"
        self.args = (self.message,)


class _Envelope(msgspec.Struct, frozen=True):
    """Every v2 event's shape, for names the tagged union does not take: the ``event`` is read separately."""

    call: V2Call
    menu: V2MenuSelection | None = None


_EVENTS = msgspec.json.Decoder(V2KnownEvent)
_ENVELOPE = msgspec.json.Decoder(_Envelope)
_RAW = msgspec.json.Decoder(msgspec.Raw)
_TOP = msgspec.json.Decoder(dict[str, msgspec.Raw])

#: The custom event prefixes in lower case: names are compared case-folded.
_CUSTOM_PREFIXES = (CUSTOM_EVENT_PREFIX, SDK_CUSTOM_EVENT_PREFIX.lower())

#: A control character (C0, DEL, C1): what an identifier may not hold (as in v1).
_CONTROL = re.compile("[\x00-\x1f\x7f-\x9f]")
#: A JSON string or a bracket: what the nesting depth is counted from (the body is known to be JSON).
_TOKEN = re.compile(rb'"(?:[^"\\]|\\.)*"|[\[\]{}]', re.DOTALL)

def _too_deep(body: bytes) -> bool:
    """Whether the JSON text ``body`` nests objects/arrays deeper than MAX_DEPTH (strings skipped, no recursion)."""
    depth = 0
    for match in _TOKEN.finditer(body):
        token = match[0]
        if token in (b"{", b"["):
            depth += 1
            if depth > MAX_DEPTH:
                return True
        elif token in (b"}", b"]"):
            depth -= 1
    return False


def _check_depth(body: bytes) -> None:
    if may_nest_too_deep(body) and _too_deep(body):
        raise EventError("invalid_json", f"body is not JSON callgate accepts: nested deeper than {MAX_DEPTH} levels")


def _check_values(event: V2Event, body: bytes | None = None) -> V2Event:
    """What the types cannot say: no control character in an identifier, a finite rate.

    With the ``body`` the event was decoded from, the identifiers are looked at only when the body could hold a
    control character in a string: JSON (msgspec) refuses one below 0x20 written as it is, so it comes from a
    backslash escape, or is DEL (0x7f) or a C1 character (not ASCII).  Sinch's bodies have none of these: two
    byte searches instead of ``isprintable`` over five identifiers, about 3.4k instructions less per callback.
    """
    call = event.call
    if body is None or not body.isascii() or body.find(b"\\") >= 0 or body.find(b"\x7f") >= 0:
        for name, value in (("callId", call.call_id), ("sessionId", call.session_id), ("projectId", call.project_id),
                            ("serviceId", call.service_id), ("callName", call.call_name)):
            if value is not None and not value.isprintable() and _CONTROL.search(value) is not None:
                raise EventError("invalid_field", f"call.{name}: a control character (such as NUL or a line break) "
                                                  f"in an identifier")
    rate = call.call_rate
    if rate is not None and rate.amount is not None and not rate.amount.is_finite():
        raise EventError("invalid_field", "call.callRate.amount: not a finite number")
    return event


def _invalid_field(exc: msgspec.ValidationError) -> EventError:
    path, message = error_path(exc)
    return EventError("invalid_field", f"{path or 'body'}: {message}")


def _refuse_non_json(body: bytes) -> None:
    """Raise ``invalid_json`` when ``body`` is not UTF-8, not JSON, or nested too deep (v1's first checks)."""
    try:
        body.decode("utf-8")
    except UnicodeDecodeError:
        raise EventError("invalid_json", not_utf8(body)) from None
    try:
        _RAW.decode(body)  # checks the whole text is JSON without building it (no integer or depth limit of Python's)
    except msgspec.DecodeError as error:
        raise EventError("invalid_json", not_json(body, str(error))) from None
    except RecursionError:
        raise EventError("invalid_json", f"body is not JSON callgate accepts: nested deeper than {MAX_DEPTH} "
                                         f"levels") from None
    _check_depth(body)


def _event_name(body: bytes) -> str:
    """The body's ``event``, after the checks before it (v1's order); raises the EventError for the first that fails."""
    try:
        top = _TOP.decode(body)
    except msgspec.ValidationError as error:
        raise EventError("not_an_object", f"body is JSON {got(str(error), 'not an object')}, expected an object") from None
    raw = top.get("event")
    if raw is None:
        raise EventError("missing_event", "event: missing")
    try:
        name = msgspec.json.decode(raw, type=str | None)
    except msgspec.ValidationError as error:
        raise EventError("missing_event", f"event: expected a string, got {got(str(error), 'not a string')}") from None
    if name is None:
        raise EventError("missing_event", "event: missing")
    if not name.strip():
        raise EventError("missing_event", "event: empty")
    return name


def _is_custom(folded: str) -> bool:
    """Whether a lower-cased event name is ``call.webhook.<name>`` (or the SDKs' ``call.customEvent.<name>``)."""
    return any(folded.startswith(prefix) and len(folded) > len(prefix) for prefix in _CUSTOM_PREFIXES)


def _slow_path(body: bytes) -> V2Event:
    """Decode what the tagged union did not take, or say exactly why the body is refused (in v1's order)."""
    _refuse_non_json(body)
    name = _event_name(body)
    folded = name.strip().lower()
    event_type = KNOWN_EVENT_TYPES.get(folded)
    custom = event_type is None and _is_custom(folded)
    if event_type is None and not custom:
        raise UnknownCallEvent(name) if folded.startswith("call.") else UnknownEvent(name, "a Voice API v2 call.* event")
    try:
        envelope = _ENVELOPE.decode(body)
    except msgspec.ValidationError as error:
        raise _invalid_field(error) from None
    if custom:
        return _check_values(V2CustomEvent(event=name.strip(), call=envelope.call, menu=envelope.menu))
    assert event_type is not None
    if event_type is V2CallMenu:
        if envelope.menu is None:
            raise EventError("invalid_field", "menu: missing (required in call.menu)")
        return _check_values(V2CallMenu(call=envelope.call, menu=envelope.menu))
    event: V2KnownEvent = event_type(call=envelope.call)  # type: ignore[assignment]  # one of V2KnownEvent's members
    return _check_values(event)


def decode_v2_event(body: bytes | bytearray | memoryview | str) -> V2Event:
    """Decode a v2 webhook body (the raw request bytes, UTF-8 JSON) into a typed event.

    Raises :class:`~callgate.protocols.errors.EventError` (``invalid_json``, ``not_an_object``,
    ``missing_event``, ``invalid_field``), :class:`UnknownCallEvent` for an unknown ``call.*``
    event, or :class:`~callgate.protocols.errors.UnknownEvent` for any other name (both ``unknown_event``).
    """
    if not isinstance(body, bytes):
        body = body.encode("utf-8", "surrogatepass") if isinstance(body, str) else bytes(body)
    assert isinstance(body, bytes)
    try:
        event: V2Event = _EVENTS.decode(body)
    except (msgspec.DecodeError, msgspec.ValidationError, RecursionError):
        return _slow_path(body)
    _check_depth(body)
    return _check_values(event, body)
