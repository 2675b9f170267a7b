"""The v1 decoder as it was before it moved to msgspec (hand-written on ``json``, objects built through drafts),
kept only as the reference ``test_v1_decode_agreement.py`` compares ``callgate.protocols.v1.decode`` with.

Copied from ``core/protocols/v1/decode.py`` at commit 2aab486 (imports made absolute, the
documentation-only known-value constants left out), changed since in one place: the ``invalid_json`` message
for text that does not parse is in callgate's words (:func:`callgate.protocols.wording.not_json_at`), as the
decoder's now is, instead of the ``json`` module's;
callgate never imports it.  Its docstring described the rules the new decoder keeps.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from datetime import datetime
from decimal import Decimal
from typing import Any

from callgate.calls import AmdResult, Answered, Callee, Ended, Header, Incoming, MenuInput, MenuResult, Money, Notice
from callgate.drafts import draft_class
from callgate.drafts import new as _new
from callgate.protocols.errors import MAX_DEPTH, EventError, UnknownEvent
from callgate.protocols.errors import clip as _clip
from callgate.protocols.timestamps import parse_timestamp
from callgate.protocols.wording import not_json_at

__all__ = [
    "EventError",
    "UnknownEvent",
    "V1Event",
    "decode_event",
]

# The known-value constants (DICE_REASONS, ...) are documentation only, never used by the decoder: see
# callgate.protocols.v1.decode.

#: What :func:`decode_event` returns.
V1Event = Incoming | Answered | MenuInput | Ended | Notice


# --------------------------------------------------------------------------- drafts
# How the decoders build the frozen objects of callgate.calls without their ``__init__`` (see callgate.drafts).
# A decoder must set every field of its draft: tests/test_events.py checks that for every decoder.

_CalleeDraft = draft_class(Callee)
_MoneyDraft = draft_class(Money)
_HeaderDraft = draft_class(Header)
_AmdDraft = draft_class(AmdResult)
_MenuResultDraft = draft_class(MenuResult)
_IncomingDraft = draft_class(Incoming)
_AnsweredDraft = draft_class(Answered)
_MenuInputDraft = draft_class(MenuInput)
_EndedDraft = draft_class(Ended)
_NoticeDraft = draft_class(Notice)


# --------------------------------------------------------------------------- decoding helpers

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


_SECONDS_MAX = 2 ** 31 - 1


def _seconds(obj: dict, key: str, prefix: str = "") -> int | None:
    """A duration: at most 2^31 - 1 seconds (since 0.4.0)."""
    value = _int(obj, key, prefix)
    if value is not None and value > _SECONDS_MAX:
        raise EventError("invalid_field", f"{prefix}{key}: expected an integer <= {_SECONDS_MAX}")
    return value


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


#: A control character (C0, DEL, C1): what an identifier may not hold.
_CONTROL = re.compile("[\x00-\x1f\x7f-\x9f]")


def _identifier(obj: dict, key: str) -> str | None:
    """A string that plugins key their records by (``callid``, ``applicationKey``, ``user``): a NUL or another
    control character in it could never be stored or delivered everywhere (PostgreSQL text, an HTTP header
    of a CRM delivery), so it is refused.  The decoders call this only for a value that is not
    ``str.isprintable()``, a C check that lets the usual value through at once."""
    value = _str(obj, key)
    if value is not None and _CONTROL.search(value) is not None:
        raise EventError("invalid_field", f"{key}: a control character (such as NUL or a line break) "
                                          f"in an identifier")
    return value


def _callid(obj: dict, event: str) -> str:
    key = "callid" if obj.get("callid") is not None else "callId"
    value = _identifier(obj, key)
    if value is None:
        raise EventError("invalid_field", f"callid: missing (required in {event.upper()})")
    if not value:
        raise EventError("invalid_field", f"callid: empty (required in {event.upper()})")
    return _usable_callid(value)


def _usable_callid(callid: str) -> str:
    """Since 0.4.0: a v1 callid is at most 256 characters, and may not look like a v2 call's key."""
    if len(callid) > 256:
        raise EventError("invalid_field", "callid: expected a string of length <= 256")
    if callid.startswith("v2:"):
        raise EventError("invalid_field", "callid: may not start with 'v2:' (callgate keeps Voice API v2 calls' "
                                          "records under such ids)")
    return callid


def _money(obj: dict, key: str) -> Money | None:
    value = obj.get(key)
    if value is None:
        return None
    if value.__class__ is not dict:
        raise _wrong(key, "an object", value)
    amount = value.get("amount")
    if amount is not None and amount.__class__ is not Decimal:
        if amount.__class__ is int:
            amount = Decimal(amount)
        else:
            raise _wrong(f"{key}.amount", "a number", amount)
    currency = value.get("currencyId")
    if currency is not None and currency.__class__ is not str:
        raise _wrong(f"{key}.currencyId", "a string", currency)
    money = _new(_MoneyDraft)
    money.currency = currency
    money.amount = amount
    money.__class__ = Money
    return money


def _callee(obj: dict, key: str) -> Callee | None:
    value = obj.get(key)
    if value is None:
        return None
    if value.__class__ is not dict:
        raise _wrong(key, "an object", value)
    type_ = value.get("type")
    endpoint = value.get("endpoint")
    callee = _new(_CalleeDraft)
    callee.type = type_.strip().lower() if type_.__class__ is str else _lower(value, "type", key + ".")
    callee.endpoint = endpoint if endpoint is None or endpoint.__class__ is str else _str(value, "endpoint", key + ".")
    callee.__class__ = Callee
    return callee


def _amd(obj: dict) -> AmdResult | None:
    value = _object(obj, "amd")
    if value is None:
        return None
    amd = _new(_AmdDraft)
    amd.status = _lower(value, "status", "amd.")
    amd.reason = _str(value, "reason", "amd.")
    amd.duration = _seconds(value, "duration", "amd.")
    amd.__class__ = AmdResult
    return amd


def _menu_result(value: dict) -> MenuResult:
    get = value.get
    p = "menuResult."
    menu_id, type_, text, method = get("menuId"), get("type"), get("value"), get("inputMethod")
    menu = _new(_MenuResultDraft)
    menu.menu_id = menu_id if menu_id is None or menu_id.__class__ is str else _str(value, "menuId", p)
    menu.type = type_.strip().lower() if type_.__class__ is str else _lower(value, "type", p)
    menu.value = text if text is None or text.__class__ is str else _str(value, "value", p)
    menu.input_method = method.strip().lower() if method.__class__ is str else _lower(value, "inputMethod", p)
    menu.__class__ = MenuResult
    return menu


def _call_headers(obj: dict) -> tuple[Header, ...]:
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
        header = _new(_HeaderDraft)
        header.key = key
        header.value = _str(item, "value", prefix) or ""
        header.__class__ = Header
        headers.append(header)
    return tuple(headers)


# --------------------------------------------------------------------------- per-event decoders
# Each decoder checks the fields in the order the error messages depend on (the first bad field
# is the one reported), so keep that order when editing.
#
# The usual value of a field is taken inline and anything else goes to the field's helper, which
# returns the same value or raises the field's error:
#     cli = get("cli")
#     ice.cli = cli if cli is None or cli.__class__ is str else _str(obj, "cli")
# is _str(obj, "cli") without a Python call for the usual value (~300 instructions per field).

def _fill_base(draft: Any, obj: dict, event: str) -> None:
    """Set the fields every event has (CallEvent's) on a draft."""
    get = obj.get
    draft.generation = "v1"
    draft.session_id = None
    draft.event = event
    draft.raw = obj
    draft.notes = {}
    version = get("version")
    draft.version = version if version.__class__ is int and _INT_MIN <= version <= _INT_MAX else _version(obj)
    custom = get("custom")
    draft.custom = custom if custom is None or custom.__class__ is str else _str(obj, "custom")
    key = get("applicationKey")
    draft.application = (key if key is None or (key.__class__ is str and key.isprintable())
                         else _identifier(obj, "applicationKey"))
    draft.timestamp = _timestamp(obj)
    user = get("user")
    draft.user = user if user is None or (user.__class__ is str and user.isprintable()) else _identifier(obj, "user")


def _call_draft(draft_class: type, obj: dict, event: str) -> Any:
    """A new draft with the base fields and then the required ``callid`` set (ICE, ACE, DICE)."""
    draft = _new(draft_class)
    _fill_base(draft, obj, event)
    callid = obj.get("callid")
    draft.callid = callid if callid.__class__ is str and callid and callid.isprintable() and len(callid) <= 256 \
        and not callid.startswith("v2:") else _callid(obj, event)
    return draft


def _ice(obj: dict, event: str) -> Incoming:
    get = obj.get
    ice = _call_draft(_IncomingDraft, obj, event)
    url = get("callResourceUrl")
    ice.call_resource_url = url if url is None or url.__class__ is str else _str(obj, "callResourceUrl")
    ice.rate = _money(obj, "userRate")
    cli = get("cli")
    ice.cli = cli if cli is None or cli.__class__ is str else _str(obj, "cli")
    ice.to = _callee(obj, "to")
    domain = get("domain")
    ice.domain = domain.strip().lower() if domain.__class__ is str else _lower(obj, "domain")
    origination = get("originationType")
    ice.origination_type = (origination.strip().lower() if origination.__class__ is str
                            else _lower(obj, "originationType"))
    duration = get("duration")
    ice.duration = None if duration is None else _seconds(obj, "duration")
    rdnis = get("rdnis")
    ice.rdnis = rdnis if rdnis is None or rdnis.__class__ is str else _str(obj, "rdnis")
    ice.headers = () if get("callHeaders") is None else _call_headers(obj)
    ice.__class__ = Incoming
    return ice


def _ace(obj: dict, event: str) -> Answered:
    get = obj.get
    ace = _call_draft(_AnsweredDraft, obj, event)
    ace.amd = None if get("amd") is None else _amd(obj)
    conference = get("conferenceId")
    ace.conference_id = conference if conference is None or conference.__class__ is str else _str(obj, "conferenceId")
    ace.cli = None    # v1 ACE names neither caller nor callee
    ace.to = None
    ace.__class__ = Answered
    return ace


def _pie(obj: dict, event: str) -> MenuInput:
    pie = _new(_MenuInputDraft)
    callid = obj.get("callid")
    pie.callid = (callid if callid.__class__ is str and callid and callid.isprintable() and len(callid) <= 256
                  and not callid.startswith("v2:") else _callid(obj, event))
    menu = obj.get("menuResult")
    if menu.__class__ is not dict:
        if menu is None:
            raise EventError("invalid_field", "menuResult: missing (required in PIE)")
        raise _wrong("menuResult", "an object", menu)
    _fill_base(pie, obj, event)
    pie.menu_result = _menu_result(menu)
    pie.cli = pie.to = None                   # a PIE names neither caller nor callee
    pie.__class__ = MenuInput
    return pie


def _dice(obj: dict, event: str) -> Ended:
    get = obj.get
    dice = _call_draft(_EndedDraft, obj, event)
    reason = get("reason")
    dice.reason = reason.strip() if reason.__class__ is str else _stripped(obj, "reason")
    result = get("result")
    dice.result = result.strip() if result.__class__ is str else _stripped(obj, "result")
    dice.debit = _money(obj, "debit")
    dice.rate = _money(obj, "userRate")
    dice.to = _callee(obj, "to")
    duration = get("duration")
    dice.duration = duration if duration.__class__ is int and _INT_MIN <= duration <= _SECONDS_MAX \
        else _seconds(obj, "duration")
    from_ = get("from")
    dice.cli = from_ if from_ is None or from_.__class__ is str else _str(obj, "from")
    dice.headers = () if get("callHeaders") is None else _call_headers(obj)
    dice.answered_at = None   # v2 only
    dice.ended_at = None
    dice.__class__ = Ended
    return dice


def _notify(obj: dict, event: str) -> Notice:
    notify = _new(_NoticeDraft)
    callid = _identifier(obj, "callid") or _identifier(obj, "callId")
    notify.callid = _usable_callid(callid) if callid else None  # empty: none
    _fill_base(notify, obj, event)
    notify.conference_id = _str(obj, "conferenceId")
    notify.type = _str(obj, "type")
    notify.destination = _str(obj, "destination")
    notify.amd = _amd(obj)
    notify.error_code = _int(obj, "errorCode")
    notify.error_msg = _str(obj, "errorMsg")
    notify.__class__ = Notice
    return notify


_DECODERS: dict[str, Callable[[dict, str], V1Event]] = {"ice": _ice, "ace": _ace, "pie": _pie, "dice": _dice, "notify": _notify}


def _no_constant(name: str) -> Any:
    raise EventError("invalid_json", f"body is not JSON: {name} is not a JSON value")


#: ``json.loads(..., parse_float=Decimal)`` with the decoder built once (json.loads builds one per call);
#: NaN/Infinity are not JSON and are refused.
_JSON = json.JSONDecoder(parse_float=Decimal, parse_constant=_no_constant)
_SCAN_ONCE = _JSON.scan_once  # type: ignore[attr-defined]  # set by JSONDecoder.__init__, not declared in typeshed




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
    Only called when the text has such an escape, so normal bodies pay one search for a backslash.
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


def _parse_json(text: str) -> Any:
    """``_JSON.decode(text)``, without its two whitespace regex matches when the text has no surrounding whitespace.

    ``decode`` skips whitespace, calls ``scan_once``, skips whitespace and checks that nothing
    follows; calling the scanner directly saves about 6,000 instructions per event.  Any other
    text (whitespace around the value, extra data, not JSON) goes through ``decode``, which then
    returns or raises exactly as it always did.
    """
    try:
        value, end = _SCAN_ONCE(text, 0)
    except Exception:  # not JSON, or whitespace first: decode() raises (or skips it) as usual
        end = -1
    if end == len(text):
        return value
    return _JSON.decode(text)


def decode_event(body: bytes | bytearray | memoryview | str) -> V1Event:
    """Decode a v1 callback body (the raw request bytes, UTF-8 JSON) into a neutral call (``generation="v1"``).

    Raises :class:`EventError` (``invalid_json``, ``not_an_object``, ``missing_event``,
    ``invalid_field``) or :class:`UnknownEvent` (``unknown_event``).
    """
    try:
        if body.__class__ is bytes:
            text = body.decode()  # the usual input: ~1,200 instructions less than bytes(body).decode("utf-8")
        else:
            text = body if isinstance(body, str) else bytes(body).decode("utf-8")
    except UnicodeDecodeError as exc:
        raise EventError("invalid_json", f"body is not UTF-8: invalid byte at position {exc.start}") from None
    try:
        obj = _parse_json(text)
    except json.JSONDecodeError as exc:
        raise EventError("invalid_json", not_json_at(text, exc.pos)) from None   # callgate's words since 0.4.0
    except EventError:
        raise
    except RecursionError:
        raise EventError("invalid_json", f"body is not JSON callgate accepts: nested deeper than {MAX_DEPTH} "
                                         f"levels") from None
    except ValueError:  # the json module's limit on the digits of an integer (its message names a Python call)
        raise EventError("invalid_json", "body is not JSON callgate accepts: an integer of over 4300 digits") from None
    openers = text.count("{")
    if "[" in text:  # most events have no list: "in" (a memchr) spares a second count (~3,000 instructions)
        openers += text.count("[")
    if openers > MAX_DEPTH:  # only then can it be nested that deep
        _refuse_deep_nesting(obj)
    if "\\" in text and _SURROGATE_ESCAPE.search(text) is not None:  # no backslash, no escape: a memchr, not a regex
        _refuse_lone_surrogates(obj)
    if obj.__class__ is not dict:
        raise EventError("not_an_object", f"body is JSON {_kind(obj)}, expected an object")
    name = obj.get("event")
    if name.__class__ is not str:
        raise EventError("missing_event", "event: missing" if name is None
                         else f"event: expected a string, got {_kind(name)}")
    decoder = _DECODERS.get(name)  # sent as it is stored ("ice"): no strip/lower
    if decoder is not None:
        return decoder(obj, name)
    if not name.strip():
        raise EventError("missing_event", "event: empty")
    event = name.strip().lower()
    decoder = _DECODERS.get(event)
    if decoder is None:
        raise UnknownEvent(name)
    return decoder(obj, event)
