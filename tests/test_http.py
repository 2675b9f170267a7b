"""The HTTP surface: every bad input has a defined answer; every fixture gets a valid answer for its event."""

import json
import time
from datetime import datetime, timedelta, timezone

import pytest
from callgate_fixture_examples import fixture_examples
from plugins_for_tests import DenyAll, Hangs, Raises, Recorder
from structlog.testing import capture_logs

from callgate import samples, v2_samples
from callgate.protocols.v1.svaml import parse_svaml
from callgate.testing import TEST_APPLICATION_SECRET

ROUTE_ALL = {"plugins": {"router": {"routes": [
    {"name": "all", "prefix": "+", "action": {"name": "connectPstn", "number": "{to}", "maxDuration": 600}}]}}}


@pytest.fixture
async def client(callgate_client):
    return await callgate_client(ROUTE_ALL)


def assert_valid_svaml(body, event):
    parse_svaml(body).validate_for(event)


@pytest.mark.parametrize("event", ["ice", "ace", "pie"])
async def test_every_fixture_gets_valid_svaml(client, event):
    for example in fixture_examples(event):
        status, body = await client.event(example["body"])
        assert status == 200, example["name"]
        assert_valid_svaml(body, event)


@pytest.mark.parametrize("event", ["dice", "notify"])
async def test_dice_and_notify_fixtures_get_empty_object(client, event):
    for example in fixture_examples(event):
        response = await client.send(example["body"])
        assert response.status == 200 and response.content_type == "application/json"
        assert await response.json() == {}


async def test_ice_is_routed_by_the_table(client):
    _status, body = await client.event(samples.ice(to="+14155550123"))
    assert body == {"action": {"name": "connectPstn", "number": "+14155550123", "maxDuration": 600}}


@pytest.mark.parametrize("method", ["GET", "HEAD"])
async def test_dashboard_test_button_gets_200(client, method):
    response = await client.client.request(method, "/sinch/callback")
    assert response.status == 200


@pytest.mark.parametrize("method", ["PUT", "DELETE", "PATCH"])
async def test_other_methods_are_405(client, method):
    response = await client.client.request(method, "/sinch/callback", data=b"{}")
    assert response.status == 405 and (await response.json())["error"] == "method_not_allowed"
    assert response.headers["Allow"] == "GET, HEAD, POST"


async def test_body_over_the_limit_is_413(client):
    huge = samples.ice(custom="x" * 70000)
    response = await client.send(huge)
    assert response.status == 413 and (await response.json())["error"] == "body_too_large"


async def test_chunked_body_over_the_limit_is_413(client):
    body = json.dumps(samples.ice(custom="x" * 70000)).encode()

    async def chunks():
        for i in range(0, len(body), 4096):
            yield body[i:i + 4096]

    response = await client.client.post("/sinch/callback", data=chunks(), headers={"Content-Type": "application/json"})
    assert response.status == 413


@pytest.mark.parametrize("content_type", ["text/plain", "application/x-www-form-urlencoded", ""])
async def test_wrong_content_type_is_415(client, content_type):
    response = await client.send(samples.ice(), content_type=content_type)
    assert response.status == 415 and (await response.json())["error"] == "unsupported_media_type"


async def test_a_compressed_body_is_415_whichever_bytes_were_signed(callgate_server):
    """aiohttp inflated a gzip or deflate body as it read it, so the signature was checked over bytes other than those
    sent (a body signed as JSON and sent gzipped got 200), and a broken one dropped the connection or was called
    incomplete. The real server (its connection settings) on both paths."""
    import gzip

    import aiohttp

    from callgate.protocols.v1 import signing
    from callgate.testing import TEST_APPLICATION_KEY, TEST_SERVICE_ID, TEST_SERVICE_SECRET, webhook_headers

    server = callgate_server('[server]\nlog_format = "json"\n')
    async with aiohttp.ClientSession(auto_decompress=False) as session:
        for path in ("/sinch/callback", "/sinch/webhook"):
            v1 = path.endswith("callback")
            raw = json.dumps(samples.ace("gz") if v1 else v2_samples.answered("gz")).encode()
            headers = (signing.signed_headers(TEST_APPLICATION_KEY, TEST_APPLICATION_SECRET, path, raw) if v1
                       else webhook_headers(raw, path, service_id=TEST_SERVICE_ID, secret=TEST_SERVICE_SECRET))
            for encoding, body in (("gzip", gzip.compress(raw)), ("deflate", b"not deflate"), ("GZIP", raw)):
                async with session.post(server.url + path, data=body,
                                        headers={**headers, "Content-Encoding": encoding}) as response:
                    answer = await response.json()
                assert (response.status, answer["error"]) == (415, "unsupported_media_type"), (path, answer)
                assert answer["message"] == (f"Content-Encoding {encoding!r} is not accepted: send the JSON body as "
                                             f"it is")
            async with session.post(server.url + path, data=raw,
                                    headers={**headers, "Content-Encoding": "identity"}) as response:
                assert response.status == 200
    refused = [line for line in server.log_lines() if line.get("event") == "callback_refused"]
    assert [line["reason"] for line in refused] == ["unsupported_content_encoding"] * 6


async def test_charset_content_type_is_accepted(client):
    status, _ = await client.event(samples.ace(), content_type="application/json; charset=utf-8")
    assert status == 200


async def test_missing_signature_is_401(client):
    response = await client.send(samples.ice(), sign=False)
    body = await response.json()
    assert response.status == 401 and body["reason"] == "missing_authorization"


async def test_tampered_body_is_401(client):
    raw = json.dumps(samples.ice()).encode()
    from callgate.protocols.v1 import signing
    headers = signing.signed_headers(client.key, client.secret, "/sinch/callback", raw)
    response = await client.client.post("/sinch/callback", data=raw.replace(b"4670", b"4671"), headers=headers)
    assert response.status == 401 and (await response.json())["reason"] == "bad_signature"


async def test_stale_timestamp_is_401(client):
    old = (datetime.now(timezone.utc) - timedelta(minutes=30)).strftime("%Y-%m-%dT%H:%M:%SZ")
    response = await client.send(samples.ice(), timestamp=old)
    assert response.status == 401 and (await response.json())["reason"] == "stale_timestamp"


async def test_unknown_key_is_401(client):
    client.key = "someone-else"
    response = await client.send(samples.ice())
    assert response.status == 401 and (await response.json())["reason"] == "unknown_key"


async def test_no_application_configured_is_401_and_not_ready(aiohttp_client):
    from callgate.app import create_app
    from callgate.config import config_from_dict
    http = await aiohttp_client(create_app(config_from_dict({}, environ={})))
    response = await http.post("/sinch/callback", data=b"{}", headers={"Content-Type": "application/json"})
    assert response.status == 401 and (await response.json())["reason"] == "no_application"
    ready = await http.get("/readyz")
    assert ready.status == 503 and "no Sinch application" in (await ready.json())["problems"][0]


@pytest.mark.parametrize("raw,code", [
    (b'{"event": "ice", "callid": ', "invalid_json"),
    (b"[1, 2]", "not_an_object"),
    (b'"ice"', "not_an_object"),
    (b'{"callid": "x"}', "missing_event"),
    (b'{"event": 7}', "missing_event"),
    (b'{"event": "ice", "callid": 12}', "invalid_field"),
    (b'{"event": "ice", "callid": "x", "to": "bob"}', "invalid_field"),
    (b'\xff\xfe{}', "invalid_json"),
])
async def test_bad_bodies_are_400_with_a_code(client, raw, code):
    response = await client.send(raw)
    body = await response.json()
    assert response.status == 400 and body["error"] == code and body["message"]


async def test_unknown_event_is_200_empty(client):
    response = await client.send({"event": "call.recording.ready", "callid": "x"})
    assert response.status == 200 and await response.json() == {}


async def test_raising_plugin_never_turns_ice_into_500(callgate_client):
    client = await callgate_client(plugins={"raises": Raises})
    status, body = await client.event(samples.ice())
    assert status == 200 and body["action"] == {"name": "hangup"}
    status, body = await client.event(samples.ace())
    assert status == 200 and body["action"] == {"name": "hangup"}


async def test_hanging_plugin_is_answered_within_the_deadline(callgate_client):
    client = await callgate_client({"server": {"deadline_ms": 200}, "plugins": {"hangs": {"on_error": "skip"}}},
                                   plugins={"hangs": Hangs})
    started = time.perf_counter()
    status, body = await client.event(samples.ice())
    assert status == 200 and time.perf_counter() - started < 1.5
    assert_valid_svaml(body, "ice")


async def test_dice_not_recorded_is_503(callgate_client):
    client = await callgate_client(plugins={"raises": Raises})
    response = await client.send(samples.dice())
    assert response.status == 503 and (await response.json())["error"] == "not_recorded"


async def test_denied_call_speaks_then_hangs_up(callgate_client):
    client = await callgate_client(plugins={"deny": DenyAll})
    _, body = await client.event(samples.ice())
    assert body == {"instructions": [{"name": "answer"}, {"name": "say", "text": "You may not call.", "locale": "en-US"}],
                    "action": {"name": "hangup"}}


async def test_public_path_is_what_gets_signed(callgate_client):
    client = await callgate_client({"server": {"callback_path": "/cb", "public_path": "/voice/sinch/cb"}})
    status, _ = await client.event(samples.ace())           # signed over /voice/sinch/cb, sent to /cb
    assert status == 200
    client.config = client.config.model_copy(update={"server": client.config.server.model_copy(
        update={"public_path": None})})                    # sign over /cb instead: refused
    response = await client.send(samples.ace(), path="/cb")
    assert response.status == 401


async def test_hook_check_ready_reports_plugins(callgate_client):
    from callgate import hookimpl

    class NotReady:
        @hookimpl
        def check_ready(self):
            return "database unreachable"

    client = await callgate_client(plugins={"db": NotReady})
    response = await client.client.get("/readyz")
    assert response.status == 503 and (await response.json())["problems"] == ["db: database unreachable"]
    healthy = await callgate_client()
    assert (await healthy.client.get("/readyz")).status == 200
    assert (await healthy.client.get("/healthz")).status == 200


@pytest.mark.parametrize("answer", [["a", "b"], 42, {"x": 1}, "", "  "])
async def test_hook_check_ready_an_answer_that_is_no_reason_is_not_ready_without_its_repr(callgate_client, answer):

    from callgate import hookimpl

    class Odd:
        @hookimpl
        def check_ready(self):
            return answer

    client = await callgate_client(plugins={"odd": Odd})
    with capture_logs() as logs:
        response = await client.client.get("/readyz")
    assert response.status == 503
    assert (await response.json())["problems"] == ["odd: check_ready gave no reason it could show (see the log)"]
    [failed] = [line for line in logs if line["event"] == "plugin_failed"]
    assert failed["plugin"] == "odd" and failed["hook"] == "check_ready"


@pytest.fixture
def json_logs(capsys):
    """Call it in the test body (capsys is not capturing during fixture set-up): structlog then
    writes JSON lines to the captured stdout, and is reset after the test."""
    import sys

    import structlog

    from callgate.logs import configure_logging
    yield lambda: configure_logging("json", "info", stream=sys.stdout, cache=False)
    structlog.reset_defaults()


async def test_log_line_per_callback_has_callid_and_no_secret(callgate_client, json_logs, capsys):
    json_logs()
    client = await callgate_client(plugins={"deny": DenyAll})
    body = samples.ice()
    await client.event(body)
    await client.send(samples.ice(), sign=False)
    out = capsys.readouterr().out
    lines = [json.loads(line) for line in out.splitlines() if line.startswith("{")]
    callback = next(line for line in lines if line["event"] == "callback")
    assert callback["callid"] == body["callid"] and callback["status"] == 200 and callback["sinch_event"] == "ice"
    assert callback["decision"] == "denied by deny: denied by test -> hangup" and callback["ms"] > 0
    assert callback["plugins"][0]["plugin"] == "deny" and callback["plugins"][0]["verdict"].startswith("deny")
    assert any(line.get("reason") == "missing_authorization" for line in lines)
    assert TEST_APPLICATION_SECRET not in out


async def test_a_log_stream_that_fails_never_breaks_an_answer(callgate_client, tmp_path):
    import structlog

    from callgate.logs import configure_logging
    stream = open(tmp_path / "log", "w")
    configure_logging("json", "info", stream=stream, cache=False)
    stream.close()
    try:
        client = await callgate_client(plugins={"deny": DenyAll})
        status, body = await client.event(samples.ice())
        assert status == 200 and body["action"] == {"name": "hangup"}
    finally:
        structlog.reset_defaults()


async def test_a_failing_plugin_is_logged_with_its_name_and_traceback(callgate_client, json_logs, capsys):
    json_logs()
    client = await callgate_client(plugins={"raises": Raises})
    await client.event(samples.ice())
    lines = [json.loads(line) for line in capsys.readouterr().out.splitlines() if line.startswith("{")]
    failed = next(line for line in lines if line["event"] == "plugin_failed")
    assert (failed["plugin"], failed["hook"], failed["status"]) == ("raises", "authorize_call", "error")
    assert "RuntimeError: boom" in failed["exception"]


async def test_a_recorded_dice_or_notify_is_logged_as_recorded(callgate_client, json_logs, capsys):
    json_logs()
    client = await callgate_client(plugins={"rec": Recorder})
    for body in (samples.dice(), samples.notify()):
        status, _ = await client.event(body)
        assert status == 200
    await client.client.get("/healthz")          # the callback lines are written a loop turn after the answers
    lines = [json.loads(line) for line in capsys.readouterr().out.splitlines() if line.startswith("{")]
    callbacks = [line for line in lines if line["event"] == "callback"]
    assert [c["sinch_event"] for c in callbacks] == ["dice", "notify"]
    assert [c["decision"] for c in callbacks] == ["recorded", "recorded"]
    assert [[(p["plugin"], p["hook"], p["verdict"]) for p in c["plugins"]] for c in callbacks] == [
        [("rec", "on_disconnect", "recorded")], [("rec", "on_notify", "recorded")]]
