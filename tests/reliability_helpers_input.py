"""Helpers for the reliability tests of callgate's input surface (fuzz, slow senders, signatures, secrets).

* ``Req``: one request as the fuzz generates it (sent with the aiohttp client, or as raw bytes
  when it is malformed HTTP that no client library would send).
* ``send``: sends it to a running server and returns a ``Reply`` (status, content type, body),
  or ``Reply.closed()`` when the server closed the connection without an answer.
* ``expected``: what the README's "What callgate answers" table says the answer must be, computed
  from the request alone (method, path, size, Content-Type, signature, body), as a set of outcomes.
* ``check_reply``: the reply is one of those outcomes, with the documented body: a JSON error
  ``{"error", "message"[, "reason"]}``, ``{}``, or SVAML valid for the event.
* ``vm_rss_kib``: a process's resident memory, from /proc.
"""

from __future__ import annotations

import asyncio
import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

import aiohttp
from aiohttp.helpers import parse_content_type
from aiohttp.http_parser import SINGLETON_HEADERS
from multidict import CIMultiDict

from callgate.calls import Ended, Notice
from callgate.protocols.errors import EventError, UnknownEvent
from callgate.protocols.v1 import signing
from callgate.protocols.v1.decode import decode_event
from callgate.protocols.v1.signing import SignatureError, Verifier
from callgate.protocols.v1.svaml import parse_svaml

CALLBACK = "/sinch/callback"

#: The documented error codes, by status (README, "What callgate answers").
ERROR_CODES = {
    400: {"invalid_json", "not_an_object", "missing_event", "invalid_field", "incomplete_body"},
    401: {"signature"},
    404: {"not_found"},
    405: {"method_not_allowed"},
    408: {"body_timeout"},
    413: {"body_too_large"},
    415: {"unsupported_media_type"},
}
SIGNATURE_REASONS = {"missing_authorization", "malformed_authorization", "unsupported_scheme", "unknown_key",
                     "missing_timestamp", "invalid_timestamp", "bad_signature", "stale_timestamp",
                     "future_timestamp", "no_application", "signer_mismatch"}
#: A refusal by the HTTP layer (aiohttp's parser) before callgate sees the request: 400, plain text.
HTTP_400 = "http400"
#: aiohttp's own plain-text 404 for a request target that is not a path (CONNECT host:port, OPTIONS *).
HTTP_404 = "http404"
CLOSED = "closed"


@dataclass
class Req:
    """One generated request.  ``raw`` (complete HTTP bytes) is sent as is; else the other fields."""

    label: str
    method: str = "POST"
    target: str = CALLBACK
    headers: list[tuple[str, str]] = field(default_factory=list)
    body: bytes = b""
    raw: bytes | None = None
    #: Outcomes allowed when the model cannot compute them (raw, malformed HTTP); None: use ``expected``.
    allowed: frozenset[str] | None = None
    #: A raw request the server may rightly wait on (it is not complete yet): no answer within
    #: a second is then the outcome ``"waiting"`` instead of a hang.
    may_wait: bool = False


@dataclass
class Reply:
    status: int | None
    content_type: str
    body: bytes

    @classmethod
    def closed(cls) -> Reply:
        return cls(None, "", b"")


# --------------------------------------------------------------------------- sending

async def send(session: aiohttp.ClientSession, base_url: str, req: Req, timeout: float = 10.0) -> Reply:
    """Send ``req``; the server must answer (or close) within ``timeout`` seconds, else AssertionError."""
    if req.raw is not None:
        if req.may_wait:
            try:
                return await send_raw(base_url, req.raw, 1.0)
            except AssertionError:
                return Reply(None, "waiting", b"")
        return await send_raw(base_url, req.raw, timeout)
    try:
        async with asyncio.timeout(timeout):
            async with session.request(req.method, base_url + req.target, data=req.body,
                                       headers=CIMultiDict(req.headers),
                                       skip_auto_headers=("Content-Type", "User-Agent")) as response:
                return Reply(response.status, response.content_type, await response.read())
    except TimeoutError:
        raise AssertionError(f"{req.label}: no answer within {timeout} s (a hang)") from None
    except (aiohttp.ServerDisconnectedError, aiohttp.ClientOSError):
        return Reply.closed()


async def send_raw(base_url: str, raw: bytes, timeout: float = 10.0) -> Reply:
    """Write ``raw`` on a new connection and read one HTTP answer (or the server closing the connection)."""
    url = urlsplit(base_url)
    reader, writer = await asyncio.open_connection(url.hostname, url.port)
    try:
        async with asyncio.timeout(timeout):
            try:
                writer.write(raw)
                await writer.drain()
            except ConnectionError:
                pass                      # the server answered and closed before reading everything
            return await read_reply(reader)
    except TimeoutError:
        raise AssertionError(f"raw request: no answer within {timeout} s (a hang): {raw[:120]!r}") from None
    finally:
        writer.close()
        try:
            await writer.wait_closed()
        except ConnectionError:
            pass


async def read_reply(reader: asyncio.StreamReader) -> Reply:
    """One HTTP/1.1 answer from ``reader``: ``Reply.closed()`` when the connection ends first."""
    while True:
        try:
            head = await reader.readuntil(b"\r\n\r\n")
        except (asyncio.IncompleteReadError, asyncio.LimitOverrunError, ConnectionError):
            return Reply.closed()
        lines = head.decode("latin-1").split("\r\n")
        status = int(lines[0].split(" ")[1])
        if status >= 200:
            break                     # 100 Continue (Expect: 100-continue) comes before the answer
    headers = {}
    for line in lines[1:]:
        if ":" in line:
            name, _, value = line.partition(":")
            headers[name.strip().lower()] = value.strip()
    length = int(headers.get("content-length", "0"))
    try:
        body = await reader.readexactly(length)
    except (asyncio.IncompleteReadError, ConnectionError):
        return Reply.closed()
    return Reply(status, headers.get("content-type", "").split(";")[0].strip(), body)


def raw_request(method: str, target: str, headers: list[tuple[str, str | bytes]], body: bytes,
                content_length: int | None = None) -> bytes:
    """HTTP/1.1 request bytes; header values may be bytes (not UTF-8, control characters...)."""
    lines = [f"{method} {target} HTTP/1.1".encode("latin-1"), b"Host: 127.0.0.1"]
    for name, value in headers:
        lines.append(name.encode("latin-1") + b": " + (value if isinstance(value, bytes) else value.encode("utf-8")))
    if content_length is not None:
        lines.append(b"Content-Length: %d" % content_length)
    return b"\r\n".join(lines) + b"\r\n\r\n" + body


# --------------------------------------------------------------------------- the model of the answers

def expected(req: Req, verifier: Verifier, max_body_bytes: int, signed_path: str = CALLBACK) -> frozenset[str]:
    """The outcomes README's table allows for ``req`` (for requests sent with the aiohttp client).

    Outcomes: ``"200:get"``, ``"200:head"``, ``"200:ack"`` (``{}``), ``"200:svaml:<event>"``,
    ``"<status>:<code>"`` for JSON errors (``"401:<reason>"`` for signature refusals).
    """
    if req.allowed is not None:
        return req.allowed
    names = [name.lower() for name, _ in req.headers]
    if any(names.count(name) > 1 for name in SINGLETON_HEADERS):
        return frozenset({HTTP_400})        # aiohttp refuses a repeated Content-Type, Content-Length, Host...
    path = urlsplit(req.target).path
    if req.method == "HEAD":
        return frozenset({"200:head" if path == CALLBACK else "404:head"})
    if path != CALLBACK:
        return frozenset({"404:not_found"})
    if req.method == "GET":
        return frozenset({"200:get"})
    if req.method != "POST":
        return frozenset({"405:method_not_allowed"})
    if len(req.body) > max_body_bytes:
        return frozenset({"413:body_too_large"})
    # As the server sees them: HTTP drops the whitespace around a header value.
    headers = CIMultiDict((name, value.strip(" \t")) for name, value in req.headers)
    raw_type = headers.get("Content-Type")
    content_type = "application/octet-stream" if raw_type is None else parse_content_type(raw_type)[0]
    if content_type != "application/json":
        return frozenset({"415:unsupported_media_type"})
    try:
        verifier.verify("POST", signed_path, headers, req.body)
    except SignatureError as exc:
        return frozenset({f"401:{exc.reason}"})
    return frozenset({decoded_outcome(req.body)})


def decoded_outcome(body: bytes) -> str:
    """The answer to a correctly signed body: 400 with the decoder's code, ``{}``, or SVAML for the event."""
    try:
        event = decode_event(body)
    except UnknownEvent:
        return "200:ack"
    except EventError as exc:
        return f"400:{exc.code}"
    if isinstance(event, (Ended, Notice)):
        return "200:ack"
    return f"200:svaml:{event.event}"


def outcome_of(reply: Reply, method: str = "POST") -> str:
    """Classify a reply, checking that its body is the documented one for its status."""
    if reply.status is None:
        return reply.content_type or CLOSED            # "waiting" (see Req.may_wait) or "closed"
    if reply.status >= 500:
        raise AssertionError(f"a {reply.status}: {reply.body[:300]!r}")
    if reply.status == 400 and reply.content_type == "text/plain":
        return HTTP_400
    if reply.status == 404 and reply.content_type == "text/plain":
        return HTTP_404
    if method == "HEAD":
        assert reply.body == b"", (reply.status, reply.body[:200])
        return f"{reply.status}:head"
    assert reply.content_type == "application/json", (reply.status, reply.content_type, reply.body[:200])
    body = json.loads(reply.body)
    if reply.status == 200:
        if body == {}:
            return "200:ack"
        if body == {"service": "callgate", "status": "ok"}:
            return "200:get"
        return "200:svaml"
    assert reply.status in ERROR_CODES, f"undocumented status {reply.status}: {body}"
    assert isinstance(body, dict) and set(body) <= {"error", "message", "reason"}, body
    assert body["error"] in ERROR_CODES[reply.status], (reply.status, body)
    assert isinstance(body["message"], str) and body["message"], body
    if reply.status == 401:
        assert body["reason"] in SIGNATURE_REASONS, body
        return f"401:{body['reason']}"
    return f"{reply.status}:{body['error']}"


def check_reply(req: Req, reply: Reply, allowed: frozenset[str]) -> str:
    """The reply is documented and allowed for the request; SVAML is valid for its event.  Returns the outcome."""
    got = outcome_of(reply, req.method)
    if got == "200:svaml":
        events = [o.split(":")[2] for o in allowed if o.startswith("200:svaml:")]
        assert events, f"{req.label}: SVAML answer where {sorted(allowed)} was expected: {reply.body[:300]!r}"
        parse_svaml(json.loads(reply.body)).validate_for(events[0])
        return f"200:svaml:{events[0]}"
    assert got in allowed, f"{req.label}: got {got} ({reply.body[:300]!r}), expected one of {sorted(allowed)}"
    return got


# --------------------------------------------------------------------------- the process

def vm_rss_kib(pid: int) -> int:
    """Resident set size of a process, in KiB (VmRSS in /proc/PID/status)."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise AssertionError(f"no VmRSS for pid {pid}")


def signed(body: bytes, key: str, secret: str, *, path: str = CALLBACK, content_type: str = "application/json",
           timestamp: str | None = None) -> list[tuple[str, str]]:
    return list(signing.signed_headers(key, secret, path, body, content_type=content_type,
                                       timestamp=timestamp).items())


def env_int(name: str, default: int) -> int:
    value = os.environ.get(name)
    return default if not value else int(value)


def json_log_lines(logs: str) -> tuple[list[dict], list[str]]:
    """The server's log split at newlines only (``str.splitlines`` would also split inside a JSON
    string holding U+2028, U+0085...): (parsed JSON lines, lines that are not JSON)."""
    parsed, other = [], []
    for line in logs.split("\n"):
        if not line.strip():
            continue
        try:
            parsed.append(json.loads(line))
        except ValueError:
            other.append(line)
    return parsed, other
