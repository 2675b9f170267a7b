"""The Voice API v2 webhook path, in-process: the refusals of the callback path in the same order with the same
codes, the ``service`` signature (callgate's signer, judged by the official SDK's validator), CloudEvents headers,
and the events callgate answers ``{"commands": []}`` without asking a plugin."""

from __future__ import annotations

import asyncio
import json
from datetime import datetime, timedelta, timezone

import pytest
from sinch.core.internal.sinch_events.authorization_helpers import validate_authentication_header
from structlog.testing import capture_logs

from callgate import v2_samples
from callgate.protocols.v1 import signing
from callgate.protocols.v2.decode import decode_v2_event
from callgate.testing import TEST_SERVICE_ID, TEST_SERVICE_SECRET, webhook_headers

WEBHOOK = "/sinch/webhook"


@pytest.fixture
async def client(callgate_client):
    return await callgate_client()


def sdk_accepts(headers: dict[str, str], body: bytes, path: str = WEBHOOK, *, service_id: str = TEST_SERVICE_ID,
                secret: str = TEST_SERVICE_SECRET) -> bool:
    """What the Sinch Python SDK's validator says of a request (it has no timestamp window)."""
    return validate_authentication_header(key=service_id, secret=secret, headers=dict(headers), body=body,
                                          path=path, method="POST")


def timestamp(seconds_from_now: float) -> str:
    when = datetime.now(timezone.utc) + timedelta(seconds=seconds_from_now)
    return when.isoformat(timespec="milliseconds").replace("+00:00", "Z")


def raw(body: dict) -> bytes:
    return json.dumps(body).encode()


# --------------------------------------------------------------------------- what is not a signed POST

@pytest.mark.parametrize("method", ["GET", "HEAD"])
async def test_the_url_test_gets_200(client, method):
    response = await client.client.request(method, WEBHOOK)
    assert response.status == 200
    if method == "GET":
        assert await response.json() == {"service": "callgate", "status": "ok"}


@pytest.mark.parametrize("method", ["PUT", "DELETE", "PATCH"])
async def test_other_methods_are_405(client, method):
    response = await client.client.request(method, WEBHOOK, data=b"{}")
    body = await response.json()
    assert response.status == 405 and body["error"] == "method_not_allowed" and "webhooks" in body["message"]
    assert response.headers["Allow"] == "GET, HEAD, POST"


async def test_a_body_over_the_limit_is_413_before_the_signature(callgate_client):
    client = await callgate_client({"server": {"max_body_bytes": 1024}})
    response = await client.send_webhook(v2_samples.incoming(padding="x" * 2000), sign=False)
    assert response.status == 413 and (await response.json())["error"] == "body_too_large"


@pytest.mark.parametrize("content_type", ["text/plain", "application/x-www-form-urlencoded"])
async def test_another_content_type_is_415_before_the_signature(client, content_type):
    response = await client.send_webhook(v2_samples.incoming(), content_type=content_type)
    assert response.status == 415 and (await response.json())["error"] == "unsupported_media_type"


async def test_refusals_before_the_signature_are_logged_with_their_reason(callgate_client):
    """405, 413 and 415 each leave a ``callback_refused`` line, as every other refusal does: an operator whose calls
    fail for one of them has a line to find."""
    client = await callgate_client({"server": {"max_body_bytes": 1024}})
    with capture_logs() as logs:
        assert (await client.client.request("PUT", WEBHOOK, data=b"{}")).status == 405
        assert (await client.send_webhook(v2_samples.incoming(padding="x" * 2000), sign=False)).status == 413
        assert (await client.send_webhook(v2_samples.incoming(), content_type="text/plain")).status == 415
    assert [(line["event"], line["reason"]) for line in logs if line["log_level"] == "warning"] == [
        ("callback_refused", "method_not_allowed"), ("callback_refused", "body_too_large"),
        ("callback_refused", "unsupported_media_type")]


async def test_a_body_that_does_not_arrive_in_time_is_408(callgate_client):
    client = await callgate_client({"server": {"body_timeout_seconds": 0.2}})

    async def slow():
        yield b'{"event": "call.incoming", '
        await asyncio.sleep(1.0)
        yield b'"call": {}}'

    response = await client.client.post(WEBHOOK, data=slow(), headers={"Content-Type": "application/json"})
    assert response.status == 408 and (await response.json())["error"] == "body_timeout"


# --------------------------------------------------------------------------- the signature

async def test_a_webhook_signed_by_the_service_is_accepted_by_callgate_and_the_sdk(client):
    body = raw(v2_samples.custom("ping"))
    headers = webhook_headers(body)
    assert sdk_accepts(headers, body)
    response = await client.client.post(WEBHOOK, data=body, headers=headers)
    assert response.status == 200 and await response.json() == {"commands": []}


async def test_the_signed_path_is_the_public_webhook_path(callgate_client):
    client = await callgate_client({"server": {"public_webhook_path": "/voice/v2"}})
    body = raw(v2_samples.custom("ping"))
    headers = webhook_headers(body, "/voice/v2")
    assert sdk_accepts(headers, body, "/voice/v2")
    assert (await client.client.post(WEBHOOK, data=body, headers=headers)).status == 200
    wrong = webhook_headers(body, WEBHOOK)
    response = await client.client.post(WEBHOOK, data=body, headers=wrong)
    assert response.status == 401 and (await response.json())["reason"] == "bad_signature"


async def test_a_service_being_rotated_accepts_both_secrets_and_several_services_each_theirs(callgate_client,
                                                                                            monkeypatch):
    old, new, other = "b2xkLXNlY3JldC0xMjM0NQ==", "bmV3LXNlY3JldC02Nzg5MA==", "b3RoZXItc2VjcmV0LTEyMw=="
    monkeypatch.setenv("SVC_OLD", old)
    monkeypatch.setenv("SVC_NEW", new)
    monkeypatch.setenv("OTHER", other)
    client = await callgate_client({"services": [{"id": "svc", "secrets": [{"env": "SVC_OLD"}, {"env": "SVC_NEW"}]},
                                                 {"id": "other", "secrets": [{"env": "OTHER"}]}]})
    body = raw(v2_samples.custom("ping"))
    for service_id, secret in (("svc", old), ("svc", new), ("other", other)):
        headers = webhook_headers(body, service_id=service_id, secret=secret)
        assert sdk_accepts(headers, body, service_id=service_id, secret=secret)
        assert (await client.client.post(WEBHOOK, data=body, headers=headers)).status == 200
    headers = webhook_headers(body, service_id="other", secret=old)
    response = await client.client.post(WEBHOOK, data=body, headers=headers)
    assert response.status == 401 and (await response.json())["reason"] == "bad_signature"


#: One body for every refusal case (a sample has a fresh callId each time).
PING = raw(v2_samples.custom("ping"))


def _refusals() -> dict[str, tuple[dict[str, str], bool]]:
    """reason -> (headers, whether the SDK accepts them too): the SDK has no window, callgate has one."""
    body = PING
    good = webhook_headers(body)
    return {
        "missing_authorization": ({k: v for k, v in good.items() if k != "Authorization"}, False),
        "malformed_authorization": ({**good, "Authorization": "service"}, False),
        "unsupported_scheme": ({**good, "Authorization": good["Authorization"].replace("service ", "Application ")},
                               False),
        "bearer": ({**good, "Authorization": "Bearer eyJhbGciOiJIUzI1NiJ9.e30.x"}, False),
        "unknown_key": (webhook_headers(body, service_id="another-service"), False),
        "missing_timestamp": ({k: v for k, v in good.items() if k != "x-timestamp"}, False),
        "bad_signature": ({**good, "Authorization": good["Authorization"][:-6] + "AAAAA="}, False),
        "stale_timestamp": (webhook_headers(body, timestamp=timestamp(-3600)), True),
        "future_timestamp": (webhook_headers(body, timestamp=timestamp(3600)), True),
        "invalid_timestamp": (webhook_headers(body, timestamp="yesterday"), True),
    }


@pytest.mark.parametrize("case", sorted(_refusals()))
async def test_each_signature_refusal_is_401_with_its_reason(client, case):
    body = PING
    headers, sdk_says = _refusals()[case]
    assert sdk_accepts(headers, body) is sdk_says
    with capture_logs() as logs:
        response = await client.client.post(WEBHOOK, data=body, headers=headers)
    answer = await response.json()
    reason = "unsupported_scheme" if case == "bearer" else case
    assert response.status == 401 and answer["error"] == "signature" and answer["reason"] == reason, answer
    assert {"event": "callback_refused", "reason": reason} in [
        {k: line.get(k) for k in ("event", "reason")} for line in logs]


async def test_a_v1_signature_is_refused_on_the_webhook_path_and_a_v2_one_on_the_callback_path(client):
    body = raw(v2_samples.custom("ping"))
    v1_headers = signing.signed_headers(client.key, client.secret, WEBHOOK, body)
    response = await client.client.post(WEBHOOK, data=body, headers=v1_headers)
    assert response.status == 401 and (await response.json())["reason"] == "unsupported_scheme"
    ace = raw({"event": "ace", "callid": "c1", "timestamp": "2026-01-01T00:00:00Z", "version": 1})
    v2_headers = webhook_headers(ace, "/sinch/callback")
    response = await client.client.post("/sinch/callback", data=ace, headers=v2_headers)
    assert response.status == 401 and (await response.json())["reason"] == "unsupported_scheme"


async def test_no_service_configured_is_401_no_service_and_readiness_needs_one_of_the_two(aiohttp_client):
    from callgate.app import create_app
    from callgate.config import config_from_dict
    v1_only = {"SINCH_APPLICATION_KEY": "k", "SINCH_APPLICATION_SECRET": "YQ=="}
    http = await aiohttp_client(create_app(config_from_dict({}, environ=v1_only)))
    body = raw(v2_samples.incoming())
    response = await http.post(WEBHOOK, data=body, headers=webhook_headers(body))
    answer = await response.json()
    assert response.status == 401 and answer["reason"] == "no_service" and "SINCH_SERVICE_ID" in answer["message"]
    assert (await http.get("/readyz")).status == 200                 # an application is enough

    v2_only = {"SINCH_SERVICE_ID": TEST_SERVICE_ID, "SINCH_SERVICE_SECRET": TEST_SERVICE_SECRET}
    http = await aiohttp_client(create_app(config_from_dict({}, environ=v2_only)))
    assert (await http.get("/readyz")).status == 200                 # ... and so is a service
    response = await http.post("/sinch/callback", data=b"{}", headers={"Content-Type": "application/json"})
    assert response.status == 401 and (await response.json())["reason"] == "no_application"

    http = await aiohttp_client(create_app(config_from_dict({}, environ={})))
    ready = await http.get("/readyz")
    assert ready.status == 503
    assert (await ready.json())["problems"][0].startswith("no Sinch application or service configured")


# --------------------------------------------------------------------------- the body

@pytest.mark.parametrize("body,code", [
    (b'{"event": "call.incoming", "call": ', "invalid_json"),
    (b"[1, 2]", "not_an_object"),
    (b'{"call": {}}', "missing_event"),
    (b'{"event": "call.incoming"}', "invalid_field"),
    (b'{"event": "call.incoming", "call": {"callId": 7}}', "invalid_field"),
    (b'{"event": "sms.inbound", "call": {"callId": "x"}}', "unknown_event"),
])
async def test_a_body_that_is_not_a_v2_call_event_is_400(client, body, code):
    response = await client.send_webhook(body)
    answer = await response.json()
    assert response.status == 400 and answer["error"] == code, answer
    assert set(answer) == {"error", "message"}


@pytest.mark.parametrize("body,log_event", [
    (v2_samples.custom("order_lookup"), "custom_event_ignored"),
    ({**v2_samples.custom("x"), "event": "call.customEvent.order_lookup"}, "custom_event_ignored"),
    ({**v2_samples.incoming(), "event": "call.transferred"}, "unknown_event_ignored"),
])
async def test_custom_and_unknown_call_events_get_no_commands_and_a_warning(client, body, log_event):
    with capture_logs() as logs:
        response = await client.send_webhook(body, headers={"ce-id": "e-1", "ce-type": "com.sinch.voice.x"})
    assert response.status == 200 and response.content_type == "application/json"
    assert await response.json() == {"commands": []}
    warning = next(line for line in logs if line["event"] == log_event)
    assert warning["log_level"] == "warning" and warning["sinch_event"] == body["event"]
    assert (warning["ce_id"], warning["ce_type"]) == ("e-1", "com.sinch.voice.x")
    # A custom event is decoded far enough to name its leg; an unknown one is not decoded past its name.
    assert warning["callid"] == (body["call"]["callId"] if log_event == "custom_event_ignored" else None)


async def test_metrics_count_webhooks_by_generation(client):
    await client.send_webhook(v2_samples.custom("ping"))
    await client.send_webhook(v2_samples.custom("ping"), sign=False)
    text = await (await client.client.get("/metrics")).text()
    assert 'callgate_callbacks_total{event="unknown",generation="v2",status="200"} 1.0' in text
    assert 'callgate_callbacks_total{event="-",generation="v2",status="401"} 1.0' in text
    assert 'callgate_signature_failures_total{generation="v2",reason="missing_authorization"} 1.0' in text


# --------------------------------------------------------------------------- callgate sign

def sign(*argv: str) -> int:
    """``callgate sign ARGV``, in this process, without the logging set-up of ``callgate.cli.main`` (which would
    stay cached in the module loggers of later tests)."""
    from callgate.cli import ConfigError, _core_parser, _fail
    parser, _ = _core_parser()
    args = parser.parse_args(["sign", *argv])
    args.config = None
    try:
        return args.handler(args)
    except ConfigError as exc:
        return _fail(exc)


def _curl_parts(printed: str) -> tuple[str, dict[str, str], bytes]:
    import shlex
    words = shlex.split(printed)
    url = words[words.index("POST") + 1]
    headers = dict(words[i + 1].split(": ", 1) for i, word in enumerate(words) if word == "-H")
    return url, headers, words[words.index("--data-binary") + 1].encode()


@pytest.mark.parametrize("args,event", [
    (["call.incoming", "--to", "+46850001234", "--from", "+46701234567"], "call.incoming"),
    (["call.incoming", "--to", "sip:desk@pbx.example.com", "--from", "private"], "call.incoming"),
    (["call.answered"], "call.answered"),
    (["call.menu", "--input", "12#", "--menu", "main"], "call.menu"),
    (["call.hangup", "--duration", "42"], "call.hangup"),
    (["call.busy"], "call.busy"),
    *[([name], name) for name in v2_samples.NOTICE_EVENTS],
])
def test_callgate_sign_signs_v2_events_with_the_service_as_the_sdk_checks(args, event, monkeypatch, capsys,
                                                                          tmp_path):
    from sinch.domains.voice.models.v2.sinch_events import VoiceSinchEventRequest

    monkeypatch.setenv("SINCH_SERVICE_ID", TEST_SERVICE_ID)
    monkeypatch.setenv("SINCH_SERVICE_SECRET", TEST_SERVICE_SECRET)
    monkeypatch.delenv("CALLGATE_CONFIG", raising=False)
    monkeypatch.chdir(tmp_path)            # no ./config.toml
    assert sign(*args) == 0
    url, headers, body = _curl_parts(capsys.readouterr().out)
    assert url == "http://127.0.0.1:8080/sinch/webhook"
    assert headers["Authorization"].startswith(f"service {TEST_SERVICE_ID}:") and "ce-id" in headers
    assert sdk_accepts(headers, body)
    request = VoiceSinchEventRequest.model_validate(json.loads(body))
    assert request.event == event and request.call.service_id == TEST_SERVICE_ID and not request.model_extra
    if event == "call.menu":
        assert (request.menu.menu_name, request.menu.input) == ("main", "12#")
    if event == "call.hangup":                       # its times agree with its duration
        assert request.call.call_duration_seconds == 42
        assert (request.call.end_time - request.call.answer_time).total_seconds() == 42
    decoded = decode_v2_event(body)                   # and callgate reads it as that event
    assert decoded.event == event and decoded.call.service_id == TEST_SERVICE_ID


def test_callgate_sign_without_a_service_says_what_to_set(monkeypatch, capsys, tmp_path):
    monkeypatch.delenv("SINCH_SERVICE_ID", raising=False)
    monkeypatch.delenv("CALLGATE_CONFIG", raising=False)
    monkeypatch.chdir(tmp_path)            # no ./config.toml
    assert sign("call.incoming") == 2
    assert "set SINCH_SERVICE_ID and SINCH_SERVICE_SECRET, or [[services]]" in capsys.readouterr().err


# --------------------------------------------------------------------------- answers: never a 5xx

@pytest.mark.parametrize("field", ["startTime", "updateTime", "answerTime", "endTime"])
@pytest.mark.parametrize("value", ["9999-12-31T23:59:59-00:01", "0001-01-01T00:00:00+00:01"])
async def test_a_time_out_of_range_in_utc_is_a_400_naming_the_field(client, field, value):
    """A valid RFC 3339 time whose offset takes it past year 9999 (or before year 1) in UTC was a plain-text 500."""
    body = v2_samples.hangup()
    body["call"][field] = value
    status, answer = await client.webhook(body)
    assert status == 400 and answer == {"error": "invalid_field", "message": f"call: {field}: a date-time out of "
                                                                            f"range once converted to UTC (years 1 to 9999)"}


async def test_a_body_the_decoder_fails_on_unexpectedly_is_a_400_and_the_log_has_why(callgate_client, monkeypatch):
    """Should decoding raise something other than its refusals (a bug), the answer is still a 400 in callgate's
    words (never a 5xx: Sinch hangs up a call whose webhook fails) and the traceback goes to the log."""
    def broken(body, timestamp=None):
        raise ZeroDivisionError("/srv/callgate/secret/path")
    monkeypatch.setattr("callgate.endpoints.decode_v2_call", broken)       # the decoder the app is built with
    client = await callgate_client()
    with capture_logs() as logs:
        status, answer = await client.webhook(v2_samples.incoming())
    assert status == 400 and answer["error"] == "invalid_body" and "/srv" not in answer["message"]
    assert [line["event"] for line in logs if line["log_level"] == "error"] == ["decode_failed"]


async def test_plugins_decide_v2_calls_as_v1_ones(callgate_client):
    from plugins_for_tests import DenyAll
    from v2_sdk_checks import assert_sdk_accepts_answer
    client = await callgate_client({"server": {"voice": "Sonia"}}, plugins={"deny": DenyAll})
    response = await client.send_webhook(v2_samples.incoming())
    body = await response.read()
    assert response.status == 200 and response.content_type == "application/json"
    assert_sdk_accepts_answer(body)
    last = json.loads(body)["commands"][-1]        # the denial's prompt, in [server] voice, then hang up
    assert last["messages"] == [{"type": "SAY", "say": {"text": "You may not call.", "voiceName": "Sonia"}}]
    assert last["events"] == {"onFinish": [{"command": "hangup"}]}
    decision = client.plugin("deny").decisions[0]
    assert not decision.allowed


@pytest.mark.parametrize("sample", ["incoming", "answered", "menu", "hangup", "busy"])
async def test_an_error_inside_callgate_gets_the_safe_answer_never_a_5xx(client, sample):
    from v2_sdk_checks import assert_sdk_accepts_answer

    from callgate.state import PIPELINE

    async def broken(call):
        raise RuntimeError("LEAKED-EXCEPTION-TEXT /srv/internal")

    client.app[PIPELINE].answer = broken
    body = {"incoming": v2_samples.incoming, "answered": v2_samples.answered, "menu": v2_samples.menu,
            "hangup": v2_samples.hangup, "busy": lambda: v2_samples.ended("call.busy")}[sample]()
    response = await client.send_webhook(body)
    raw_answer = await response.read()
    assert response.status < 500 and b"LEAKED" not in raw_answer and b"/srv" not in raw_answer
    if sample in ("incoming", "answered", "menu"):
        assert response.status == 200
        assert_sdk_accepts_answer(raw_answer)
    else:                       # not recorded: a 4xx so that Sinch tries the fallback URL, still a v2 body
        answer = json.loads(raw_answer)
        assert 400 <= response.status < 500 and answer["commands"] == [] and answer["error"] == "not_recorded"


async def test_an_end_event_a_plugin_could_not_record_gets_the_v2_not_recorded_answer(callgate_client):
    from plugins_for_tests import Raises
    client = await callgate_client(plugins={"raises": Raises}, config={"plugins": {"raises": {"on_error": "skip"}}})
    status, answer = await client.webhook(v2_samples.hangup())
    assert 400 <= status < 500 and answer["commands"] == [] and answer["error"] == "not_recorded"
    assert "raises" in answer["message"]
