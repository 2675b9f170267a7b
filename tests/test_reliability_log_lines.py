"""What README's "Logs" promises about the ``callback`` lines when the process is killed (SIGKILL).

The promise: a callback's line is written at most one event-loop turn after its answer left, before
callgate handles any request that reaches it after that answer.  So once a client has the answer to
a request it sent after receiving an answer, that earlier answer's line is in the log, whatever
happens next; a SIGKILL can only lose the lines of the answers sent in the last turn before it.
"""

from __future__ import annotations

import asyncio
import json
import signal

import aiohttp
import pytest
from reliability_helpers_input import CALLBACK, json_log_lines, signed

from callgate import samples
from callgate.testing import TEST_APPLICATION_KEY, TEST_APPLICATION_SECRET

#: Starts the real callgate command or waits in real time: skipped by -m 'not slow'.
pytestmark = pytest.mark.slow

CONFIG = '[server]\nlog_format = "json"\n'


async def post(session: aiohttp.ClientSession, url: str, event: dict) -> None:
    raw = json.dumps(event).encode()
    async with session.post(url + CALLBACK, data=raw, headers=dict(signed(raw, TEST_APPLICATION_KEY,
                                                                           TEST_APPLICATION_SECRET))) as response:
        assert response.status == 200, await response.text()
        await response.read()


def logged_callids(server) -> set[str]:
    lines, _ = json_log_lines(server.log_path.read_text(errors="replace"))
    return {line["callid"] for line in lines if line.get("event") == "callback"}


async def test_sigkill_loses_no_line_of_an_answer_followed_by_another(callgate_server):
    server = callgate_server(CONFIG)
    async with aiohttp.ClientSession() as session:
        # one after the other: each answer is followed by the next request
        sequential = [f"seq-{i}" for i in range(30)]
        for callid in sequential:
            await post(session, server.url, samples.dice(callid))
        # a burst from several connections, then one more request answered after all of them
        burst = [f"burst-{i}" for i in range(60)]
        await asyncio.gather(*(post(session, server.url, samples.dice(callid)) for callid in burst))
        await post(session, server.url, samples.dice("last"))
    server.process.send_signal(signal.SIGKILL)
    server.process.wait(10)
    logged = logged_callids(server)
    missing = [callid for callid in sequential + burst if callid not in logged]
    assert not missing, f"lines of answered callbacks lost by a SIGKILL: {missing}"
