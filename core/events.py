"""Sinch Voice v1 callback events (ICE, ACE, PIE, DICE, Notify) as typed, frozen objects.

``decode_event(body)`` turns the raw request body into one of :class:`Ice`,
:class:`Ace`, :class:`Pie`, :class:`Dice` or :class:`Notify` in a single pass:
the bytes are parsed once (``json.loads`` with ``parse_float=Decimal``, so money
is never a float) and the resulting dict is checked and converted field by field.

The decoder is strict about *types* and lenient about *values*, because Sinch is:

* unknown fields are kept (``event.raw`` is the whole decoded object);
* open enums stay plain strings -- a new DICE reason, Notify type or AMD status
  never makes a body undecodable; the ``*_REASONS``/``*_TYPES`` constants below
  list the values known today, for documentation and tests only;
* values Sinch sends in varying case (``domain``, ``originationType``,
  ``to.type``, ``menuResult.type``, ``menuResult.inputMethod``, ``amd.status``)
  are stored lower-case; DICE ``reason``/``result`` are kept upper-case as sent
  (only stripped);
* ``callid`` is also accepted as ``callId``; ``null`` means absent;
* ``timestamp`` is a timezone-aware UTC datetime: ``Z``, ``+hh:mm`` offsets and
  up to 9 fractional digits (.NET sends 7) are accepted, a value without zone is
  taken as UTC.

A string field holding a number, an integer field holding ``true`` or ``4.0``,
an object field holding a string, ... is an :class:`EventError` whose message
names the field path (``to.endpoint: expected a string, got a number``).
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from decimal import Decimal
from typing import Any

from .phone import normalize_caller

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
    "Ace",
    "Amd",
    "BaseEvent",
    "CallHeader",
    "Destination",
    "Dice",
    "Event",
    "EventError",
    "Ice",
    "MenuResult",
    "Money",
    "Notify",
    "Pie",
    "UnknownEvent",
    "decode_event",
    "parse_timestamp",
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


# --------------------------------------------------------------------------- errors

class EventError(ValueError):
    """The body is not a Sinch Voice event callgate can read.

    ``code`` is one of ``invalid_json``, ``not_an_object``, ``missing_event``,
    ``invalid_field`` and ``unknown_event`` (see :class:`UnknownEvent`).
    """

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


class UnknownEvent(EventError):
    """The body is a JSON object whose ``event`` is not ice/ace/pie/dice/notify.

    ``event`` is the value as sent (a newer Sinch event, or another product's webhook).
    """

    def __init__(self, event: str) -> None:
        super().__init__("unknown_event", f"unknown event {_clip(event)!r}: expected one of ice, ace, pie, dice, notify")
        self.event = event


# --------------------------------------------------------------------------- value types

@dataclass(frozen=True, slots=True)
class Destination:
    """``to``: who was called.  ``type`` lower-case (``did``, ``number``, ``username``, ``sip``, ``conference``)."""

    type: str | None
    endpoint: str | None


@dataclass(frozen=True, slots=True)
class Money:
    """``userRate`` / ``debit``.  ``amount`` is exact (a Decimal of the JSON literal, never a float)."""

    currency_id: str | None
    amount: Decimal | None


@dataclass(frozen=True, slots=True)
class CallHeader:
    """One entry of ``callHeaders`` (set by the calling SDK client or by ``connectMxp``)."""

    key: str
    value: str


@dataclass(frozen=True, slots=True)
class Amd:
    """Answering-machine detection result.  ``status`` lower-case (``machine``, ``human``, ``notsure``, ...)."""

    status: str | None
    reason: str | None
    duration: int | None


@dataclass(frozen=True, slots=True)
class MenuResult:
    """PIE ``menuResult``.  ``type`` and ``input_method`` lower-case; ``value`` as sent (digits or ``return(x)``'s x)."""

    menu_id: str | None
    type: str | None
    value: str | None
    input_method: str | None


# --------------------------------------------------------------------------- events

@dataclass(frozen=True, slots=True, kw_only=True)
class BaseEvent:
    """Fields every event has.  ``raw`` is the decoded JSON object, unknown fields included.

    ``notes`` is a scratch space for the plugins handling this one callback, shared in
    plugin order: a plugin writes under its own name (``call.notes["credit_check"] = {...}``)
    and plugins after it may read that.  It starts empty for every callback.
    """

    event: str
    raw: dict[str, Any] = field(repr=False, compare=False)
    notes: dict[str, Any] = field(default_factory=dict, repr=False, compare=False)
    version: int | None = None
    custom: str | None = None
    application_key: str | None = None
    timestamp: datetime | None = None
    user: str | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class Ice(BaseEvent):
    """Incoming Call Event: a call reached Sinch (PSTN call to the app's number, SIP, or an
    in-app client calling a number, a user, SIP or a conference).  Must be answered with SVAML."""

    callid: str
    call_resource_url: str | None = None
    user_rate: Money | None = None
    cli: str | None = None
    to: Destination | None = None
    domain: str | None = None
    origination_type: str | None = None
    duration: int | None = None
    rdnis: str | None = None
    call_headers: tuple[CallHeader, ...] = ()

    @property
    def caller(self) -> str | None:
        """``cli`` normalised: ``"+46701234567"``, ``"private"`` for a withheld/empty one, None when absent."""
        return normalize_caller(self.cli)


@dataclass(frozen=True, slots=True, kw_only=True)
class Ace(BaseEvent):
    """Answered Call Event: the callee answered an outgoing leg (connectPstn/connectSip, or a
    callout with ``enableAce``).  ``amd`` is set when AMD was enabled.  Answer with SVAML."""

    callid: str
    amd: Amd | None = None
    conference_id: str | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class Pie(BaseEvent):
    """Prompt Input Event: a ``runMenu`` produced a result (digits, ``return(x)``, timeout, hang-up,
    ...), or a conference participant pressed keys in ``detect`` mode.  Answer with SVAML."""

    callid: str
    menu_result: MenuResult


@dataclass(frozen=True, slots=True, kw_only=True)
class Dice(BaseEvent):
    """Disconnected Call Event: the call ended (``reason``/``result`` upper-case as sent; open sets).
    Informational: acknowledge with 200 ``{}``."""

    callid: str
    reason: str | None = None
    result: str | None = None
    debit: Money | None = None
    user_rate: Money | None = None
    to: Destination | None = None
    duration: int | None = None
    from_: str | None = None
    call_headers: tuple[CallHeader, ...] = ()


@dataclass(frozen=True, slots=True, kw_only=True)
class Notify(BaseEvent):
    """Notification: recording/transcription available, async AMD result or beep, calling error
    (illegal SVAML).  Sparse; ``callid`` may be absent (conference recordings).  Acknowledge with 200 ``{}``."""

    callid: str | None = None
    conference_id: str | None = None
    type: str | None = None
    destination: str | None = None
    amd: Amd | None = None
    error_code: int | None = None
    error_msg: str | None = None


Event = Ice | Ace | Pie | Dice | Notify


# --------------------------------------------------------------------------- timestamps

_TIMESTAMP = re.compile(
    r"(\d{4})-(\d\d)-(\d\d)[Tt ](\d\d):(\d\d)(?::(\d\d)(?:[.,](\d{1,9}))?)?"
    r"(?:([Zz])|([+-])(\d\d):?(\d\d))?",
    re.ASCII,
)
_UTC = timezone.utc


def parse_timestamp(value: str) -> datetime | None:
    """An ISO-8601 date-time as Sinch sends it -> an aware UTC datetime; None when unparsable.

    Accepts ``Z``/``z``, ``+hh:mm``/``+hhmm`` offsets, a missing zone (taken as UTC),
    ``T`` or a space between date and time, and 1-9 fractional digits (truncated to
    microseconds).  Shared with :mod:`callgate.signing` for ``x-timestamp``.
    """
    m = _TIMESTAMP.fullmatch(value)
    if m is None:
        return None
    try:
        try:
            dt = datetime.fromisoformat(value)  # C fast path for the usual shapes
        except ValueError:  # shapes the regex allows but fromisoformat doesn't (e.g. a lower-case z)
            year, month, day, hour, minute, second, frac, _z, sign, off_h, off_m = m.groups()
            tz = None
            if sign is not None:
                offset = timedelta(hours=int(off_h), minutes=int(off_m))
                tz = timezone(-offset if sign == "-" else offset)
            dt = datetime(int(year), int(month), int(day), int(hour), int(minute),
                          int(second) if second else 0, int(frac[:6].ljust(6, "0")) if frac else 0, tz)
        tz = dt.tzinfo
        if tz is _UTC:
            return dt
        if tz is None:
            return dt.replace(tzinfo=_UTC)
        return dt.astimezone(_UTC)
    except (ValueError, OverflowError):
        return None


# --------------------------------------------------------------------------- decoding helpers

def _clip(value: str, limit: int = 64) -> str:
    return value if len(value) <= limit else value[:limit] + "..."


def _kind(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int):
        return "an integer"
    if isinstance(value, (Decimal, float)):
        return "a number"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, list):
        return "a list"
    if isinstance(value, dict):
        return "an object"
    return type(value).__name__


def _wrong(path: str, expected: str, value: Any) -> EventError:
    return EventError("invalid_field", f"{path}: expected {expected}, got {_kind(value)}")


def _str(obj: dict, key: str, prefix: str = "") -> str | None:
    value = obj.get(key)
    if value is None or value.__class__ is str:
        return value
    raise _wrong(prefix + key, "a string", value)


def _lower(obj: dict, key: str, prefix: str = "") -> str | None:
    value = obj.get(key)
    if value is None:
        return None
    if value.__class__ is str:
        return value.strip().lower()
    raise _wrong(prefix + key, "a string", value)


def _stripped(obj: dict, key: str) -> str | None:
    value = obj.get(key)
    if value is None:
        return None
    if value.__class__ is str:
        return value.strip()
    raise _wrong(key, "a string", value)


#: Integer fields hold 64-bit values: Sinch's are small, and a larger one would break every
#: consumer downstream (databases' bigint, orjson in the logs) instead of being refused here.
_INT_MIN, _INT_MAX = -(2 ** 63), 2 ** 63 - 1


def _in_range(path: str, value: int) -> int:
    if _INT_MIN <= value <= _INT_MAX:
        return value
    raise EventError("invalid_field", f"{path}: integer out of range (more than 64 bits)")


def _int(obj: dict, key: str, prefix: str = "") -> int | None:
    value = obj.get(key)
    if value is None:
        return None
    if value.__class__ is int:  # bool is a subclass of int, not int itself
        return _in_range(prefix + key, value)
    raise _wrong(prefix + key, "an integer", value)


def _version(obj: dict) -> int | None:
    value = obj.get("version")
    if value is None:
        return None
    if value.__class__ is int:
        return _in_range("version", value)
    # Lenient: a version sent as a string of digits ("1") is still the version.
    if value.__class__ is str and value.strip().isascii() and value.strip().isdigit() and len(value.strip()) <= 18:
        return int(value)
    raise _wrong("version", "an integer", value)


def _timestamp(obj: dict) -> datetime | None:
    value = obj.get("timestamp")
    if value is None:
        return None
    if value.__class__ is not str:
        raise _wrong("timestamp", "a string", value)
    parsed = parse_timestamp(value)
    if parsed is None:
        raise EventError("invalid_field", f"timestamp: not an ISO-8601 date-time: {_clip(value)!r}")
    return parsed


def _object(obj: dict, key: str, prefix: str = "") -> dict | None:
    value = obj.get(key)
    if value is None or value.__class__ is dict:
        return value
    raise _wrong(prefix + key, "an object", value)


def _callid(obj: dict, event: str) -> str:
    value = obj.get("callid")
    key = "callid"
    if value is None:
        value = obj.get("callId")
        key = "callId"
    if value is None:
        raise EventError("invalid_field", f"callid: missing (required in {event.upper()})")
    if value.__class__ is not str:
        raise _wrong(key, "a string", value)
    return value


def _money(obj: dict, key: str) -> Money | None:
    value = _object(obj, key)
    if value is None:
        return None
    amount = value.get("amount")
    if amount is not None and amount.__class__ is not Decimal:
        if amount.__class__ is int:
            amount = Decimal(amount)
        else:
            raise _wrong(f"{key}.amount", "a number", amount)
    return Money(_str(value, "currencyId", key + "."), amount)


def _destination(obj: dict, key: str) -> Destination | None:
    value = _object(obj, key)
    if value is None:
        return None
    prefix = key + "."
    return Destination(_lower(value, "type", prefix), _str(value, "endpoint", prefix))


def _amd(obj: dict) -> Amd | None:
    value = _object(obj, "amd")
    if value is None:
        return None
    return Amd(_lower(value, "status", "amd."), _str(value, "reason", "amd."), _int(value, "duration", "amd."))


def _call_headers(obj: dict) -> tuple[CallHeader, ...]:
    value = obj.get("callHeaders")
    if value is None:
        return ()
    if value.__class__ is not list:
        raise _wrong("callHeaders", "a list", value)
    headers = []
    for i, item in enumerate(value):
        if item.__class__ is not dict:
            raise _wrong(f"callHeaders[{i}]", "an object", item)
        prefix = f"callHeaders[{i}]."
        key = _str(item, "key", prefix)
        if key is None:
            raise EventError("invalid_field", f"callHeaders[{i}].key: missing")
        headers.append(CallHeader(key, _str(item, "value", prefix) or ""))
    return tuple(headers)


# --------------------------------------------------------------------------- per-event decoders

def _base_fields(obj: dict, event: str) -> dict[str, Any]:
    """The fields every event has (BaseEvent's)."""
    return {"event": event, "raw": obj, "version": _version(obj), "custom": _str(obj, "custom"),
            "application_key": _str(obj, "applicationKey"), "timestamp": _timestamp(obj), "user": _str(obj, "user")}


def _ice(obj: dict, event: str) -> Ice:
    return Ice(
        **_base_fields(obj, event),
        callid=_callid(obj, event),
        call_resource_url=_str(obj, "callResourceUrl"),
        user_rate=_money(obj, "userRate"),
        cli=_str(obj, "cli"),
        to=_destination(obj, "to"),
        domain=_lower(obj, "domain"),
        origination_type=_lower(obj, "originationType"),
        duration=_int(obj, "duration"),
        rdnis=_str(obj, "rdnis"),
        call_headers=_call_headers(obj),
    )


def _ace(obj: dict, event: str) -> Ace:
    return Ace(
        **_base_fields(obj, event),
        callid=_callid(obj, event),
        amd=_amd(obj),
        conference_id=_str(obj, "conferenceId"),
    )


def _pie(obj: dict, event: str) -> Pie:
    callid = _callid(obj, event)
    menu = _object(obj, "menuResult")
    if menu is None:
        raise EventError("invalid_field", "menuResult: missing (required in PIE)")
    p = "menuResult."
    return Pie(
        **_base_fields(obj, event),
        callid=callid,
        menu_result=MenuResult(_str(menu, "menuId", p), _lower(menu, "type", p), _str(menu, "value", p),
                               _lower(menu, "inputMethod", p)),
    )


def _dice(obj: dict, event: str) -> Dice:
    return Dice(
        **_base_fields(obj, event),
        callid=_callid(obj, event),
        reason=_stripped(obj, "reason"),
        result=_stripped(obj, "result"),
        debit=_money(obj, "debit"),
        user_rate=_money(obj, "userRate"),
        to=_destination(obj, "to"),
        duration=_int(obj, "duration"),
        from_=_str(obj, "from"),
        call_headers=_call_headers(obj),
    )


def _notify(obj: dict, event: str) -> Notify:
    callid = _str(obj, "callid")
    if callid is None:
        callid = _str(obj, "callId")
    return Notify(
        **_base_fields(obj, event),
        callid=callid,
        conference_id=_str(obj, "conferenceId"),
        type=_str(obj, "type"),
        destination=_str(obj, "destination"),
        amd=_amd(obj),
        error_code=_int(obj, "errorCode"),
        error_msg=_str(obj, "errorMsg"),
    )


_DECODERS = {"ice": _ice, "ace": _ace, "pie": _pie, "dice": _dice, "notify": _notify}


def _no_constant(name: str) -> Any:
    raise ValueError(f"{name} is not valid JSON")


#: ``json.loads(..., parse_float=Decimal)`` with the decoder built once (json.loads builds one per call);
#: NaN/Infinity are not JSON and are refused.
_JSON = json.JSONDecoder(parse_float=Decimal, parse_constant=_no_constant)


#: Objects and arrays nested deeper than this are refused (a Sinch event nests 3 levels).  Without
#: a limit of its own, how deep a body may nest would depend on the interpreter's recursion limit
#: and on the stack depth where it is decoded, and a plugin walking ``raw`` recursively could fail.
MAX_DEPTH = 64


def _refuse_deep_nesting(obj: Any) -> None:
    stack = [(obj, 1)]
    while stack:
        value, depth = stack.pop()
        if depth > MAX_DEPTH:
            raise EventError("invalid_json", f"body is not JSON callgate accepts: nested deeper than {MAX_DEPTH} levels")
        if value.__class__ is dict:
            stack.extend((item, depth + 1) for item in value.values() if item.__class__ in (dict, list))
        elif value.__class__ is list:
            stack.extend((item, depth + 1) for item in value if item.__class__ in (dict, list))


#: A ``\\uD800``-``\\uDFFF`` escape: the only way a JSON text can carry a UTF-16 surrogate (UTF-8 cannot).
_SURROGATE_ESCAPE = re.compile(r"\\u[dD][89a-fA-F]")
_SURROGATE = re.compile("[\ud800-\udfff]")


def _refuse_lone_surrogates(obj: Any) -> None:
    """Raise ``invalid_json`` when a string (or a key) holds an unpaired surrogate.

    ``json`` joins an escaped pair (``\\ud83d\\ude00``) into one character and keeps an
    unpaired one as a lone surrogate: a Python str that is not Unicode text, that no UTF-8
    consumer (orjson in the logs, PostgreSQL, a CRM) accepts.  Such a body is refused here,
    before any of them sees it (RFC 8259 section 8.2; I-JSON, RFC 7493, forbids them).
    Only called when the text has such an escape, so normal bodies pay one regex search.
    """
    stack: list[tuple[str, Any]] = [("", obj)]
    while stack:
        path, value = stack.pop()
        if value.__class__ is str:
            if _SURROGATE.search(value):
                raise EventError("invalid_json", f"{path or 'body'}: a \\u escape of an unpaired UTF-16 surrogate "
                                                 f"(not Unicode text)")
        elif value.__class__ is dict:
            for key, item in value.items():
                where = f"{path}.{_safe_key(key)}" if path else _safe_key(key)
                if _SURROGATE.search(key):
                    raise EventError("invalid_json", f"{where}: a \\u escape of an unpaired UTF-16 surrogate "
                                                     f"in a key (not Unicode text)")
                stack.append((where, item))
        elif value.__class__ is list:
            stack.extend((f"{path}[{i}]", item) for i, item in enumerate(value))


def _safe_key(key: str) -> str:
    return _clip(_SURROGATE.sub("?", key), 32)


def decode_event(body: bytes | bytearray | memoryview | str) -> Event:
    """Decode a callback body (the raw request bytes, UTF-8 JSON) into a typed event.

    Raises :class:`EventError` (``invalid_json``, ``not_an_object``, ``missing_event``,
    ``invalid_field``) or :class:`UnknownEvent` (``unknown_event``).
    """
    try:
        text = body if isinstance(body, str) else bytes(body).decode("utf-8")
    except UnicodeDecodeError as exc:
        raise EventError("invalid_json", f"body is not UTF-8: invalid byte at position {exc.start}") from None
    try:
        obj = _JSON.decode(text)
    except json.JSONDecodeError as exc:
        raise EventError("invalid_json", f"body is not JSON: {exc.msg} at line {exc.lineno} column {exc.colno}") from None
    except (ValueError, RecursionError) as exc:
        raise EventError("invalid_json", f"body is not JSON: {exc}") from None
    if text.count("[") + text.count("{") > MAX_DEPTH:      # only then can it be nested that deep
        _refuse_deep_nesting(obj)
    if _SURROGATE_ESCAPE.search(text) is not None:
        _refuse_lone_surrogates(obj)
    if obj.__class__ is not dict:
        raise EventError("not_an_object", f"body is JSON {_kind(obj)}, expected an object")
    name = obj.get("event")
    if name.__class__ is not str:
        raise EventError("missing_event", "event: missing" if name is None
                         else f"event: expected a string, got {_kind(name)}")
    if not name.strip():
        raise EventError("missing_event", "event: empty")
    event = name.strip().lower()
    decoder = _DECODERS.get(event)
    if decoder is None:
        raise UnknownEvent(name)
    return decoder(obj, event)
