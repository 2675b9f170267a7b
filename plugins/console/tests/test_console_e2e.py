"""End to end: the real `callgate serve` (two workers) with the console enabled, signed callbacks of both
generations over real HTTP, and the console read over HTTP with a session."""

from __future__ import annotations

import asyncio
import json
import time

import aiohttp
import pytest
from console_setup import TOKEN

from callgate import samples, v2_samples
from callgate.testing import ServerProcess, free_port

pytestmark = pytest.mark.slow

HOSTILE = "<img src=x onerror=alert(1)>"


def config_toml(folder, ops_port: int) -> str:
    return f"""
[server]
ops_port = {ops_port}
log_format = "json"

[plugins]
enabled = ["console"]

[plugins.console]
database_url = "sqlite:///{folder}/console.sqlite3"
flush_interval_ms = 100

[[plugins.router.routes]]
name = "all"
prefix = "+"
action = {{ name = "connectPstn", number = "{{to}}", maxDuration = 600 }}
"""


@pytest.fixture
def server(tmp_path):
    ops_port = free_port()
    path = tmp_path / "config.toml"
    path.write_text(config_toml(tmp_path, ops_port))
    process = ServerProcess(path, env={"CALLGATE_CONSOLE_TOKEN": TOKEN}, args=("--workers", "2"), ops_port=ops_port)
    process.start()
    yield process
    process.stop()


async def next_event(stream: aiohttp.ClientResponse, name: str, timeout: float) -> dict:
    """The data of the next event called ``name`` (keepalives and other events skipped)."""
    async def read() -> dict:
        while True:
            block = (await stream.content.readuntil(b"\n\n")).decode()
            if block.startswith(f"event: {name}\n"):
                return json.loads(block.split("\ndata: ", 1)[1])
    return await asyncio.wait_for(read(), timeout)


async def test_the_console_shows_what_the_real_server_answered(server):
    ops = server.ops_url
    async with aiohttp.ClientSession() as anonymous:
        for path in ("/console/", "/console/api/callbacks", "/console/stream", "/console/static/live.js"):
            async with anonymous.get(ops + path) as response:
                assert response.status == 401, path
        async with anonymous.get(server.url + "/console/login") as response:    # never on the callback port
            assert response.status == 404

    async with aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True)) as session:   # IP hosts need unsafe
        async with session.post(ops + "/console/login", data={"token": TOKEN}, allow_redirects=False) as login:
            assert login.status == 303
            cookie = login.headers["Set-Cookie"]
            assert "HttpOnly" in cookie and "SameSite=Strict" in cookie and "Path=/console" in cookie
        async with session.get(ops + "/console/stream") as stream:
            assert stream.status == 200
            await next_event(stream, "ready", 5)

            v1 = samples.ice(caller=HOSTILE, to="+46812345678")
            sent = time.monotonic()
            status, v1_answer = await asyncio.to_thread(server.callback, v1)
            assert status == 200
            event = await next_event(stream, "callback", 2.0)
            assert time.monotonic() - sent < 2.0
            assert (event["call_key"], event["generation"], event["caller"]) == (v1["callid"], "v1", HOSTILE)

            v2 = v2_samples.incoming(caller="+46701234567", to="+46812345678")
            sent = time.monotonic()
            status, v2_answer = await asyncio.to_thread(server.webhook, v2)
            assert status == 200
            event = await next_event(stream, "callback", 2.0)
            assert time.monotonic() - sent < 2.0
            v2_key = "v2:" + v2["call"]["callId"]
            assert (event["call_key"], event["event"], event["caller"]) == (v2_key, "call.incoming", "+46701234567")

        async with session.get(ops + event["url"]) as page:
            text = await page.text()
        assert page.status == 200 and 'data-event="call.incoming"' in text and 'tr data-plugin="router"' in text
        async with session.get(ops + "/console/api/calls/" + v1["callid"]) as api:
            call = await api.json()
        [entry] = call["timeline"]
        assert json.loads(entry["request"]) == v1 and json.loads(entry["answer"]) == v1_answer
        assert call["call"]["caller"] == HOSTILE and entry["trace"][0]["plugin"] == "router"
        async with session.get(ops + "/console/calls/" + v1["callid"]) as page:
            text = await page.text()
        assert HOSTILE not in text and "&lt;img src=x onerror=alert(1)&gt;" in text
        async with session.get(ops + "/console/search", params={"number": "+46701234567"}) as search:
            assert f'data-call-key="{v2_key}"' in await search.text()
        async with session.get(ops + "/console/api/calls/" + v2_key) as api:
            assert json.loads((await api.json())["timeline"][0]["answer"]) == v2_answer
    assert TOKEN not in server.logs()


def test_serve_refuses_the_console_without_an_ops_port(tmp_path):
    path = tmp_path / "config.toml"
    path.write_text(config_toml(tmp_path, 0))
    process = ServerProcess(path, env={"CALLGATE_CONSOLE_TOKEN": TOKEN})
    with pytest.raises(RuntimeError) as failed:
        process.start(timeout=10)
    assert "ops_port" in str(failed.value) and "console" in str(failed.value)


def test_serve_refuses_the_console_without_its_token(tmp_path, monkeypatch):
    monkeypatch.delenv("CALLGATE_CONSOLE_TOKEN")
    path = tmp_path / "config.toml"
    path.write_text(config_toml(tmp_path, free_port()))
    with pytest.raises(RuntimeError) as failed:
        ServerProcess(path).start(timeout=10)
    assert "CALLGATE_CONSOLE_TOKEN is not set" in str(failed.value)
