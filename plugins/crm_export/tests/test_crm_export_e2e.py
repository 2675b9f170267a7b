"""End to end: the real `callgate serve` process, killed with SIGKILL in the middle of a DICE burst."""

import asyncio
import json
import signal
from collections import Counter

import aiohttp
import pytest
from crm_export_receiver import OK, Receiver, ReceiverReply

from callgate import samples
from callgate.protocols.v1 import signing
from callgate.testing import TEST_APPLICATION_KEY, TEST_APPLICATION_SECRET

#: Starts the real callgate command or waits in real time: skipped by -m 'not slow'.
pytestmark = pytest.mark.slow

SECRET = "e2e-webhook-secret-0123456789"
CONCURRENCY = 4
CONFIG = """
[server]
log_format = "json"

[plugins]
enabled = ["crm_export"]

[plugins.crm_export]
database_url = "sqlite:///{database}"
poll_interval_seconds = 0.1

[[plugins.crm_export.sinks]]
name = "hook"
type = "webhook"
url = "{url}/hook"
secret = {{ env = "CRM_E2E_SECRET" }}
concurrency = {concurrency}
timeout_seconds = 1
backoff_initial_seconds = 0.05
backoff_max_seconds = 0.5
"""


async def post_dice(session, url, callid):
    raw = json.dumps(samples.dice(callid=callid, duration=42)).encode()
    headers = signing.signed_headers(TEST_APPLICATION_KEY, TEST_APPLICATION_SECRET, "/sinch/callback", raw)
    try:
        async with session.post(url + "/sinch/callback", data=raw, headers=headers) as response:
            return callid, response.status
    except (TimeoutError, aiohttp.ClientError):
        return callid, None


async def test_sigkill_during_a_dice_burst_loses_no_answered_call(callgate_server, tmp_path):
    # The CRM fails every other request (503) for the whole test.
    async with Receiver(secret=SECRET, behave=lambda n, c: ReceiverReply(503) if n % 2 else OK) as receiver:
        config = CONFIG.format(database=tmp_path / "crm.sqlite3", url=receiver.url, concurrency=CONCURRENCY)
        env = {"CRM_E2E_SECRET": SECRET}
        server = callgate_server(config, env=env)
        answered: list[str] = []
        callids = [f"burst-{i:04d}" for i in range(400)]
        async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=40)) as session:
            tasks = [asyncio.create_task(post_dice(session, server.url, c)) for c in callids]
            for done in asyncio.as_completed(tasks):
                callid, status = await done
                if status == 200:
                    answered.append(callid)
                if len(answered) == 150:
                    server.stop(signal.SIGKILL)          # mid-burst: no shutdown, no cleanup
            await asyncio.gather(*tasks)
        assert 150 <= len(answered) < len(callids)       # the kill did cut the burst
        delivered_before = len(receiver.accepted)

        restarted = callgate_server(config, env=env)     # the same outbox, a new process
        await receiver.wait_for(lambda: set(answered) <= set(receiver.accepted_callids()), timeout=60)
        await asyncio.sleep(0.5)                         # let anything still in flight land

    accepted = receiver.accepted_callids()
    assert not set(answered) - set(accepted)             # every DICE answered 200 reached the CRM
    duplicates = {c: n for c, n in accepted.items() if n > 1}
    # Only a request the CRM had accepted when the process died can be sent again: at most one per slot.
    assert sum(n - 1 for n in duplicates.values()) <= CONCURRENCY, duplicates
    for callid in duplicates:
        copies = [s for s in receiver.accepted if s.callid == callid]
        assert len({s.headers["Idempotency-Key"] for s in copies}) == 1 and len({s.body for s in copies}) == 1
    assert Counter(accepted.values()).get(1, 0) >= len(answered) - CONCURRENCY
    assert delivered_before < len(answered)              # the restart had real work to do
    assert SECRET not in server.logs() + restarted.logs()
    assert "crm_delivered" in restarted.logs() and "crm_retry_scheduled" in server.logs() + restarted.logs()
