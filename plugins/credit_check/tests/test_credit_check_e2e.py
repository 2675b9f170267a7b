"""End to end: real ``callgate serve`` processes, real HTTP, callbacks signed like Sinch signs them.

A burst of concurrent ICEs on one account never reserves more than its balance, with one
server and with two servers sharing one database; a DICE settles the right amount once; rates
imported by the command are used by both servers' next ICE.
"""

import asyncio
import json
import sys
import time
from pathlib import Path

import aiohttp
import pytest

from callgate import samples
from callgate.protocols.v1 import signing
from callgate.testing import TEST_APPLICATION_KEY, TEST_APPLICATION_SECRET, free_port
from callgate_credit_check.rate_csv import parse_rates

#: Starts the real callgate command or waits in real time: skipped by -m 'not slow'.
pytestmark = pytest.mark.slow

ACCOUNT = "+46701234567"
LANDLINE = "+46850001234"             # 0.10 EUR per minute, 60/60
BURST = 50
SERVER_CONFIG = """
[server]
log_format = "json"
[plugins]
enabled = ["credit_check"]
[plugins.credit_check]
database_url = { env = "CREDIT_DATABASE_URL" }
max_duration = 600
[[plugins.router.routes]]
name = "anywhere"
action = { name = "connectPstn", number = "{to}" }
"""


async def post(session, server, body):
    raw = json.dumps(body).encode()
    headers = signing.signed_headers(TEST_APPLICATION_KEY, TEST_APPLICATION_SECRET, "/sinch/callback", raw)
    async with session.post(server.url + "/sinch/callback", data=raw, headers=headers) as response:
        return response.status, await response.json()


async def burst_of_ices(servers, count=BURST):
    """``count`` ICEs from the account's number, all at once, spread over ``servers``; returns (ice, answer) pairs."""
    ices = [samples.ice(caller=ACCOUNT.lstrip("+"), to=LANDLINE) for _ in range(count)]
    async with aiohttp.ClientSession() as session:
        answers = await asyncio.gather(*(post(session, servers[i % len(servers)], ice) for i, ice in enumerate(ices)))
    assert all(status == 200 for status, _ in answers)
    return [(ice, answer) for ice, (_, answer) in zip(ices, answers)]


async def prepare(store, balance):
    await store.import_rates(parse_rates("prefix,currency,per_minute,increments\n+46,EUR,0.10,60/60\n"))
    await store.add_account(ACCOUNT, "EUR")
    await store.credit(ACCOUNT, balance)


def logged(server, event):
    """The JSON log records of one event name that a server wrote."""
    records = []
    for line in server.logs().splitlines():
        try:
            record = json.loads(line)
        except ValueError:
            continue
        if isinstance(record, dict) and record.get("event") == event:
            records.append(record)
    return records


def assert_never_overspent(results, balance_micros):
    """Every allowed call's maxDuration is paid for, and together they cost exactly what the account had."""
    allowed = [a["action"]["maxDuration"] for _, a in results if a["action"]["name"] == "connectPstn"]
    denied = [a for _, a in results if a["action"]["name"] == "hangup"]
    assert len(allowed) + len(denied) == len(results)
    cost = sum(100_000 * seconds // 60 for seconds in allowed)    # 0.10 per minute, whole minutes
    assert cost == balance_micros
    return sorted(allowed)


async def test_a_burst_on_one_server_never_reserves_more_than_the_balance(callgate_server, callgate_database_url,
                                                                         credit_store):
    await prepare(credit_store, 7_500_000)                          # 7.50 EUR: 7 calls of 600 s and one of 300 s
    server = callgate_server(SERVER_CONFIG, env={"CREDIT_DATABASE_URL": callgate_database_url})
    results = await burst_of_ices([server])
    assert assert_never_overspent(results, 7_500_000) == [300] + [600] * 7
    account = await credit_store.account(ACCOUNT)
    assert (account.balance, account.reserved) == (7_500_000, 7_500_000)


async def test_a_burst_on_two_servers_sharing_the_database_never_overspends(callgate_server, callgate_database_url,
                                                                            credit_store):
    await prepare(credit_store, 7_500_000)
    env = {"CREDIT_DATABASE_URL": callgate_database_url}
    servers = [callgate_server(SERVER_CONFIG, env=env), callgate_server(SERVER_CONFIG, env=env)]
    results = await burst_of_ices(servers)
    assert assert_never_overspent(results, 7_500_000) == [300] + [600] * 7
    assert (await credit_store.account(ACCOUNT)).reserved == 7_500_000
    # each server answered part of the burst: the test really raced two processes
    for server in servers:
        assert len(logged(server, "callback")) == BURST // 2


async def test_dice_settles_the_right_amount_once_whichever_server_gets_it(callgate_server, callgate_database_url,
                                                                          credit_store):
    await prepare(credit_store, 10_000_000)
    env = {"CREDIT_DATABASE_URL": callgate_database_url}
    primary, fallback = callgate_server(SERVER_CONFIG, env=env), callgate_server(SERVER_CONFIG, env=env)
    ice = samples.ice(caller=ACCOUNT.lstrip("+"), to=LANDLINE)
    dice = samples.dice(ice["callid"], caller=ACCOUNT.lstrip("+"), to=LANDLINE, duration=168, debit=0.0231)
    async with aiohttp.ClientSession() as session:
        _status, answer = await post(session, primary, ice)
        assert answer["action"]["maxDuration"] == 600
        assert await post(session, primary, dice) == (200, {})
        assert await post(session, fallback, dice) == (200, {})          # Sinch retried on the fallback URL
    account = await credit_store.account(ACCOUNT)
    assert (account.balance, account.reserved) == (10_000_000 - 300_000, 0)   # 168 s -> 3 minutes, 0.30
    call = await credit_store.call(ice["callid"])
    assert (call.state, call.billed_seconds, call.cost, call.sinch_debit) == ("settled", 180, 300_000, "0.0231")
    assert [e.kind for e in await credit_store.ledger(ACCOUNT)] == ["topup", "reserve", "release", "debit"]
    settled = logged(primary, "credit_settled") + logged(fallback, "credit_settled")
    assert [(r["callid"], r["cost"], r["billed_seconds"]) for r in settled] == [(ice["callid"], "0.30", 180)]


async def test_database_down_ice_is_answered_in_time_and_dice_is_503(callgate_server):
    url = f"postgresql://postgres:not-a-real-password@127.0.0.1:{free_port()}/test"
    server = callgate_server(SERVER_CONFIG, env={"CREDIT_DATABASE_URL": url})
    async with aiohttp.ClientSession() as session:
        started = time.monotonic()
        status, answer = await post(session, server, samples.ice(caller=ACCOUNT.lstrip("+"), to=LANDLINE))
        assert time.monotonic() - started < 2.0                      # within [server] deadline_ms
        assert (status, answer["action"]) == (200, {"name": "hangup"})   # on_error = "deny" by default
        status, body = await post(session, server, samples.dice(duration=60))
        assert status == 503 and body["error"] == "not_recorded"
        async with session.get(server.url + "/readyz") as response:
            assert response.status == 503
    assert "not-a-real-password" not in server.logs()
    assert logged(server, "credit_database_unreachable")


async def test_dices_and_repeated_ices_of_denied_calls_racing_on_two_servers_never_move_the_balance(
        callgate_server, callgate_database_url, credit_store):
    """The account runs dry in a burst; then, all at once on both servers, Sinch repeats the ICE of every
    denied call and delivers its DICE twice (primary and fallback URL), claiming 10 minutes of talk,
    while the paid calls end.  Only the paid calls are charged; every repeated ICE is denied again."""
    await prepare(credit_store, 7_500_000)
    env = {"CREDIT_DATABASE_URL": callgate_database_url}
    # on_error = "skip": a failing credit_check would let a repeated ICE through, uncharged.  Time limits as
    # long as allowed, so that only a failure (not a slow answer on a busy test machine) can do that.
    lenient = SERVER_CONFIG.replace("[server]", "[server]\ndeadline_ms = 4500").replace(
        "[plugins.credit_check]", '[plugins.credit_check]\non_error = "skip"\ntimeout_ms = 4500')
    servers = [callgate_server(lenient, env=env) for _ in range(2)]
    results = await burst_of_ices(servers)
    paid = [ice for ice, answer in results if answer["action"]["name"] == "connectPstn"]
    denied = [ice for ice, answer in results if answer["action"]["name"] == "hangup"]
    assert (len(paid), len(denied)) == (8, 42)
    caller = ACCOUNT.lstrip("+")
    requests = []
    for ice in denied:
        dice = samples.dice(ice["callid"], caller=caller, to=LANDLINE, duration=600)
        requests += [(server, body) for server in servers for body in (ice, dice)]
    requests += [(servers[0], samples.dice(ice["callid"], caller=caller, to=LANDLINE, duration=120)) for ice in paid]
    async with aiohttp.ClientSession() as session:
        answers = await asyncio.gather(*(post(session, server, body) for server, body in requests))
    for (_server, body), (status, answer) in zip(requests, answers):
        assert status == 200
        if body["event"] == "ice":
            assert answer["action"] == {"name": "hangup"}
            assert any("credit" in i.get("text", "") for i in answer["instructions"])
        else:
            assert answer == {}
    account = await credit_store.account(ACCOUNT)
    assert (account.balance, account.reserved) == (7_500_000 - 8 * 200_000, 0)   # 8 calls of 2 minutes at 0.10
    debits = [e.callid for e in await credit_store.ledger(ACCOUNT, limit=1000) if e.kind == "debit"]
    assert sorted(debits) == sorted(ice["callid"] for ice in paid)
    for server in servers:
        assert not logged(server, "plugin_failed")


async def test_rates_imported_by_the_command_are_used_by_both_servers_next_ice(callgate_server, callgate_database_url,
                                                                               credit_store, tmp_path):
    """Each server keeps the rates in memory; ``callgate credit rates import`` (its own process) changes them in
    the database, and the next ICE at either server reserves at the new price."""
    await prepare(credit_store, 100_000_000)
    env = {"CREDIT_DATABASE_URL": callgate_database_url}
    servers = [callgate_server(SERVER_CONFIG, env=env), callgate_server(SERVER_CONFIG, env=env)]
    caller = ACCOUNT.lstrip("+")

    async def ice_at(server):
        ice = samples.ice(caller=caller, to=LANDLINE)
        async with aiohttp.ClientSession() as session:
            _status, answer = await post(session, server, ice)
        assert answer["action"]["maxDuration"] == 600
        call = await credit_store.call(ice["callid"])
        return call.rate.per_minute, call.reserved

    assert [await ice_at(s) for s in servers] == [(100_000, 1_000_000)] * 2     # both hold 0.10 in memory now
    config, rates = tmp_path / "cli.toml", tmp_path / "rates.csv"
    config.write_text('[plugins]\nenabled = ["credit_check"]\n'
                      '[plugins.credit_check]\ndatabase_url = { env = "CREDIT_DATABASE_URL" }\n')
    rates.write_text("prefix,currency,per_minute,increments\n+46,EUR,0.25,60/60\n")
    command = await asyncio.create_subprocess_exec(
        str(Path(sys.executable).with_name("callgate")), "credit", "rates", "import", str(rates), "--config", str(config),
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE, env={"PATH": "/usr/bin:/bin", **env})
    _out, err = await asyncio.wait_for(command.communicate(), timeout=60)
    assert command.returncode == 0, err.decode()
    assert [await ice_at(s) for s in servers] == [(250_000, 2_500_000)] * 2
    assert (await credit_store.account(ACCOUNT)).reserved == 2 * 1_000_000 + 2 * 2_500_000
