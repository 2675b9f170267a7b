"""Reliability, duplicates, Voice API v2: Sinch resends a webhook to the service's fallback URL, so the same
``call.incoming`` and ``call.hangup`` may reach two instances (primary and fallback sharing PostgreSQL), at once and
again.  Each is answered the same, reserves and settles once, and each leg is exported once.  A v1 call and a v2
call with the same id are two calls: both billed, both recorded, under their own keys.

As tests/test_reliability_duplicates.py, on the webhook path: allowlist, credit_check (``destination_types``
with ``did``, as its README says for v2) and crm_export in real servers, a real CRM receiver.
"""

from __future__ import annotations

import asyncio
import json
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
    ledger_debits,
    logged,
    open_accounts,
    post,
    post_webhook,
    postgres_schema,
    skip_without_postgres,
    start_server,
    write_config,
)
from v2_sdk_checks import assert_sdk_accepts_answer

from callgate import samples, v2_samples
from callgate.testing import TEST_SERVICE_ID

#: Starts the real callgate command or waits in real time: skipped by -m 'not slow'.
pytestmark = pytest.mark.slow

for module in ("callgate_allowlist", "callgate_credit_check", "callgate_crm_export"):
    pytest.importorskip(module, reason=f"{module} is not installed (python3 scripts/dev.py test installs it)")

RICH, POOR = caller(1), caller(2)
ACCOUNTS = {RICH: "100.00", POOR: "0.05"}
CALLS = [RICH, POOR, RICH, POOR, RICH]
QUIET_SECONDS = 1.0
V2_TYPES = ["number", "did"]


@pytest.fixture(params=["sqlite-one-instance", "postgresql-two-instances"])
async def deployment(request, tmp_path):
    """(credit database URL, CRM outbox URL, number of instances), as in test_reliability_duplicates.py."""
    if request.param.startswith("sqlite"):
        yield f"sqlite:///{tmp_path}/credit.sqlite3", f"sqlite:///{tmp_path}/crm.sqlite3", 1
        return
    dsn = skip_without_postgres(pytest)
    async with postgres_schema(dsn) as url:
        yield url, url, 2


async def deliver_twice_then_again(session, servers, body):
    """The same webhook to both servers at once (or twice at once to the one server), then once more to each."""
    first, second = servers[0], servers[-1]
    together = await asyncio.gather(post_webhook(session, first.url, body), post_webhook(session, second.url, body))
    return [*together, await post_webhook(session, second.url, body), await post_webhook(session, first.url, body)]


def legs(number: str):
    """A v2 call from ``number``: its call.incoming, and the ids of its inbound and callee legs."""
    session = v2_samples.new_call_id()
    incoming = v2_samples.incoming(number, DESTINATION, session=session, service_id=TEST_SERVICE_ID)
    return session, incoming, incoming["call"]["callId"], v2_samples.new_call_id()


async def test_repeated_v2_webhooks_reserve_settle_and_export_once(callgate_server, tmp_path, deployment):
    credit_url, crm_url, instances = deployment
    async with CrmReceiver() as receiver:
        config = config_toml(credit_url, crm_url, receiver.url, crm_timeout_ms=8000, destination_types=V2_TYPES)
        path = write_config(tmp_path, "setup.toml", config)
        await open_accounts(path, tmp_path, ACCOUNTS)
        servers = [await start_server(callgate_server, config) for _ in range(instances)]

        calls = [legs(number) for number in CALLS]
        granted = {}
        async with aiohttp.ClientSession() as session:
            for _session, incoming, callid, _callee in calls:
                replies = await deliver_twice_then_again(session, servers, incoming)
                assert all(r.status == 200 for r in replies), [(r.status, r.body) for r in replies]
                assert all(r.body == replies[0].body for r in replies), [r.body for r in replies]
                assert_sdk_accepts_answer(json.dumps(replies[0].body).encode())
                dial = dials(replies[0].body)
                granted[callid] = dial[0]["maxCallDurationSeconds"] if dial else 0
            # RICH: 600 s (max_duration) each; POOR: 5 s (0.05 EUR), then denied.
            assert list(granted.values()) == [600, 5, 600, 0, 600]

            rich, poor = await asyncio.gather(credit_json(path, "balance", RICH), credit_json(path, "balance", POOR))
            assert sorted(c["callid"] for c in rich["open_calls"]) == sorted(
                f"v2:{c[2]}" for c, n in zip(calls, CALLS) if n == RICH)
            assert Decimal(rich["reserved"]) == Decimal("18.00") and Decimal(poor["reserved"]) == Decimal("0.05")

            # Both legs hang up; each end event delivered four times over the two URLs.
            durations = {}
            for i, ((session_id, _incoming, callid, callee), number) in enumerate(zip(calls, CALLS)):
                seconds = min(30 + i, granted[callid])
                durations[callid] = seconds
                inbound = v2_samples.hangup(callid, caller=number, to=DESTINATION, duration=seconds,
                                            result="COMPLETED" if seconds else "FAILED", session=session_id,
                                            service_id=TEST_SERVICE_ID)
                outbound = v2_samples.hangup(callee, caller=DESTINATION, to=DESTINATION, duration=seconds,
                                             direction="OUTBOUND", call_name="callee", session=session_id,
                                             service_id=TEST_SERVICE_ID)
                for body in (outbound, inbound):
                    replies = await deliver_twice_then_again(session, servers, body)
                    assert [(r.status, r.body) for r in replies] == [(200, {"commands": []})] * 4

        keys = [f"v2:{c[2]}" for c in calls] + [f"v2:{c[3]}" for c in calls]
        await eventually(lambda: receiver.keys() >= set(keys), 20, "every leg's record at the CRM")
        await asyncio.sleep(QUIET_SECONDS)
        assert receiver.key_counts() == {key: 1 for key in keys}, receiver.key_counts()
        assert {d.version for d in receiver.accepted} == {1} and receiver.refused == 0

        ledgers = await asyncio.gather(credit_json(path, "ledger", RICH, "--limit", "1000"),
                                       credit_json(path, "ledger", POOR, "--limit", "1000"))
    debited = {k: v for entries in ledgers for k, v in ledger_debits(entries).items()}
    assert debited == {f"v2:{c}": [PER_SECOND * s] for c, s in durations.items() if granted[c]}, debited
    for entries, topped_up in zip(ledgers, (ACCOUNTS[RICH], ACCOUNTS[POOR])):
        reserves = [e["callid"] for e in entries if e["kind"] == "reserve"]
        assert len(reserves) == len(set(reserves))
        spent = sum(Decimal(e["amount"]) for e in entries if e["kind"] == "debit")
        assert Decimal(entries[-1]["balance"]) == Decimal(topped_up) - spent and Decimal(entries[-1]["reserved"]) == 0
    for server in servers:
        assert len(logged(server, "callback")) == len(calls) * 3 * 4 // len(servers)   # every delivery reached it
    settled = [r["key"] for s in servers for r in logged(s, "credit_settled")]
    assert sorted(settled) == sorted(f"v2:{c}" for c in granted if granted[c])


async def test_a_v1_and_a_v2_call_with_the_same_id_are_billed_and_recorded_apart(callgate_server, tmp_path):
    """Keys per generation: the v1 ``callid`` X and the v2 ``callId`` X are two calls (X and ``v2:X``)."""
    async with CrmReceiver() as receiver:
        config = config_toml(f"sqlite:///{tmp_path}/credit.sqlite3", f"sqlite:///{tmp_path}/crm.sqlite3",
                             receiver.url, destination_types=V2_TYPES)
        path = write_config(tmp_path, "setup.toml", config)
        await open_accounts(path, tmp_path, {RICH: "100.00"})
        server = await start_server(callgate_server, config)
        shared = v2_samples.new_call_id()
        async with aiohttp.ClientSession() as session:
            ice = samples.ice(caller=RICH.lstrip("+"), to=DESTINATION, callid=shared)
            incoming = v2_samples.incoming(RICH, DESTINATION, callid=shared, service_id=TEST_SERVICE_ID)
            v1_answer, v2_answer = await asyncio.gather(post(session, server.url, ice),
                                                        post_webhook(session, server.url, incoming))
            assert v1_answer.body["action"]["maxDuration"] == 600
            assert dials(v2_answer.body)[0]["maxCallDurationSeconds"] == 600
            balance = await credit_json(path, "balance", RICH)
            assert sorted(c["callid"] for c in balance["open_calls"]) == sorted([shared, f"v2:{shared}"])
            dice = samples.dice(shared, caller=RICH.lstrip("+"), to=DESTINATION, duration=12)
            hangup = v2_samples.hangup(shared, caller=RICH, to=DESTINATION, duration=34, service_id=TEST_SERVICE_ID)
            for _ in range(2):                                   # each repeated: still one each
                v1_end, v2_end = await asyncio.gather(post(session, server.url, dice),
                                                      post_webhook(session, server.url, hangup))
                assert (v1_end.status, v1_end.body, v2_end.status, v2_end.body) == (200, {}, 200, {"commands": []})
        await eventually(lambda: receiver.keys() >= {shared, f"v2:{shared}"}, 15, "both records at the CRM")
        await asyncio.sleep(QUIET_SECONDS)
        assert receiver.key_counts() == {shared: 1, f"v2:{shared}": 1}
        (v1_record,), (v2_record,) = receiver.records(shared), receiver.records(f"v2:{shared}")
        assert (v1_record["generation"], v1_record["callid"], v1_record["duration_seconds"]) == ("v1", shared, 12)
        assert (v2_record["generation"], v2_record["callid"], v2_record["duration_seconds"]) == ("v2", shared, 34)
        assert Decimal(v1_record["cost"]["amount"]) == PER_SECOND * 12
        assert Decimal(v2_record["cost"]["amount"]) == PER_SECOND * 34
        ledger = await credit_json(path, "ledger", RICH, "--limit", "100")
    assert ledger_debits(ledger) == {shared: [PER_SECOND * 12], f"v2:{shared}": [PER_SECOND * 34]}
    assert Decimal(ledger[-1]["balance"]) == Decimal("100.00") - PER_SECOND * 46 and Decimal(ledger[-1]["reserved"]) == 0
