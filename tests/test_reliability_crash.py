"""Reliability, crash (issue 8, promise 5): SIGKILL in the middle of a mixed load, and a restart on the same
databases.  No credit is debited twice or lost, no reservation is held forever, no call record is lost.

One real ``callgate serve`` with allowlist, credit_check and crm_export (SQLite files, the single-instance
deployment), callers with credit placing calls (ICE, then DICE for most of them, ICE alone for some); the
process is killed with SIGKILL once a good part of the DICEs were answered, then started again on the
same files and the same port.
"""

from __future__ import annotations

import asyncio
import signal
from decimal import Decimal

import aiohttp
import pytest
from reliability_helpers_faults import (
    DESTINATION,
    PER_SECOND,
    CrmReceiver,
    caller,
    config_toml,
    credit_json,
    eventually,
    kill,
    ledger_debits,
    open_accounts,
    post,
    readyz,
    start_server,
    write_config,
)

from callgate import samples

#: Starts the real callgate command or waits in real time: skipped by -m 'not slow'.
pytestmark = pytest.mark.slow

for module in ("callgate_allowlist", "callgate_credit_check", "callgate_crm_export"):
    pytest.importorskip(module, reason=f"{module} is not installed (python3 scripts/dev.py test installs it)")

NUMBERS = [caller(i) for i in range(1, 4)]
TOP_UP = Decimal("100.00")
CALLS = 240
WORKERS = 12
#: The process is killed once this many DICEs were answered 200.
KILL_AFTER = 80
#: Short limits so that the reservation of a call whose DICE never comes expires within seconds:
#: maxDuration 4 s + grace 0 s, looked for every 0.2 s.
MAX_DURATION = 4
SINK_CONCURRENCY = 4
QUIET_SECONDS = 1.0


class Call:
    def __init__(self, i: int) -> None:
        self.number = NUMBERS[i % len(NUMBERS)]
        self.ice = samples.ice(caller=self.number.lstrip("+"), to=DESTINATION)
        self.callid = self.ice["callid"]
        self.duration = 1 + i % 4
        self.hangs_up = i % 5 == 0          # no DICE ever comes for this call: its reservation must expire
        self.dice = samples.dice(self.callid, caller=self.number.lstrip("+"), to=DESTINATION,
                                 duration=self.duration)
        self.ice_reply = self.dice_reply = None

    @property
    def cost(self) -> Decimal:
        return PER_SECOND * self.duration


async def mixed_load_until_killed(session, server, calls):
    """``WORKERS`` concurrent callers work through ``calls``; SIGKILL once ``KILL_AFTER`` DICEs were answered 200."""
    queue: asyncio.Queue[Call] = asyncio.Queue()
    for call in calls:
        queue.put_nowait(call)
    answered = 0
    killing: list[asyncio.Task] = []

    async def worker():
        nonlocal answered
        while not queue.empty():
            call = queue.get_nowait()
            call.ice_reply = await post(session, server.url, call.ice, timeout=5)
            if call.hangs_up or call.ice_reply.status != 200:
                continue
            assert call.ice_reply.body["action"] == {"name": "connectPstn", "number": DESTINATION,
                                                     "maxDuration": MAX_DURATION}
            call.dice_reply = await post(session, server.url, call.dice, timeout=5)
            if call.dice_reply.status == 200:
                answered += 1
                if answered == KILL_AFTER:
                    killing.append(asyncio.create_task(kill(server, signal.SIGKILL)))

    await asyncio.wait_for(asyncio.gather(*(worker() for _ in range(WORKERS))), timeout=60)
    await asyncio.gather(*killing)


async def ledgers(setup):
    entries = await asyncio.gather(*(credit_json(setup, "ledger", n, "--limit", "100000") for n in NUMBERS))
    return dict(zip(NUMBERS, entries))


async def test_sigkill_mid_load_debits_once_leaks_no_reservation_and_loses_no_record(callgate_server, tmp_path):
    # A slow CRM (0.2 s a record, 4 at a time): records wait in the outbox when the process is killed, and
    # some requests are in the CRM's hands at that moment.
    async with CrmReceiver(delay=0.2) as receiver:
        config = config_toml(f"sqlite:///{tmp_path}/credit.sqlite3", f"sqlite:///{tmp_path}/crm.sqlite3",
                             receiver.url, max_duration=MAX_DURATION, grace_seconds=0, expiry_interval_seconds=0.2,
                             sink_timeout_seconds=1, concurrency=SINK_CONCURRENCY)
        setup = write_config(tmp_path, "setup.toml", config)
        await open_accounts(setup, tmp_path, {number: str(TOP_UP) for number in NUMBERS})
        server = await start_server(callgate_server, config)
        calls = [Call(i) for i in range(CALLS)]

        async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=WORKERS * 2)) as session:
            await mixed_load_until_killed(session, server, calls)
            assert server.process.returncode == -signal.SIGKILL
            answered = [c for c in calls if c.dice_reply is not None and c.dice_reply.status == 200]
            dice_sent = [c for c in calls if c.dice_reply is not None]
            cut = [c for c in calls if c.ice_reply.status is None or (c.dice_reply and c.dice_reply.status is None)]
            assert len(answered) >= KILL_AFTER and cut, "the kill did not cut the load"
            backlog = {c.callid for c in answered} - receiver.callids()
            assert len(backlog) >= 10, "the restarted process must have records of the killed one to deliver"

            restarted = await start_server(lambda text, env: callgate_server(text, env, port=server.port), config)

            # 1. Every DICE answered 200 before the kill was debited exactly once, at its cost; a DICE cut by
            #    the kill at most once.  The balance is what the ledger says.
            before = await ledgers(setup)
            debits = {c: amounts for entries in before.values() for c, amounts in ledger_debits(entries).items()}
            for call in answered:
                assert debits.get(call.callid) == [call.cost], (call.callid, debits.get(call.callid))
            assert all(len(amounts) == 1 for amounts in debits.values())
            assert set(debits) <= {c.callid for c in dice_sent}
            for entries in before.values():
                spent = sum(Decimal(e["amount"]) for e in entries if e["kind"] == "debit")
                assert Decimal(entries[-1]["balance"]) == TOP_UP - spent

            # 2. Sinch sends every DICE again (the fallback URL, a retry): each is answered 200, and a DICE that
            #    was already settled changes nothing.
            for call in dice_sent:
                assert (await post(session, restarted.url, call.dice)).status == 200
            after = await ledgers(setup)
            debit_ids = {e["callid"]: e["id"] for entries in before.values() for e in entries if e["kind"] == "debit"}
            redone = {e["callid"]: e["id"] for entries in after.values() for e in entries if e["kind"] == "debit"}
            assert {c: redone[c] for c in debit_ids} == debit_ids                 # not one settled call touched
            for number, entries in after.items():
                mine = [c for c in dice_sent if c.number == number]
                assert ledger_debits(entries) == {c.callid: [c.cost] for c in mine}
                assert Decimal(entries[-1]["balance"]) == TOP_UP - sum(c.cost for c in mine)

            # 3. No reservation is held forever: those of calls whose DICE never came (never sent, or cut by
            #    the kill before it was answered) expire after maxDuration + grace, in the restarted process.
            async def nothing_reserved():
                balances = await asyncio.gather(*(credit_json(setup, "balance", n) for n in NUMBERS))
                return all(Decimal(b["reserved"]) == 0 and b["open_calls"] == [] for b in balances)
            await eventually(nothing_reserved, MAX_DURATION + 10, "every reservation released", interval=0.5)
            expired = {e["callid"] for entries in (await ledgers(setup)).values() for e in entries
                       if e["kind"] == "release" and e["note"].startswith("no DICE")}
            assert {c.callid for c in calls if c.hangs_up and c.ice_reply.status == 200} <= expired
            assert (await readyz(session, restarted))[0] == 200

        # 4. No call record is lost: every DICE answered 200 before the kill (and every DICE sent again) reaches
        #    the CRM after the restart.  A record the CRM had accepted when the process died may come again, as
        #    the same request (same Idempotency-Key and body): the documented at-least-once window, at most one
        #    per request in flight (the sink's concurrency).
        await eventually(lambda: receiver.callids() >= {c.callid for c in answered}, 30,
                         "every DICE answered 200 before the kill at the CRM")
        await eventually(lambda: receiver.callids() >= {c.callid for c in dice_sent}, 30, "every DICE at the CRM")
        await asyncio.sleep(QUIET_SECONDS)
        extra = receiver.assert_repeats_are_identical()
        assert extra <= SINK_CONCURRENCY, receiver.repeats()
        assert {d.version for d in receiver.accepted} == {1}
        assert receiver.callids() == {c.callid for c in dice_sent}
        print(f"crash: {len(answered)} DICEs answered before SIGKILL ({len(backlog)} not yet at the CRM), "
              f"{len(cut)} calls cut by it, {len(dice_sent)} DICEs in all; {extra} record(s) delivered twice "
              f"(identical)")
