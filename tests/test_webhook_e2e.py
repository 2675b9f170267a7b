"""End to end, Voice API v2: the real ``callgate serve`` with the shipped config.toml receives a signed call over
real HTTP on the webhook path, beside v1 callbacks on the callback path of the same process; every v2 answer
loads in the official SDK's ``VoiceSinchEventResponse``."""

from __future__ import annotations

import json
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from v2_sdk_checks import assert_sdk_accepts_answer

from callgate import samples, v2_samples
from callgate.protocols.v1.svaml import parse_svaml
from callgate.testing import TEST_SERVICE_ID, TEST_SERVICE_SECRET

#: Starts the real callgate command: skipped by -m 'not slow'.
pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parent.parent
CALLGATE = str(Path(sys.executable).with_name("callgate"))
SHIPPED = (ROOT / "config.toml").read_text()
#: The shipped file with JSON log lines and a route to one number (appended to its routing table).
ROUTED = SHIPPED.replace('log_format = "auto"', 'log_format = "json"') + """
[[plugins.router.routes]]
name = "support"
number = "+46850001234"
action = { name = "connectPstn", number = "+46731112233", maxDuration = 600 }
"""


def answer_bytes(answer: object) -> bytes:
    return json.dumps(answer).encode()


def test_a_v2_call_with_the_shipped_config_beside_v1_in_one_process(callgate_server):
    server = callgate_server(SHIPPED.replace('log_format = "auto"', 'log_format = "json"'))
    session = v2_samples.new_call_id()
    incoming = v2_samples.incoming("+46701234567", "+46850001234", session=session, service_id=TEST_SERVICE_ID)
    status, answer = server.webhook(incoming, headers={"ce-id": "delivery-1", "ce-type": "com.sinch.voice.test"})
    assert status == 200 and answer["commands"], answer          # no route: the call is hung up, validly
    assert_sdk_accepts_answer(answer_bytes(answer))
    status, answer = server.webhook(v2_samples.answered(session=session, service_id=TEST_SERVICE_ID))
    assert status == 200
    assert_sdk_accepts_answer(answer_bytes(answer))
    hangup = v2_samples.hangup(incoming["call"]["callId"], session=session, duration=42, service_id=TEST_SERVICE_ID)
    assert server.webhook(hangup) == (200, {"commands": []})

    # v1 on the callback path, unchanged, in the same process
    status, body = server.callback(samples.ice(to="+15550000000"))
    assert status == 200 and body["action"] == {"name": "hangup"}
    parse_svaml(body).validate_for("ice")
    assert server.callback(samples.dice()) == (200, {})

    lines = [line for line in server.log_lines() if line.get("event") == "callback"]
    first = next(line for line in lines if line.get("sinch_event") == "call.incoming")
    assert (first["callid"], first["ce_id"], first["ce_type"]) == (incoming["call"]["callId"], "delivery-1",
                                                                   "com.sinch.voice.test")
    assert [line["sinch_event"] for line in lines] == ["call.incoming", "call.answered", "call.hangup", "ice", "dice"]
    assert TEST_SERVICE_SECRET not in server.logs()


def test_a_routed_v2_call_dials_the_route_and_the_menu_and_busy_events_get_valid_answers(callgate_server):
    server = callgate_server(ROUTED)
    status, answer = server.webhook(v2_samples.incoming(to="+46850001234", service_id=TEST_SERVICE_ID))
    assert status == 200
    assert_sdk_accepts_answer(answer_bytes(answer))
    dials = [command for command in answer["commands"] if command["command"] == "dial"]
    assert dials and dials[0]["to"] == {"type": "PHONE", "phone": {"number": "+46731112233"}}, answer
    assert dials[0]["maxCallDurationSeconds"] == 600
    for body in (v2_samples.menu(input="12#", service_id=TEST_SERVICE_ID),
                 v2_samples.ended("call.busy", duration=None, service_id=TEST_SERVICE_ID)):
        status, answer = server.webhook(body)
        assert status == 200, answer
        assert_sdk_accepts_answer(answer_bytes(answer))


@pytest.mark.skipif(shutil.which("curl") is None, reason="curl is not installed")
def test_callgate_sign_prints_a_curl_command_for_a_v2_webhook_that_works(callgate_server):
    """The README's v2 quick start: ``callgate sign call.incoming ... | sh`` against ``callgate serve``."""
    server = callgate_server(ROUTED)
    env = {**server.env, "SINCH_SERVICE_ID": TEST_SERVICE_ID, "SINCH_SERVICE_SECRET": TEST_SERVICE_SECRET}
    for args, check in (
        (["call.incoming", "--from", "+46701234567", "--to", "+46850001234"],
         lambda answer: any(c["command"] == "dial" for c in answer["commands"])),
        (["call.menu", "--input", "12#"], lambda answer: "commands" in answer),
        (["call.hangup", "--duration", "42"], lambda answer: answer == {"commands": []}),
    ):
        printed = subprocess.run([CALLGATE, "sign", *args, "--url", server.url + "/sinch/webhook"], env=env,
                                 capture_output=True, text=True, check=True).stdout
        answer = json.loads(subprocess.run(shlex.split(printed), capture_output=True, text=True, check=True).stdout)
        assert check(answer), (args, answer)
        assert_sdk_accepts_answer(answer_bytes(answer))


async def test_a_body_cut_short_on_the_webhook_path_is_400_incomplete_body(callgate_server):
    import asyncio
    server = callgate_server('[server]\nlog_format = "json"\nbody_timeout_seconds = 2\n')
    reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
    try:
        writer.write(b"POST /sinch/webhook HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                     b"Content-Length: 100\r\n\r\n")
        await writer.drain()
        await asyncio.sleep(0.3)                     # the head alone first: the body is awaited
        writer.write(b'{"event": "call.hangup", "call"')
        writer.write_eof()                           # ... and never comes
        async with asyncio.timeout(10):
            received = await reader.read()
    finally:
        writer.close()
    assert received.startswith(b"HTTP/1.1 400 "), received[:200]
    assert json.loads(received.split(b"\r\n\r\n", 1)[1])["error"] == "incomplete_body"
