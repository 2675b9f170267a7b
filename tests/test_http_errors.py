"""What callgate's error answers say, against a real ``callgate serve``: what was wrong with the request,
in callgate's own words; never an exception's text or an internal path (those go to the log, with the
callid).  And identifiers that no store or sink could carry are refused at the door."""

from __future__ import annotations

import json
import textwrap

import aiohttp
import pytest
from reliability_helpers_input import CALLBACK, raw_request, send_raw, signed

from callgate import samples, v2_samples
from callgate.state import PIPELINE
from callgate.testing import TEST_APPLICATION_KEY, TEST_APPLICATION_SECRET, ServerProcess, free_port

#: In every failing plugin's exception text: neither may reach a response body.
MARKER = "LEAKED-EXCEPTION-TEXT-7f3c"
SECRET_PATH = "/srv/callgate-internal/logs"


@pytest.fixture
def leaky_plugin(tmp_path):
    """An installed plugin (a dist-info on PYTHONPATH) that raises, with a path and a marker in the
    exception's text, in every hook."""
    dist = tmp_path / "callgate_leaky-1.0.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: callgate-leaky\nVersion: 1.0\n")
    (dist / "entry_points.txt").write_text("[callgate.plugins]\nleaky = callgate_leaky:Leaky\n")
    (tmp_path / "callgate_leaky.py").write_text(textwrap.dedent(f"""
        from callgate import hookimpl

        def fail():
            raise FileExistsError(17, "File exists ({MARKER})", "{SECRET_PATH}")

        class Leaky:
            @hookimpl
            def authorize_call(self, call):
                fail()

            @hookimpl
            def route_call(self, call):
                fail()

            @hookimpl
            def set_cli(self, call, route):
                fail()

            @hookimpl
            def call_decided(self, call, decision):
                fail()

            @hookimpl
            def on_answer(self, call):
                fail()

            @hookimpl
            def on_prompt_input(self, call):
                fail()

            @hookimpl
            def on_disconnect(self, call):
                fail()

            @hookimpl
            def on_notify(self, call):
                fail()

            @hookimpl
            def check_ready(self):
                fail()
    """))
    return {"PYTHONPATH": str(tmp_path)}


def config(on_error: str) -> str:
    return f"""
[server]
log_format = "json"
[plugins]
enabled = ["leaky"]
[plugins.leaky]
on_error = "{on_error}"
[[plugins.router.routes]]
action = {{ name = "connectPstn", number = "{{to}}" }}
"""


async def post(session: aiohttp.ClientSession, url: str, event: dict) -> tuple[int, bytes]:
    raw = json.dumps(event).encode()
    headers = signed(raw, TEST_APPLICATION_KEY, TEST_APPLICATION_SECRET)
    async with session.post(url + CALLBACK, data=raw, headers=dict(headers)) as response:
        return response.status, await response.read()


def assert_no_exception_text(body: bytes) -> None:
    text = body.decode()
    for leak in (MARKER, SECRET_PATH, "FileExistsError", "Errno"):
        assert leak not in text, f"{leak!r} in a response body: {text}"


@pytest.mark.parametrize("on_error", ["deny", "skip"])
async def test_failing_plugins_exception_text_never_reaches_a_response(callgate_server, leaky_plugin, on_error):
    server = callgate_server(config(on_error), env=leaky_plugin)
    events = {"ice": samples.ice(to="+14155550123"), "ace": samples.ace("c1"), "pie": samples.pie("c1"),
              "dice": samples.dice("c1"), "notify": samples.notify("c1")}
    async with aiohttp.ClientSession() as session:
        answers = {name: await post(session, server.url, event) for name, event in events.items()}
        async with session.get(server.url + "/readyz") as response:
            assert response.status == 503, "a failing check_ready must make /readyz 503"
            readyz = await response.read()
    for name, (status, body) in answers.items():
        assert_no_exception_text(body)
        if name in ("dice", "notify"):
            assert status == 503, (name, body)
            answer = json.loads(body)
            assert answer["error"] == "not_recorded"
            assert "leaky" in answer["message"], answer      # plugin names are not secret: they help
        else:
            assert status == 200, (name, body)
    assert_no_exception_text(readyz)
    assert "leaky" in readyz.decode()
    # The details are in the log, with the callid.
    failures = [line for line in server.log_lines() if line.get("event") == "plugin_failed"]
    assert any(line.get("callid") == "c1" and line.get("hook") == "on_disconnect" and MARKER in line.get("error", "")
               for line in failures), failures


@pytest.mark.parametrize("event", ["ice", "dice", "notify"])
async def test_an_error_in_callgate_itself_answers_without_its_text(callgate_client, event):
    """A bug in the core cannot be caused from outside: the pipeline is made to raise.  ICE still
    gets its safe answer; DICE/Notify get the documented not_recorded, without the exception's text."""
    client = await callgate_client()

    async def broken(call):
        raise RuntimeError(f"{MARKER} {SECRET_PATH}")

    client.app[PIPELINE].answer = broken
    response = await client.send(samples.BUILDERS[event](callid="c1"))
    body = await response.read()
    assert_no_exception_text(body)
    if event == "ice":
        assert response.status == 200 and json.loads(body)["action"]["name"] == "hangup"
    else:
        assert response.status == 503 and json.loads(body)["error"] == "not_recorded", body


DECODE_ERRORS = {
    "int_digits": (b'{"event": "dice", "callid": "c1", "duration": ' + b"9" * 5000 + b"}",
                   ("set_int_max_str_digits", "Exceeds the limit")),
    "recursion": (b"[" * 200_000 + b"]" * 200_000, ("recursion",)),
    "nan": (b'{"event": "dice", "callid": "c1", "duration": NaN}', ()),
}


@pytest.mark.parametrize("case", sorted(DECODE_ERRORS))
async def test_decode_errors_answer_in_callgates_own_words(callgate_server, case):
    server = callgate_server('[server]\nlog_format = "json"\nmax_body_bytes = 1000000\n')
    raw, leaks = DECODE_ERRORS[case]
    async with aiohttp.ClientSession() as session:
        headers = signed(raw, TEST_APPLICATION_KEY, TEST_APPLICATION_SECRET)
        async with session.post(server.url + CALLBACK, data=raw, headers=dict(headers)) as response:
            status, body = response.status, await response.json()
    assert status == 400 and body["error"] == "invalid_json", body
    for leak in leaks:
        assert leak not in body["message"], body


@pytest.mark.parametrize("field, event", [
    ("callid", samples.dice("a\x00b")), ("callid", samples.ice(callid="bell\x07")),
    ("callid", samples.notify("line\nbreak")), ("callid", samples.pie("del\x7f")),
    ("callId", {**{k: v for k, v in samples.dice().items() if k != "callid"}, "callId": "tab\tid"}),
    ("applicationKey", {**samples.ice(), "applicationKey": "key\x00"}),
    ("user", {**samples.ice(), "user": "alice\x1b[0m"}),
])
async def test_identifiers_with_control_characters_are_refused(callgate_server, field, event):
    """A callid (or another identifier plugins key their records by) with a NUL or another control
    character could never be stored or delivered everywhere (PostgreSQL text, HTTP headers): 400."""
    server = callgate_server('[server]\nlog_format = "json"\n')
    raw = json.dumps(event).encode()
    reply = await send_raw(server.url, raw_request("POST", CALLBACK, signed(raw, TEST_APPLICATION_KEY,
                                                                             TEST_APPLICATION_SECRET), raw,
                                                   content_length=len(raw)))
    body = json.loads(reply.body)
    assert reply.status == 400 and body["error"] == "invalid_field", body
    assert body["message"].startswith(f"{field}: "), body


async def test_an_empty_callid_is_refused(callgate_server):
    """A DICE with an empty callid is 400 (two such calls would be one to every plugin keying records by it),
    and nothing is recorded for it."""
    server = callgate_server('[server]\nlog_format = "json"\n')
    raw = json.dumps({**samples.dice(), "callid": ""}).encode()
    reply = await send_raw(server.url, raw_request("POST", CALLBACK, signed(raw, TEST_APPLICATION_KEY,
                                                                             TEST_APPLICATION_SECRET), raw,
                                                   content_length=len(raw)))
    body = json.loads(reply.body)
    assert (reply.status, body["error"], body["message"]) == (400, "invalid_field", "callid: empty (required in DICE)")


# --------------------------------------------------------------------------- bodies that break mid-way

BODY_TIMEOUT = 5.0
#: An answer "at once": far below the body timeout, with room for a loaded 2-core machine.
AT_ONCE = 1.5

BROKEN_CHUNKS = {
    "size_not_hex": b"zz\r\n{}\r\n0\r\n\r\n",
    "chunk_longer_than_its_size": b"2\r\n{\"event\": \"dice\"}\r\n0\r\n\r\n",
}


async def _answer_after_head(url: str, head: bytes, rest: bytes, half_close: bool) -> tuple[bytes, float]:
    """Send ``head``, then (a moment later, as its own packet) ``rest``, optionally half-close:
    (what the server answered, seconds from ``rest`` until the server closed the connection)."""
    import asyncio
    import time

    host, port = url.removeprefix("http://").split(":")
    reader, writer = await asyncio.open_connection(host, int(port))
    try:
        writer.write(head)
        await writer.drain()
        await asyncio.sleep(0.3)             # the head alone reaches the server: the body is awaited
        sent = time.monotonic()
        writer.write(rest)
        await writer.drain()
        if half_close:
            writer.write_eof()
        async with asyncio.timeout(BODY_TIMEOUT + 5):
            received = await reader.read()   # until the server closes
        return received, time.monotonic() - sent
    finally:
        writer.close()


def _head(headers: list[tuple[str, str]]) -> bytes:
    return raw_request("POST", CALLBACK, [("Content-Type", "application/json"), *headers], b"")


@pytest.mark.parametrize("case", sorted(BROKEN_CHUNKS))
async def test_a_broken_chunk_after_the_head_is_answered_400_at_once(callgate_server, case):
    server = callgate_server(f'[server]\nlog_format = "json"\nbody_timeout_seconds = {BODY_TIMEOUT}\n')
    received, took = await _answer_after_head(server.url, _head([("Transfer-Encoding", "chunked")]),
                                              BROKEN_CHUNKS[case], half_close=False)
    assert received.startswith(b"HTTP/1.1 400 "), received[:300]
    assert json.loads(received.split(b"\r\n\r\n", 1)[1])["error"] == "incomplete_body", received
    assert took < AT_ONCE, f"answered after {took:.2f} s"


async def test_half_a_body_then_a_half_close_is_answered_400_at_once(callgate_server):
    server = callgate_server(f'[server]\nlog_format = "json"\nbody_timeout_seconds = {BODY_TIMEOUT}\n')
    received, took = await _answer_after_head(server.url, _head([("Content-Length", "100")]),
                                              b'{"event": "dice", "callid"', half_close=True)
    assert received.startswith(b"HTTP/1.1 400 "), received[:300]
    assert json.loads(received.split(b"\r\n\r\n", 1)[1])["error"] == "incomplete_body", received
    assert took < AT_ONCE, f"answered after {took:.2f} s"


async def test_a_head_and_half_a_body_sent_with_the_half_close_at_once_are_answered_400(callgate_server):
    """Head, part of the body and the end of the stream in one read: the request is queued and its handler not
    started when the end comes (the transport used to be closed then, with no answer)."""
    import asyncio
    server = callgate_server(f'[server]\nlog_format = "json"\nbody_timeout_seconds = {BODY_TIMEOUT}\n')
    host, port = server.url.removeprefix("http://").split(":")
    for _ in range(10):
        reader, writer = await asyncio.open_connection(host, int(port))
        try:
            writer.write(_head([("Content-Length", "100")]) + b'{"ev')
            writer.write_eof()
            async with asyncio.timeout(AT_ONCE + 1):
                received = await reader.read()
        finally:
            writer.close()
        assert received.startswith(b"HTTP/1.1 400 "), received[:300]
        assert json.loads(received.split(b"\r\n\r\n", 1)[1])["error"] == "incomplete_body", received


async def test_a_whole_request_then_a_half_close_still_gets_its_answer(callgate_server):
    """A client that half-closes once its request is sent (allowed by HTTP/1.1) waits for the answer."""
    server = callgate_server(f'[server]\nlog_format = "json"\nbody_timeout_seconds = {BODY_TIMEOUT}\n')
    raw = json.dumps(samples.dice("half-closed")).encode()
    head = raw_request("POST", CALLBACK, signed(raw, TEST_APPLICATION_KEY, TEST_APPLICATION_SECRET), b"",
                       content_length=len(raw))
    received, took = await _answer_after_head(server.url, head, raw, half_close=True)
    assert received.startswith(b"HTTP/1.1 200 ") and received.endswith(b"\r\n\r\n{}"), received[:300]
    assert took < AT_ONCE, f"answered after {took:.2f} s"


async def _sent_half_closed(host: str, port: int, data: bytes) -> bytes:
    """Send ``data`` and the half-close in one go; what the server answered until it closed the connection."""
    import asyncio
    reader, writer = await asyncio.open_connection(host, port)
    try:
        writer.write(data)
        writer.write_eof()
        async with asyncio.timeout(AT_ONCE + 1):
            return await reader.read()
    finally:
        writer.close()


def _signed_dice(callid: str) -> tuple[bytes, bytes]:
    """A signed DICE's request bytes, and its body."""
    raw = json.dumps(samples.dice(callid)).encode()
    return raw_request("POST", CALLBACK, signed(raw, TEST_APPLICATION_KEY, TEST_APPLICATION_SECRET), raw,
                       content_length=len(raw)), raw


@pytest.mark.parametrize("event_loop", ["asyncio", "uvloop"])
async def test_a_whole_request_sent_with_the_half_close_at_once_gets_its_answer(callgate_server, event_loop):
    """The request and the end of the stream in one read, the handler not started when the end comes: the
    connection used to be closed with no answer (a ``GET /healthz`` as much as a signed callback)."""
    import asyncio
    server = callgate_server(f'[server]\nlog_format = "json"\nevent_loop = "{event_loop}"\n')
    host, port = server.url.removeprefix("http://").split(":")
    callback, _ = _signed_dice("half-closed-at-once")
    for request, answered in [(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n", b'{"status": "alive"}'),
                              (callback, b"\r\n\r\n{}")] * 5:
        received = await _sent_half_closed(host, int(port), request)
        assert received.startswith(b"HTTP/1.1 200 ") and received.endswith(answered), received[:300]
    # A connection that ends with no request, or after its answered ones (kept alive), is closed at once.
    for requests in (b"", b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n"):
        reader, writer = await asyncio.open_connection(host, int(port))
        try:
            writer.write(requests)
            if requests:
                await reader.readuntil(b'{"status": "alive"}')
            writer.write_eof()
            async with asyncio.timeout(AT_ONCE):
                assert await reader.read() == b""
        finally:
            writer.close()


async def test_pipelined_requests_sent_with_the_half_close_are_each_answered(callgate_server):
    """Two whole requests, then the half-close, in one write: both are answered, in order, then the connection is
    closed (the second used to be dropped without a word: a DICE among them was never recorded)."""
    server = callgate_server('[server]\nlog_format = "json"\n')
    host, port = server.url.removeprefix("http://").split(":")
    dice, raw = _signed_dice("pipelined-dice")
    healthz = b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n"
    for requests in [healthz + healthz, dice + healthz, healthz + dice] * 3:
        received = await _sent_half_closed(host, int(port), requests)
        assert received.count(b"HTTP/1.1 200 ") == 2, received
        assert received.endswith(b"\r\n\r\n{}" if requests.endswith(raw) else b'{"status": "alive"}'), received


async def test_the_ops_port_answers_a_request_sent_with_the_half_close(tmp_path):
    """The ops port's connections are handled as the callback port's: a load balancer's health check that half-closes
    at once gets its answer there too."""
    ops_port = free_port()
    config = tmp_path / "config.toml"
    config.write_text(f'[server]\nlog_format = "json"\nops_port = {ops_port}\n')
    server = ServerProcess(config, env={"SINCH_APPLICATION_KEY": TEST_APPLICATION_KEY,
                                        "SINCH_APPLICATION_SECRET": TEST_APPLICATION_SECRET}, ops_port=ops_port).start()
    try:
        await _health_checks_half_closed(ops_port)
    finally:
        server.stop()


async def test_a_plugin_page_whose_body_breaks_off_is_a_400_not_a_page_failure(tmp_path):
    """The console's login form cut short by the client (half its Content-Length, then the half-close): the client's
    fault, answered 400 incomplete_body as on the callback paths, not a 500 blaming the page."""
    pytest.importorskip("callgate_console", reason="the console plugin is not installed")
    ops_port = free_port()
    config = tmp_path / "config.toml"
    config.write_text(f'[server]\nlog_format = "json"\nops_port = {ops_port}\n[plugins]\nenabled = ["console"]\n'
                      f'[plugins.console]\ndatabase_url = "sqlite:///{tmp_path}/console.sqlite3"\n')
    server = ServerProcess(config, env={"SINCH_APPLICATION_KEY": TEST_APPLICATION_KEY,
                                        "SINCH_APPLICATION_SECRET": TEST_APPLICATION_SECRET,
                                        "CALLGATE_CONSOLE_TOKEN": "a-console-token-of-some-length"},
                           ops_port=ops_port).start()
    try:
        received = await _sent_half_closed("127.0.0.1", ops_port, b"POST /console/login HTTP/1.1\r\nHost: x\r\n"
                                           b"Content-Type: application/x-www-form-urlencoded\r\n"
                                           b"Content-Length: 100\r\n\r\ntoken=abc")
        assert received.startswith(b"HTTP/1.1 400 "), received[:300]
        assert json.loads(received.split(b"\r\n\r\n", 1)[1])["error"] == "incomplete_body"
    finally:
        server.stop()


async def _health_checks_half_closed(ops_port: int) -> None:
    for path, answered in [(b"/healthz", b'{"status": "alive"}'), (b"/readyz", b"}")] * 3:
        received = await _sent_half_closed("127.0.0.1", ops_port, b"GET " + path + b" HTTP/1.1\r\nHost: x\r\n\r\n")
        assert received.startswith(b"HTTP/1.1 200 ") and received.endswith(answered), received[:300]


@pytest.mark.parametrize("case", ["control_character", "method", "long_line", "duplicate", "too_many"])
async def test_the_http_layers_400_does_not_quote_the_request_back(callgate_server, case):
    """aiohttp's parser message quotes the offending line (an Authorization header, say): callgate's
    plain-text 400 says what was wrong in its own words instead."""
    server = callgate_server('[server]\nlog_format = "json"\n')
    marker = MARKER.encode()
    head = {
        "control_character": b"POST /sinch/callback HTTP/1.1\r\nHost: x\r\nAuthorization: Application k:" + marker
                             + b"\x01\r\n\r\n",
        "method": b"GET" + marker + b" /sinch/callback HTTP/1.1\r\nHost: x\r\n\r\n",
        "long_line": b"POST /sinch/callback HTTP/1.1\r\nHost: x\r\nX-Long: " + marker + b"a" * 9000 + b"\r\n\r\n",
        "duplicate": b"POST /sinch/callback HTTP/1.1\r\nHost: x\r\nContent-Type: " + marker
                     + b"\r\nContent-Type: application/json\r\nContent-Length: 2\r\n\r\n{}",
        "too_many": b"POST /sinch/callback HTTP/1.1\r\nHost: x\r\n"
                    + b"".join(b"X-%d: " % i + marker + b"\r\n" for i in range(200)) + b"\r\n",
    }[case]
    reply = await send_raw(server.url, head)
    assert reply.status == 400 and reply.content_type == "text/plain", reply
    assert marker not in reply.body and reply.body.startswith(b"Bad Request: "), reply.body


async def test_an_empty_body_signed_the_sdks_way_is_refused_as_empty_not_as_a_forgery(callgate_client):
    """Sinch's SDKs sign an empty body with the MD5 of no bytes, v1's docs with "": either way the request is signed,
    and its empty body is the 400 (it used to be a 401 bad_signature when signed the SDK's way)."""
    from callgate.protocols.signing_common import EMPTY_BODY_MD5, now_timestamp, signature, string_to_sign
    from callgate.testing import TEST_SERVICE_ID, TEST_SERVICE_SECRET

    client = await callgate_client({})
    for send, scheme, key, secret, path in (
            (client.send, "Application", TEST_APPLICATION_KEY, TEST_APPLICATION_SECRET, "/sinch/callback"),
            (client.send_webhook, "service", TEST_SERVICE_ID, TEST_SERVICE_SECRET, "/sinch/webhook")):
        stamp = now_timestamp()
        sdk_way = signature(secret, string_to_sign("POST", EMPTY_BODY_MD5, "application/json", stamp, path))
        for md5, sig in (("", None), (EMPTY_BODY_MD5, sdk_way)):
            headers = {"x-timestamp": stamp, "Authorization": f"{scheme} {key}:{sig}"} if sig else None
            response = await send(b"", headers=headers, timestamp=stamp)
            body = await response.json()
            assert (response.status, body["error"]) == (400, "invalid_json"), (path, md5, body)
            assert body["message"] == "body is not JSON: it is empty (Sinch sends a JSON object)"


async def test_a_body_naming_another_configured_application_or_service_than_the_signer_is_refused(callgate_client,
                                                                                                 monkeypatch):
    """One application's (service's) secret may not speak for another's calls: its allowlist scope, its paying
    account, its CRM records. A body naming an id callgate does not know (a sample, a test body) is its own business."""
    import base64
    import os

    from callgate.protocols.v1 import signing
    from callgate.testing import webhook_headers

    secret_a, secret_b = (base64.b64encode(os.urandom(16)).decode() for _ in range(2))
    monkeypatch.setenv("SIGNER_A", secret_a)
    monkeypatch.setenv("SIGNER_B", secret_b)
    a, b = [{"env": "SIGNER_A"}], [{"env": "SIGNER_B"}]
    client = await callgate_client({
        "applications": [{"key": "app-a", "secrets": a}, {"key": "app-b", "secrets": b}],
        "services": [{"id": "svc-a", "secrets": a}, {"id": "svc-b", "secrets": b}]})

    async def v1(named: str) -> tuple[int, dict]:
        raw = json.dumps({**samples.ace("signer-1"), "applicationKey": named}).encode()
        headers = signing.signed_headers("app-a", secret_a, "/sinch/callback", raw)
        response = await client.send(raw, sign=False, headers=headers)
        return response.status, await response.json()

    async def v2(named: str) -> tuple[int, dict]:
        raw = json.dumps(v2_samples.answered("signer-2", service_id=named)).encode()
        response = await client.send_webhook(raw, sign=False,
                                             headers=webhook_headers(raw, service_id="svc-a", secret=secret_a))
        return response.status, await response.json()

    for send, own, other, word in ((v1, "app-a", "app-b", "application"), (v2, "svc-a", "svc-b", "service")):
        assert (await send(own))[0] == 200
        assert (await send("not-configured"))[0] == 200
        status, body = await send(other)
        assert (status, body["error"], body["reason"]) == (401, "signature", "signer_mismatch"), body
        assert body["message"] == (f"the body names {word} '{other}', but the request is signed by {word} '{own}': "
                                   f"one {word}'s secret may not speak for another's calls")
        # ids as the plugins compare them (the allowlist: any case, spaces around ignored): no way around the check
        for disguised in (other.upper(), f" {other} "):
            status, body = await send(disguised)
            assert (status, body.get("reason")) == (401, "signer_mismatch"), (disguised, body)
        assert (await send(own.upper()))[0] == 200
