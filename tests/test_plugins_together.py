"""The three plugins together in one real server: allowlist, then credit_check, then crm_export.

Runs when the plugins are installed (python3 scripts/dev.py test installs them).
"""

import asyncio
import json
import subprocess
import sys
from decimal import Decimal
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from callgate import samples, v2_samples
from callgate.protocols.v1 import signing
from callgate.testing import TEST_APPLICATION_KEY, TEST_APPLICATION_SECRET, full_stack_config

#: Starts the real callgate command or waits in real time: skipped by -m 'not slow'.
pytestmark = pytest.mark.slow

for module in ("callgate_allowlist", "callgate_credit_check", "callgate_crm_export"):
    pytest.importorskip(module, reason=f"{module} is not installed (python3 scripts/dev.py test installs it)")

CALLGATE = str(Path(sys.executable).with_name("callgate"))
RICH, EMPTY, STRANGER = "+46701234567", "+46709999999", "+15550000000"


def config(tmp: Path, **tables: dict[str, Any]) -> str:
    """The three plugins together (callgate.testing.full_stack_config) as these tests use them; ``tables``
    (by plugin name) are merged into those plugins' tables."""
    plugins: dict[str, dict[str, Any]] = {"allowlist": {"prompt": "This service is not for you."},
                                          "credit_check": {"deny_prompt": "Your credit is used up."},
                                          "crm_export": {"poll_interval_seconds": 0.1}}
    for name, table in tables.items():
        plugins.setdefault(name, {}).update(table)
    return full_stack_config(tmp, overrides={"plugins": plugins})


def credit(config_path, *args):
    result = subprocess.run([CALLGATE, "credit", *args, "--config", str(config_path)],
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    return result.stdout


async def post(session, url, body):
    raw = json.dumps(body).encode()
    headers = signing.signed_headers(TEST_APPLICATION_KEY, TEST_APPLICATION_SECRET, "/sinch/callback", raw)
    async with session.post(url + "/sinch/callback", data=raw, headers=headers) as response:
        return response.status, await response.json()


def rich_and_empty(tmp: Path) -> tuple[str, Path]:
    """The config text and its file, with a +1 rate of 0.10 EUR/min, RICH holding 1.00 EUR (10 minutes) and
    EMPTY holding nothing, set up with the real ``callgate credit`` commands."""
    text = config(tmp)
    path = tmp / "setup.toml"
    path.write_text(text)
    (tmp / "rates.csv").write_text("prefix,currency,per_minute,connect_fee,increments\n+1,EUR,0.10,0,60/60\n")
    credit(path, "rates", "import", str(tmp / "rates.csv"))
    credit(path, "add", RICH, "--currency", "EUR")
    credit(path, "topup", RICH, "1.00")
    credit(path, "add", EMPTY, "--currency", "EUR")
    return text, path


async def test_allowlist_credit_and_crm_decide_and_record_one_call(callgate_server, tmp_path):
    text, path = rich_and_empty(tmp_path)
    server = callgate_server(text)

    async with aiohttp.ClientSession() as session:
        ice = samples.ice(caller=RICH.lstrip("+"), to="+14155550123")
        status, body = await post(session, server.url, ice)
        assert status == 200
        assert body["action"] == {"name": "connectPstn", "number": "+14155550123", "maxDuration": 600}

        _, body = await post(session, server.url, samples.ice(caller=STRANGER.lstrip("+"), to="+14155550123"))
        assert body["action"] == {"name": "hangup"}
        assert any(i.get("text") == "This service is not for you." for i in body["instructions"])

        _, body = await post(session, server.url, samples.ice(caller=EMPTY.lstrip("+"), to="+14155550123"))
        assert body["action"] == {"name": "hangup"}
        assert any("credit" in i.get("text", "") for i in body["instructions"])

        dice = samples.dice(ice["callid"], caller=RICH.lstrip("+"), to="+14155550123", duration=125)
        assert await post(session, server.url, dice) == (200, {})
        assert await post(session, server.url, dice) == (200, {})          # a repeat changes nothing

        records = []
        for _ in range(100):                                             # delivery runs in the background
            lines = (tmp_path / "calls.jsonl").read_text().splitlines() if (tmp_path / "calls.jsonl").exists() else []
            records = [json.loads(line) for line in lines]
            if records:
                break
            await asyncio.sleep(0.1)

    balance = json.loads(credit(path, "balance", RICH, "--json"))
    assert Decimal(str(balance["balance"])) == Decimal("0.70")            # 125 s billed as 180 s at 0.10/min
    assert [r["callid"] for r in records] == [ice["callid"]]
    assert Decimal(records[0]["cost"]["amount"]) == Decimal("0.30")


async def records_of(path: Path, callids: set[str]) -> dict[str, dict]:
    """The file sink's records of ``callids`` (newest version of each), waited for: delivery runs in the background."""
    found: dict[str, dict] = {}
    for _ in range(100):
        lines = path.read_text().splitlines() if path.exists() else []
        found = {}
        for record in map(json.loads, lines):
            if record["callid"] in callids:
                found[record["callid"]] = record
        if set(found) == callids:
            break
        await asyncio.sleep(0.1)
    return found


async def test_a_call_credit_check_denied_is_exported_without_a_cost_and_charges_nothing(callgate_server, tmp_path):
    text = config(tmp_path)
    path = tmp_path / "setup.toml"
    path.write_text(text)
    (tmp_path / "rates.csv").write_text("prefix,currency,per_minute\n+1,EUR,0.50\n")
    credit(path, "rates", "import", str(tmp_path / "rates.csv"))
    credit(path, "add", EMPTY, "--currency", "EUR")
    server = callgate_server(text)
    async with aiohttp.ClientSession() as session:
        ice = samples.ice(caller=EMPTY.lstrip("+"), to="+14155550123")
        _, first = await post(session, server.url, ice)
        assert first["action"] == {"name": "hangup"}
        dice = samples.dice(ice["callid"], caller=EMPTY.lstrip("+"), to="+14155550123", duration=60)
        assert await post(session, server.url, dice) == (200, {})
        assert await post(session, server.url, ice) == (200, first)        # a repeated ICE: the same answer
        records = await records_of(tmp_path / "calls.jsonl", {ice["callid"]})
    balance = json.loads(credit(path, "balance", EMPTY, "--json"))
    assert (Decimal(balance["balance"]), Decimal(balance["reserved"])) == (0, 0)
    assert json.loads(credit(path, "ledger", EMPTY, "--json")) == []
    record = records[ice["callid"]]
    assert record["cost"] is None
    assert record["decision"]["allowed"] is False and record["duration_seconds"] == 60


async def test_an_in_app_caller_is_allowed_billed_and_recorded_by_user(callgate_server, tmp_path):
    """The seed tutorial's "decide if a user has enough credit": an app-to-phone call from Sinch SDK user alice
    (cli "private", user "alice") is matched by user, billed to the account alice is linked to, and recorded
    with her user id."""
    text = config(tmp_path, allowlist={"rules": [{"action": "allow", "user": ["alice", "mallory"]}]},
                  credit_check={"account_by": "user"})
    path = tmp_path / "setup.toml"
    path.write_text(text)
    (tmp_path / "rates.csv").write_text("prefix,currency,per_minute,connect_fee,increments\n+1,USD,0.10,0,60/60\n")
    credit(path, "rates", "import", str(tmp_path / "rates.csv"))
    credit(path, "add", "acme", "--currency", "USD")
    credit(path, "topup", "acme", "1.00")
    credit(path, "link", "--user", "alice", "acme")
    server = callgate_server(text)
    async with aiohttp.ClientSession() as session:
        def in_app(user):
            return samples.ice(caller="private", to="+14155550123", user=user, origination="MXP")

        ice = in_app("alice")
        _, body = await post(session, server.url, ice)
        assert body["action"] == {"name": "connectPstn", "number": "+14155550123", "maxDuration": 600}
        _, body = await post(session, server.url, in_app("bob"))                 # no allowlist rule for bob
        assert any(i.get("text") == "This service is not for you." for i in body["instructions"])
        _, body = await post(session, server.url, in_app("mallory"))             # allowed, but no account
        assert body["action"] == {"name": "hangup"}
        assert any("no prepaid account" in i.get("text", "") for i in body["instructions"])
        dice = samples.dice(ice["callid"], caller="alice", to="+14155550123", duration=125)
        assert await post(session, server.url, dice) == (200, {})
        records = await records_of(tmp_path / "calls.jsonl", {ice["callid"]})
    balance = json.loads(credit(path, "balance", "acme", "--json"))
    assert (Decimal(balance["balance"]), balance["users"]) == (Decimal("0.70"), ["alice"])   # 180 s at 0.10/min
    record = records[ice["callid"]]
    assert record["caller"] == {"number": None, "raw": "private", "type": "user", "user": "alice"}
    assert (record["cost"]["account"], Decimal(record["cost"]["amount"])) == ("acme", Decimal("0.30"))
def simulate(config_path, *args):
    """``callgate simulate ... --json``, as a user runs it: the parsed output, and what it said on stderr."""
    result = subprocess.run([CALLGATE, "simulate", *args, "--json", "--config", str(config_path)],
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout), result.stderr


def files_of(folder: Path) -> dict[str, str]:
    """Every file under ``folder`` (databases, the CRM's JSON lines, configs, logs) by name, with its sha256."""
    import hashlib
    return {str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(folder.rglob("*")) if p.is_file()}


def money_of(config_path) -> tuple[str, ...]:
    """What the credit commands say about every account: balances, reserved credit, open calls, ledgers."""
    return (credit(config_path, "accounts", "--json"),
            *(credit(config_path, command, account, "--json") for account in (RICH, EMPTY)
              for command in ("balance", "ledger")))


async def test_simulate_is_a_dry_run_that_answers_as_the_server(callgate_server, tmp_path):
    """`callgate simulate` of ICE, ACE, PIE, DICE and Notify, with the three plugins enabled, changes nothing that
    persists (credit database, CRM outbox, the JSON-lines sink: byte for byte), and decides as the real server
    then does for the same event."""
    text, path = rich_and_empty(tmp_path)
    caller, to = RICH.lstrip("+"), "+14155550123"

    # A real call first, so that the outbox and the JSON-lines file hold a record and the ledger a debit.
    server = callgate_server(text)
    async with aiohttp.ClientSession() as session:
        assert (await post(session, server.url, samples.ice(caller=caller, to=to, callid="real")))[0] == 200
        assert await post(session, server.url, samples.dice("real", caller=caller, to=to, duration=125)) == (200, {})
        for _ in range(100):
            if (tmp_path / "calls.jsonl").exists() and (tmp_path / "calls.jsonl").read_text().count("\n") == 1:
                break
            await asyncio.sleep(0.1)
    server.stop()
    assert (tmp_path / "calls.jsonl").read_text().count("\n") == 1

    files, money = files_of(tmp_path), money_of(path)
    ice, warnings = simulate(path, "ice", "--from", caller, "--to", to, "--callid", "sim")
    assert ice["answer"]["action"]["maxDuration"] == 420     # 0.70 left at 0.10/min
    assert ice["warnings"] == [] and "warning" not in warnings
    denied, _ = simulate(path, "ice", "--from", EMPTY.lstrip("+"), "--to", to, "--callid", "sim-empty")
    assert denied["decision"]["allowed"] is False and "insufficient credit" in denied["decision"]["reason"]
    for args in (("ace", "--callid", "sim"), ("pie", "--callid", "sim"),
                 ("dice", "--from", caller, "--to", to, "--callid", "sim", "--duration", "125"),
                 ("dice", "--from", caller, "--to", to, "--callid", "real", "--duration", "125"),
                 ("notify", "--callid", "real")):
        answer, _ = simulate(path, *args)
        assert answer["status"] == 200, answer
        assert not any(e["verdict"].startswith(("error", "timeout")) for e in answer["plugins"]), answer
    assert files_of(tmp_path) == files and money_of(path) == money

    # The real server answers those ICEs as simulate did; then a simulated DICE of a call it really reserved
    # settles nothing either.
    server = callgate_server(text)
    async with aiohttp.ClientSession() as session:
        assert await post(session, server.url, samples.ice(caller=caller, to=to, callid="sim")) == (200, ice["answer"])
        assert await post(session, server.url, samples.ice(caller=EMPTY.lstrip("+"), to=to, callid="sim-empty")) \
            == (200, denied["answer"])
    server.stop()
    files, money = files_of(tmp_path), money_of(path)
    dice, _ = simulate(path, "dice", "--from", caller, "--to", to, "--callid", "sim", "--duration", "30")
    assert dice["status"] == 200 and not any(e["verdict"].startswith(("error", "timeout")) for e in dice["plugins"])
    assert files_of(tmp_path) == files and money_of(path) == money
    held = json.loads(credit(path, "balance", RICH, "--json"))
    assert Decimal(str(held["balance"])) == Decimal("0.70") and Decimal(str(held["reserved"])) == Decimal("0.70")


async def test_simulate_of_v2_webhooks_is_a_dry_run_that_answers_as_the_server(callgate_server, tmp_path):
    """The same promise for Voice API v2: `callgate simulate call.*` with the three plugins (credit_check charging
    v2 inbound calls, `did`) changes no file, and the real server then answers `call.incoming` as it printed."""
    text = config(tmp_path, credit_check={"destination_types": ["number", "did"]})
    path = tmp_path / "setup.toml"
    path.write_text(text)
    (tmp_path / "rates.csv").write_text("prefix,currency,per_minute,connect_fee,increments\n+1,EUR,0.10,0,60/60\n")
    credit(path, "rates", "import", str(tmp_path / "rates.csv"))
    credit(path, "add", RICH, "--currency", "EUR")
    credit(path, "topup", RICH, "1.00")
    credit(path, "add", EMPTY, "--currency", "EUR")
    did = "+14155550123"

    # A real v2 call first (125 s at 0.10/min in whole minutes: 0.30), so every store holds something.
    server = callgate_server(text)
    assert server.webhook(v2_samples.incoming(RICH, did, callid="real"))[0] == 200
    assert server.webhook(v2_samples.ended("call.hangup", "real", caller=RICH, to=did, duration=125)) \
        == (200, {"commands": []})
    for _ in range(100):
        if (tmp_path / "calls.jsonl").exists() and (tmp_path / "calls.jsonl").read_text().count("\n") == 1:
            break
        await asyncio.sleep(0.1)
    server.stop()

    files, money = files_of(tmp_path), money_of(path)
    incoming, warnings = simulate(path, "call.incoming", "--from", RICH, "--to", did, "--callid", "sim")
    dials = [c for c in incoming["answer"]["commands"] if c["command"] == "dial"]
    assert [d["maxCallDurationSeconds"] for d in dials] == [420]       # 0.70 EUR left at 0.10/min
    assert incoming["warnings"] == [] and "warning" not in warnings
    for args in (("call.answered", "--callid", "sim-callee"), ("call.menu", "--callid", "sim", "--input", "1#"),
                 ("call.hangup", "--from", RICH, "--to", did, "--callid", "sim", "--duration", "125"),
                 ("call.hangup", "--from", RICH, "--to", did, "--callid", "real", "--duration", "125")):
        answer, _ = simulate(path, *args)
        assert answer["status"] == 200, answer
        assert not any(e["verdict"].startswith(("error", "timeout")) for e in answer["plugins"]), answer
    assert files_of(tmp_path) == files and money_of(path) == money

    server = callgate_server(text)
    assert server.webhook(v2_samples.incoming(RICH, did, callid="sim")) == (200, incoming["answer"])
    server.stop()

