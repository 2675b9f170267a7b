"""The hooks on Voice API v2 calls (neutral ``callgate.calls`` objects), against the real store (SQLite and
PostgreSQL): one configuration serves both generations, and v1 and v2 calls never share a record."""

import json
from decimal import Decimal

import pytest

from callgate.calls import Callee, Ended, Header, Incoming, Money
from callgate.decisions import Allow, Deny, EndCall, PhoneNumber, Route
from callgate.protocols.v2.adapt import decode_event as decode_v2
from callgate.results import Decision
from callgate_credit_check import CreditCheck
from callgate_credit_check.config import CreditCheckConfig
from callgate_credit_check.rate_csv import parse_rates

CALLER = "+46701234567"          # the account (account_by = "caller")
OUR_NUMBER = "+46850001234"      # a v2 inbound PHONE call is to our number: to.type did, rate +46 0.10 EUR/min, 60/60
DIALLED = "+46731112233"
SERVICE = "b7e4c2d9-1111-2222-3333-444455556666"
SESSION = "01JQ8ZK3V7N5W2R4T6Y8B0C1DE"
LEG = "01JQ8ZK3V9A4B6C8D0E2F4G6H8"         # the inbound leg's callId
CALLEE_LEG = "01JQ8ZK3VBCDEFGHJKMNPQRSTV"  # the dialled leg's callId


def incoming(callid=LEG, generation="v2", **fields):
    """A call coming in, as the v2 adapter (``generation="v2"``) or the v1 one decodes it."""
    values = {"cli": CALLER, "to": Callee("did", OUR_NUMBER), "application": SERVICE, "origination_type": "pstn",
              "rate": Money("EUR", Decimal("0.0100")), "session_id": SESSION if generation == "v2" else None, **fields}
    return Incoming(generation=generation, event="call.incoming" if generation == "v2" else "ice", raw={},
                    callid=callid, **values)


def ended(callid=LEG, event="call.hangup", generation="v2", **fields):
    """A v2 end event of one leg (or a v1 DICE with ``generation="v1"``)."""
    values = {"cli": CALLER, "to": Callee("did", OUR_NUMBER), "application": SERVICE, "result": "COMPLETED",
              "reason": "CALLER_HANGUP", "duration": 0, "rate": Money("EUR", Decimal("0.0100")),
              "session_id": SESSION if generation == "v2" else None, **fields}
    return Ended(generation=generation, event=event if generation == "v2" else "dice", raw={}, callid=callid, **values)


@pytest.fixture
async def plugin(callgate_database_url, credit_store, rates_csv):
    """``await plugin(**settings)``: a started CreditCheck on the test database; the caller's account holds 1.00 EUR."""
    await credit_store.import_rates(parse_rates(rates_csv))
    await credit_store.add_account(CALLER, "EUR")
    await credit_store.credit(CALLER, 1_000_000)
    started = []

    async def build(**settings):
        config = {"database_url": callgate_database_url, "expiry_interval_seconds": 3600,
                  "destination_types": ["number", "did"], **settings}
        instance = CreditCheck(CreditCheckConfig.model_validate(config))
        await instance.startup()
        started.append(instance)
        return instance

    yield build
    for instance in started:
        await instance.shutdown()


async def test_a_v2_call_is_reserved_under_its_key_and_settled_once_from_its_duration(plugin, credit_store):
    credit = await plugin()
    answer = await credit.authorize_call(incoming())
    assert isinstance(answer, Allow) and answer.max_duration == 600          # 1.00 EUR at 0.10/min
    assert (await credit_store.call(f"v2:{LEG}")).state == "reserved"
    assert await credit_store.call(LEG) is None                               # the bare callid is a v1 call's key
    assert (await credit_store.account(CALLER)).reserved == 1_000_000

    hangup = ended(duration=125)                 # callDurationSeconds: 3 started minutes at 0.10
    await credit.on_disconnect(hangup)
    record = await credit_store.call(f"v2:{LEG}")
    assert (record.state, record.billed_seconds, record.cost) == ("settled", 180, 300_000)
    assert record.sinch_debit is None and record.sinch_currency is None     # v2 sends no total cost
    account = await credit_store.account(CALLER)
    assert (account.balance, account.reserved) == (700_000, 0)
    assert hangup.notes["credit_check"]["cost"] == "0.30" and hangup.notes["credit_check"]["sinch_debit"] is None

    again = ended(duration=125)                  # the same call.hangup again (fallback URL, retry)
    await credit.on_disconnect(again)
    assert (await credit_store.account(CALLER)).balance == 700_000
    assert len([e for e in await credit_store.ledger(CALLER) if e.kind == "debit"]) == 1
    assert again.notes["credit_check"]["cost"] == "0.30"


async def test_the_dialled_legs_hangup_bills_nothing(plugin, credit_store):
    credit = await plugin()
    await credit.authorize_call(incoming())
    callee = ended(callid=CALLEE_LEG, to=Callee("number", DIALLED), duration=300, reason="CALLEE_HANGUP")
    await credit.on_disconnect(callee)
    assert await credit_store.call(f"v2:{CALLEE_LEG}") is None
    assert "credit_check" not in callee.notes
    account = await credit_store.account(CALLER)
    assert (account.balance, account.reserved) == (1_000_000, 1_000_000)       # still held for the inbound leg
    await credit.on_disconnect(ended(duration=61))
    assert (await credit_store.account(CALLER)).balance == 800_000              # billed once, by the inbound leg


async def test_a_v1_and_a_v2_call_with_the_same_callid_are_kept_apart(plugin, credit_store):
    credit = await plugin(max_duration=300)
    same = "4a1b2c3d-same-callid"
    v1 = await credit.authorize_call(incoming(callid=same, generation="v1", to=Callee("number", OUR_NUMBER)))
    v2 = await credit.authorize_call(incoming(callid=same))
    assert isinstance(v1, Allow) and isinstance(v2, Allow)
    assert v1.max_duration == v2.max_duration == 300
    first, second = await credit_store.call(same), await credit_store.call(f"v2:{same}")
    assert first.state == second.state == "reserved"
    assert (await credit_store.account(CALLER)).reserved == 1_000_000          # two reservations of 0.50

    await credit.on_disconnect(ended(callid=same, duration=60))
    assert (await credit_store.call(f"v2:{same}")).state == "settled"
    assert (await credit_store.call(same)).state == "reserved"                 # the v1 call is untouched
    await credit.on_disconnect(ended(callid=same, generation="v1", result="ANSWERED", duration=60,
                                     debit=Money("EUR", Decimal("0.10"))))
    v1_record = await credit_store.call(same)
    assert v1_record.state == "settled" and v1_record.sinch_debit == "0.10"    # Sinch's debit, v1 only


@pytest.mark.parametrize(("event", "result"), [("call.busy", "BUSY"), ("call.rejected", "REJECTED"),
                                                ("call.timeout", "NO_ANSWER"), ("call.failed", "FAILED")])
async def test_v2_end_states_settle_like_an_unanswered_call(plugin, credit_store, event, result):
    credit = await plugin()
    await credit.authorize_call(incoming())
    await credit.on_disconnect(ended(event=event, result=result, reason="NOT_AVAILABLE", duration=30))
    record = await credit_store.call(f"v2:{LEG}")
    assert (record.state, record.cost) == ("settled", 0)
    account = await credit_store.account(CALLER)
    assert (account.balance, account.reserved) == (1_000_000, 0)


async def test_destination_types_decide_whether_a_v2_call_is_charged(plugin, credit_store):
    credit = await plugin(destination_types=["number"])           # the 0.2 default: v2 inbound calls are did
    assert await credit.authorize_call(incoming()) is None
    assert await credit_store.call(f"v2:{LEG}") is None
    sip = await plugin(destination_types=["sip"])
    answer = await sip.authorize_call(incoming(to=Callee("sip", "sip:support@pbx.example.com")))
    assert isinstance(answer, Deny) and "not a phone number" in answer.reason     # rated by the table: no number


async def test_account_by_on_v2_calls(plugin, credit_store):
    await credit_store.add_account("acme", "EUR")
    await credit_store.credit("acme", 500_000)
    by_service = await plugin(account_by="application")
    await credit_store.add_account(SERVICE, "EUR")
    await credit_store.credit(SERVICE, 200_000)
    answer = await by_service.authorize_call(incoming(callid="by-service"))
    assert isinstance(answer, Allow) and answer.max_duration == 120          # the service id's account, 0.20 EUR

    by_header = await plugin(account_by="header", account_key="X-Account")
    answer = await by_header.authorize_call(incoming(callid="by-header", headers=(Header("X-Account", "acme"),)))
    assert isinstance(answer, Allow) and answer.max_duration == 300

    for mode, settings in (("user", {}), ("custom", {"account_key": "account"})):
        nobody = await plugin(account_by=mode, **settings)                    # v2 has no in-app users, no custom
        answer = await nobody.authorize_call(incoming(callid=f"by-{mode}"))
        assert isinstance(answer, Deny) and answer.reason.startswith("no prepaid account")
        assert answer.prompt is not None and answer.prompt.text == "This number has no prepaid account."


async def test_sinch_rates_use_the_v2_call_rate(plugin, credit_store):
    credit = await plugin(rates="sinch", sinch_markup="2", low_balance_seconds=0)
    answer = await credit.authorize_call(incoming(rate=Money("EUR", Decimal("0.05"))))   # 0.10/min with the markup
    assert isinstance(answer, Allow) and answer.max_duration == 600 and answer.prompts == ()
    await credit.on_disconnect(ended(duration=59))
    assert (await credit_store.call(f"v2:{LEG}")).cost == 100_000


async def test_a_low_balance_is_a_neutral_spoken_prompt(plugin, credit_store):
    credit = await plugin(locale="sv-SE")
    await credit_store.credit(CALLER, -800_000, kind="adjust")                # 0.20 EUR: 2 minutes
    answer = await credit.authorize_call(incoming())
    assert isinstance(answer, Allow) and answer.max_duration == 120
    assert [(p.text, p.locale) for p in answer.prompts] == [("You have 2 minutes of credit left.", "sv-SE")]


def decision(route=None, *, allowed=True, routed_by="router", max_duration=None, route_name=None):
    """The Decision the pipeline hands to ``call_decided`` for a v2 call."""
    return Decision(allowed=allowed, decided_by="credit_check" if allowed else "allowlist",
                    reason="allowed" if allowed else "not on the list", svaml={"commands": []}, route=route,
                    routed_by=routed_by if route is not None or route_name else None, max_duration=max_duration,
                    generation="v2", route_name=route_name)


@pytest.mark.parametrize("final", [decision(allowed=False), decision(Route(EndCall(), name="closed")),
                                   decision(None)])
async def test_a_v2_call_that_is_not_connected_gives_its_reservation_back(plugin, credit_store, final):
    credit = await plugin()
    call = incoming()
    await credit.authorize_call(call)
    await credit.call_decided(call, final)
    record = await credit_store.call(f"v2:{LEG}")
    assert record.state == "released" and record.reason.startswith("not connected: ")
    assert (await credit_store.account(CALLER)).reserved == 0


async def test_a_v2_call_routed_with_a_shorter_limit_or_its_own_svaml_keeps_what_it_needs(plugin, credit_store):
    credit = await plugin()
    call = incoming()
    await credit.authorize_call(call)
    await credit.call_decided(call, decision(Route(PhoneNumber(DIALLED), name="mobile"), max_duration=120))
    assert (await credit_store.account(CALLER)).reserved == 200_000               # 2 minutes of the 10 granted
    other = incoming(callid="own-svaml")
    await credit_store.credit(CALLER, 1_000_000)
    await credit.authorize_call(other)
    await credit.call_decided(other, decision(None, route_name="v2 script", max_duration=600))   # a SvamlRoute
    assert (await credit_store.call("v2:own-svaml")).state == "reserved"


def v2_body(event, callid, direction, to, **call):
    """A v2 webhook body as Sinch sends it (the shape of tests/fixtures/v2)."""
    return json.dumps({"event": event, "call": {
        "callId": callid, "projectId": "5f2c9a41-7d3e-4b8a-9c61-2e8f0d4b7a13", "serviceId": SERVICE,
        "sessionId": SESSION, "from": {"type": "PHONE", "phone": {"number": CALLER}},
        "to": {"type": "PHONE", "phone": {"number": to}}, "startTime": "2026-03-14T09:26:53Z", "callType": "PHONE",
        "direction": direction, "originationType": "PHONE", "callRate": {"currencyCode": "EUR", "amount": "0.0030"},
        "callResourceUrl": f"https://voice.api.sinch.com/v2/projects/p/calls/{callid}", **call}})


async def test_v2_bodies_through_the_v2_adapter_bill_the_inbound_leg_once(plugin, credit_store):
    credit = await plugin()
    call = decode_v2(v2_body("call.incoming", LEG, "INBOUND", OUR_NUMBER, callResult="INITIATED"))
    assert (call.key, call.to.type) == (f"v2:{LEG}", "did")
    assert isinstance(await credit.authorize_call(call), Allow)
    ended_fields = {"callResult": "COMPLETED", "callReason": "CALLER_HANGUP", "callDurationSeconds": 168,
                    "answerTime": "2026-03-14T09:27:01Z", "endTime": "2026-03-14T09:29:49Z"}
    for body in (v2_body("call.hangup", CALLEE_LEG, "OUTBOUND", DIALLED, **ended_fields),
                 v2_body("call.hangup", LEG, "INBOUND", OUR_NUMBER, **ended_fields),
                 v2_body("call.hangup", LEG, "INBOUND", OUR_NUMBER, **ended_fields)):
        await credit.on_disconnect(decode_v2(body))
    assert (await credit_store.call(f"v2:{LEG}")).cost == 300_000                 # 168 s at 60/60: 3 minutes
    assert (await credit_store.account(CALLER)).balance == 700_000
    assert await credit_store.call(f"v2:{CALLEE_LEG}") is None
