"""End to end, Voice API v2, the whole stack: the real ``callgate serve`` with allowlist, credit_check and crm_export
enabled (configured for v2 as their READMEs say), signed ``call.incoming`` -> ``call.answered`` (callee leg) ->
``call.menu`` (a route with a menu) -> ``call.hangup`` of both legs over real HTTP on the webhook path.

The judge is the official Sinch SDK (``sinch`` 2.x): it validates the signature of every request sent and loads
every answer in ``VoiceSinchEventResponse``.  The answers must do what the config says (a dial to the routed number
with ``maxCallDurationSeconds`` from the credit, a low-balance prompt, a hangup for a denied caller), the balances
must be exact to the cent from credit_check's own rates and ``callDurationSeconds``, and the CRM (a real webhook
receiver verifying crm_export's signature) must get one record per leg with the right fields.
"""

from __future__ import annotations

import asyncio
import json
from decimal import Decimal
from typing import Any

import aiohttp
import pytest
from reliability_helpers_faults import (
    ENV,
    SECRET_ENV,
    CrmReceiver,
    credit,
    credit_json,
    eventually,
    logged,
    start_server,
    write_config,
)
from sinch.core.internal.sinch_events.authorization_helpers import validate_authentication_header
from sinch.domains.voice.api.v2.sinch_events import SinchEvents
from v2_sdk_checks import assert_sdk_accepts_answer, assert_sdk_understood

from callgate import v2_samples
from callgate.testing import TEST_SERVICE_ID, TEST_SERVICE_SECRET, WEBHOOK_PATH, full_stack_config, webhook_headers

#: Starts the real callgate command: skipped by -m 'not slow'.
pytestmark = pytest.mark.slow

for module in ("callgate_allowlist", "callgate_credit_check", "callgate_crm_export"):
    pytest.importorskip(module, reason=f"{module} is not installed (python3 scripts/dev.py test installs it)")

SALES = "+46850001234"          # a number of the service, routed to an agent
IVR = "+46850005678"            # a number of the service whose route is a digit menu
AGENT = "+46731112233"
FUNDED, LOW, UNFUNDED = "+46701111111", "+46703333333", "+46702222222"
REFUSED = "+46721234567"        # not on the allowlist
ACCOUNTS = {FUNDED: "10.00", LOW: "0.50", UNFUNDED: "0.00"}
#: credit_check rates a call by the number called (v2 inbound: the service's number): 0.60 EUR a minute, per second.
RATES_CSV = "prefix,currency,per_minute,connect_fee,increments,name\n+46850,EUR,0.60,0,1/1,Our numbers\n"
PER_SECOND = Decimal("0.01")
MENU_PROMPT = "Press 1 for sales."
DENY_PROMPT = "Calls from this number are not accepted."


def config(folder, receiver_url: str) -> str:
    return full_stack_config(folder, overrides={
        "server": {"log_format": "json"},
        "plugins": {
            "allowlist": {"default": "deny", "rules": [{"action": "allow", "caller": "+4670*"}], "prompt": DENY_PROMPT},
            "credit_check": {"destination_types": ["number", "did"], "max_duration": 3600, "low_balance_seconds": 300},
            "crm_export": {"poll_interval_seconds": 0.1, "facts_flush_interval_seconds": 0.05,
                           "sinks": [{"name": "crm", "type": "webhook", "url": f"{receiver_url}/hook",
                                      "secret": {"env": SECRET_ENV}, "backoff_initial_seconds": 0.05}]},
            "router": {
                "routes": [
                    {"name": "sales", "number": SALES,
                     "action": {"name": "connectPstn", "number": AGENT, "maxDuration": 3600}},
                    {"name": "ivr", "number": IVR,
                     "action": {"name": "runMenu", "locale": "en-US", "mainMenu": "main", "menus": [
                         {"id": "main", "mainPrompt": f"#tts[{MENU_PROMPT}]", "repeatPrompt": f"#tts[{MENU_PROMPT}]",
                          "repeats": 2, "maxDigits": 1, "timeoutMills": 5000}]}},
                ],
                "menu_answers": [{"menu": "main", "value": "1",
                                  "action": {"name": "connectPstn", "number": AGENT, "maxDuration": 600}}],
                "pie_default": {"name": "hangup"},
            },
        },
    })


class SinchV2:
    """Sends webhooks as a v2 service would: every request's signature is checked with the SDK first, every answer
    loaded in the SDK's response model.  Keeps what was sent and answered."""

    def __init__(self, session: aiohttp.ClientSession, url: str) -> None:
        self.session, self.url = session, url
        self.exchanges: list[tuple[dict[str, Any], int, Any]] = []

    async def send(self, body: dict[str, Any]) -> tuple[int, Any]:
        raw = json.dumps(body).encode()
        headers = webhook_headers(raw)
        assert validate_authentication_header(key=TEST_SERVICE_ID, secret=TEST_SERVICE_SECRET, headers=headers,
                                              body=raw, path=WEBHOOK_PATH, method="POST")
        assert_sdk_understood(SinchEvents().parse_event(raw, headers).call)
        async with self.session.post(self.url + WEBHOOK_PATH, data=raw, headers=headers) as response:
            answer_raw = await response.read()
            status = response.status
        assert status == 200, (body["event"], status, answer_raw[:300])
        assert response.content_type == "application/json"
        assert_sdk_accepts_answer(answer_raw)
        answer = json.loads(answer_raw)
        self.exchanges.append((body, status, answer))
        return status, answer


class Call:
    """One v2 call: the inbound leg (``caller`` -> ``number``) and, once dialled, the callee leg."""

    def __init__(self, caller: str, number: str) -> None:
        self.caller, self.number = caller, number
        self.session = v2_samples.new_call_id()
        self.incoming = v2_samples.incoming(caller, number, session=self.session, service_id=TEST_SERVICE_ID)
        self.callid = self.incoming["call"]["callId"]
        self.callee_callid = v2_samples.new_call_id()

    def answered(self) -> dict[str, Any]:
        return v2_samples.answered(self.callee_callid, caller=self.number, to=AGENT, session=self.session,
                                   service_id=TEST_SERVICE_ID)

    def menu(self, digits: str) -> dict[str, Any]:
        return v2_samples.menu(self.callid, menu="main", input=digits, caller=self.caller, to=self.number,
                               session=self.session, service_id=TEST_SERVICE_ID)

    def hangup(self, duration: int, **kwargs: Any) -> dict[str, Any]:
        return v2_samples.hangup(self.callid, caller=self.caller, to=self.number, duration=duration,
                                 session=self.session, service_id=TEST_SERVICE_ID, **kwargs)

    def callee_hangup(self, duration: int) -> dict[str, Any]:
        return v2_samples.hangup(self.callee_callid, caller=self.number, to=AGENT, duration=duration,
                                 direction="OUTBOUND", call_name="callee", reason="CALLEE_HANGUP",
                                 session=self.session, service_id=TEST_SERVICE_ID)


def flat(commands: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Every command of an answer, those inside ``messages``' ``onFinish`` included, in the order they run."""
    found = []
    for command in commands:
        found.append(command)
        found.extend(flat(command.get("events", {}).get("onFinish", [])) if command["command"] == "messages" else [])
    return found


def spoken(commands: list[dict[str, Any]]) -> list[str]:
    return [message["say"]["text"] for command in flat(commands) if command["command"] == "messages"
            for message in command["messages"] if message["type"] == "SAY"]


def only_dial(answer: dict[str, Any]) -> dict[str, Any]:
    found = [command for command in flat(answer["commands"]) if command["command"] == "dial"]
    assert len(found) == 1, answer
    return found[0]


def hangs_up(answer: dict[str, Any]) -> bool:
    names = [command["command"] for command in flat(answer["commands"])]
    return "hangup" in names and "dial" not in names


async def test_v2_calls_through_allowlist_credit_check_and_crm_export(callgate_server, tmp_path):
    async with CrmReceiver() as receiver:
        text = config(tmp_path, receiver.url)
        setup = write_config(tmp_path, "setup.toml", text)
        rates = tmp_path / "rates.csv"
        rates.write_text(RATES_CSV)
        await credit(setup, "rates", "import", str(rates))
        for number, amount in ACCOUNTS.items():
            await credit(setup, "add", number, "--currency", "EUR")
            if Decimal(amount):
                await credit(setup, "topup", number, amount)
        server = await start_server(callgate_server, text)

        async with aiohttp.ClientSession() as session:
            sinch = SinchV2(session, server.url)

            # 1. A funded caller to the sales number: a dial to the agent, limited by the credit (10.00 EUR at
            #    0.01 EUR/s: 1000 s, below the route's 3600 s); the agent answers; both legs hang up.
            funded = Call(FUNDED, SALES)
            _, answer = await sinch.send(funded.incoming)
            dial = only_dial(answer)
            assert dial["to"] == {"type": "PHONE", "phone": {"number": AGENT}}
            assert dial["maxCallDurationSeconds"] == 1000 and dial["callName"] == "callee"
            assert answer.get("callName") == "caller" and spoken(answer["commands"]) == []
            _, bridged = await sinch.send(funded.answered())
            assert bridged["commands"] == [{"command": "bridgeCall", "bridgeName": dial_bridge(answer)}]
            assert await sinch.send(funded.callee_hangup(44)) == (200, {"commands": []})
            assert await sinch.send(funded.hangup(45)) == (200, {"commands": []})
            assert await sinch.send(funded.hangup(45)) == (200, {"commands": []})    # again (the fallback URL)

            # 2. A caller with little credit (0.50 EUR: 50 s): the low-balance prompt, then the dial, capped.
            low = Call(LOW, SALES)
            _, answer = await sinch.send(low.incoming)
            assert spoken(answer["commands"]) == ["You have 50 seconds of credit left."]
            assert only_dial(answer)["maxCallDurationSeconds"] == 50
            await sinch.send(low.answered())
            await sinch.send(low.callee_hangup(29))
            await sinch.send(low.hangup(30))

            # 3. The funded caller to the menu number: a menu; "1" routes to the agent (the menu answer's 600 s).
            menu = Call(FUNDED, IVR)
            _, answer = await sinch.send(menu.incoming)
            menus = [command for command in flat(answer["commands"]) if command["command"] == "menu"]
            assert len(menus) == 1 and menus[0]["startMenu"] == "main", answer
            item = menus[0]["menus"]["main"]
            assert item["maximumInputLength"] == 1 and "matches" not in item
            assert [m["say"]["text"] for m in item["prompt"]["messages"]] == [MENU_PROMPT]
            _, answer = await sinch.send(menu.menu("1"))
            dial = only_dial(answer)
            assert dial["to"] == {"type": "PHONE", "phone": {"number": AGENT}} and dial["maxCallDurationSeconds"] == 600
            await sinch.send(menu.answered())
            await sinch.send(menu.callee_hangup(58))
            await sinch.send(menu.hangup(60))
            # another digit: pie_default, a hangup
            other = Call(FUNDED, IVR)
            await sinch.send(other.incoming)
            _, answer = await sinch.send(other.menu("9"))
            assert hangs_up(answer), answer
            await sinch.send(other.hangup(7))

            # 4. An unfunded caller: credit_check denies, with its prompt; the leg was answered to play it (5 s),
            #    which costs nothing.
            unfunded = Call(UNFUNDED, SALES)
            _, answer = await sinch.send(unfunded.incoming)
            assert hangs_up(answer) and spoken(answer["commands"]) == [
                "You do not have enough credit to make this call."], answer
            await sinch.send(unfunded.hangup(5))

            # 5. A caller the allowlist refuses: its prompt, then a hangup.
            refused = Call(REFUSED, SALES)
            _, answer = await sinch.send(refused.incoming)
            assert hangs_up(answer) and spoken(answer["commands"]) == [DENY_PROMPT], answer
            await sinch.send(refused.hangup(3))

        # Balances, exact to the cent: the inbound legs' callDurationSeconds at the plugin's own rate.
        costs = {FUNDED: PER_SECOND * (45 + 60 + 7), LOW: PER_SECOND * 30, UNFUNDED: Decimal(0)}
        for number, cost in costs.items():
            balance = await credit_json(setup, "balance", number)
            assert Decimal(balance["balance"]) == Decimal(ACCOUNTS[number]) - cost, (number, balance)
            assert Decimal(balance["reserved"]) == 0 and balance["open_calls"] == []
            ledger = await credit_json(setup, "ledger", number, "--limit", "100")
            debits = sorted(Decimal(e["amount"]) for e in ledger if e["kind"] == "debit")
            assert sum(debits) == cost and len(debits) == {FUNDED: 3, LOW: 1, UNFUNDED: 0}[number], ledger

        # The CRM: one record per leg (every dialled leg too), once, with the leg's facts.
        legs = {f"v2:{c.callid}": c for c in (funded, low, menu, other, unfunded, refused)}
        callee_legs = {f"v2:{c.callee_callid}": c for c in (funded, low, menu)}
        await eventually(lambda: receiver.keys() >= set(legs) | set(callee_legs), 15, "every leg's record at the CRM")
        await asyncio.sleep(0.5)                      # a duplicate would arrive in this time
        assert receiver.key_counts() == {key: 1 for key in [*legs, *callee_legs]}, receiver.key_counts()
        assert receiver.refused == 0
        for key, call in legs.items():
            (record,) = receiver.records(key)
            assert (record["callid"], record["generation"], record["session_id"]) == (call.callid, "v2", call.session)
            assert (record["direction"], record["application_key"]) == ("inbound", TEST_SERVICE_ID)
            assert record["caller"]["number"] == call.caller and record["callee"]["number"] == call.number
            assert record["result"] == "COMPLETED" and record["debit"] is None
        for key, call in callee_legs.items():
            (record,) = receiver.records(key)
            assert (record["callid"], record["direction"], record["session_id"]) == (call.callee_callid, "outbound",
                                                                                   call.session)
            assert record["callee"]["number"] == AGENT and record["cost"] is None
        durations = {funded: 45, low: 30, menu: 60, other: 7, unfunded: 5, refused: 3}
        for call, seconds in durations.items():
            (record,) = receiver.records(f"v2:{call.callid}")
            assert record["duration_seconds"] == seconds
            charged = call.caller != UNFUNDED and call.caller != REFUSED
            if charged:
                assert record["cost"]["amount"] is not None
                assert Decimal(record["cost"]["amount"]) == PER_SECOND * seconds, record["cost"]
                assert (record["cost"]["billed_seconds"], record["cost"]["account"]) == (seconds, call.caller)
                assert record["decision"]["allowed"] is True
            else:
                assert record["cost"] is None and record["decision"]["allowed"] is False
        assert "allowlist" in receiver.records(f"v2:{refused.callid}")[0]["decision"]["decided_by"]
        assert "credit_check" in receiver.records(f"v2:{unfunded.callid}")[0]["decision"]["decided_by"]
        assert receiver.records(f"v2:{funded.callid}")[0]["decision"]["max_duration"] == 1000

    # One callback line per webhook, none refused, no error.
    lines = logged(server, "callback")
    assert len(lines) == len(sinch.exchanges) and all(line["status"] == 200 for line in lines)
    assert not [line for line in server.log_lines() if line.get("level") in ("error", "critical")]
    assert ENV[SECRET_ENV] not in server.logs() and TEST_SERVICE_SECRET not in server.logs()


def dial_bridge(answer: dict[str, Any]) -> str:
    """The bridge the inbound leg was put in by a ``call.incoming`` answer (the callee leg joins it)."""
    (bridge,) = [command["bridgeName"] for command in flat(answer["commands"]) if command["command"] == "bridgeCall"]
    return bridge
