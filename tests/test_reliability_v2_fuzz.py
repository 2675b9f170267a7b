"""Adversarial input on the Voice API v2 webhook path: generated (mutated, malformed, tampered) webhooks against one
real ``callgate serve`` with allowlist, credit_check and crm_export enabled.

Every answer must be the one computed from the request alone (the service verifier and the v2 decoder): a documented
4xx with a JSON error body (``error``, ``message``, ``reason`` for 401) and no exception text, or ``200`` whose body
loads in the official SDK's ``VoiceSinchEventResponse`` (``{"commands": []}`` for end events, notices, custom and
unknown ``call.*`` events).  Never a 5xx, never a 424 (SQLite records everything here), the process stays up and its
log has no error line.

Examples: ``CALLGATE_FUZZ_V2_EXAMPLES`` (default 500); derandomized unless ``CALLGATE_FUZZ_SEED`` is set.
"""

from __future__ import annotations

import asyncio
import base64
import json
import os
from collections import Counter
from datetime import datetime, timedelta, timezone

import aiohttp
import pytest
from hypothesis import HealthCheck, given, seed, settings
from hypothesis import strategies as st
from reliability_helpers_input import ERROR_CODES, Reply, Req, env_int, json_log_lines, send
from test_reliability_fuzz import DELETE, dumps, odd_text, set_path, values
from v2_sdk_checks import assert_sdk_accepts_answer

from callgate import v2_samples
from callgate.calls import Ended, Notice
from callgate.endpoints import IgnoredEvent, decode_webhook
from callgate.protocols.errors import EventError
from callgate.protocols.signing_common import SignatureError
from callgate.protocols.v2.signing import ServiceVerifier, service_signed_headers
from callgate.testing import WEBHOOK_PATH, full_stack_config

#: Starts the real callgate command: skipped by -m 'not slow'.
pytestmark = pytest.mark.slow

EXAMPLES = env_int("CALLGATE_FUZZ_V2_EXAMPLES", 500)
SEED = os.environ.get("CALLGATE_FUZZ_SEED")
MAX_BODY = 65536
WINDOW = 600
SERVICE_A, SERVICE_B = "fuzz-service-a", "fuzz-service-b"
SECRET_A1, SECRET_A2, SECRET_B = (base64.b64encode(os.urandom(16)).decode() for _ in range(3))
ENV = {"FUZZ_SERVICE_A1": SECRET_A1, "FUZZ_SERVICE_A2": SECRET_A2, "FUZZ_SERVICE_B": SECRET_B}
VERIFIER = ServiceVerifier({SERVICE_A: [SECRET_A1, SECRET_A2], SERVICE_B: [SECRET_B]}, window_seconds=WINDOW)
#: Error codes of the webhook path besides the callback path's (an event that is not ``call.*``).
V2_ERROR_CODES = {**ERROR_CODES, 400: ERROR_CODES[400] | {"unknown_event"}}
SIGNATURE_REASONS = {"missing_authorization", "malformed_authorization", "unsupported_scheme", "unknown_key",
                     "missing_timestamp", "invalid_timestamp", "bad_signature", "stale_timestamp", "future_timestamp",
                     "signer_mismatch"}
#: What no error message may contain: callgate speaks in its own words.
EXCEPTION_TEXT = ("Traceback", 'File "', ".py", "Error(", "Exception", "0x")

EVENT_NAMES = ["call.incoming", "call.answered", "call.menu", "call.hangup", "call.busy", "call.amd.human",
               "call.recording.finished", "call.webhook.x", "call.customEvent.y", "call.new", "CALL.INCOMING",
               "ice", "", "call.", "call.incoming\x00"]
PATHS = ["event", "call", "call.callId", "call.from", "call.from.type", "call.from.phone.number", "call.to",
         "call.to.type", "call.to.phone.number", "call.to.sip.endpoint", "call.callRate", "call.callRate.amount",
         "call.callDurationSeconds", "call.callResult", "call.direction", "call.serviceId", "call.sessionId",
         "call.startTime", "call.answerTime", "call.callHeaders", "call.callType", "menu", "menu.menuName",
         "menu.input", "extra"]


@st.composite
def webhook_bodies(draw) -> bytes:
    """A realistic v2 webhook, mutated at 0-3 places; or junk."""
    kind = draw(st.sampled_from(["incoming", "incoming", "answered", "menu", "hangup", "busy", "custom", "junk"]))
    if kind == "junk":
        return draw(st.sampled_from([b"", b"{", b"[]", b"null", b'{"event": "call.incoming"}', b'{"call": {}}',
                                     b'{"event": "call.hangup", "call": []}', b"\xff\xfe", b'{"event": "\\ud800"}'])
                    | st.binary(max_size=200))
    caller = draw(st.sampled_from(["+46701234567", "+4670999", "sip:alice@example.com", "+1 415", ""]) | odd_text)
    to = draw(st.sampled_from(["+46850001234", "+14155550123", "sip:bob@example.com", "+"]) | odd_text)
    body = {"incoming": lambda: v2_samples.incoming(caller, to, service_id=SERVICE_A),
            "answered": lambda: v2_samples.answered(service_id=SERVICE_A),
            "menu": lambda: v2_samples.menu(input=draw(st.sampled_from(["1", "12#", "", "*"])), service_id=SERVICE_A),
            "hangup": lambda: v2_samples.hangup(duration=draw(st.integers(0, 14400)), service_id=SERVICE_A),
            "busy": lambda: v2_samples.ended("call.busy", duration=None, service_id=SERVICE_A),
            "custom": lambda: v2_samples.custom("ping", service_id=SERVICE_A)}[kind]()
    for _ in range(draw(st.integers(0, 3))):
        path = draw(st.sampled_from(PATHS))
        value = draw(st.sampled_from(EVENT_NAMES) | values) if path == "event" else draw(st.just(DELETE) | values)
        set_path(body, path, value)
    return dumps(body, draw(st.booleans()))


def _timestamp(offset: float) -> str:
    return (datetime.now(timezone.utc) + timedelta(seconds=offset)).isoformat(timespec="milliseconds")


@st.composite
def webhook_requests(draw) -> Req:
    body = draw(webhook_bodies())
    variant = draw(st.sampled_from(["good"] * 6 + ["rotated", "service_b", "capital_scheme", "unknown_service",
                                                   "wrong_service", "stale", "future", "no_timestamp",
                                                   "no_authorization", "bearer", "application", "signature_changed",
                                                   "other_body", "path_changed", "content_type", "ce_headers"]))
    service, secret, content_type, offset = SERVICE_A, SECRET_A1, "application/json", draw(st.floats(-500, 500))
    if variant == "rotated":
        secret = SECRET_A2
    elif variant == "service_b":
        service, secret = SERVICE_B, SECRET_B
    elif variant == "stale":
        offset = -WINDOW - draw(st.floats(5, 10 ** 6))
    elif variant == "future":
        offset = WINDOW + draw(st.floats(5, 10 ** 6))
    elif variant == "content_type":
        content_type = draw(st.sampled_from(["application/json; charset=utf-8", "text/plain", "application/jsonx", ""]))
    headers = service_signed_headers(service, secret, WEBHOOK_PATH, body, content_type=content_type,
                                     timestamp=_timestamp(offset))
    auth = headers["Authorization"]
    if variant == "capital_scheme":
        headers["Authorization"] = "Service" + auth[len("service"):]
    elif variant == "unknown_service":
        headers["Authorization"] = auth.replace(f" {SERVICE_A}:", " nobody:")
    elif variant == "wrong_service":
        headers["Authorization"] = auth.replace(f" {SERVICE_A}:", f" {SERVICE_B}:")
    elif variant == "no_timestamp":
        del headers["x-timestamp"]
    elif variant == "no_authorization":
        del headers["Authorization"]
    elif variant == "bearer":
        headers["Authorization"] = "Bearer " + auth.rsplit(":", 1)[1]
    elif variant == "application":
        headers["Authorization"] = "Application" + auth[len("service"):]
    elif variant == "signature_changed":
        headers["Authorization"] = auth[:-5] + draw(st.sampled_from(["AAAA=", "////=", "abcd="]))
    elif variant == "other_body":
        headers["Authorization"] = service_signed_headers(service, secret, WEBHOOK_PATH, body + b" ",
                                                          timestamp=headers["x-timestamp"])["Authorization"]
    elif variant == "path_changed":
        headers["Authorization"] = service_signed_headers(service, secret, "/sinch/callback", body,
                                                          timestamp=headers["x-timestamp"])["Authorization"]
    elif variant == "ce_headers":
        headers.update({"ce-id": draw(st.text(alphabet=st.characters(min_codepoint=32, max_codepoint=126),
                                              max_size=60)), "ce-type": "com.sinch.voice.call.control.v1"})
    return Req(variant, target=WEBHOOK_PATH, headers=list(headers.items()), body=body)


def expected(req: Req) -> str:
    """The outcome the documented checks give ``req``, in their order."""
    headers = dict(req.headers)
    if len(req.body) > MAX_BODY:
        return "413:body_too_large"
    if headers.get("Content-Type", "").split(";")[0].strip().lower() != "application/json":
        return "415:unsupported_media_type"
    try:
        signer = VERIFIER.verify("POST", WEBHOOK_PATH, headers, req.body)
    except SignatureError as exc:
        return f"401:{exc.reason}"
    try:
        event = decode_webhook(req.body, headers.get("x-timestamp"))
    except IgnoredEvent:
        return "200:none"
    except EventError as exc:
        return f"400:{exc.code}"
    if event.application is not None:
        try:
            VERIFIER.check_named(signer, event.application)   # service B's secret on a body naming service A
        except SignatureError as exc:
            return f"401:{exc.reason}"
    return "200:none" if isinstance(event, (Ended, Notice)) else f"200:{event.event}"


def outcome(reply: Reply) -> str:
    """The reply's outcome, after checking its body: SVAML v2 the SDK loads, or a documented JSON error."""
    assert reply.status is not None and reply.status < 500, (reply.status, reply.body[:300])
    assert reply.content_type == "application/json", (reply.status, reply.body[:200])
    body = json.loads(reply.body)
    if reply.status == 200:
        assert_sdk_accepts_answer(reply.body)
        return "200:none" if body == {"commands": []} else "200:svaml"
    assert reply.status in V2_ERROR_CODES and set(body) <= {"error", "message", "reason"}, (reply.status, body)
    assert body["error"] in V2_ERROR_CODES[reply.status] and body["message"], body
    assert not any(text in body["message"] for text in EXCEPTION_TEXT), body
    if reply.status == 401:
        assert body["reason"] in SIGNATURE_REASONS, body
        return f"401:{body['reason']}"
    return f"{reply.status}:{body['error']}"


def test_fuzz_the_webhook_path_with_the_shipped_plugins(callgate_server, tmp_path):
    config = full_stack_config(tmp_path, overrides={
        "server": {"max_body_bytes": MAX_BODY},
        "signing": {"window_seconds": WINDOW},
        "services": [{"id": SERVICE_A, "secrets": [{"env": "FUZZ_SERVICE_A1"}, {"env": "FUZZ_SERVICE_A2"}]},
                     {"id": SERVICE_B, "secrets": [{"env": "FUZZ_SERVICE_B"}]}],
        "plugins": {
            "allowlist": {"default": "allow", "rules": [{"action": "deny", "caller": "+4670999*"}]},
            "credit_check": {"unknown_account": "abstain", "destination_types": ["number", "did"]},
            "crm_export": {"sinks": [{"name": "file", "type": "file", "path": str(tmp_path / "calls.jsonl"),
                                      "fsync": False}]},
        },
    })
    server = callgate_server(config, env=ENV)
    loop = asyncio.new_event_loop()
    session = loop.run_until_complete(_session())
    seen: Counter[str] = Counter()

    def run(req: Req) -> None:
        want = {expected(req)}
        got = outcome(loop.run_until_complete(send(session, server.url, req)))
        if want == {"200:call.menu"}:          # the router's pie_default (continue) is Proceed: no commands
            want = {"200:svaml", "200:none"}
        elif next(iter(want)).startswith("200:call."):
            want = {"200:svaml"}
        assert got in want, (req.label, got, want, req.body[:200])
        seen[got] += 1

    try:
        @settings(max_examples=EXAMPLES, deadline=None, database=None, derandomize=SEED is None,
                  suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large,
                                         HealthCheck.filter_too_much, HealthCheck.large_base_example])
        @given(req=webhook_requests())
        def one_request(req: Req) -> None:
            run(req)

        if SEED is not None:
            one_request = seed(int(SEED))(one_request)
        one_request()
        assert server.process.poll() is None, "the server died"
    finally:
        loop.run_until_complete(session.close())
        loop.close()
    print(f"\n{EXAMPLES} v2 examples; outcomes: {dict(sorted(seen.items()))}")
    kinds = {o.split(":")[0] if not o.startswith("200") else o for o in seen}
    assert {"200:svaml", "200:none", "400", "401", "415"} <= kinds, kinds
    server.stop()
    parsed, not_json = json_log_lines(server.logs())
    assert not not_json, not_json[:5]
    assert not [line for line in parsed if line.get("level") in ("error", "critical")]
    assert not [line for line in parsed if isinstance(line.get("status"), int) and line["status"] >= 424]


async def _session() -> aiohttp.ClientSession:
    return aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=4), timeout=aiohttp.ClientTimeout(total=15))
