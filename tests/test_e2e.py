"""End to end: the real `callgate` command in its own process, real HTTP, signed like Sinch signs."""

import json
import shlex
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import aiohttp
import pytest
from callgate_fixture_examples import fixture_examples

from callgate import samples
from callgate.protocols.v1 import signing
from callgate.protocols.v1.svaml import parse_svaml
from callgate.testing import TEST_APPLICATION_KEY, TEST_APPLICATION_SECRET

#: Starts the real callgate command or waits in real time: skipped by -m 'not slow'.
pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parent.parent
CALLGATE = str(Path(sys.executable).with_name("callgate"))
ENV = {"SINCH_APPLICATION_KEY": TEST_APPLICATION_KEY, "SINCH_APPLICATION_SECRET": TEST_APPLICATION_SECRET}
CONFIG = """
[server]
log_format = "json"
[[plugins.router.routes]]
name = "seed-tutorial"
number = "+15612600684"
action = { name = "connectPstn", number = "+15612600684", maxDuration = 600 }
[[plugins.router.routes]]
name = "conference"
to_type = "conference"
action = { name = "connectConf", conferenceId = "{to}" }
"""


async def post(session, url, body, *, key=TEST_APPLICATION_KEY, secret=TEST_APPLICATION_SECRET, headers=None):
    raw = body if isinstance(body, bytes) else json.dumps(body).encode()
    signed = signing.signed_headers(key, secret, "/sinch/callback", raw)
    signed.update(headers or {})
    async with session.post(url + "/sinch/callback", data=raw, headers=signed) as response:
        return response.status, await response.json()


async def test_real_server_answers_every_fixture_and_refuses_bad_requests(callgate_server):
    server = callgate_server(CONFIG)
    async with aiohttp.ClientSession() as session:
        for event in ("ice", "ace", "pie"):
            for example in fixture_examples(event):
                status, body = await post(session, server.url, example["body"])
                assert status == 200
                parse_svaml(body).validate_for(event)
        for event in ("dice", "notify"):
            for example in fixture_examples(event):
                assert await post(session, server.url, example["body"]) == (200, {})
        # the seed tutorial: only calls to one number are connected
        _, body = await post(session, server.url, samples.ice(to="+15612600684"))
        assert body["action"] == {"name": "connectPstn", "number": "+15612600684", "maxDuration": 600}
        _, body = await post(session, server.url, samples.ice(to="+15550000000"))
        assert body["action"] == {"name": "hangup"}
        # refused
        status, body = await post(session, server.url, samples.ice(), secret="d3Jvbmc=")
        assert (status, body["reason"]) == (401, "bad_signature")
        status, body = await post(session, server.url, b"{not json")
        assert (status, body["error"]) == (400, "invalid_json")
        async with session.get(server.url + "/sinch/callback") as response:
            assert response.status == 200
    assert TEST_APPLICATION_SECRET not in server.logs()
    callbacks = [line for line in server.log_lines() if line["event"] == "callback"]
    assert "4b1d6c0e-92a7-4f3b-8e15-c7a2d9f04e38" in {line["callid"] for line in callbacks}


def test_sigterm_stops_the_server_cleanly(callgate_server):
    server = callgate_server(CONFIG)
    assert server.stop(signal.SIGTERM) == 0


@pytest.mark.skipif(shutil.which("curl") is None, reason="curl is not installed")
def test_callgate_sign_prints_a_curl_command_that_works(callgate_server):
    server = callgate_server(CONFIG)
    printed = subprocess.run([CALLGATE, "sign", "ice", "--to", "+15612600684", "--url", server.url + "/sinch/callback"],
                             env={**server.env}, capture_output=True, text=True, check=True).stdout
    answer = subprocess.run(shlex.split(printed), capture_output=True, text=True, check=True).stdout
    assert json.loads(answer)["action"]["name"] == "connectPstn"


@pytest.mark.skipif(shutil.which("curl") is None, reason="curl is not installed")
def test_callgate_sign_sends_a_body_file_byte_for_byte_even_when_it_is_not_utf8(callgate_server, tmp_path):
    server = callgate_server(CONFIG)
    body = tmp_path / "latin1.json"
    body.write_bytes(b'{"event":"ice","callid":"c-\xe9"}')        # Latin-1, not UTF-8: the server must see it as is
    printed = subprocess.run([CALLGATE, "sign", "ice", "--body", str(body), "--url", server.url + "/sinch/callback"],
                             env={**server.env}, capture_output=True, text=True, check=True).stdout
    assert f"@{body}" in printed
    sent = subprocess.run(shlex.split(printed), capture_output=True, text=True, check=True).stdout
    assert json.loads(sent)["error"] == "invalid_json" and "not UTF-8" in json.loads(sent)["message"]   # not a 401
    from_stdin = subprocess.run([CALLGATE, "sign", "ice", "--body", "-"], input=body.read_bytes(),
                                env={**server.env}, capture_output=True)
    assert from_stdin.returncode == 2 and b"give it as a file" in from_stdin.stderr


def test_broken_config_stops_serve_with_file_and_key(tmp_path):
    path = tmp_path / "config.toml"
    path.write_text("[server]\nport = 'eighty'\n")
    result = subprocess.run([CALLGATE, "serve", "--config", str(path)], capture_output=True, text=True, timeout=30)
    assert result.returncode == 2
    assert f"{path}: [server].port" in result.stderr and "Traceback" not in result.stderr


def test_missing_plugin_stops_serve_with_the_fix(tmp_path):
    path = tmp_path / "config.toml"
    path.write_text('[plugins]\nenabled = ["allowlist_missing"]\n')
    result = subprocess.run([CALLGATE, "serve", "--config", str(path)], capture_output=True, text=True, timeout=30)
    assert result.returncode == 2 and "pip install callgate-allowlist-missing" in result.stderr
