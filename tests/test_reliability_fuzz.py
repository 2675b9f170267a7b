"""Adversarial input: generated requests against one real ``callgate serve`` process.

Every answer must be what README's "What callgate answers" table says for that request
(computed from the request alone by ``reliability_helpers_input.expected``): a documented
4xx with its JSON error body, ``{}`` for DICE/Notify/unknown events, or 200 with SVAML valid
for the event; a request the HTTP layer cannot parse gets aiohttp's plain-text 400.  Never a
5xx, never a hang (every answer within 10 s), the process stays up, its log has no error
line and no traceback, and its resident memory after the run stays within 30 MB of what it
was after the warm-up.

Examples: ``CALLGATE_FUZZ_EXAMPLES`` (default 300, what CI runs; the full run is 10,000:
``CALLGATE_FUZZ_EXAMPLES=10000 .venv/bin/python -m pytest tests/test_reliability_fuzz.py``).
The run is derandomized (the same examples every time) unless ``CALLGATE_FUZZ_SEED`` is set.
"""

from __future__ import annotations

import asyncio
import base64
import itertools
import json
import os
import tomllib
from collections import Counter
from datetime import datetime, timedelta, timezone

import aiohttp
import pytest
from hypothesis import HealthCheck, given, seed, settings
from hypothesis import strategies as st
from reliability_helpers_input import (
    CALLBACK,
    HTTP_400,
    HTTP_404,
    Req,
    check_reply,
    env_int,
    expected,
    json_log_lines,
    raw_request,
    send,
    signed,
    vm_rss_kib,
)

from callgate import samples
from callgate.protocols.v1.signing import Verifier
from callgate.testing import full_stack_config

#: Starts the real callgate command or waits in real time: skipped by -m 'not slow'.
pytestmark = pytest.mark.slow

EXAMPLES = env_int("CALLGATE_FUZZ_EXAMPLES", 300)
SEED = os.environ.get("CALLGATE_FUZZ_SEED")
MAX_BODY = 65536
MAX_HEADER = 8190
MAX_HEADERS = 128
WINDOW = 600
RSS_GROWTH_LIMIT_KIB = 30 * 1024

KEY_A, KEY_B = "fuzz-app-a", "fuzz-app-b"
SECRET_A1, SECRET_A2, SECRET_B = (base64.b64encode(os.urandom(32)).decode() for _ in range(3))
ENV = {"FUZZ_SECRET_A1": SECRET_A1, "FUZZ_SECRET_A2": SECRET_A2, "FUZZ_SECRET_B": SECRET_B}
VERIFIER = Verifier({KEY_A: [SECRET_A1, SECRET_A2], KEY_B: [SECRET_B]}, window_seconds=WINDOW)

CONFIG = f"""
[server]
log_format = "json"
max_body_bytes = {MAX_BODY}
max_header_bytes = {MAX_HEADER}
max_headers = {MAX_HEADERS}
[signing]
window_seconds = {WINDOW}

[[applications]]
key = "{KEY_A}"
secrets = [{{ env = "FUZZ_SECRET_A1" }}, {{ env = "FUZZ_SECRET_A2" }}]
[[applications]]
key = "{KEY_B}"
secrets = [{{ env = "FUZZ_SECRET_B" }}]

[plugins.router]
pie_default = {{ name = "continue" }}
[[plugins.router.routes]]
name = "conference"
to_type = "conference"
action = {{ name = "connectConf", conferenceId = "{{to}}" }}
[[plugins.router.routes]]
name = "app-to-app"
to_type = "username"
action = {{ name = "connectMxp" }}
[[plugins.router.routes]]
name = "sip"
to_type = "sip"
action = {{ name = "connectSip", destination = {{ type = "sip", endpoint = "{{to}}" }} }}
[[plugins.router.routes]]
name = "ivr"
number = "+15612600684"
instructions = [{{ name = "say", text = "Hello {{caller}}" }}]
action = {{ name = "runMenu", menus = [{{ id = "main", mainPrompt = "#tts[Press 1]", options = [{{ dtmf = "1", action = "return(one)" }}] }}] }}
[[plugins.router.routes]]
name = "sweden"
prefix = "+46"
action = {{ name = "connectPstn", number = "{{to}}", maxDuration = 3600 }}
[[plugins.router.routes]]
name = "pattern"
pattern = '\\+1\\d{{10}}'
action = {{ name = "connectPstn", number = "{{to}}", cli = "private" }}
[[plugins.router.routes]]
name = "catch-all"
action = {{ name = "connectPstn", number = "{{to}}" }}
[[plugins.router.menu_answers]]
menu = "main"
value = "one"
action = {{ name = "connectPstn", number = "+46850001234" }}
[plugins.caller_id]
rules = [{{ prefix = "+46", cli = "+46850001234" }}]
"""

# --------------------------------------------------------------------------- values

ODD_CHARS = [
    "\u202e", "\u202d", "\u200b", "\u200c", "\u200d", "\u2060", "\ufeff", "\u2028", "\u2029", "\x00", "\x1f",
    "\x7f", "\u0301", "\U0001F600", "\U0010FFFF", "\uffff", "\ufffd", "\ud800", "\udbff", "\udc00", "\udfff",
    "\\", '"', "/", "{", "}", "[", "%", "\n", "\t", "\r", "\u0661", "\uff0b", "+", "4", "6", "a", "\u00e9",
]
odd_char = st.one_of(st.sampled_from(ODD_CHARS), st.characters())
odd_text = st.text(alphabet=odd_char, max_size=24)
short_key = st.text(alphabet=odd_char, max_size=8)


def _repeat(unit: str, size: int) -> str:
    return (unit * (size // len(unit) + 1))[:size]


#: Long strings (up to past the body limit), built from a short unit: cheap to generate.
long_text = st.builds(_repeat, st.text(alphabet=st.sampled_from(ODD_CHARS + ["a", "0", " "]), min_size=1, max_size=3),
                      st.integers(1000, 70_000))


class RawJson(str):
    """A JSON literal json.dumps cannot write (a 5,000-digit integer, 1e999999999): put in as is."""


raw_literals = st.sampled_from([
    "9" * 4300, "9" * 4301, "-" + "9" * 5000, "1e999999999", "-1E-999999999", "-0", "0.0000000000000000000001",
    "123456789012345678901234567890", "18446744073709551616", "9223372036854775808", "-9223372036854775809",
    "1.5e308", "4.9e-324", "1" + "0" * 400 + ".5",
]).map(RawJson)

scalars = st.one_of(
    st.none(), st.booleans(), st.integers(-2 ** 70, 2 ** 70),
    st.sampled_from([2 ** 63 - 1, 2 ** 63, -2 ** 63, -2 ** 63 - 1, 2 ** 64, 0, -1, 4294967296]),
    st.floats(), odd_text, raw_literals,
    st.sampled_from(["", " ", "+46701234567", "46701234567", "private", "ICE", "dice", "12", "true",
                     "2024-01-01T00:00:00Z", "2024-13-45T99:99:99Z", "0001-01-01T00:00:00+23:59", "N/A"]),
)
json_values = st.recursive(scalars, lambda inner: st.lists(inner, max_size=3) | st.dictionaries(short_key, inner, max_size=3),
                           max_leaves=8)


def nested(depth: int, kind: str) -> str:
    if kind == "list":
        return "[" * depth + "]" * depth
    return '{"a":' * depth + "1" + "}" * depth


deep = st.builds(nested, st.integers(1, 30_000), st.sampled_from(["list", "dict"])).map(RawJson)
values = st.one_of(json_values, json_values, json_values, long_text, deep)

CALLERS = ["46701234567", "+46701234567", "private", "", "anonymous", "0046701234567", "+1 (415) 555-0123"]
DESTINATIONS = ["+46850001234", "+15612600684", "+14155550123", "alice", "conf-1", "sip:bob@example.com",
                "+4670", "46850001234", "", "+"]
TO_TYPES = ["number", "did", "username", "sip", "conference", "NUMBER", "Conference", "other"]

PATHS = {
    "common": ["event", "callid", "callId", "timestamp", "version", "custom", "applicationKey", "user", "extra",
               "extra.deeper"],
    "ice": ["callResourceUrl", "userRate", "userRate.amount", "userRate.currencyId", "cli", "to", "to.type",
            "to.endpoint", "domain", "originationType", "duration", "rdnis", "callHeaders", "callHeaders.0",
            "callHeaders.0.key", "callHeaders.0.value"],
    "ace": ["amd", "amd.status", "amd.reason", "amd.duration", "conferenceId"],
    "pie": ["menuResult", "menuResult.menuId", "menuResult.type", "menuResult.value", "menuResult.inputMethod"],
    "dice": ["reason", "result", "debit", "debit.amount", "debit.currencyId", "userRate", "userRate.amount", "to",
             "to.endpoint", "duration", "from", "callHeaders", "callHeaders.0.key"],
    "notify": ["type", "destination", "amd", "amd.status", "amd.duration", "errorCode", "errorMsg", "conferenceId"],
}
EVENT_NAMES = ["ICE", " ice ", "Ice", "dice\n", "aCe", "PIE", "notify", "call.recording.ready", "", " ", "ic e",
               "\u0130ce", "ice\x00"]
DELETE = object()


def set_path(root: dict, path: str, value) -> None:
    """Set (or, with DELETE, remove) ``root[a][b]...`` for path ``"a.b"``; digits index lists.  A container
    of the wrong kind on the way (a mutation may have put a list where an object was) is replaced."""
    parts = [int(part) if part.isdigit() else part for part in path.split(".")]
    obj = root
    for part, following in itertools.pairwise(parts):
        kind = list if isinstance(following, int) else dict
        child = obj[part] if _has(obj, part) else None
        if not isinstance(child, kind):
            child = kind()
            _put(obj, part, child)
        obj = child
    _put(obj, parts[-1], value)


def _has(obj, key) -> bool:
    return key < len(obj) if isinstance(obj, list) else key in obj


def _put(obj, key, value) -> None:
    if isinstance(obj, list):
        if value is DELETE:
            if key < len(obj):
                del obj[key]
            return
        obj.extend([None] * (key + 1 - len(obj)))
        obj[key] = value
    elif value is DELETE:
        obj.pop(key, None)
    else:
        obj[key] = value


def dumps(obj, ensure_ascii: bool) -> bytes:
    """JSON bytes; RawJson values are written as the literal they hold; lone surrogates stay
    escaped (ensure_ascii) or become invalid UTF-8 bytes (not ensure_ascii)."""
    literals: dict[str, str] = {}

    def mark(value):
        if isinstance(value, RawJson):
            token = f"\x01RAW{len(literals)}\x01"
            literals[json.dumps(token, ensure_ascii=ensure_ascii)] = str(value)
            return token
        if isinstance(value, dict):
            return {k: mark(v) for k, v in value.items()}
        if isinstance(value, list):
            return [mark(v) for v in value]
        return value

    text = json.dumps(mark(obj), ensure_ascii=ensure_ascii)
    for token, literal in literals.items():
        text = text.replace(token, literal)
    return text.encode("utf-8", "surrogatepass")


@st.composite
def events(draw) -> dict:
    """A realistic event of any kind (valid on its own), to be mutated."""
    kind = draw(st.sampled_from(["ice", "ice", "ace", "pie", "dice", "notify"]))
    callid = draw(st.one_of(st.uuids().map(str), odd_text))
    if kind == "ice":
        body = samples.ice(draw(st.sampled_from(CALLERS) | odd_text), draw(st.sampled_from(DESTINATIONS) | odd_text),
                           to_type=draw(st.sampled_from(TO_TYPES)), callid=callid,
                           domain=draw(st.sampled_from(["pstn", "mxp", "conference", "PSTN"])))
    elif kind == "ace":
        body = samples.ace(callid, amd={"status": draw(st.sampled_from(["machine", "human", "notsure"])),
                                        "reason": "beep", "duration": draw(st.integers(0, 10))})
    elif kind == "pie":
        body = samples.pie(callid, menu=draw(st.sampled_from(["main", "other", ""])),
                           type=draw(st.sampled_from(["sequence", "return", "timeout", "Return"])),
                           value=draw(st.sampled_from(["one", "1", "", "#"])))
    elif kind == "dice":
        body = samples.dice(callid, duration=draw(st.integers(0, 14400)),
                            result=draw(st.sampled_from(["ANSWERED", "busy", "N/A"])))
    else:
        body = samples.notify(callid, type=draw(st.sampled_from(["recording_available", "amd", "callingerror"])))
    body["timestamp"] = "2025-03-14T09:26:53.1234567Z"
    for _ in range(draw(st.integers(0, 3))):
        path = draw(st.sampled_from(PATHS["common"] + PATHS[kind]))
        if path == "event":
            value = draw(st.sampled_from(EVENT_NAMES) | values)
        else:
            value = draw(st.just(DELETE) | values)
        set_path(body, path, value)
    return body


@st.composite
def bodies(draw) -> tuple[str, bytes]:
    """(label, body bytes): mutated events, junk, truncations, deep nesting, bodies near the size limit."""
    choice = draw(st.sampled_from(["event"] * 6 + ["truncated", "junk", "non_object", "deep", "sized", "duplicate_keys"]))
    ensure_ascii = draw(st.booleans())
    if choice == "event":
        return "event", dumps(draw(events()), ensure_ascii)
    if choice == "truncated":
        whole = dumps(draw(events()), ensure_ascii)
        return "truncated", whole[:draw(st.integers(0, max(0, len(whole) - 1)))]
    if choice == "junk":
        return "junk", draw(st.one_of(
            st.binary(max_size=300),
            odd_text.map(lambda t: t.encode("utf-8", "surrogatepass")),
            st.sampled_from([b"", b" ", b"\xef\xbb\xbf{}", b"{'event': 'ice'}", b'{"event": "ice",}',
                             b'{"event": "ice" /* c */}', b"null", b"NaN", b"\xff\xfe{\x00}\x00",
                             b'{"event": "ice", "callid": "x"}' + b"\x00", b'{"event":"ice","callid":"x"} {}',
                             b'{"event": "\\ud800", "callid": "x"}', b'{"event": "ice", "callid": "\\udfff"}',
                             b'{"event": "ice", "callid": "\\ud83d\\ude00"}'])))
    if choice == "non_object":
        return "non_object", dumps(draw(json_values.filter(lambda v: not isinstance(v, dict))), ensure_ascii)
    if choice == "deep":
        depth = draw(st.sampled_from([10, 500, 990, 1000, 5000, 10_000, 20_000, 32_000]))
        inner = nested(depth, draw(st.sampled_from(["list", "dict"])))
        if draw(st.booleans()):
            return "deep", inner.encode()
        return "deep", b'{"event": "ice", "callid": "deep", "x": ' + inner.encode() + b"}"
    if choice == "sized":            # a valid event padded to within a few bytes of the limit
        body = dumps(draw(events()), ensure_ascii=True)
        target = MAX_BODY + draw(st.integers(-3, 3))
        pad = target - len(body) - len(b', "pad": ""')
        if pad < 0:
            return "sized", body
        return "sized", body[:-1] + b', "pad": "' + b"x" * pad + b'"}'
    event = dumps(draw(events()), ensure_ascii)
    return "duplicate_keys", b'{"event": "' + draw(st.sampled_from([b"dice", b"ice", b"nope"])) + b'", ' + event[1:]


def _timestamp(offset_seconds: float, style: str) -> str:
    when = datetime.now(timezone.utc) + timedelta(seconds=offset_seconds)
    if style == "z":
        return when.strftime("%Y-%m-%dT%H:%M:%SZ")
    if style == "net":
        return when.strftime("%Y-%m-%dT%H:%M:%S.%f") + "1Z"           # seven fractional digits, as .NET
    if style == "offset":
        return when.astimezone(timezone(timedelta(hours=5, minutes=30))).isoformat()
    if style == "lower":
        return when.strftime("%Y-%m-%dt%H:%M:%Sz")
    if style == "naive":
        return when.strftime("%Y-%m-%d %H:%M:%S")
    return when.isoformat(timespec="milliseconds")


SIGNING = ["good"] * 8 + [
    "rotated", "key_b", "lower_scheme", "upper_scheme", "other_body", "wrong_key", "unknown_key", "stale", "future",
    "bad_timestamp", "no_timestamp", "no_authorization", "garbage_authorization", "repeat_authorization",
    "repeat_timestamp", "repeat_content_type", "content_type_variant", "content_type_mismatch", "no_content_type",
    "signature_changed", "path_changed", "method_changed", "extra_space",
]


@st.composite
def signed_headers(draw, body: bytes) -> tuple[str, list[tuple[str, str]]]:
    """(label, headers) for ``body``: correctly signed, or one of the near misses."""
    variant = draw(st.sampled_from(SIGNING))
    key, secret = KEY_A, SECRET_A1
    content_type = "application/json"
    timestamp = _timestamp(draw(st.floats(-WINDOW + 60, WINDOW - 60)),
                           draw(st.sampled_from(["z", "net", "offset", "lower", "naive", "iso"])))
    if variant == "rotated":
        secret = SECRET_A2
    elif variant == "key_b":
        key, secret = KEY_B, SECRET_B
    elif variant == "stale":
        timestamp = _timestamp(-WINDOW - draw(st.floats(5, 10 ** 6)), "z")
    elif variant == "future":
        timestamp = _timestamp(WINDOW + draw(st.floats(5, 10 ** 6)), "z")
    elif variant == "bad_timestamp":
        timestamp = draw(st.sampled_from(["yesterday", "", "2025-02-30T00:00:00Z", "1700000000", "9999-99-99"])
                         | st.text(alphabet=st.characters(min_codepoint=32, max_codepoint=126), max_size=30))
    elif variant == "content_type_variant":
        content_type = draw(st.sampled_from(["application/json; charset=utf-8", "Application/JSON",
                                             "application/json;charset=UTF-8", "application/json ; x=y",
                                             "text/plain", "application/jsonx", "application/json-patch+json",
                                             "application/*", "*/*", "application", "json", ";", ""])
                            | st.text(alphabet=st.characters(min_codepoint=32, max_codepoint=126), max_size=40))
    headers = signed(body, key, secret, content_type=content_type, timestamp=timestamp)
    h = dict(headers)
    auth = h["Authorization"]
    if variant == "lower_scheme":
        h["Authorization"] = "application" + auth[len("Application"):]
    elif variant == "upper_scheme":
        h["Authorization"] = "APPLICATION" + auth[len("Application"):]
    elif variant == "other_body":
        other = body + b" " if draw(st.booleans()) else body[:-1]
        h["Authorization"] = dict(signed(other, key, secret, content_type=content_type, timestamp=timestamp))["Authorization"]
    elif variant == "wrong_key":           # right signature (secret A), claimed for application B
        h["Authorization"] = auth.replace(f" {KEY_A}:", f" {KEY_B}:")
    elif variant == "unknown_key":
        h["Authorization"] = auth.replace(f" {KEY_A}:", f" {draw(st.sampled_from(['nobody', KEY_A + 'x', KEY_A.upper()]))}:")
    elif variant == "no_timestamp":
        del h["x-timestamp"]
    elif variant == "no_authorization":
        del h["Authorization"]
    elif variant == "garbage_authorization":
        h["Authorization"] = draw(st.sampled_from(["", " ", "Application", "Application ", "Application :", "Bearer x:y",
                                                   f"Application {KEY_A}", f"Application {KEY_A}:", "Basic YTpi",
                                                   f"Application  {KEY_A}:abc"])
                                  | st.text(alphabet=st.characters(min_codepoint=32, max_codepoint=126), max_size=80))
    elif variant == "signature_changed":
        sig = auth.rsplit(":", 1)[1]
        i = draw(st.integers(0, len(sig) - 1))
        replacement = draw(st.sampled_from("ABab01+/="))
        h["Authorization"] = auth[:-len(sig)] + sig[:i] + replacement + sig[i + 1:]
    elif variant == "path_changed":
        h["Authorization"] = dict(signed(body, key, secret, path=draw(st.sampled_from(
            ["/sinch/callbacK", "/sinch/callback/", "/", "/sinch/callback?x=1", "/voice/sinch"])),
            content_type=content_type, timestamp=timestamp))["Authorization"]
    elif variant == "method_changed":
        from callgate.protocols.v1 import signing
        h["Authorization"] = signing.authorization(key, secret, draw(st.sampled_from(["GET", "PUT", "post"])),
                                                   CALLBACK, body, content_type, timestamp)
    elif variant == "extra_space":
        h["Authorization"] = auth.replace(" ", "  ", 1) if draw(st.booleans()) else auth + " "
    elif variant == "content_type_mismatch":
        h["Content-Type"] = "application/json; charset=utf-8"
    items = list(h.items())
    if variant == "no_content_type":
        items = [(n, v) for n, v in items if n != "Content-Type"]
    elif variant == "repeat_authorization":
        wrong = auth[:-4] + "AAA="
        pair = [("Authorization", auth), ("Authorization", wrong)]
        items = [(n, v) for n, v in items if n != "Authorization"] + (pair if draw(st.booleans()) else pair[::-1])
    elif variant == "repeat_timestamp":
        pair = [("x-timestamp", timestamp), ("x-timestamp", _timestamp(-5, "z"))]
        items = [(n, v) for n, v in items if n != "x-timestamp"] + (pair if draw(st.booleans()) else pair[::-1])
    elif variant == "repeat_content_type":
        pair = [("Content-Type", content_type), ("Content-Type", "text/plain")]
        items = [(n, v) for n, v in items if n != "Content-Type"] + (pair if draw(st.booleans()) else pair[::-1])
    return variant, items


@st.composite
def callback_requests(draw) -> Req:
    """A POST to the callback path with a generated body and signed (or nearly signed) headers."""
    label, body = draw(bodies())
    variant, headers = draw(signed_headers(body))
    target = CALLBACK + draw(st.sampled_from(["", "", "", "?x=1", "?callid=abc&event=ice", "#frag"]))
    return Req(f"{label}/{variant}", target=target.split("#")[0], headers=headers, body=body)


@st.composite
def other_requests(draw) -> Req:
    """Other methods and paths."""
    method = draw(st.sampled_from(["GET", "HEAD", "PUT", "DELETE", "PATCH", "OPTIONS", "POST"]))
    path = draw(st.one_of(
        st.just(CALLBACK),
        st.lists(st.from_regex(r"[a-z0-9_-]{1,10}", fullmatch=True), max_size=4).map(lambda parts: "/" + "/".join(parts)),
        st.sampled_from(["/healthz", "/readyz", "/metrics", "/sinch/callback/", "/sinch", "/SINCH/CALLBACK",
                         "/sinch/callback.json"]),
    ))
    body = draw(st.sampled_from([b"", b"{}", dumps(samples.ace("x"), True)]))
    headers = signed(body, KEY_A, SECRET_A1) if draw(st.booleans()) else [("Content-Type", "application/json")]
    allowed = None
    if path in ("/healthz", "/readyz", "/metrics"):   # the ops endpoints (on the callback port in this config)
        ok = {"GET": "200:ops", "HEAD": "200:head"}.get(method, "405:method_not_allowed")
        allowed = frozenset({ok})
    return Req(f"{method} {path}", method=method, target=path, headers=headers, body=body, allowed=allowed)


@st.composite
def raw_requests(draw) -> Req:
    """Requests no HTTP client library sends: oversized or too many headers, bad framing, bytes that are not
    UTF-8 in headers, bad methods, non-HTTP bytes."""
    body = dumps(draw(events()), ensure_ascii=True)
    if len(body) > MAX_BODY:
        body = dumps(samples.ace("raw"), ensure_ascii=True)
    headers = signed(body, KEY_A, SECRET_A1)
    kind = draw(st.sampled_from(["big_header", "many_headers", "long_target", "binary_header", "control_header",
                                 "bad_method", "not_http", "cl_and_te", "chunked", "bad_chunked", "bad_length",
                                 "two_lengths", "short_length", "expect_continue"]))
    model = Req(kind, headers=headers, body=body)

    def same_as(req: Req) -> frozenset[str]:
        return expected(req, VERIFIER, MAX_BODY)

    if kind == "big_header":
        size = draw(st.integers(MAX_HEADER - 50, MAX_HEADER + 5000))
        name = draw(st.sampled_from(["X-Pad", "Authorization", "x-timestamp", "Cookie"]))
        padded = [(n, v) for n, v in headers if n != name] + [(name, "a" * size)]
        allowed = frozenset({HTTP_400}) if size > MAX_HEADER else same_as(Req(kind, headers=padded, body=body))
        return Req(kind, raw=raw_request("POST", CALLBACK, padded, body, len(body)), allowed=allowed)
    if kind == "many_headers":
        count = draw(st.integers(MAX_HEADERS - 10, MAX_HEADERS + 50))
        extra = [(f"X-H{i}", "v") for i in range(count - len(headers) - 2)]    # + Host and Content-Length
        allowed = frozenset({HTTP_400}) if count > MAX_HEADERS else same_as(model)
        return Req(kind, raw=raw_request("POST", CALLBACK, headers + extra, body, len(body)), allowed=allowed)
    if kind == "long_target":
        size = draw(st.integers(MAX_HEADER - 40, MAX_HEADER + 3000))
        target = CALLBACK + "?q=" + "a" * (size - len(CALLBACK) - 3)
        allowed = frozenset({HTTP_400}) if size > MAX_HEADER else same_as(model)
        return Req(kind, raw=raw_request("POST", target, headers, body, len(body)), allowed=allowed)
    if kind == "binary_header":        # bytes that are not UTF-8 in a header callgate reads
        name = draw(st.sampled_from(["Authorization", "x-timestamp", "Content-Type"]))
        junk = draw(st.binary(min_size=1, max_size=20).map(lambda b: bytes(c | 0x80 for c in b)))
        value = dict(headers)[name].encode() + junk
        changed = [(n, v) for n, v in headers if n != name] + [(name, value)]
        allowed = frozenset({"415:unsupported_media_type"} | {f"401:{r}" for r in ("bad_signature", "unknown_key",
                                                                                    "malformed_authorization")})
        return Req(kind, raw=raw_request("POST", CALLBACK, changed, body, len(body)), allowed=allowed)
    if kind == "control_header":
        name = draw(st.sampled_from(["Authorization", "x-timestamp", "X-Other"]))
        char = draw(st.sampled_from([b"\x00", b"\x01", b"\x7f", b"\x0b"]))
        changed = [(n, v) for n, v in headers if n != name] + [(name, b"a" + char + b"b")]
        return Req(kind, raw=raw_request("POST", CALLBACK, changed, body, len(body)), allowed=frozenset({HTTP_400}))
    if kind == "bad_method":
        method = draw(st.sampled_from(["FOO", "P@ST", "GET\x00", "post", "CONNECT"]))
        allowed = {HTTP_404} if method == "CONNECT" else {HTTP_400}      # CONNECT's target is host:port, not a path
        return Req(kind, raw=raw_request(method, CALLBACK, headers, body, len(body)), allowed=frozenset(allowed))
    if kind == "not_http":
        data = draw(st.sampled_from([b"\x16\x03\x01\x00\xa5\x01\x00\x00", b"GARBAGE\r\n\r\n", b"\r\n\r\n",
                                     b"POST\r\n\r\n", b"POST /sinch/callback HTTP/9.9\r\n\r\n",
                                     b"POST /sinch/callback\r\n\r\n"]) | st.binary(min_size=1, max_size=64)
                    .map(lambda b: b + b"\r\n\r\n"))
        allowed = {HTTP_400, "closed", "waiting"}
        if data == b"POST /sinch/callback\r\n\r\n":          # an HTTP/0.9-style request line: a POST without headers
            allowed = {"415:unsupported_media_type"}
        return Req(kind, raw=data, allowed=frozenset(allowed), may_wait=True)
    if kind == "cl_and_te":
        both = headers + [("Transfer-Encoding", "chunked")]
        return Req(kind, raw=raw_request("POST", CALLBACK, both, body, len(body)), allowed=frozenset({HTTP_400}))
    if kind == "chunked":
        step = draw(st.integers(1, 4096))
        chunks = b"".join(b"%x\r\n%s\r\n" % (len(body[i:i + step]), body[i:i + step]) for i in range(0, len(body), step))
        raw = raw_request("POST", CALLBACK, headers + [("Transfer-Encoding", "chunked")], chunks + b"0\r\n\r\n")
        return Req(kind, raw=raw, allowed=same_as(model))
    if kind == "bad_chunked":
        chunks = draw(st.sampled_from([b"zz\r\nabc\r\n0\r\n\r\n", b"5\r\nabc\r\n0\r\n\r\n", b"-1\r\n\r\n",
                                       b"ffffffffffffffffff\r\n\r\n"]))
        raw = raw_request("POST", CALLBACK, headers + [("Transfer-Encoding", "chunked")], chunks)
        return Req(kind, raw=raw, allowed=frozenset({HTTP_400, "400:incomplete_body", "closed"}))
    if kind == "bad_length":
        value = draw(st.sampled_from(["abc", "-1", "1.5", " ", "0x10", "99999999999999999999999"]))
        raw = raw_request("POST", CALLBACK, headers + [("Content-Length", value)], body)
        return Req(kind, raw=raw, allowed=frozenset({HTTP_400, "413:body_too_large"}))
    if kind == "two_lengths":
        raw = raw_request("POST", CALLBACK, headers + [("Content-Length", str(len(body))),
                                                       ("Content-Length", str(len(body) + 1))], body)
        return Req(kind, raw=raw, allowed=frozenset({HTTP_400}))
    if kind == "short_length":         # the server reads Content-Length bytes; the rest is another (bad) request
        cut = draw(st.integers(0, len(body) - 1))
        raw = raw_request("POST", CALLBACK, headers, body, cut)
        # (or, when both arrive in one packet, aiohttp refuses the whole packet: 400)
        return Req(kind, raw=raw, allowed=same_as(Req(kind, headers=headers, body=body[:cut])) | {HTTP_400})
    raw = raw_request("POST", CALLBACK, headers + [("Expect", "100-continue")], body, len(body))
    return Req(kind, raw=raw, allowed=same_as(model))


requests = st.one_of(callback_requests(), callback_requests(), callback_requests(), callback_requests(),
                     other_requests(), raw_requests())


# --------------------------------------------------------------------------- fixed cases, also the warm-up

def edge_cases() -> list[Req]:
    """Cases every run must include, whatever hypothesis generates (and the warm-up before measuring memory)."""
    ace = dumps(samples.ace("edge"), True)

    def post(label, body, **kwargs):
        return Req(label, headers=signed(body, KEY_A, SECRET_A1, **kwargs), body=body)

    padded_to = lambda size: ace[:-1] + b', "pad": "' + b"x" * (size - len(ace) - len(b', "pad": ""')) + b'"}'  # noqa: E731
    huge = dumps(samples.ice(callid="huge", custom="\u202e\u200b" * 16_000), False)
    cases = [
        post("10,000 nested arrays", b"[" * 10_000 + b"]" * 10_000),
        post("10,000 nested objects", b'{"a":' * 10_000 + b"1" + b"}" * 10_000),
        post("nesting inside an event", b'{"event": "ice", "callid": "x", "y": ' + b"[" * 30_000 + b"]" * 30_000 + b"}"),
        post("body of exactly max_body_bytes", padded_to(MAX_BODY)),
        post("body one byte over", padded_to(MAX_BODY + 1)),
        post("64 KiB of RTL and zero-width", huge),
        post("lone surrogate in callid", b'{"event": "ice", "callid": "\\ud800"}'),
        post("lone surrogate in the event name", b'{"event": "\\udfff", "callid": "x"}'),
        post("lone surrogate as raw bytes", b'{"event": "ace", "callid": "\xed\xa0\x80"}'),
        post("5,000-digit integer", b'{"event": "dice", "callid": "x", "duration": ' + b"9" * 5000 + b"}"),
        post("integer over 64 bits", b'{"event": "dice", "callid": "x", "duration": 18446744073709551616}'),
        post("NaN", b'{"event": "dice", "callid": "x", "duration": NaN}'),
        post("lower-case scheme is valid", ace),
        Req("repeated Authorization, right one first", body=ace, headers=signed(ace, KEY_A, SECRET_A1)
            + [("Authorization", f"Application {KEY_A}:AAAA")]),
        Req("repeated Authorization, wrong one first", body=ace,
            headers=[("Authorization", f"Application {KEY_A}:AAAA")] + signed(ace, KEY_A, SECRET_A1)),
        Req("a correct signature of another body", body=ace + b" ",
            headers=signed(ace, KEY_A, SECRET_A1)),
        Req("right signature, wrong key", body=ace, headers=[
            (n, v.replace(KEY_A, KEY_B)) for n, v in signed(ace, KEY_A, SECRET_A1)]),
        Req("header over the limit", raw=raw_request("POST", CALLBACK, signed(ace, KEY_A, SECRET_A1)
                                                     + [("X-Pad", "a" * (MAX_HEADER + 1))], ace, len(ace)),
            allowed=frozenset({HTTP_400})),
        Req("Authorization over the limit", raw=raw_request("POST", CALLBACK, [
            ("Content-Type", "application/json"), ("Authorization", f"Application {KEY_A}:" + "A" * MAX_HEADER)],
            ace, len(ace)), allowed=frozenset({HTTP_400})),
        Req("too many headers", raw=raw_request("POST", CALLBACK, signed(ace, KEY_A, SECRET_A1)
                                                + [(f"X-{i}", "v") for i in range(MAX_HEADERS)], ace, len(ace)),
            allowed=frozenset({HTTP_400})),
        Req("unknown path", target="/nope", headers=signed(ace, KEY_A, SECRET_A1), body=ace),
        Req("GET on the callback path (the dashboard's test button)", method="GET"),
        Req("PUT", method="PUT", headers=signed(ace, KEY_A, SECRET_A1), body=ace),
    ]
    lower = cases[12]
    lower.headers = [(n, "application" + v[len("Application"):] if n == "Authorization" else v) for n, v in lower.headers]
    return cases


# --------------------------------------------------------------------------- the test

def test_fuzz_the_running_server(callgate_server):
    """The built-in plugins only (router, caller_id): every generated request against one process."""
    fuzz(callgate_server(CONFIG, env=ENV), EXAMPLES)


PLUGINS_EXAMPLES = env_int("CALLGATE_FUZZ_PLUGIN_EXAMPLES", 150)


def test_fuzz_the_running_server_with_the_shipped_plugins(callgate_server, tmp_path):
    """The same, with allowlist, credit_check and crm_export (SQLite) enabled: the generated events reach
    their hooks and their stores, and every answer is still the documented one (DICE and Notify: 200 {})."""
    for module in ("callgate_allowlist", "callgate_credit_check", "callgate_crm_export"):
        pytest.importorskip(module, reason=f"{module} is not installed (python3 scripts/dev.py test installs it)")
    config = tomllib.loads(CONFIG)          # this file's server, applications and routes, with the three plugins
    config["plugins"].update({
        "allowlist": {"default": "allow", "rules": [{"action": "deny", "caller": "+4670999*"}]},
        "credit_check": {"unknown_account": "abstain"},
        "crm_export": {"sinks": [{"name": "file", "type": "file", "path": str(tmp_path / "calls.jsonl"), "fsync": False}]},
    })
    fuzz(callgate_server(full_stack_config(tmp_path, overrides=config), env=ENV), PLUGINS_EXAMPLES, variety=False)


def fuzz(server, examples: int, variety: bool = True) -> None:
    pid = server.process.pid
    loop = asyncio.new_event_loop()
    session = loop.run_until_complete(_session())
    seen: Counter[str] = Counter()

    def run(req: Req) -> str:
        reply = loop.run_until_complete(send(session, server.url, req))
        if req.allowed is not None and "200:ops" in req.allowed:
            assert reply.status == 200 and reply.body, (req.label, reply)
            return "200:ops"
        outcome = check_reply(req, reply, expected(req, VERIFIER, MAX_BODY))
        seen[outcome] += 1
        return outcome

    try:
        for _ in range(2):                      # the fixed cases, twice: they also warm the server up
            outcomes = {req.label: run(req) for req in edge_cases()}
        assert outcomes["10,000 nested arrays"] == "400:invalid_json"
        assert outcomes["body of exactly max_body_bytes"] == "200:svaml:ace"
        assert outcomes["body one byte over"] == "413:body_too_large"
        assert outcomes["lone surrogate in callid"] == "400:invalid_json"
        assert outcomes["integer over 64 bits"] == "400:invalid_field"
        assert outcomes["lower-case scheme is valid"] == "200:svaml:ace"
        assert outcomes["repeated Authorization, right one first"] == "200:svaml:ace"
        assert outcomes["repeated Authorization, wrong one first"] == "401:bad_signature"
        assert outcomes["right signature, wrong key"] == "401:bad_signature"
        assert outcomes["header over the limit"] == HTTP_400
        rss_after_warmup = vm_rss_kib(pid)

        @settings(max_examples=examples, deadline=None, database=None, derandomize=SEED is None,
                  suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large,
                                         HealthCheck.filter_too_much, HealthCheck.large_base_example],
                  print_blob=True)
        @given(req=requests)
        def one_request(req: Req) -> None:
            run(req)

        if SEED is not None:
            one_request = seed(int(SEED))(one_request)
        one_request()

        for req in edge_cases():
            run(req)
        rss_after = vm_rss_kib(pid)
        assert server.process.poll() is None, "the server died"
        health = loop.run_until_complete(send(session, server.url, Req("healthz", method="GET", target="/healthz")))
        assert health.status == 200
    finally:
        loop.run_until_complete(session.close())
        loop.close()
    growth = rss_after - rss_after_warmup
    print(f"\n{examples} examples; outcomes: {dict(sorted(seen.items()))}; "
          f"RSS after warm-up {rss_after_warmup} KiB, after the run {rss_after} KiB (+{growth} KiB)")
    assert growth < RSS_GROWTH_LIMIT_KIB, f"memory grew by {growth} KiB over the run"
    if variety:   # enough variety that the run means something: SVAML answers, acks and refusals of every kind
        kinds = {":".join(o.split(":")[:2]) if o.startswith("200") else o.split(":")[0] for o in seen}
        assert {"200:svaml", "200:ack", "400", "401", "413", "415", HTTP_400} <= kinds, kinds
    # The log: JSON lines only (a traceback would not be), no error, no 5xx.
    server.stop()
    parsed, not_json = json_log_lines(server.logs())
    assert not not_json, not_json[:5]
    errors = [line for line in parsed if line.get("level") in ("error", "critical")]
    assert not errors, errors[:3]
    assert not [line for line in parsed if isinstance(line.get("status"), int) and line["status"] >= 500]


async def _session() -> aiohttp.ClientSession:
    return aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=4), timeout=aiohttp.ClientTimeout(total=15))


# --------------------------------------------------------------------------- the decoder's own limits

def _event_with(fragment: str, event: str = "dice") -> bytes:
    return ('{"event": "' + event + '", "callid": "x", ' + fragment + "}").encode()


@pytest.mark.parametrize("body,outcome", [
    (_event_with('"custom": "\\ud83d\\ude00"'), "ok"),                 # an escaped pair is one character
    (_event_with('"custom": "\\\\ud800"'), "ok"),                      # an escaped backslash, then text
    (_event_with('"custom": "\\ud83d"'), "invalid_json"),              # unpaired high surrogate
    (_event_with('"custom": "\\uDE00"'), "invalid_json"),              # unpaired low surrogate
    (_event_with('"x": {"\\ud800": 1}'), "invalid_json"),              # in a key
    (_event_with('"x": [[["a", "\\udbff"]]]'), "invalid_json"),        # deep in a list
    (_event_with('"x": ' + "[" * 63 + "]" * 63), "ok"),               # 64 levels with the event object
    (_event_with('"x": ' + "[" * 64 + "]" * 64), "invalid_json"),     # 65
    (_event_with('"x": "' + "[" * 500 + '"'), "ok"),                   # brackets in a string are not nesting
    (_event_with(f'"version": {2 ** 63 - 1}'), "ok"),
    (_event_with(f'"version": {2 ** 63}'), "invalid_field"),
    (_event_with(f'"duration": {2 ** 31 - 1}'), "ok"),                 # a duration: at most 2^31 - 1 seconds
    (_event_with(f'"duration": {2 ** 31}'), "invalid_field"),
    (_event_with(f'"duration": {2 ** 63 - 1}'), "invalid_field"),
    (_event_with(f'"duration": {-2 ** 63}'), "ok"),
    (_event_with(f'"duration": {-2 ** 63 - 1}'), "invalid_field"),
    (_event_with('"amd": {"duration": 1' + "0" * 30 + "}", "ace"), "invalid_field"),
    (_event_with('"version": "' + "9" * 30 + '"'), "invalid_field"),
])
def test_the_decoder_refuses_what_no_consumer_downstream_could_take(body, outcome):
    """Unpaired surrogates (orjson, PostgreSQL and UTF-8 writers refuse them), nesting past 64 levels
    (how deep Python's decoder goes depends on the stack), integers past 64 bits (bigint, orjson)."""
    from callgate.protocols.v1.decode import EventError, decode_event
    try:
        decode_event(body)
    except EventError as exc:
        assert exc.code == outcome, str(exc)
        assert "\\ud8" not in str(exc).lower() or "escape" in str(exc)
        str(exc).encode("utf-8")                  # the message itself is loggable
    else:
        assert outcome == "ok"
