"""Reliability, faults, Voice API v2: the database stopped in the middle of a v2 load and started again, and down
when callgate starts (the pattern of tests/test_reliability_faults.py, on the webhook path).

A v2 webhook is never answered 5xx (Sinch hangs up a call whose webhook fails): while PostgreSQL is unreachable a
``call.incoming`` gets credit_check's ``on_error`` answer as valid SVAML v2 (``deny``: a hangup; ``skip``: the
route's dial, uncharged), and a ``call.hangup`` that cannot be recorded gets ``424`` with a body that still loads
in the SDK's ``VoiceSinchEventResponse``; sent again once the database is back, it is recorded once.
"""

from __future__ import annotations

import asyncio
import json
import time
from decimal import Decimal

import aiohttp
import pytest
from reliability_helpers_faults import (
    PER_SECOND,
    CrmReceiver,
    SteadyLoad,
    TcpProxy,
    caller,
    config_toml,
    credit_json,
    dials,
    eventually,
    host_port,
    ledger_debits,
    open_accounts,
    post_webhook,
    postgres_schema,
    readyz,
    skip_without_postgres,
    start_server,
    via,
    write_config,
)
from v2_sdk_checks import assert_sdk_accepts_answer, assert_sdk_accepts_not_recorded

#: Starts the real callgate command or waits in real time: skipped by -m 'not slow'.
pytestmark = pytest.mark.slow

for module in ("callgate_allowlist", "callgate_credit_check", "callgate_crm_export"):
    pytest.importorskip(module, reason=f"{module} is not installed (python3 scripts/dev.py test installs it)")

NUMBERS = [caller(i) for i in range(1, 4)]
DEADLINE_MS = 2000
OUTAGE_SECONDS = 1.5
RECOVERY_BOUND_SECONDS = 5.0
QUIET_SECONDS = 1.0
V2_TYPES = ["number", "did"]


def sdk_loads(reply) -> bool:
    """The body loads in the SDK's response model (a 424's body too, with its error fields kept aside)."""
    body = json.dumps(reply.body).encode()
    if reply.status == 424:
        assert_sdk_accepts_not_recorded(body)
    else:
        assert_sdk_accepts_answer(body)
    return True


def hangs_up(reply) -> bool:
    return reply.status == 200 and not dials(reply.body) and "hangup" in json.dumps(reply.body)


def not_recorded(reply) -> bool:
    return reply.status == 424 and reply.body["error"] == "not_recorded" and reply.body["commands"] == [] and \
        sdk_loads(reply)


async def test_database_stopped_mid_v2_load_then_started_again(callgate_server, tmp_path):
    dsn = skip_without_postgres(pytest)
    async with postgres_schema(dsn) as direct_url, CrmReceiver() as receiver:
        proxy = await TcpProxy(*host_port(dsn)).start()
        try:
            proxied = via(direct_url, proxy.port)
            setup = write_config(tmp_path, "setup.toml", config_toml(direct_url, direct_url, receiver.url))
            await open_accounts(setup, tmp_path, {number: "1000.00" for number in NUMBERS})
            server = await start_server(callgate_server, config_toml(
                proxied, proxied, receiver.url, deadline_ms=DEADLINE_MS, max_duration=60, sink_timeout_seconds=1,
                destination_types=V2_TYPES))
            async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=20)) as session:
                load = SteadyLoad(session, server.url, NUMBERS, generation="v2").start()
                await eventually(lambda: load.connected_since(0) >= 10, 10, "v2 calls connected before the outage")
                cutting = time.monotonic()
                await proxy.cut()
                cut = time.monotonic()
                await asyncio.sleep(OUTAGE_SECONDS)
                restoring = time.monotonic()
                await proxy.restore()
                restored = time.monotonic()
                await eventually(lambda: load.connected_since(restored) >= 10, RECOVERY_BOUND_SECONDS + 5,
                                 "v2 calls connected and recorded again after the database came back")
                exchanges = await load.stop()

                # Never a 5xx, within the deadline; every answer valid SVAML v2 for the SDK.
                odd = [(e.ice.status, e.dice.status) for e in exchanges
                       if e.ice.status != 200 or e.dice.status not in (200, 424)]
                assert not odd, odd
                assert max(e.ice.seconds for e in exchanges) < DEADLINE_MS / 1000 + 0.5
                assert all(sdk_loads(e.ice) and sdk_loads(e.dice) for e in exchanges)
                before = [e for e in exchanges if e.dice.sent_at + e.dice.seconds < cutting]
                during = [e for e in exchanges if cut <= e.ice.sent_at and e.dice.sent_at + e.dice.seconds < restoring]
                assert before and all(e.connected and e.dice.status == 200 for e in before)
                assert len(during) >= 5, len(during)
                # on_error "deny" (credit_check's default): hung up; the hangup cannot be recorded: 424.
                assert all(hangs_up(e.ice) for e in during), [e.ice.body for e in during]
                assert all(not_recorded(e.dice) for e in during), [(e.dice.status, e.dice.body) for e in during]
                assert (await readyz(session, server))[0] == 200

                # Sinch's fallback (here: the same server, now recording again) gets every 424'd hangup again.
                for e in exchanges:
                    if e.dice.status != 200:
                        reply = await post_webhook(session, server.url, e.dice_body)
                        assert (reply.status, reply.body) == (200, {"commands": []})
            keys = {e.key for e in exchanges}
            await eventually(lambda: receiver.keys() >= keys, 30, "every leg's record at the CRM")   # via the proxy
            await asyncio.sleep(QUIET_SECONDS)
        finally:
            await proxy.close()
        assert receiver.key_counts() == {key: 1 for key in keys}
        connected = {e.key: PER_SECOND * e.duration for e in exchanges if e.connected}
        ledgers = await asyncio.gather(*(credit_json(setup, "ledger", n, "--limit", "100000") for n in NUMBERS))
        assert {c: a for entries in ledgers for c, a in ledger_debits(entries).items()} == \
            {key: [cost] for key, cost in connected.items()}
        for number, entries in zip(NUMBERS, ledgers):
            spent = sum(PER_SECOND * e.duration for e in exchanges if e.number == number and e.connected)
            assert Decimal(entries[-1]["balance"]) == Decimal("1000.00") - spent
            assert Decimal(entries[-1]["reserved"]) == 0
        print(f"v2 database stopped: {len(before)} calls before, {len(during)} during, {len(exchanges)} in all")


async def test_database_down_when_callgate_starts_v2_with_on_error_skip(callgate_server, tmp_path):
    """``on_error = "skip"``: while the credit database is down a v2 call is connected uncharged (the route's dial,
    no credit limit); its hangup is 424 (crm_export cannot record it either), and recorded once the database is
    back, charging nothing (credit_check never authorized the call)."""
    dsn = skip_without_postgres(pytest)
    async with postgres_schema(dsn) as direct_url, CrmReceiver() as receiver:
        setup = write_config(tmp_path, "setup.toml", config_toml(direct_url, direct_url, receiver.url))
        await open_accounts(setup, tmp_path, {NUMBERS[0]: "10.00"})
        proxy = TcpProxy(*host_port(dsn))                    # not listening: the database is "down"
        proxied = via(direct_url, proxy.port)
        server = await start_server(callgate_server, config_toml(proxied, proxied, receiver.url,
                                                                 destination_types=V2_TYPES, credit_on_error="skip"))
        try:
            async with aiohttp.ClientSession() as session:
                assert (await readyz(session, server))[0] == 503
                load = SteadyLoad(session, server.url, NUMBERS[:1], generation="v2")
                skipped = await load.place_call()
                assert skipped.connected and sdk_loads(skipped.ice)
                assert "maxCallDurationSeconds" not in dials(skipped.ice.body)[0]          # uncharged: no limit
                assert not_recorded(skipped.dice)

                await proxy.start()                          # the database is back
                await eventually(lambda: _ready(session, server), RECOVERY_BOUND_SECONDS, "/readyz 200")
                charged = await load.place_call()
                assert charged.connected and charged.dice.status == 200
                assert dials(charged.ice.body)[0]["maxCallDurationSeconds"] == 600
                reply = await post_webhook(session, server.url, skipped.dice_body)       # Sinch's retry of the 424
                assert (reply.status, reply.body) == (200, {"commands": []})
            await eventually(lambda: receiver.keys() >= {skipped.key, charged.key}, 15, "both records at the CRM")
            balance = await credit_json(setup, "balance", NUMBERS[0])
            assert Decimal(balance["balance"]) == Decimal("10.00") - PER_SECOND * charged.duration
            assert Decimal(balance["reserved"]) == 0
            (record,) = receiver.records(skipped.key)
            assert record["cost"] is None and record["generation"] == "v2"
        finally:
            await proxy.close()


async def _ready(session, server) -> bool:
    return (await readyz(session, server))[0] == 200
