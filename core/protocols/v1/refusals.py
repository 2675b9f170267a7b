"""A v1 callback body the fast decoder did not take, read again as v1 always has: refused with the first problem's
code and message, or accepted (``"ICE"``, ``callId``, ``"version": "1"``, ...) in the canonical shape.

:func:`recheck` parses the body with the standard library's ``json`` (``parse_float=Decimal``), so
``invalid_json`` messages say where the JSON breaks (``body is not JSON: malformed at line 1 column 29``, in
callgate's words: :mod:`callgate.protocols.wording`), then checks, in this order:

1. nesting deeper than :data:`~callgate.protocols.errors.MAX_DEPTH`, then ``\\u`` escapes of unpaired
   surrogates (``invalid_json``);
2. an object (``not_an_object``), with an ``event`` string that is not empty (``missing_event``),
   one of ice/ace/pie/dice/notify in any case and surrounding whitespace (``unknown_event``);
3. the event's fields, in the order v1 has always checked them (the first bad field is the one
   reported: :data:`_ORDER`), each of its JSON type or ``null``, integers within 64 bits,
   identifiers without control characters, a parsable ``timestamp``, the required ``callid`` /
   ``menuResult`` (``invalid_field``, the message naming the field's path).

A body that passes is returned as its decoded object (the event's ``raw``) and a shallow copy
in the shape :mod:`callgate.protocols.v1.wire` takes: ``event`` lower-case, ``callid`` from ``callId``
where that is the spelling used, ``version`` an integer.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from decimal import Decimal
from typing import Any

from ..errors import CALLID_MAX, MAX_DEPTH, SECONDS_MAX, EventError, UnknownEvent
from ..errors import clip as _clip
from ..timestamps import parse_timestamp
from ..wording import not_json_at

__all__ = ["CONTROL", "recheck", "refuse_deep_nesting"]

#: The event names, as the fast decoder's tagged union has them.
_EVENTS = frozenset({"ice", "ace", "pie", "dice", "notify"})
#: A control character (C0, DEL, C1): what an identifier may not hold.
CONTROL = re.compile("[\x00-\x1f\x7f-\x9f]")
_INT_MIN, _INT_MAX = -(2 ** 63), 2 ** 63 - 1


# --------------------------------------------------------------------------- JSON, as v1 has always parsed it

def _no_constant(name: str) -> Any:
    raise EventError("invalid_json", f"body is not JSON: {name} is not a JSON value")


#: ``json.loads(..., parse_float=Decimal)``; NaN/Infinity are not JSON and are refused.
_JSON = json.JSONDecoder(parse_float=Decimal, parse_constant=_no_constant)
#: A ``\\uD800``-``\\uDFFF`` escape: the only way a JSON text can carry a UTF-16 surrogate (UTF-8 cannot).
_SURROGATE_ESCAPE = re.compile(r"\\u[dD][89a-fA-F]")
_SURROGATE = re.compile("[\ud800-\udfff]")


def _parse(body: bytes | bytearray | memoryview | str) -> Any:
    try:
        text = body if isinstance(body, str) else bytes(body).decode("utf-8")
    except UnicodeDecodeError as exc:
        raise EventError("invalid_json", f"body is not UTF-8: invalid byte at position {exc.start}") from None
    try:
        obj = _JSON.decode(text)
    except json.JSONDecodeError as exc:
        raise EventError("invalid_json", not_json_at(text, exc.pos)) from None
    except RecursionError:
        raise EventError("invalid_json", f"body is not JSON callgate accepts: nested deeper than {MAX_DEPTH} "
                                         f"levels") from None
    except EventError:
        raise
    except ValueError:  # the json module's limit on the digits of an integer (its message names a Python call)
        raise EventError("invalid_json", "body is not JSON callgate accepts: an integer of over 4300 digits") from None
    if text.count("{") + text.count("[") > MAX_DEPTH:  # only then can it be nested that deep
        refuse_deep_nesting(obj)
    if "\\" in text and _SURROGATE_ESCAPE.search(text) is not None:
        _refuse_lone_surrogates(obj)
    return obj


def refuse_deep_nesting(obj: Any) -> None:
    """Raise ``invalid_json`` when the decoded JSON ``obj`` nests objects/lists deeper than MAX_DEPTH."""
    stack = [(obj, 1)]
    while stack:
        value, depth = stack.pop()
        if depth > MAX_DEPTH:
            raise EventError("invalid_json", f"body is not JSON callgate accepts: nested deeper than {MAX_DEPTH} levels")
        if value.__class__ is dict:
            stack.extend((item, depth + 1) for item in value.values() if item.__class__ in (dict, list))
        elif value.__class__ is list:
            stack.extend((item, depth + 1) for item in value if item.__class__ in (dict, list))


def _refuse_lone_surrogates(obj: Any) -> None:
    """Raise ``invalid_json`` when a string (or a key) holds an unpaired surrogate.

    ``json`` joins an escaped pair (``\\ud83d\\ude00``) into one character and keeps an
    unpaired one as a lone surrogate: a Python str that is not Unicode text, that no UTF-8
    consumer (orjson in the logs, PostgreSQL, a CRM) accepts (RFC 8259 section 8.2; I-JSON,
    RFC 7493, forbids them).
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


# --------------------------------------------------------------------------- fields

def _kind(value: Any) -> str:
    """How a message names the JSON type of a decoded value (``a string``, ``an integer``, ``null``, ...)."""
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


def _string(obj: dict, key: str, prefix: str = "") -> str | None:
    value = obj.get(key)
    if value is None or value.__class__ is str:
        return value
    raise _wrong(prefix + key, "a string", value)


def _integer(obj: dict, key: str, prefix: str = "") -> None:
    value = obj.get(key)
    if value is not None and value.__class__ is not int:  # bool is a subclass of int, not int itself
        raise _wrong(prefix + key, "an integer", value)
    _in_range(prefix + key, value)


def _in_range(path: str, value: int | None) -> None:
    if value is not None and not _INT_MIN <= value <= _INT_MAX:
        raise EventError("invalid_field", f"{path}: integer out of range (more than 64 bits)")


def _seconds(obj: dict, key: str, prefix: str = "") -> None:
    """A duration: an integer, at most :data:`~callgate.protocols.errors.SECONDS_MAX` (as the wire type says)."""
    _integer(obj, key, prefix)
    value = obj.get(key)
    if value is not None and value > SECONDS_MAX:
        raise EventError("invalid_field", f"{prefix}{key}: expected an integer <= {SECONDS_MAX}")


def _object(obj: dict, key: str) -> dict | None:
    value = obj.get(key)
    if value is None or value.__class__ is dict:
        return value
    raise _wrong(key, "an object", value)


def _identifier(obj: dict, key: str) -> str | None:
    """A string that plugins key their records by (``callid``, ``applicationKey``, ``user``): a NUL or another
    control character in it could never be stored or delivered everywhere (PostgreSQL text, an HTTP header
    of a CRM delivery), so it is refused."""
    value = _string(obj, key)
    if value is not None and CONTROL.search(value) is not None:
        raise EventError("invalid_field", f"{key}: a control character (such as NUL or a line break) "
                                          f"in an identifier")
    return value


def _version(obj: dict) -> int | None:
    value = obj.get("version")
    if value is None:
        return None
    if value.__class__ is int:
        _in_range("version", value)
        return value
    # Lenient: a version sent as a string of digits ("1") is still the version.
    if value.__class__ is str and value.strip().isascii() and value.strip().isdigit() and len(value.strip()) <= 18:
        return int(value)
    raise _wrong("version", "an integer", value)


def _timestamp(obj: dict, key: str) -> None:
    value = _string(obj, key)
    if value is not None and parse_timestamp(value) is None:
        raise EventError("invalid_field", f"timestamp: not an ISO-8601 date-time: {_clip(value)!r}")


def _money(obj: dict, key: str) -> None:
    value = _object(obj, key)
    if value is None:
        return
    amount = value.get("amount")
    if amount is not None and amount.__class__ is not Decimal and amount.__class__ is not int:
        raise _wrong(f"{key}.amount", "a number", amount)
    _string(value, "currencyId", key + ".")


def _callee(obj: dict, key: str) -> None:
    value = _object(obj, key)
    if value is not None:
        _string(value, "type", key + ".")
        _string(value, "endpoint", key + ".")


def _amd(obj: dict, key: str) -> None:
    value = _object(obj, key)
    if value is not None:
        _string(value, "status", "amd.")
        _string(value, "reason", "amd.")
        _seconds(value, "duration", "amd.")


def _call_headers(obj: dict, key: str) -> None:
    value = obj.get(key)
    if value is None:
        return
    if value.__class__ is not list:
        raise _wrong(key, "a list", value)
    for i, item in enumerate(value):
        if item.__class__ is not dict:
            raise _wrong(f"{key}[{i}]", "an object", item)
        if _string(item, "key", f"{key}[{i}].") is None:
            raise EventError("invalid_field", f"{key}[{i}].key: missing")
        _string(item, "value", f"{key}[{i}].")


def _menu_result(obj: dict, key: str) -> None:
    menu = obj[key]
    for name in ("menuId", "type", "value", "inputMethod"):
        _string(menu, name, key + ".")


def _required_callid(obj: dict, event: str, canonical: dict) -> None:
    value = _identifier(obj, "callid" if obj.get("callid") is not None else "callId")
    if value is None:
        raise EventError("invalid_field", f"callid: missing (required in {event.upper()})")
    if not value:
        raise EventError("invalid_field", f"callid: empty (required in {event.upper()})")
    canonical["callid"] = _usable_callid(value)


def _notify_callid(obj: dict, canonical: dict) -> None:
    """A Notify's call id is optional (a Notify need not be about a call): an empty one is taken as none."""
    value = _identifier(obj, "callid") or _identifier(obj, "callId")
    canonical["callid"] = _usable_callid(value) if value else None


def _usable_callid(callid: str) -> str:
    """At most :data:`CALLID_MAX` characters (a plugin sends it in HTTP headers: a CRM delivery's); and not written
    like a v2 call's key: a v1 call's records are kept under its callid, a v2 call's under ``v2:<callId>``
    (``callgate.calls.call_key``), so such a v1 callid would be that v2 call to every plugin (its reservation, its CRM
    record)."""
    if len(callid) > CALLID_MAX:
        raise EventError("invalid_field", f"callid: expected a string of length <= {CALLID_MAX}")
    if callid.startswith("v2:"):
        raise EventError("invalid_field", "callid: may not start with 'v2:' (callgate keeps Voice API v2 calls' "
                                          "records under such ids)")
    return callid


def _required_menu_result(obj: dict) -> None:
    menu = obj.get("menuResult")
    if menu is None:
        raise EventError("invalid_field", "menuResult: missing (required in PIE)")
    if menu.__class__ is not dict:
        raise _wrong("menuResult", "an object", menu)


def _base(obj: dict, canonical: dict) -> None:
    """The fields every event has, in v1's order."""
    canonical["version"] = _version(obj)
    _string(obj, "custom")
    _identifier(obj, "applicationKey")
    _timestamp(obj, "timestamp")
    _identifier(obj, "user")


_Check = Callable[[dict, str], Any]

#: The fields after ``callid`` of each event, in the order v1 checks them.
_ORDER: dict[str, tuple[tuple[str, _Check], ...]] = {
    "ice": (("callResourceUrl", _string), ("userRate", _money), ("cli", _string), ("to", _callee),
            ("domain", _string), ("originationType", _string), ("duration", _seconds), ("rdnis", _string),
            ("callHeaders", _call_headers)),
    "ace": (("amd", _amd), ("conferenceId", _string)),
    "pie": (("menuResult", _menu_result),),
    "dice": (("reason", _string), ("result", _string), ("debit", _money), ("userRate", _money), ("to", _callee),
             ("duration", _seconds), ("from", _string), ("callHeaders", _call_headers)),
    "notify": (("conferenceId", _string), ("type", _string), ("destination", _string), ("amd", _amd),
               ("errorCode", _integer), ("errorMsg", _string)),
}


def _event_name(obj: Any) -> str:
    if obj.__class__ is not dict:
        raise EventError("not_an_object", f"body is JSON {_kind(obj)}, expected an object")
    name = obj.get("event")
    if name.__class__ is not str:
        raise EventError("missing_event", "event: missing" if name is None
                         else f"event: expected a string, got {_kind(name)}")
    if not name.strip():
        raise EventError("missing_event", "event: empty")
    event = name.strip().lower()
    if event not in _EVENTS:
        raise UnknownEvent(name)
    return event


def recheck(body: bytes | bytearray | memoryview | str) -> tuple[dict[str, Any], dict[str, Any]]:
    """``(raw, canonical)`` of a v1 body: its decoded object, and a copy in the shape
    :data:`~callgate.protocols.v1.wire.V1WireEvent` takes; or the :class:`EventError` v1 has always
    raised for it (see the module docstring)."""
    obj = _parse(body)
    event = _event_name(obj)
    canonical = dict(obj, event=event)
    if event == "pie":  # PIE's callid and menuResult come before the fields every event has
        _required_callid(obj, event, canonical)
        _required_menu_result(obj)
        _base(obj, canonical)
    elif event == "notify":
        _notify_callid(obj, canonical)
        _base(obj, canonical)
    else:
        _base(obj, canonical)
        _required_callid(obj, event, canonical)
    for key, check in _ORDER[event]:
        check(obj, key)
    return obj, canonical
