"""``callgate crm deliver-now`` after a receiver's outage: the real command, in its own process, makes the
records a running server keeps waiting out their backoff due at once; the server then delivers them."""

import asyncio
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import aiohttp
from crm_export_receiver import OK, Receiver, ReceiverReply

from callgate import samples
from callgate.protocols.v1 import signing
from callgate.testing import TEST_APPLICATION_KEY, TEST_APPLICATION_SECRET
from callgate_crm_export.outbox import Outbox

CALLGATE = str(Path(sys.executable).with_name("callgate"))
SECRET = "deliver-now-webhook-secret-0123456789"
ENV = {"CRM_DELIVER_NOW_SECRET": SECRET}
#: The default backoff (up to 15 minutes); the receiver's Retry-After makes the wait exactly 15 minutes.
CONFIG = """
[plugins]
enabled = ["crm_export"]

[plugins.crm_export]
database_url = "sqlite:///{database}"
poll_interval_seconds = 0.1

[[plugins.crm_export.sinks]]
name = "hook"
type = "webhook"
url = "{url}/hook"
secret = {{ env = "CRM_DELIVER_NOW_SECRET" }}
timeout_seconds = 2
"""
OUTAGE = ReceiverReply(500, retry_after="900")
CALLIDS = ["outage-1", "outage-2", "outage-3"]


async def post_dice(session: aiohttp.ClientSession, url: str, callid: str) -> int:
    raw = json.dumps(samples.dice(callid=callid, duration=42)).encode()
    headers = signing.signed_headers(TEST_APPLICATION_KEY, TEST_APPLICATION_SECRET, "/sinch/callback", raw)
    async with session.post(url + "/sinch/callback", data=raw, headers=headers) as response:
        return response.status


def crm(config: Path, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([CALLGATE, "--config", str(config), "crm", *args], env={**os.environ, **ENV},
                          capture_output=True, text=True, timeout=60, check=False)


async def until(predicate, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not await predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"not within {timeout} s: {what}")
        await asyncio.sleep(0.05)


async def test_deliver_now_sends_the_records_left_by_an_outage_at_once(callgate_server, tmp_path):
    receiver_down = [True]
    database = tmp_path / "crm.sqlite3"
    async with Receiver(secret=SECRET, behave=lambda n, callid: OUTAGE if receiver_down[0] else OK) as receiver:
        server = callgate_server(CONFIG.format(database=database, url=receiver.url), env=ENV)
        async with aiohttp.ClientSession() as session:
            assert [await post_dice(session, server.url, c) for c in CALLIDS] == [200] * 3

        outbox = await Outbox.open(f"sqlite:///{database}", ["hook"])
        try:
            async def waiting_out_the_outage() -> bool:     # each tried once, refused, and back in the queue
                [status] = await outbox.status(time.time())
                return status.pending == 3 and status.in_flight == 0 and len(receiver.seen) == 3
            await until(waiting_out_the_outage, 15, "three records refused once and waiting")
            receiver_down[0] = False                         # the receiver is back
            await asyncio.sleep(1.0)                         # ten polls: nothing is due for 15 minutes
            assert receiver.accepted == [] and len(receiver.seen) == 3

            result = await asyncio.to_thread(crm, server.config_path, "deliver-now")
            assert result.returncode == 0, result.stderr
            assert result.stdout.startswith("3 pending record(s) due now"), result.stdout

            await receiver.wait_for(lambda: set(receiver.accepted_callids()) == set(CALLIDS), timeout=10)

            async def all_delivered() -> bool:
                [status] = await outbox.status(time.time())
                return (status.pending, status.delivered) == (0, 3)
            await until(all_delivered, 10, "three records marked delivered")
        finally:
            await outbox.close()
    assert receiver.accepted_callids() == {c: 1 for c in CALLIDS}
    again = await asyncio.to_thread(crm, server.config_path, "deliver-now", "--sink", "hook")
    assert again.returncode == 0 and again.stdout.startswith("0 pending record(s)")
    unknown = await asyncio.to_thread(crm, server.config_path, "deliver-now", "--sink", "nope")
    assert unknown.returncode == 2 and "unknown sink 'nope'" in unknown.stdout
