"""Slow and stalled senders, and the size limits on a request head, against a real ``callgate serve``.

The promise (``[server] keepalive_timeout_seconds``, ``body_timeout_seconds``, ``max_header_bytes``,
``max_headers``): a client that sends its request head or body a byte at a time, or stops half way,
holds one connection for at most the configured time and never delays anyone else's answer; an
idle keep-alive connection is closed after ``keepalive_timeout_seconds``; a request line or header
line over ``max_header_bytes``, or more than ``max_headers`` headers, is refused with 400.
"""

from __future__ import annotations

import asyncio
import json
import time

import aiohttp
import pytest
from reliability_helpers_input import CALLBACK, HTTP_400, outcome_of, raw_request, read_reply, send_raw, signed

from callgate import samples
from callgate.config import ServerConfig
from callgate.testing import TEST_APPLICATION_KEY, TEST_APPLICATION_SECRET

#: Starts the real callgate command or waits in real time: skipped by -m 'not slow'.
pytestmark = pytest.mark.slow

BODY_TIMEOUT = 1.0
KEEPALIVE = 1.0
#: Slack for a loaded 2-core CI machine: the server must close no earlier than 80 % of a timeout
#: and no later than the timeout plus this.
SLACK = 2.0

CONFIG = f"""
[server]
log_format = "json"
body_timeout_seconds = {BODY_TIMEOUT}
keepalive_timeout_seconds = {KEEPALIVE}
"""


def ace() -> tuple[bytes, list[tuple[str, str]]]:
    body = json.dumps(samples.ace("slow")).encode()
    return body, signed(body, TEST_APPLICATION_KEY, TEST_APPLICATION_SECRET)


class Slow:
    """One connection that sends ``head`` at once, then ``trickle`` one byte per ``interval`` seconds,
    stopping as soon as the server answers or closes.  ``result()`` -> (bytes received, seconds from
    the connection's opening until the server closed it)."""

    def __init__(self, url: str, head: bytes, trickle: bytes = b"", interval: float = 0.1) -> None:
        self.url, self.head, self.trickle, self.interval = url, head, trickle, interval

    async def result(self, limit: float) -> tuple[bytes, float]:
        host, port = self.url.removeprefix("http://").split(":")
        reader, writer = await asyncio.open_connection(host, int(port))
        opened = time.monotonic()
        answered = asyncio.Event()

        async def feed() -> None:
            writer.write(self.head)
            for byte in self.trickle:
                await asyncio.sleep(self.interval)
                if answered.is_set():
                    return
                try:
                    writer.write(bytes([byte]))
                    await writer.drain()
                except ConnectionError:
                    return

        feeder = asyncio.create_task(feed())
        received = b""
        try:
            async with asyncio.timeout(limit):
                while True:
                    try:
                        chunk = await reader.read(65536)
                    except ConnectionError:
                        break
                    if not chunk:
                        break
                    received += chunk
                    answered.set()
        except TimeoutError:
            raise AssertionError(f"the server kept a slow connection open more than {limit} s "
                                 f"(received {received[:100]!r})") from None
        finally:
            feeder.cancel()
            writer.close()
        return received, time.monotonic() - opened


async def _normal_requests(url: str, stop: asyncio.Event) -> list[float]:
    """Signed ACEs on fresh connections, one after the other, until ``stop``: each one's answer time."""
    times = []
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(force_close=True)) as session:
        while not stop.is_set() and len(times) < 500:
            body, headers = ace()
            started = time.monotonic()
            async with asyncio.timeout(5):
                async with session.post(url + CALLBACK, data=body, headers=dict(headers)) as response:
                    assert response.status == 200, await response.text()
                    assert (await response.json())["action"]["name"] == "continue"
            times.append(time.monotonic() - started)
            await asyncio.sleep(0.05)
    return times


async def test_slow_and_stalled_senders_are_cut_off_and_never_delay_others(callgate_server):
    server = callgate_server(CONFIG)
    url = server.url
    body, headers = ace()
    head = raw_request("POST", CALLBACK, headers, b"", len(body))        # the head, announcing len(body) bytes
    big_head = raw_request("POST", CALLBACK, headers, b"", 1_000_000)    # over max_body_bytes

    scenarios = {
        # the request head a byte at a time (would take ~25 s): closed by the keep-alive timeout
        "slow head": Slow(url, b"", head, interval=0.1),
        # the head half sent, then nothing
        "stalled head": Slow(url, head[:len(head) // 2]),
        # the body a byte at a time (would take ~20 s): 408 after the body timeout, closed
        "slow body": Slow(url, head, body, interval=0.1),
        # the body half sent, then nothing
        "stalled body": Slow(url, head + body[:len(body) // 2]),
        # a body over the limit, sent slowly: 413 at once, the rest discarded for at most the body timeout
        "slow body over the limit": Slow(url, big_head, b"x" * 200, interval=0.1),
        # a complete request, then an idle keep-alive connection
        "idle keep-alive": Slow(url, head + body),
    }
    # and many of them at once
    crowd = [Slow(url, b"", head, interval=0.2) for _ in range(40)] + \
            [Slow(url, head + body[:10]) for _ in range(40)]

    stop = asyncio.Event()
    normal = asyncio.create_task(_normal_requests(url, stop))
    limit = max(BODY_TIMEOUT, KEEPALIVE) + SLACK
    results = await asyncio.gather(*(s.result(limit) for s in scenarios.values()), *(s.result(limit) for s in crowd))
    stop.set()
    answer_times = await normal
    outcome = dict(zip(scenarios, results))

    def status_of(received: bytes) -> int | None:
        return int(received.split(b" ")[1]) if received.startswith(b"HTTP/1.1 ") else None

    for name in ("slow head", "stalled head"):
        received, closed_after = outcome[name]
        assert received == b"", (name, received)
        assert 0.8 * KEEPALIVE <= closed_after <= KEEPALIVE + SLACK, (name, closed_after)
    for name in ("slow body", "stalled body"):
        received, closed_after = outcome[name]
        assert status_of(received) == 408, (name, received)
        assert json.loads(received.split(b"\r\n\r\n", 1)[1])["error"] == "body_timeout"
        assert b"Connection: close" in received
        assert 0.8 * BODY_TIMEOUT <= closed_after <= BODY_TIMEOUT + SLACK, (name, closed_after)
    received, closed_after = outcome["slow body over the limit"]
    assert status_of(received) == 413 and closed_after <= BODY_TIMEOUT + SLACK, (received, closed_after)
    received, closed_after = outcome["idle keep-alive"]
    assert status_of(received) == 200 and 0.8 * KEEPALIVE <= closed_after <= KEEPALIVE + SLACK, closed_after
    for received, closed_after in results[len(scenarios):]:
        assert status_of(received) in (None, 408) and closed_after <= limit

    # Meanwhile everyone else was answered, promptly, all the time.
    assert len(answer_times) >= 10, answer_times
    assert max(answer_times) < 1.0, max(answer_times)
    assert server.process.poll() is None
    refused = [line for line in server.log_lines() if line.get("reason") == "body_timeout"]
    assert len(refused) >= 2 + 40
    assert not [line for line in server.log_lines() if line.get("level") == "error"]


async def test_request_head_limits_are_configured_and_enforced(callgate_server):
    server = callgate_server('[server]\nlog_format = "json"\nmax_header_bytes = 2048\nmax_headers = 32\n')
    body, headers = ace()

    async def status(extra: list[tuple[str, str]], target: str = CALLBACK) -> str:
        # raw_request adds Host and Content-Length to the signed headers
        return outcome_of(await send_raw(server.url, raw_request("POST", target, headers + extra, body, len(body))))

    assert await status([("X-Pad", "a" * 2048)]) == "200:svaml"
    assert await status([("X-Pad", "a" * 2049)]) == HTTP_400
    assert await status([("Authorization", "Application x:" + "a" * 3000)]) == HTTP_400
    assert await status([], target=CALLBACK + "?" + "a" * 2100) == HTTP_400
    count = len(headers) + 2
    assert await status([(f"X-{i}", "v") for i in range(32 - count)]) == "200:svaml"
    assert await status([(f"X-{i}", "v") for i in range(33 - count)]) == HTTP_400
    # The refusal is logged as one warning, without the header's content.
    refused = [line for line in server.log_lines() if line.get("event") == "http_request_refused"]
    assert len(refused) == 4 and {line["status"] for line in refused} == {400}
    assert "aaaaaaaa" not in server.logs() and "Traceback" not in server.logs()
    assert server.process.poll() is None


def test_defaults_of_the_limits():
    server = ServerConfig()
    assert (server.body_timeout_seconds, server.keepalive_timeout_seconds) == (5.0, 75.0)
    assert (server.max_header_bytes, server.max_headers, server.max_body_bytes) == (8190, 128, 65536)


async def test_the_idle_connection_limit_is_not_a_deadline_for_a_busy_one(callgate_server):
    """A keep-alive connection that keeps sending requests is not cut off by the keep-alive timeout."""
    server = callgate_server(CONFIG)
    body, headers = ace()
    host, port = server.url.removeprefix("http://").split(":")
    reader, writer = await asyncio.open_connection(host, int(port))
    try:
        started = time.monotonic()
        answered = 0
        while time.monotonic() - started < KEEPALIVE * 2.5:
            body, headers = ace()
            writer.write(raw_request("POST", CALLBACK, headers, body, len(body)))
            await writer.drain()
            reply = await asyncio.wait_for(read_reply(reader), 5)
            assert reply.status == 200, reply
            answered += 1
            await asyncio.sleep(KEEPALIVE / 2)
        assert answered >= 4
    finally:
        writer.close()
