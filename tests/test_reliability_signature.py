"""Signature properties: what a correct signature lets through, and that nothing else gets through.

* any correctly signed request is accepted (either secret of a key being rotated, any case of
  the scheme and of the header names, any x-timestamp format within the window);
* changing any single byte of the body, the signed path, the x-timestamp value, the
  Content-Type, the method, the signature, the application key or the secret is refused;
* a correctly signed request replayed after the window is refused (``stale_timestamp``), and one
  dated too far ahead (``future_timestamp``).

At the Verifier level with many generated examples, then a handful over HTTP against a real
``callgate serve``.
"""

from __future__ import annotations

import asyncio
import base64
import json
import os
from datetime import datetime, timedelta, timezone

import aiohttp
import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st
from reliability_helpers_input import CALLBACK, env_int

from callgate import samples
from callgate.protocols.v1 import signing
from callgate.protocols.v1.signing import SignatureError, Verifier

#: Starts the real callgate command or waits in real time: skipped by -m 'not slow'.
pytestmark = pytest.mark.slow

EXAMPLES = env_int("CALLGATE_SIGNATURE_EXAMPLES", 400)
PROPERTY = settings(max_examples=EXAMPLES, deadline=None, database=None, derandomize=True,
                    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
CLOCK = 1_750_000_000.0          # "now" for the Verifier under test
WINDOW = 600

# An application key is what Sinch's dashboard shows (a UUID), but any text without ':' or spaces works.
app_keys = st.text(alphabet=st.characters(min_codepoint=33, max_codepoint=126, exclude_characters=":"),
                   min_size=1, max_size=40)
secrets = st.binary(min_size=1, max_size=64).map(lambda b: base64.b64encode(b).decode())
paths = st.text(alphabet=st.characters(min_codepoint=33, max_codepoint=0x2FFF, exclude_characters="?#"),
                max_size=60).map(lambda p: "/" + p)
bodies = st.binary(max_size=3000)
printable = st.characters(min_codepoint=32, max_codepoint=126)
content_types = st.sampled_from(["application/json", "application/json; charset=utf-8",
                                 "application/json;charset=UTF-8"]) | st.text(alphabet=printable, max_size=40)
methods = st.sampled_from(["POST", "GET", "PUT"])
FORMATS = ["z", "offset", "net", "lower", "naive", "space", "millis", "compact_offset"]


def format_timestamp(when: float, style: str) -> str:
    dt = datetime.fromtimestamp(when, timezone.utc)
    if style == "z":
        return dt.strftime("%Y-%m-%dT%H:%M:%SZ")
    if style == "offset":
        return dt.astimezone(timezone(timedelta(hours=-7, minutes=-30))).isoformat()
    if style == "compact_offset":
        return dt.astimezone(timezone(timedelta(hours=5, minutes=45))).strftime("%Y-%m-%dT%H:%M:%S%z")
    if style == "net":
        return dt.strftime("%Y-%m-%dT%H:%M:%S.%f") + "9Z"      # seven fractional digits
    if style == "lower":
        return dt.strftime("%Y-%m-%dt%H:%M:%Sz")
    if style == "naive":
        return dt.strftime("%Y-%m-%dT%H:%M:%S")
    if style == "space":
        return dt.strftime("%Y-%m-%d %H:%M:%S+00:00")
    return dt.isoformat(timespec="milliseconds")


@st.composite
def requests(draw):
    """A correctly signed request: (verifier, the key it should return, method, path, headers, body, parts)."""
    key = draw(app_keys)
    own = draw(st.lists(secrets, min_size=1, max_size=2, unique=True))       # two while rotating
    others = draw(st.dictionaries(app_keys, st.lists(secrets, min_size=1, max_size=2), max_size=3))
    others.pop(key, None)
    verifier = Verifier({key: own, **others}, window_seconds=WINDOW, clock=lambda: CLOCK)
    secret = draw(st.sampled_from(own))
    method, path, body, content_type = draw(methods), draw(paths), draw(bodies), draw(content_types)
    # whole seconds of offset, so formats without fractions name the same instant
    timestamp = format_timestamp(CLOCK + draw(st.integers(-WINDOW + 1, WINDOW - 1)), draw(st.sampled_from(FORMATS)))
    auth = signing.authorization(key, secret, method, path, body, content_type, timestamp)
    scheme = draw(st.sampled_from(["Application", "application", "APPLICATION", "aPPLICATIOn"]))
    auth = scheme + auth[len("Application"):]
    names = draw(st.sampled_from([("Authorization", "x-timestamp", "Content-Type"),
                                  ("authorization", "X-Timestamp", "content-type"),
                                  ("AUTHORIZATION", "X-TIMESTAMP", "CONTENT-TYPE")]))
    headers = dict(zip(names, (auth, timestamp, content_type)))
    parts = {"key": key, "secret": secret, "secrets": own, "timestamp": timestamp, "content_type": content_type, "names": names}
    return verifier, key, method, path, headers, body, parts


def change_one_char(text: str, draw) -> str:
    """``text`` with one character replaced, inserted or deleted (always a different string)."""
    how = draw(st.sampled_from(["replace", "insert", "delete"] if text else ["insert"]))
    i = draw(st.integers(0, len(text) - (0 if how == "insert" else 1)))
    if how == "delete":
        return text[:i] + text[i + 1:]
    char = draw(st.characters(min_codepoint=32, max_codepoint=0x2FFF))
    if how == "replace":
        assume(char != text[i])
        return text[:i] + char + text[i + 1:]
    return text[:i] + char + text[i:]


def change_one_byte(data: bytes, draw) -> bytes:
    how = draw(st.sampled_from(["flip", "insert", "delete"] if data else ["insert"]))
    i = draw(st.integers(0, len(data) - (0 if how == "insert" else 1)))
    if how == "delete":
        return data[:i] + data[i + 1:]
    if how == "insert":
        return data[:i] + bytes([draw(st.integers(0, 255))]) + data[i:]
    return data[:i] + bytes([data[i] ^ draw(st.integers(1, 255))]) + data[i + 1:]


@PROPERTY
@given(requests())
def test_any_correctly_signed_request_is_accepted(request):
    verifier, key, method, path, headers, body, _ = request
    assert verifier.verify(method, path, headers, body) == key


@PROPERTY
@given(requests(), st.sampled_from(["body", "path", "timestamp", "content_type", "method", "signature",
                                    "secret", "key", "other_app"]), st.data())
def test_changing_any_single_part_is_refused(request, part, data):
    verifier, key, method, path, headers, body, parts = request
    auth_name, ts_name, ct_name = parts["names"]
    headers = dict(headers)
    expected = {"bad_signature"}
    if part == "body":
        body = change_one_byte(body, data.draw)
    elif part == "path":
        path = change_one_char(path, data.draw)
    elif part == "timestamp":
        headers[ts_name] = change_one_char(parts["timestamp"], data.draw)
    elif part == "content_type":
        headers[ct_name] = change_one_char(parts["content_type"], data.draw)
    elif part == "method":
        method = data.draw(methods.filter(lambda m: m != method))
    elif part == "signature":
        scheme, credentials = headers[auth_name].split(" ", 1)
        app, sig = credentials.split(":", 1)
        headers[auth_name] = f"{scheme} {app}:{change_one_char(sig, data.draw)}"
        expected = {"bad_signature", "malformed_authorization"}      # e.g. a space put in the signature
    elif part == "secret":                                          # signed with a key one byte different
        # (same length: HMAC pads a key with zero bytes, so k and k + b"\x00" are the same HMAC key)
        raw = base64.b64decode(parts["secret"])
        i = data.draw(st.integers(0, len(raw) - 1))
        other = base64.b64encode(raw[:i] + bytes([raw[i] ^ data.draw(st.integers(1, 255))]) + raw[i + 1:]).decode()
        assume(other not in parts["secrets"])
        signed = signing.authorization(key, other, method, path, body, parts["content_type"], parts["timestamp"])
        headers[auth_name] = headers[auth_name].split(" ")[0] + signed[len("Application"):]
    elif part == "key":                                             # the same signature, another key
        other = change_one_char(key, data.draw)
        assume(other and ":" not in other and " " not in other and other.strip() == other)
        headers[auth_name] = headers[auth_name].replace(f" {key}:", f" {other}:", 1)
        expected = {"bad_signature" if other in verifier.application_keys else "unknown_key"}
    else:                                                           # the same signature, claimed by another app
        other = change_one_char(key, data.draw)
        assume(other and ":" not in other and " " not in other and other != key)
        verifier = Verifier({key: parts["secrets"], other: [base64.b64encode(os.urandom(16)).decode()]},
                            window_seconds=WINDOW, clock=lambda: CLOCK)
        headers[auth_name] = headers[auth_name].replace(f" {key}:", f" {other}:", 1)
    try:
        verifier.verify(method, path, headers, body)
    except SignatureError as exc:
        assert exc.reason in expected, (part, exc.reason, str(exc))
    else:
        raise AssertionError(f"a request with its {part} changed was accepted")


@PROPERTY
@given(requests(), st.floats(0.001, 10 ** 7), st.booleans())
def test_a_request_outside_the_window_is_refused(request, beyond, late):
    """The same correctly signed request, verified when its x-timestamp is more than the window away."""
    _, key, method, path, headers, body, parts = request
    signed_at = parse(parts["timestamp"])
    now = signed_at + WINDOW + beyond if late else signed_at - WINDOW - beyond
    replay = Verifier({key: parts["secrets"]}, window_seconds=WINDOW, clock=lambda: now)
    try:
        replay.verify(method, path, headers, body)
    except SignatureError as exc:
        assert exc.reason == ("stale_timestamp" if late else "future_timestamp")
    else:
        raise AssertionError("accepted outside the window")
    # and the same request within the window, just before it closes, is accepted
    inside = signed_at + (WINDOW - 0.001 if late else -WINDOW + 0.001)
    assert Verifier({key: parts["secrets"]}, window_seconds=WINDOW,
                    clock=lambda: inside).verify(method, path, headers, body) == key


def parse(timestamp: str) -> float:
    from callgate.protocols.timestamps import parse_timestamp
    return parse_timestamp(timestamp).timestamp()


# --------------------------------------------------------------------------- over HTTP

HTTP_WINDOW = 2
KEY, OTHER_KEY = "sig-app", "sig-apq"            # one character apart
SECRET, OTHER_SECRET = (base64.b64encode(os.urandom(32)).decode() for _ in range(2))
HTTP_CONFIG = f"""
[server]
log_format = "json"
[signing]
window_seconds = {HTTP_WINDOW}
[[applications]]
key = "{KEY}"
secrets = [{{ env = "SIG_SECRET" }}]
[[applications]]
key = "{OTHER_KEY}"
secrets = [{{ env = "SIG_OTHER_SECRET" }}]
"""


def _now(offset: float = 0.0) -> str:
    return (datetime.now(timezone.utc) + timedelta(seconds=offset)).isoformat(timespec="milliseconds")


async def test_signature_properties_over_http(callgate_server):
    server = callgate_server(HTTP_CONFIG, env={"SIG_SECRET": SECRET, "SIG_OTHER_SECRET": OTHER_SECRET})
    url = server.url + CALLBACK
    async with aiohttp.ClientSession() as session:
        async def post(body: bytes, headers: dict[str, str]) -> tuple[int, dict]:
            async with session.post(url, data=body, headers=headers) as response:
                return response.status, await response.json()

        def sign(body: bytes, *, key=KEY, secret=SECRET, path=CALLBACK, content_type="application/json",
                 timestamp=None, method="POST") -> dict[str, str]:
            timestamp = timestamp or _now()
            return {"Content-Type": content_type, "x-timestamp": timestamp,
                    "Authorization": signing.authorization(key, secret, method, path, body, content_type, timestamp)}

        body = json.dumps(samples.ace("http-sig")).encode()
        signed = sign(body)     # once: two sign() calls may take their x-timestamp a millisecond apart
        # accepted: each secret form, scheme case, content-type parameters signed as sent
        for headers in (sign(body), sign(body, content_type="application/json; charset=utf-8"),
                        sign(body, key=OTHER_KEY, secret=OTHER_SECRET),
                        {**signed, "Authorization": "application" + signed["Authorization"][11:]}):
            status, answer = await post(body, headers)
            assert status == 200 and answer["action"]["name"] == "continue", (headers, answer)

        flipped = bytearray(body)
        flipped[len(body) // 2] ^= 0x01
        headers = sign(body)
        timestamp = headers["x-timestamp"]
        changed_timestamp = timestamp.replace(".", ",", 1)       # one byte: the same instant, written differently
        wrong_secret = base64.b64encode(bytes([base64.b64decode(SECRET)[0] ^ 1]) + base64.b64decode(SECRET)[1:]).decode()
        refused = {
            "a byte of the body": (bytes(flipped), headers),
            "the signed path": (body, sign(body, path="/sinch/callbacK")),
            "the x-timestamp": (body, {**headers, "x-timestamp": changed_timestamp}),
            "the content type": (body, {**headers, "Content-Type": "application/json; charset=utf-8"}),
            "the method": (body, sign(body, method="PUT")),
            "a byte of the secret": (body, sign(body, secret=wrong_secret)),
            "the application key": (body, {**headers, "Authorization": headers["Authorization"].replace(
                f" {KEY}:", f" {OTHER_KEY}:")}),
        }
        for what, (sent_body, sent_headers) in refused.items():
            status, answer = await post(sent_body, sent_headers)
            assert (status, answer["error"], answer["reason"]) == (401, "signature", "bad_signature"), what
        status, answer = await post(body, {**headers, "Authorization": headers["Authorization"].replace(
            f" {KEY}:", " sig-apX:")})
        assert (status, answer["reason"]) == (401, "unknown_key")

        # replay: the very same bytes, accepted inside the window, refused once it has passed
        replayed = sign(body, timestamp=_now(-HTTP_WINDOW / 2))
        assert (await post(body, replayed))[0] == 200
        await asyncio.sleep(HTTP_WINDOW / 2 + 0.6)
        status, answer = await post(body, replayed)
        assert (status, answer["reason"]) == (401, "stale_timestamp")
        status, answer = await post(body, sign(body, timestamp=_now(HTTP_WINDOW + 60)))
        assert (status, answer["reason"]) == (401, "future_timestamp")
