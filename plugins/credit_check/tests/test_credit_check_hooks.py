"""The plugin in the real callgate app (signed callbacks, the real pipeline), on SQLite and PostgreSQL."""

import asyncio
import time

import pytest
from structlog.testing import capture_logs

from callgate import Deny, Prompt, hookimpl, wait_for_note
from callgate.state import PLUGINS
from callgate.testing import free_port
from callgate_credit_check import CreditCheck
from callgate_credit_check.rate_csv import parse_rates

CALLER = "46701234567"          # as Sinch sends it: the account is +46701234567
ACCOUNT = "+46701234567"
LANDLINE = "+46850001234"       # rate +46: 0.10 EUR/min, 60/60
SWEDISH_MOBILE = "+46701112233"  # rate +4670: 0.12 EUR/min + 0.01, 30/6


class DenyAfter:
    """Another plugin that denies every call (enabled after credit_check)."""

    @hookimpl
    def authorize_call(self, call):
        return Deny("not on the allowlist", prompt=Prompt.say("Not allowed."))


class DenyOnce:
    """Another plugin that denies a call the first time it is asked (say, it timed out with on_error deny), and
    has no objection to the repeated ICE (Sinch's fallback URL, another instance)."""

    def __init__(self):
        self.asked = 0

    @hookimpl
    def authorize_call(self, call):
        self.asked += 1
        return Deny("timed out the first time") if self.asked == 1 else None


class NotesReader:
    """A plugin after credit_check that keeps the note credit_check left (like the CRM export): recording hooks run
    at the same time, so it waits for the note (``callgate.wait_for_note``)."""

    def __init__(self):
        self.seen = []

    @hookimpl
    async def on_disconnect(self, call):
        note = await wait_for_note(call, "credit_check")
        self.seen.append({} if note is None else {"credit_check": note})


def config(url, routes=None, **credit):
    credit = {"database_url": url, "expiry_interval_seconds": 3600, **credit}
    if routes is None:
        routes = [{"action": {"name": "connectPstn", "number": "{to}"}}]
    return {"plugins": {"credit_check": credit, "router": {"routes": routes}}}


@pytest.fixture
async def funded(credit_store, rates_csv):
    """``await funded(amount)``: the caller's account (EUR) with that balance, and the rate table loaded."""
    await credit_store.import_rates(parse_rates(rates_csv))

    async def fund(amount_micros, account=ACCOUNT, currency="EUR"):
        await credit_store.add_account(account, currency)
        if amount_micros:
            await credit_store.credit(account, amount_micros)
        return account
    return fund


def plugin_instance(client, name):
    return next(p.instance for p in client.app[PLUGINS].loaded if p.name == name)


async def test_credit_for_exactly_n_minutes_is_n_minutes_of_max_duration(callgate_client, callgate_events,
                                                                         callgate_database_url, credit_store, funded):
    await funded(1_000_000)                                       # 1.00 EUR at 0.10/min: 10 minutes
    client = await callgate_client(config(callgate_database_url), plugins={"credit_check": CreditCheck})
    status, answer = await client.event(callgate_events.ice(caller=CALLER, to=LANDLINE))
    assert status == 200
    assert answer["action"] == {"name": "connectPstn", "number": LANDLINE, "maxDuration": 600}
    assert "instructions" not in answer                             # 10 minutes is not a low balance at 300 s
    assert (await credit_store.account(ACCOUNT)).available == 0


async def test_increments_decide_the_rounding_of_max_duration(callgate_client, callgate_events,
                                                             callgate_database_url, funded):
    await funded(1_010_000)          # 1.01: the 0.01 connect fee + 1.00 at 0.12/min = 500 s; 30/6 grid -> 498 s
    client = await callgate_client(config(callgate_database_url, low_balance_seconds=0),
                                   plugins={"credit_check": CreditCheck})
    _, answer = await client.event(callgate_events.ice(caller=CALLER, to=SWEDISH_MOBILE))
    assert answer["action"]["maxDuration"] == 498


async def test_max_duration_is_capped_by_config(callgate_client, callgate_events, callgate_database_url, credit_store,
                                                funded):
    await funded(100_000_000)
    client = await callgate_client(config(callgate_database_url, max_duration=1200),
                                   plugins={"credit_check": CreditCheck})
    _, answer = await client.event(callgate_events.ice(caller=CALLER, to=LANDLINE))
    assert answer["action"]["maxDuration"] == 1200
    assert (await credit_store.account(ACCOUNT)).reserved == 2_000_000


async def test_a_short_cap_is_not_a_low_balance(callgate_client, callgate_events, callgate_database_url, funded):
    await funded(100_000_000)
    client = await callgate_client(config(callgate_database_url, max_duration=120),
                                   plugins={"credit_check": CreditCheck})
    _, answer = await client.event(callgate_events.ice(caller=CALLER, to=LANDLINE))
    assert answer["action"]["maxDuration"] == 120
    assert "instructions" not in answer


async def test_an_empty_account_is_denied_with_the_prompt(callgate_client, callgate_events, callgate_database_url,
                                                          credit_store, funded):
    await funded(0)
    client = await callgate_client(config(callgate_database_url, deny_prompt="Please top up."),
                                   plugins={"credit_check": CreditCheck})
    status, answer = await client.event(callgate_events.ice(caller=CALLER, to=LANDLINE))
    assert status == 200
    assert answer["action"] == {"name": "hangup"}
    assert {"name": "say", "text": "Please top up.", "locale": "en-US"} in answer["instructions"]
    assert [e.kind for e in await credit_store.ledger(ACCOUNT)] == []


async def test_low_balance_prompt_tells_the_caller_how_long(callgate_client, callgate_events, callgate_database_url,
                                                           funded):
    await funded(300_000)                                         # 0.30 at 0.10/min: 3 minutes
    client = await callgate_client(config(callgate_database_url), plugins={"credit_check": CreditCheck})
    _, answer = await client.event(callgate_events.ice(caller=CALLER, to=LANDLINE))
    assert answer["action"]["maxDuration"] == 180
    assert {"name": "say", "text": "You have 3 minutes of credit left.", "locale": "en-US"} in answer["instructions"]


async def test_a_repeated_ice_gets_the_same_answer_and_reserves_once(callgate_client, callgate_events,
                                                                    callgate_database_url, credit_store, funded):
    await funded(5_000_000)
    client = await callgate_client(config(callgate_database_url), plugins={"credit_check": CreditCheck})
    ice = callgate_events.ice(caller=CALLER, to=LANDLINE)
    first = await client.event(ice)
    second = await client.event(ice)
    assert first == second and first[1]["action"]["maxDuration"] == 3000
    assert (await credit_store.account(ACCOUNT)).reserved == 5_000_000
    assert [e.kind for e in await credit_store.ledger(ACCOUNT)] == ["topup", "reserve"]


async def test_a_call_another_plugin_denies_releases_its_reservation(callgate_client, callgate_events,
                                                                     callgate_database_url, credit_store, funded):
    await funded(5_000_000)
    client = await callgate_client(config(callgate_database_url),
                                   plugins={"credit_check": CreditCheck, "deny_after": DenyAfter})
    ice = callgate_events.ice(caller=CALLER, to=LANDLINE)
    _, answer = await client.event(ice)
    assert answer["action"] == {"name": "hangup"}
    account = await credit_store.account(ACCOUNT)
    assert (account.balance, account.reserved) == (5_000_000, 0)
    assert [e.kind for e in await credit_store.ledger(ACCOUNT)] == ["topup", "reserve", "release"]
    call = await credit_store.call(ice["callid"])
    assert call.state == "released" and "not on the allowlist" in call.reason


async def test_a_repeated_ice_after_a_release_holds_credit_again_so_the_call_is_paid_for(
        callgate_client, callgate_events, callgate_database_url, credit_store, funded):
    """A repeated ICE of a call whose reservation was released (another plugin denied it the first time)
    reserves anew: when it is connected this time, its credit is held and its DICE settles within the balance."""
    await funded(1_000_000)                                        # 1.00 EUR: 10 minutes at 0.10/min
    client = await callgate_client(config(callgate_database_url),
                                   plugins={"credit_check": CreditCheck, "deny_once": DenyOnce})
    ice = callgate_events.ice(caller=CALLER, to=LANDLINE)
    _, first = await client.event(ice)
    assert first["action"] == {"name": "hangup"}
    assert (await credit_store.account(ACCOUNT)).reserved == 0
    _, second = await client.event(ice)
    assert second["action"]["name"] == "connectPstn" and second["action"]["maxDuration"] == 600
    assert (await credit_store.account(ACCOUNT)).reserved == 1_000_000
    # The call lasts longer than the credit (Sinch ends it at maxDuration; its DICE says so): never below zero.
    assert await client.event(callgate_events.dice(ice["callid"], caller=CALLER, to=LANDLINE, duration=600)) == (200, {})
    account = await credit_store.account(ACCOUNT)
    assert (account.balance, account.reserved) == (0, 0)
    assert [e.kind for e in await credit_store.ledger(ACCOUNT)] == ["topup", "reserve", "release", "reserve",
                                                                     "release", "debit"]


async def test_an_allowed_call_nobody_routes_releases_its_reservation(callgate_client, callgate_events,
                                                                      callgate_database_url, credit_store, funded):
    await funded(5_000_000)
    routes = [{"number": "+15550000000", "action": {"name": "connectPstn", "number": "{to}"}}]
    client = await callgate_client(config(callgate_database_url, routes=routes), plugins={"credit_check": CreditCheck})
    _, answer = await client.event(callgate_events.ice(caller=CALLER, to=LANDLINE))
    assert answer["action"] == {"name": "hangup"}
    assert (await credit_store.account(ACCOUNT)).reserved == 0


async def test_a_smaller_max_duration_from_the_route_gives_back_the_surplus(callgate_client, callgate_events,
                                                                            callgate_database_url, credit_store, funded):
    await funded(5_000_000)
    routes = [{"action": {"name": "connectPstn", "number": "{to}", "maxDuration": 120}}]
    client = await callgate_client(config(callgate_database_url, routes=routes), plugins={"credit_check": CreditCheck})
    ice = callgate_events.ice(caller=CALLER, to=LANDLINE)
    _, answer = await client.event(ice)
    assert answer["action"]["maxDuration"] == 120
    call = await credit_store.call(ice["callid"])
    assert (call.max_duration, call.reserved) == (120, 200_000)
    assert (await credit_store.account(ACCOUNT)).reserved == 200_000


async def test_dice_settles_once_and_leaves_notes(callgate_client, callgate_events, callgate_database_url,
                                                  credit_store, funded):
    await funded(10_000_000)
    client = await callgate_client(config(callgate_database_url),
                                   plugins={"credit_check": CreditCheck, "notes_reader": NotesReader})
    ice = callgate_events.ice(caller=CALLER, to=SWEDISH_MOBILE)
    await client.event(ice)
    dice = callgate_events.dice(ice["callid"], caller=CALLER, to=SWEDISH_MOBILE, duration=95, debit=0.1975, rate=0.12)
    assert await client.event(dice) == (200, {})
    # 95 s on 30/6 -> 96 s billed; 0.01 + 0.12 * 96 / 60 = 0.2020
    account = await credit_store.account(ACCOUNT)
    assert (account.balance, account.reserved) == (10_000_000 - 202_000, 0)
    assert await client.event(dice) == (200, {})                   # again: nothing changes
    assert await credit_store.account(ACCOUNT) == account
    assert [e.kind for e in await credit_store.ledger(ACCOUNT)] == ["topup", "reserve", "release", "debit"]
    notes = plugin_instance(client, "notes_reader").seen
    expected = {"account": ACCOUNT, "cost": "0.202", "currency": "EUR", "billed_seconds": 96, "sinch_debit": "0.1975"}
    assert notes == [{"credit_check": expected}, {"credit_check": expected}]


@pytest.mark.parametrize("duration", [601, 1_000_000_000, 2 ** 31 - 1])
async def test_an_end_event_reporting_more_than_the_granted_time_bills_the_granted_time(
        duration, callgate_client, callgate_events, callgate_database_url, credit_store, funded):
    """Sinch ends a call at its maxDuration, and that is what was reserved: a DICE reporting longer (a bad body, a
    clock gone wrong) is billed as maxDuration, so the account never goes below what it allowed (it used to be
    billed in full: 10^12 s took an account to -1.6 billion, and 2^62 s overflowed the store, a 503 every time, while
    the CRM note carried the cost; a duration over 2^31 - 1 s is now refused with the body)."""
    await funded(1_000_000)                                       # 1.00 EUR at 0.10/min: 600 s granted
    client = await callgate_client(config(callgate_database_url),
                                   plugins={"credit_check": CreditCheck, "notes_reader": NotesReader})
    ice = callgate_events.ice(caller=CALLER, to=LANDLINE)
    assert (await client.event(ice))[1]["action"]["maxDuration"] == 600
    dice = callgate_events.dice(ice["callid"], caller=CALLER, to=LANDLINE, duration=duration)
    with capture_logs() as logs:
        assert await client.event(dice) == (200, {})
    account = await credit_store.account(ACCOUNT)
    assert (account.balance, account.reserved) == (0, 0)            # the whole 1.00, and no more
    call = await credit_store.call(ice["callid"])
    assert (call.duration, call.billed_seconds, call.cost) == (duration, 600, 1_000_000)
    [warned] = [line for line in logs if line["event"] == "credit_duration_over_granted"]
    assert (warned["duration"], warned["max_duration"]) == (duration, 600)
    [note] = plugin_instance(client, "notes_reader").seen
    assert (note["credit_check"]["cost"], note["credit_check"]["billed_seconds"]) == ("1.00", 600)


async def test_an_end_event_with_more_seconds_than_a_call_can_last_is_refused_and_bills_nothing(
        callgate_client, callgate_events, callgate_database_url, credit_store, funded):
    await funded(1_000_000)
    client = await callgate_client(config(callgate_database_url), plugins={"credit_check": CreditCheck})
    ice = callgate_events.ice(caller=CALLER, to=LANDLINE)
    await client.event(ice)
    status, body = await client.event(callgate_events.dice(ice["callid"], caller=CALLER, duration=2 ** 62))
    assert (status, body["error"], body["message"]) == (400, "invalid_field",
                                                         "duration: expected an integer <= 2147483647")
    assert (await credit_store.call(ice["callid"])).state == "reserved"          # the real DICE still settles it
    assert await client.event(callgate_events.dice(ice["callid"], caller=CALLER, duration=60)) == (200, {})
    assert (await credit_store.account(ACCOUNT)).balance == 1_000_000 - 100_000


@pytest.mark.parametrize("on_error", ["deny", "skip"])
async def test_a_denied_call_is_never_charged_and_a_repeated_ice_is_denied_again(
        on_error, callgate_client, callgate_events, callgate_database_url, credit_store, funded):
    await funded(0)
    client = await callgate_client(config(callgate_database_url, on_error=on_error),
                                   plugins={"credit_check": CreditCheck, "notes_reader": NotesReader})
    ice = callgate_events.ice(caller=CALLER, to=LANDLINE)
    first = await client.event(ice)
    assert first[1]["action"] == {"name": "hangup"}
    for result, duration in (("ANSWERED", 60), ("ANSWERED", 3600), ("NOANSWER", None), ("FAILED", 0)):
        dice = callgate_events.dice(ice["callid"], caller=CALLER, to=LANDLINE, result=result, duration=duration)
        assert await client.event(dice) == (200, {})
    account = await credit_store.account(ACCOUNT)
    assert (account.balance, account.reserved) == (0, 0)
    assert await credit_store.ledger(ACCOUNT) == []
    assert plugin_instance(client, "notes_reader").seen == [{}] * 4        # no cost for the CRM export
    # Sinch's fallback URL repeats the ICE: the same answer (with on_error = "skip" a failure would
    # have let the call through, uncharged)
    assert await client.event(ice) == first
    assert (await credit_store.call(ice["callid"])).state == "denied"


async def test_an_unanswered_call_is_settled_at_zero(callgate_client, callgate_events, callgate_database_url,
                                                     credit_store, funded):
    await funded(1_000_000)
    client = await callgate_client(config(callgate_database_url), plugins={"credit_check": CreditCheck})
    ice = callgate_events.ice(caller=CALLER, to=LANDLINE)
    await client.event(ice)
    dice = callgate_events.dice(ice["callid"], result="NOANSWER", reason="TIMEOUT", duration=25)
    assert await client.event(dice) == (200, {})
    account = await credit_store.account(ACCOUNT)
    assert (account.balance, account.reserved) == (1_000_000, 0)
    assert (await credit_store.call(ice["callid"])).cost == 0


async def test_unknown_accounts_are_denied_or_left_to_others(callgate_client, callgate_events, callgate_database_url,
                                                             funded):
    await funded(1_000_000)
    client = await callgate_client(config(callgate_database_url), plugins={"credit_check": CreditCheck})
    _, answer = await client.event(callgate_events.ice(caller="46709999999", to=LANDLINE))
    assert answer["action"] == {"name": "hangup"}
    assert any(i.get("text") == "This number has no prepaid account." for i in answer["instructions"])
    _, answer = await client.event(callgate_events.ice(caller="private", to=LANDLINE))
    assert answer["action"] == {"name": "hangup"}


async def test_unknown_account_abstains_when_configured(callgate_client, callgate_events, callgate_database_url,
                                                        funded):
    await funded(0)
    client = await callgate_client(config(callgate_database_url, unknown_account="abstain"),
                                   plugins={"credit_check": CreditCheck})
    _, answer = await client.event(callgate_events.ice(caller="46709999999", to=LANDLINE))
    assert answer["action"]["name"] == "connectPstn"                # default_decision = allow
    assert "maxDuration" not in answer["action"]


async def test_calls_to_other_destination_types_are_not_its_business(callgate_client, callgate_events,
                                                                     callgate_database_url, funded):
    await funded(0)
    routes = [{"to_type": "username", "action": {"name": "connectMxp"}}]
    client = await callgate_client(config(callgate_database_url, routes=routes), plugins={"credit_check": CreditCheck})
    _, answer = await client.event(callgate_events.ice(caller=CALLER, to="alice", to_type="username"))
    assert answer["action"]["name"] == "connectMxp"


async def test_no_rate_for_the_destination_is_denied(callgate_client, callgate_events, callgate_database_url, funded):
    await funded(10_000_000)
    client = await callgate_client(config(callgate_database_url), plugins={"credit_check": CreditCheck})
    _, answer = await client.event(callgate_events.ice(caller=CALLER, to="+4420123456"))
    assert answer["action"] == {"name": "hangup"}
    assert any(i.get("text") == "Calls to this destination are not possible." for i in answer["instructions"])


async def test_sinch_user_rate_with_a_markup(callgate_client, callgate_events, callgate_database_url, credit_store,
                                             funded):
    await funded(1_000_000)
    client = await callgate_client(
        config(callgate_database_url, rates="sinch", sinch_markup="1.25", sinch_increments="1/1"),
        plugins={"credit_check": CreditCheck})
    ice = callgate_events.ice(caller=CALLER, to="+4420123456", userRate={"currencyId": "EUR", "amount": 0.08})
    _, answer = await client.event(ice)
    assert answer["action"]["maxDuration"] == 600                 # 0.08 * 1.25 = 0.10/min; 1.00 -> 600 s
    # Sinch rating in another currency cannot be converted: no rate
    usd = callgate_events.ice(caller=CALLER, to="+4420123456", userRate={"currencyId": "USD", "amount": 0.08})
    _, answer = await client.event(usd)
    assert answer["action"] == {"name": "hangup"}
    dice = callgate_events.dice(ice["callid"], duration=61, debit=0.0813, rate=0.08)
    await client.event(dice)
    assert (await credit_store.call(ice["callid"])).cost == 101_667            # 61 s of 0.10/min, rounded up


@pytest.mark.parametrize("mode, extra, ice_fields", [
    ("number_table", {}, {"caller": "46701112299"}),
    ("custom", {"account_key": "account"}, {"custom": '{"account": "acme"}'}),
    ("header", {"account_key": "account"}, {"callHeaders": [{"key": "account", "value": "acme"}]}),
    ("application", {}, {"applicationKey": "acme"}),
    ("user", {}, {"caller": "private", "user": "alice", "originationType": "MXP"}),
])
async def test_each_way_of_naming_the_paying_account(mode, extra, ice_fields, callgate_client, callgate_events,
                                                     callgate_database_url, credit_store, funded):
    await funded(1_000_000, account="acme")
    await credit_store.link_number("+46701112299", "acme")
    await credit_store.link_user("alice", "acme")
    client = await callgate_client(config(callgate_database_url, account_by=mode, **extra),
                                   plugins={"credit_check": CreditCheck})
    _, answer = await client.event(callgate_events.ice(to=LANDLINE, **{"caller": CALLER, **ice_fields}))
    assert answer["action"]["maxDuration"] == 600
    assert (await credit_store.account("acme")).reserved == 1_000_000


async def test_an_in_app_caller_is_billed_by_user_and_an_unlinked_user_is_denied(
        callgate_client, callgate_events, callgate_database_url, credit_store, funded):
    await funded(1_000_000, account="acme")
    await credit_store.link_user("alice", "acme")
    client = await callgate_client(config(callgate_database_url, account_by="user", no_account_prompt="Sign up first."),
                                   plugins={"credit_check": CreditCheck, "notes_reader": NotesReader})
    ice = callgate_events.ice(caller="private", to=LANDLINE, user="alice", origination="MXP")
    _, answer = await client.event(ice)
    assert answer["action"]["maxDuration"] == 600
    dice = callgate_events.dice(ice["callid"], caller="alice", to=LANDLINE, duration=61)
    assert await client.event(dice) == (200, {})
    account = await credit_store.account("acme")
    assert (account.balance, account.reserved) == (1_000_000 - 200_000, 0)      # 61 s: two minutes at 0.10
    assert plugin_instance(client, "notes_reader").seen[0]["credit_check"]["account"] == "acme"
    for stranger in ({"user": "mallory"}, {}):
        _, answer = await client.event(callgate_events.ice(caller="private", to=LANDLINE, **stranger))
        assert answer["action"] == {"name": "hangup"}
        assert any(i.get("text") == "Sign up first." for i in answer["instructions"])


@pytest.mark.slow
async def test_reservations_whose_dice_never_comes_are_released_in_the_background(
        callgate_client, callgate_events, callgate_database_url, credit_store, funded):
    await funded(1_000_000)
    client = await callgate_client(config(callgate_database_url, max_duration=1, grace_seconds=0,
                                          expiry_interval_seconds=0.1), plugins={"credit_check": CreditCheck})
    ice = callgate_events.ice(caller=CALLER, to=LANDLINE)
    _, answer = await client.event(ice)
    assert answer["action"]["maxDuration"] == 1
    deadline = time.monotonic() + 10
    while (await credit_store.call(ice["callid"])).state != "expired":
        assert time.monotonic() < deadline, "the reservation was not released"
        await asyncio.sleep(0.1)
    assert (await credit_store.account(ACCOUNT)).reserved == 0


# --- the database is down ---------------------------------------------------------------------------

def unreachable():
    """A PostgreSQL URL on a port nothing listens on: every connection is refused."""
    return f"postgresql://postgres@127.0.0.1:{free_port()}/test"


async def test_database_down_ice_follows_on_error_deny_and_dice_is_503(callgate_client, callgate_events):
    client = await callgate_client(config(unreachable()), plugins={"credit_check": CreditCheck})
    started = time.monotonic()
    status, answer = await client.event(callgate_events.ice(caller=CALLER, to=LANDLINE))
    assert status == 200 and answer["action"] == {"name": "hangup"}   # fail closed: the default on_error
    assert time.monotonic() - started < 2.0                        # inside [server] deadline_ms
    status, body = await client.event(callgate_events.dice(duration=60))
    assert status == 503 and body["error"] == "not_recorded"
    response = await client.client.get("/readyz")
    assert response.status == 503
    assert (await response.json())["problems"] == [                     # no exception's text, host or database
        "credit_check: credit database unreachable (see the log: credit_database_unreachable)"]


async def test_database_down_with_on_error_skip_lets_calls_through(callgate_client, callgate_events):
    client = await callgate_client(config(unreachable(), on_error="skip"), plugins={"credit_check": CreditCheck})
    _, answer = await client.event(callgate_events.ice(caller=CALLER, to=LANDLINE))
    assert answer["action"]["name"] == "connectPstn"
    status, _ = await client.event(callgate_events.dice(duration=60))
    assert status == 503                                           # a DICE is never dropped, whatever on_error says


async def test_a_sqlite_file_that_cannot_be_opened_stops_start_up(callgate_client, tmp_path):
    blocker = tmp_path / "a-file"
    blocker.write_text("")
    with pytest.raises(Exception, match=r"credit_check.*startup"):
        await callgate_client(config(f"sqlite:///{blocker}/credit.sqlite3"), plugins={"credit_check": CreditCheck})
