"""The process lifecycle: SIGTERM drains without losing accepted requests; several workers share one port."""

import asyncio
import json
import re
import signal
import textwrap

import aiohttp
import pytest

from callgate import samples
from callgate.protocols.v1 import signing
from callgate.testing import TEST_APPLICATION_KEY, TEST_APPLICATION_SECRET

#: Starts the real callgate command or waits in real time: skipped by -m 'not slow'.
pytestmark = pytest.mark.slow


@pytest.fixture
def slow_plugin(tmp_path):
    """An installed plugin (a dist-info on PYTHONPATH) whose authorize_call takes 300 ms."""
    dist = tmp_path / "callgate_slow-1.0.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: callgate-slow\nVersion: 1.0\n")
    (dist / "entry_points.txt").write_text("[callgate.plugins]\nslow = callgate_slow:Slow\n")
    (tmp_path / "callgate_slow.py").write_text(textwrap.dedent("""
        import asyncio
        from callgate import Allow, hookimpl

        class Slow:
            @hookimpl
            async def authorize_call(self, call):
                await asyncio.sleep(0.3)
                return Allow()
    """))
    return {"PYTHONPATH": str(tmp_path)}


SLOW_CONFIG = """
[server]
log_format = "json"
drain_seconds = 0.5
[plugins]
enabled = ["slow"]
[[plugins.router.routes]]
action = { name = "connectPstn", number = "{to}" }
"""


async def send_ice(session, url):
    raw = json.dumps(samples.ice(to="+14155550123")).encode()
    headers = signing.signed_headers(TEST_APPLICATION_KEY, TEST_APPLICATION_SECRET, "/sinch/callback", raw)
    try:
        async with session.post(url + "/sinch/callback", data=raw, headers=headers) as response:
            return response.status, await response.json()
    except aiohttp.ClientConnectorError:
        return "not accepted", None


async def test_sigterm_under_load_answers_every_accepted_request(callgate_server, slow_plugin):
    server = callgate_server(SLOW_CONFIG, env=slow_plugin)
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=100)) as session:
        in_flight = [asyncio.create_task(send_ice(session, server.url)) for _ in range(40)]
        await asyncio.sleep(0.1)                       # every request is now being handled
        server.process.send_signal(signal.SIGTERM)
        await asyncio.sleep(0.1)
        async with session.get(server.url + "/readyz") as ready:          # readiness fails first...
            assert ready.status == 503 and (await ready.json())["status"] == "draining"
        during_drain = await send_ice(session, server.url)               # ...while callbacks are still answered
        results = await asyncio.gather(*in_flight)
        await asyncio.sleep(0.8)                       # past the drain: the port is closed
        after = await send_ice(session, server.url)
    assert during_drain[0] == 200
    assert [status for status, _ in results] == [200] * 40
    assert all(body["action"]["name"] == "connectPstn" for _, body in results)
    assert after == ("not accepted", None)
    assert server.process.wait(10) == 0
    assert "stopped" in [line["event"] for line in server.log_lines()]


async def test_two_workers_share_the_port_and_the_metrics(callgate_server):
    server = callgate_server('[server]\nlog_format = "json"\n', args=("--workers", "2"))

    def listening():
        return {line["pid"] for line in server.log_lines() if line["event"] == "listening"}

    for _ in range(200):                 # /healthz answers once one worker listens; wait for both
        if len(listening()) == 2:
            break
        await asyncio.sleep(0.1)
    assert len(listening()) == 2
    async with aiohttp.ClientSession() as session:
        for _ in range(50):
            raw = json.dumps(samples.ace()).encode()
            headers = signing.signed_headers(TEST_APPLICATION_KEY, TEST_APPLICATION_SECRET, "/sinch/callback", raw)
            async with aiohttp.ClientSession() as fresh:            # a new connection each time: both workers serve
                async with fresh.post(server.url + "/sinch/callback", data=raw, headers=headers) as response:
                    assert response.status == 200
        async with session.get(server.url + "/metrics") as response:
            text = await response.text()
    count = float(re.search(r'callgate_callbacks_total\{event="ace",generation="v1",status="200"\} (\S+)', text).group(1))
    assert count == 50
    assert server.stop(signal.SIGTERM) == 0


async def test_the_objects_alive_at_start_are_frozen_out_of_the_collectors_sight(callgate_server):
    """Once listening, the server has moved its start-up objects out of the full collection's way (issue 17's
    tail): the listening line says how many, and callbacks are answered as before."""
    server = callgate_server('[server]\nlog_format = "json"\n[[plugins.router.routes]]\n'
                             'action = { name = "connectPstn", number = "{to}" }\n')
    [listening] = [line for line in server.log_lines() if line["event"] == "listening"]
    assert listening["gc_frozen"] > 10_000          # modules, classes, functions: tens of thousands
    status, answer = server.callback(samples.ice(caller="46700000001", to="+46850001234"))
    assert (status, answer["action"]["name"]) == (200, "connectPstn")


def test_freezing_skips_what_is_alive_and_collects_what_comes_later():
    import gc

    from callgate.server import freeze_startup_objects

    class Node:
        def __init__(self):
            self.me = self                           # a reference cycle: only the collector frees it

    alive = [Node()]
    try:
        frozen = freeze_startup_objects()
        assert frozen == gc.get_freeze_count() >= 1
        assert not any(o is alive for o in gc.get_objects())        # out of every generation's sight
        later = Node()
        assert any(o is later for o in gc.get_objects())
        del later
        assert gc.collect() >= 1                    # the cycle made after the freeze is still collected
    finally:
        gc.unfreeze()
