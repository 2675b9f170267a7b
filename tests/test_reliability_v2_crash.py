"""Reliability, crash, Voice API v2: SIGKILL in the middle of a mixed v2 load, and a restart on the same databases
(the pattern of tests/test_reliability_crash.py, on the webhook path).

Each call: ``call.incoming``, then (4 calls in 5) the callee leg's ``call.answered`` and both legs' ``call.hangup``;
1 call in 5 never hangs up (its reservation must expire).  After the restart: no double debit, no lost record for
any ``call.hangup`` answered 200, every hangup sent again is answered 200 and changes nothing settled, and the
reservations of calls without a hangup expire.
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
    dials,
    eventually,
    kill,
    ledger_debits,
    open_accounts,
    post_webhook,
    readyz,
    start_server,
    write_config,
)

from callgate import v2_samples
from callgate.testing import TEST_SERVICE_ID

#: Starts the real callgate command or waits in real time: skipped by -m 'not slow'.
pytestmark = pytest.mark.slow

for module in ("callgate_allowlist", "callgate_credit_check", "callgate_crm_export"):
    pytest.importorskip(module, reason=f"{module} is not installed (python3 scripts/dev.py test installs it)")

NUMBERS = [caller(i) for i in range(1, 4)]
TOP_UP = Decimal("100.00")
CALLS = 160
WORKERS = 10
KILL_AFTER = 50
MAX_DURATION = 4
SINK_CONCURRENCY = 4
QUIET_SECONDS = 1.0


class Call:
    def __init__(self, i: int) -> None:
        self.number = NUMBERS[i % len(NUMBERS)]
        self.session = v2_samples.new_call_id()
        self.incoming = v2_samples.incoming(self.number, DESTINATION, session=self.session, service_id=TEST_SERVICE_ID)
        self.callid = self.incoming["call"]["callId"]
        self.callee = v2_samples.new_call_id()
        self.duration = 1 + i % 4
        self.hangs_up = i % 5 != 0          # 1 in 5: no hangup ever comes, the reservation must expire
        self.answered = v2_samples.answered(self.callee, caller=DESTINATION, to=DESTINATION, session=self.session,
                                            service_id=TEST_SERVICE_ID)
        self.hangups = {  # key -> body: the callee leg first, then the inbound leg (the one billed)
            f"v2:{self.callee}": v2_samples.hangup(self.callee, caller=DESTINATION, to=DESTINATION,
                                                   duration=self.duration, direction="OUTBOUND", call_name="callee",
                                                   session=self.session, service_id=TEST_SERVICE_ID),
            self.key: v2_samples.hangup(self.callid, caller=self.number, to=DESTINATION, duration=self.duration,
                                        session=self.session, service_id=TEST_SERVICE_ID),
        }
        self.incoming_reply = None
        self.replies: dict[str, object] = {}

    @property
    def key(self) -> str:
        return f"v2:{self.callid}"

    @property
    def cost(self) -> Decimal:
        return PER_SECOND * self.duration

    def answered_200(self) -> set[str]:
        return {key for key, reply in self.replies.items() if reply.status == 200}


async def mixed_load_until_killed(session, server, calls):
    queue: asyncio.Queue[Call] = asyncio.Queue()
    for call in calls:
        queue.put_nowait(call)
    answered = 0
    killing: list[asyncio.Task] = []

    async def worker():
        nonlocal answered
        while not queue.empty():
            call = queue.get_nowait()
            call.incoming_reply = await post_webhook(session, server.url, call.incoming, timeout=5)
            if not call.hangs_up or call.incoming_reply.status != 200:
                continue
            assert dials(call.incoming_reply.body)[0]["maxCallDurationSeconds"] == MAX_DURATION
            if (await post_webhook(session, server.url, call.answered, timeout=5)).status is None:
                continue
            for key, body in call.hangups.items():
                call.replies[key] = reply = await post_webhook(session, server.url, body, timeout=5)
                assert reply.status in (200, None), (reply.status, reply.body)      # never a 5xx, never a 424 here
                if reply.status is None:
                    break
            if call.key in call.answered_200():
                answered += 1
                if answered == KILL_AFTER:
                    killing.append(asyncio.create_task(kill(server, signal.SIGKILL)))

    await asyncio.wait_for(asyncio.gather(*(worker() for _ in range(WORKERS))), timeout=60)
    await asyncio.gather(*killing)


async def ledgers(setup):
    entries = await asyncio.gather(*(credit_json(setup, "ledger", n, "--limit", "100000") for n in NUMBERS))
    return dict(zip(NUMBERS, entries))


async def test_sigkill_mid_v2_load_debits_once_leaks_no_reservation_and_loses_no_record(callgate_server, tmp_path):
    async with CrmReceiver(delay=0.2) as receiver:
        config = config_toml(f"sqlite:///{tmp_path}/credit.sqlite3", f"sqlite:///{tmp_path}/crm.sqlite3",
                             receiver.url, max_duration=MAX_DURATION, grace_seconds=0, expiry_interval_seconds=0.2,
                             sink_timeout_seconds=1, concurrency=SINK_CONCURRENCY, destination_types=["number", "did"])
        setup = write_config(tmp_path, "setup.toml", config)
        await open_accounts(setup, tmp_path, {number: str(TOP_UP) for number in NUMBERS})
        server = await start_server(callgate_server, config)
        calls = [Call(i) for i in range(CALLS)]

        async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=WORKERS * 2)) as session:
            await mixed_load_until_killed(session, server, calls)
            assert server.process.returncode == -signal.SIGKILL
            billed = [c for c in calls if c.key in c.answered_200()]          # the inbound leg's hangup got 200
            recorded = {key for c in calls for key in c.answered_200()}       # every leg whose hangup got 200
            sent = [c for c in calls if c.replies]
            cut = [c for c in calls if c.incoming_reply.status is None or any(r.status is None for r in c.replies.values())]
            assert len(billed) >= KILL_AFTER and cut, "the kill did not cut the load"
            assert len(recorded - receiver.keys()) >= 10, "the restarted process must have records to deliver"

            restarted = await start_server(lambda text, env: callgate_server(text, env, port=server.port), config)

            # 1. Every inbound hangup answered 200 was debited once, at its cost; one cut by the kill at most once.
            before = await ledgers(setup)
            debits = {c: a for entries in before.values() for c, a in ledger_debits(entries).items()}
            for call in billed:
                assert debits.get(call.key) == [call.cost], (call.key, debits.get(call.key))
            assert all(len(amounts) == 1 for amounts in debits.values())
            assert set(debits) <= {c.key for c in sent}

            # 2. Sinch sends every hangup again: 200, and nothing settled changes.
            for call in sent:
                for body in call.hangups.values():
                    reply = await post_webhook(session, restarted.url, body)
                    assert (reply.status, reply.body) == (200, {"commands": []})
            after = await ledgers(setup)
            ids = {e["callid"]: e["id"] for entries in before.values() for e in entries if e["kind"] == "debit"}
            redone = {e["callid"]: e["id"] for entries in after.values() for e in entries if e["kind"] == "debit"}
            assert {c: redone[c] for c in ids} == ids
            for number, entries in after.items():
                mine = [c for c in sent if c.number == number]
                assert ledger_debits(entries) == {c.key: [c.cost] for c in mine}
                assert Decimal(entries[-1]["balance"]) == TOP_UP - sum(c.cost for c in mine)

            # 3. The reservations of calls that never hung up (or whose hangup the kill cut) expire.
            async def nothing_reserved():
                balances = await asyncio.gather(*(credit_json(setup, "balance", n) for n in NUMBERS))
                return all(Decimal(b["reserved"]) == 0 and b["open_calls"] == [] for b in balances)
            await eventually(nothing_reserved, MAX_DURATION + 10, "every reservation released", interval=0.5)
            expired = {e["callid"] for entries in (await ledgers(setup)).values() for e in entries
                       if e["kind"] == "release" and e["note"].startswith("no DICE")}
            assert {c.key for c in calls if not c.hangs_up and c.incoming_reply.status == 200} <= expired
            assert (await readyz(session, restarted))[0] == 200

        # 4. No record lost: every leg whose hangup got 200 before the kill, and every one sent again, at the CRM.
        all_legs = {key for c in sent for key in c.hangups}
        await eventually(lambda: receiver.keys() >= recorded, 30, "every leg answered 200 before the kill at the CRM")
        await eventually(lambda: receiver.keys() >= all_legs, 30, "every leg at the CRM")
        await asyncio.sleep(QUIET_SECONDS)
        extra = receiver.assert_repeats_are_identical()
        assert extra <= SINK_CONCURRENCY, receiver.repeats(by_key=True)
        assert receiver.keys() == all_legs
        print(f"v2 crash: {len(billed)} inbound hangups answered before SIGKILL, {len(cut)} calls cut; "
              f"{extra} record(s) delivered twice (identical)")
