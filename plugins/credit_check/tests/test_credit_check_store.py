"""The store on SQLite and on PostgreSQL: accounts, ledger, reservations, settlement, expiry."""

import asyncio
import time
from decimal import Decimal

import pytest

from callgate.storage import DatabaseError
from callgate_credit_check.expiry import expire_overdue
from callgate_credit_check.rate_csv import parse_rates
from callgate_credit_check.rating import Increments, Rate
from callgate_credit_check.store import CreditStore, NoRate, Reservation, Settlement, StoreError

EUR_PER_MINUTE_010 = Rate(currency="EUR", per_minute=100_000, increments=Increments(60, 60), prefix="46")


def fixed_rate(rate=EUR_PER_MINUTE_010):
    async def lookup(tx, currency):
        return rate if currency == rate.currency else NoRate(f"no rate in {currency}")
    return lookup


async def account_with(store, account_id="acme", amount=10_000_000, currency="EUR"):
    await store.add_account(account_id, currency)
    if amount:
        await store.credit(account_id, amount)
    return account_id


async def reserve(store, callid, account="acme", *, cap=3600, rate=EUR_PER_MINUTE_010, now=None):
    return await store.reserve(callid, account, "+46850001234", fixed_rate(rate), cap=cap, unit=1, grace=600, now=now)


async def assert_ledger_explains(store, account_id):
    """The ledger is the account's history: replaying it gives the balance and the reserved amount."""
    account = await store.account(account_id)
    entries = await store.ledger(account_id, limit=100_000)
    sign = {"topup": (1, 0), "adjust": (1, 0), "debit": (-1, 0), "reserve": (0, 1), "release": (0, -1)}
    balance = sum(sign[e.kind][0] * e.amount for e in entries)
    reserved = sum(sign[e.kind][1] * e.amount for e in entries)
    assert (balance, reserved) == (account.balance, account.reserved)
    if entries:
        assert (entries[-1].balance_after, entries[-1].reserved_after) == (account.balance, account.reserved)
    open_calls = await store.open_calls(account_id)
    assert sum(c.reserved for c in open_calls) == account.reserved


async def test_accounts_top_ups_and_the_ledger(credit_store):
    store = credit_store
    await store.add_account("acme", "eur")
    with pytest.raises(StoreError, match="already exists"):
        await store.add_account("acme", "EUR")
    await store.credit("acme", 5_000_000, note="first")
    entry = await store.credit("acme", -1_000_000, kind="adjust", note="goodwill reversed")
    assert (entry.kind, entry.amount, entry.balance_after) == ("adjust", -1_000_000, 4_000_000)
    with pytest.raises(StoreError, match="positive"):
        await store.credit("acme", -1)
    with pytest.raises(StoreError, match="no account 'nobody'"):
        await store.credit("nobody", 1)
    account = await store.account("acme")
    assert (account.currency, account.balance, account.reserved, account.available) == ("EUR", 4_000_000, 0, 4_000_000)
    assert [e.note for e in await store.ledger("acme")] == ["first", "goodwill reversed"]
    assert [e.kind for e in await store.ledger("acme", limit=1)] == ["adjust"]
    await assert_ledger_explains(store, "acme")


async def test_reserve_grants_the_affordable_time_and_holds_its_cost(credit_store):
    store = credit_store
    await account_with(store, amount=1_000_000)                     # 1.00 EUR at 0.10/min: 10 minutes
    result = await reserve(store, "call-1")
    assert (result.status, result.seconds, result.reserved, result.repeated) == ("reserved", 600, 1_000_000, False)
    account = await store.account("acme")
    assert (account.balance, account.reserved, account.available) == (1_000_000, 1_000_000, 0)
    assert (await reserve(store, "call-2")).status == "denied"      # nothing left
    await assert_ledger_explains(store, "acme")


async def test_a_repeated_ice_gets_the_same_answer_and_reserves_once(credit_store):
    store = credit_store
    await account_with(store, amount=2_000_000)
    first = await reserve(store, "dup", cap=300)
    again = await reserve(store, "dup", cap=300)
    assert (again.status, again.seconds, again.reserved, again.repeated) == ("reserved", 300, 500_000, True)
    assert first.reserved == again.reserved
    assert (await store.account("acme")).reserved == 500_000
    assert [e.kind for e in await store.ledger("acme")] == ["topup", "reserve"]
    # a denial is remembered too: topping up between the two ICEs does not change the answer
    await account_with(store, "poor", amount=10_000)
    assert (await reserve(store, "poor-call", "poor")).status == "denied"
    await store.credit("poor", 5_000_000)
    repeated = await reserve(store, "poor-call", "poor")
    assert (repeated.status, repeated.repeated) == ("denied", True)


async def test_no_account_and_no_rate_reserve_nothing(credit_store):
    store = credit_store
    assert (await reserve(store, "c1", "ghost")).status == "no_account"
    await account_with(store, "dollars", currency="USD")
    result = await reserve(store, "c2", "dollars")
    assert (result.status, result.reason) == ("no_rate", "no rate in USD")
    assert await store.call("c2") is None
    assert (await store.account("dollars")).reserved == 0


async def test_concurrent_reservations_never_exceed_the_balance(credit_store):
    store = credit_store
    await account_with(store, amount=7_500_000)                     # 7.50: seven 10-minute calls and one of 5
    results = await asyncio.gather(*(reserve(store, f"burst-{i}", cap=600) for i in range(50)))
    allowed = [r for r in results if r.status == "reserved"]
    assert sum(r.reserved for r in allowed) == 7_500_000
    assert sorted(r.seconds for r in allowed) == [300] + [600] * 7
    assert sum(r.status == "denied" for r in results) == 42
    account = await store.account("acme")
    assert (account.reserved, account.available) == (7_500_000, 0)
    await assert_ledger_explains(store, "acme")


async def test_settle_debits_the_rated_duration_and_releases_the_rest(credit_store):
    store = credit_store
    await account_with(store, amount=10_000_000)
    await reserve(store, "call", cap=3600)                          # holds 6.00
    settled = await store.settle("call", 168, unit=1, sinch_debit=Decimal("0.0231"), sinch_currency="EUR")
    assert not settled.repeated and settled.released == 6_000_000
    assert (settled.call.billed_seconds, settled.call.cost, settled.call.state) == (180, 300_000, "settled")
    assert (settled.call.sinch_debit, settled.call.sinch_currency) == ("0.0231", "EUR")
    account = await store.account("acme")
    assert (account.balance, account.reserved) == (9_700_000, 0)
    again = await store.settle("call", 999, unit=1)
    assert again.repeated and again.call.cost == 300_000 and again.released == 0
    assert await store.account("acme") == account
    assert [e.kind for e in await store.ledger("acme")] == ["topup", "reserve", "release", "debit"]
    assert await store.settle("unknown-call", 60, unit=1) is None
    await assert_ledger_explains(store, "acme")


def count_transactions(monkeypatch, store):
    """The list that each write transaction the store's database runs appends to."""
    runs: list[int] = []
    real = store.db.run_transaction

    async def counted(work, **kwargs):
        runs.append(1)
        return await real(work, **kwargs)
    monkeypatch.setattr(store.db, "run_transaction", counted)
    return runs


async def test_an_end_event_that_changes_nothing_runs_no_transaction(credit_store, monkeypatch):
    """A call never reserved, a denied one and a repeated end event are answered from a read (no write
    transaction, so no group-commit wait); only the first end event of a held call writes."""
    store = credit_store
    await account_with(store, amount=10_000_000)
    await account_with(store, "poor", amount=0)
    await reserve(store, "held", cap=600)
    assert (await reserve(store, "denied", "poor")).status == "denied"
    runs = count_transactions(monkeypatch, store)
    assert await store.settle("never-reserved", 60, unit=1) is None
    assert await store.settle("denied", 60, unit=1) is None
    assert runs == []
    first = await store.settle("held", 61, unit=1)
    assert runs == [1] and not first.repeated and first.call.cost == 200_000
    again = await store.settle("held", 61, unit=1)
    assert runs == [1] and again.repeated and again.call == first.call and again.released == 0
    assert [e.kind for e in await store.ledger("acme")] == ["topup", "reserve", "release", "debit"]
    await assert_ledger_explains(store, "acme")


async def test_an_end_event_that_changes_nothing_does_not_wait_for_an_open_sqlite_group(tmp_path, monkeypatch):
    """On SQLite the read is the committed file's (a reader connection): it answers while another plugin's
    transaction on the same (shared) database waits for its flush."""
    from callgate.storage import SQLiteDatabase
    store = await CreditStore.open(f"sqlite:///{tmp_path / 'shared.sqlite3'}")
    try:
        await account_with(store, amount=10_000_000)
        await reserve(store, "held", cap=600)
        await store.settle("held", 30, unit=1)
        flush = asyncio.Event()
        real_commit = SQLiteDatabase._commit

        async def held_commit(self, group):
            await flush.wait()
            await real_commit(self, group)
        monkeypatch.setattr(SQLiteDatabase, "_commit", held_commit)
        other = asyncio.create_task(store.db.execute("UPDATE credit_accounts SET updated_at = 'x' WHERE id = 'acme'"))
        await asyncio.sleep(0.01)
        assert not other.done()                                   # its group waits for its flush
        assert await asyncio.wait_for(store.settle("never-reserved", 60, unit=1), 0.5) is None
        assert (await asyncio.wait_for(store.settle("held", 30, unit=1), 0.5)).repeated
        flush.set()
        await other
    finally:
        await store.close()


async def test_a_new_calls_reservation_is_one_data_modifying_statement_on_postgresql(credit_store, monkeypatch):
    """PostgreSQL: the call's insert, the account's conditional update and the ledger entry are one statement
    (one round trip); the same rows as on SQLite, and a repeated ICE or a short account still answered right."""
    store = credit_store
    if store.db.dialect != "postgresql":
        pytest.skip("SQLite runs its statements on the event loop's thread: no round trips to save")
    from callgate.storage import postgres
    statements: list[str] = []
    for method in ("execute", "fetch"):
        real = getattr(postgres._PostgresConnection, method)

        async def traced(self, sql, *args, _real=real):
            statements.append(sql)
            return await _real(self, sql, *args)
        monkeypatch.setattr(postgres._PostgresConnection, method, traced)
    await account_with(store, amount=1_500_000)
    await store.reserve("warm-up", "acme", "+46850001234", fixed_rate(), cap=60, unit=1, grace=600)  # reads currency
    statements.clear()
    first = await reserve(store, "call", cap=600)                                    # 1.00 of 1.40 available
    writes = [sql for sql in statements if not sql.startswith("SELECT")]
    assert len(writes) == 1 and writes[0].startswith("WITH call AS (INSERT INTO credit_calls")
    assert (first.status, first.seconds, first.reserved, first.available) == ("reserved", 600, 1_000_000, 1_400_000)
    again = await reserve(store, "call", cap=600)
    assert (again.status, again.repeated, again.reserved) == ("reserved", True, 1_000_000)
    short = await reserve(store, "short", cap=600)                                   # 0.40 left: 240 s granted
    assert (short.status, short.seconds, short.reserved) == ("reserved", 240, 400_000)
    account = await store.account("acme")
    assert (account.balance, account.reserved) == (1_500_000, 1_500_000)
    assert [(e.kind, e.amount, e.reserved_after) for e in await store.ledger("acme")] == [
        ("topup", 1_500_000, 0), ("reserve", 100_000, 100_000), ("reserve", 1_000_000, 1_100_000),
        ("reserve", 400_000, 1_500_000)]
    await assert_ledger_explains(store, "acme")


async def test_an_unanswered_call_costs_nothing(credit_store):
    store = credit_store
    await account_with(store, amount=1_000_000)
    await reserve(store, "noanswer")
    settled = await store.settle("noanswer", 0, unit=1)
    assert (settled.call.cost, settled.call.billed_seconds) == (0, 0)
    assert (await store.account("acme")).available == 1_000_000


async def test_release_and_limit(credit_store):
    store = credit_store
    await account_with(store, amount=10_000_000)
    await reserve(store, "denied-elsewhere", cap=600)
    released = await store.release("denied-elsewhere", reason="allowlist denied")
    assert released.reserved == 1_000_000
    assert await store.release("denied-elsewhere") is None          # once only
    assert (await store.call("denied-elsewhere")).state == "released"
    await reserve(store, "limited", cap=600)
    assert await store.limit("limited", 120, unit=1, grace=600) == 800_000
    call = await store.call("limited")
    assert (call.max_duration, call.reserved) == (120, 200_000)
    assert await store.limit("limited", 300, unit=1, grace=600) == 0   # never raises a limit
    assert (await store.account("acme")).reserved == 200_000
    await assert_ledger_explains(store, "acme")


async def test_reservations_whose_dice_never_comes_expire_and_a_late_dice_still_settles(credit_store):
    store = credit_store
    await account_with(store, amount=10_000_000)
    start = time.time()
    await reserve(store, "lost", cap=600, now=start)
    await reserve(store, "young", cap=600, now=start + 1000)
    assert await store.overdue(now=start + 600 + 600) == []           # not before maxDuration + grace
    expired = await expire_overdue(store, now=start + 1201)
    assert [c.callid for c in expired] == ["lost"]
    assert await expire_overdue(store, now=start + 1201) == []        # once only
    assert (await store.call("lost")).state == "expired"
    assert (await store.account("acme")).reserved == 1_000_000        # "young" still held
    late = await store.settle("lost", 90, unit=1)
    assert (late.call.cost, late.released) == (200_000, 0)
    assert (await store.account("acme")).balance == 9_800_000
    await assert_ledger_explains(store, "acme")


async def test_rates_import_replace_merge_and_longest_prefix(credit_store, rates_csv):
    store = credit_store
    await store.import_rates(parse_rates(rates_csv))
    assert (await store.find_rate(None, "EUR", "+46701234567")).prefix == "4670"
    assert (await store.find_rate(None, "EUR", "+46850001234")).prefix == "46"
    assert isinstance(await store.find_rate(None, "USD", "+46850001234"), NoRate)
    assert isinstance(await store.find_rate(None, "EUR", "sip:alice"), NoRate)
    await store.import_rates(parse_rates("prefix,currency,per_minute\n468,EUR,0.05\n"), replace=False)
    assert (await store.find_rate(None, "EUR", "+46850001234")).per_minute == 50_000
    assert len(await store.rates()) == 4
    await store.import_rates(parse_rates("prefix,currency,per_minute\n44,GBP,0.05\n"))
    assert [(r.currency, r.prefix) for r in await store.rates()] == [("GBP", "44")]
    assert await store.currencies() == ["GBP"]


async def test_number_table(credit_store):
    store = credit_store
    await account_with(store)
    with pytest.raises(StoreError, match="no account"):
        await store.link_number("+46701234567", "ghost")
    await store.link_number("+46701234567", "acme")
    assert await store.account_for_number("+46701234567") == "acme"
    assert await store.numbers("acme") == ["+46701234567"]
    assert await store.unlink_number("+46701234567") is True
    assert await store.unlink_number("+46701234567") is False
    assert await store.account_for_number("+46701234567") is None


async def test_user_table(credit_store):
    store = credit_store
    await account_with(store)
    with pytest.raises(StoreError, match="no account"):
        await store.link_user("alice", "ghost")
    await store.link_user("alice", "acme")
    await store.link_user("bob", "acme")
    assert await store.account_for_user("alice") == "acme"
    assert await store.account_for_user("Alice") is None                 # user ids are exact, as Sinch sends them
    assert await store.users("acme") == ["alice", "bob"]
    await account_with(store, "family")
    await store.link_user("bob", "family")                               # linking again moves the user
    assert await store.account_for_user("bob") == "family"
    assert await store.unlink_user("alice") is True
    assert await store.unlink_user("alice") is False
    assert await store.account_for_user("alice") is None
    assert await store.numbers("acme") == []                             # the number table is another table


async def test_several_instances_starting_at_once_on_a_fresh_database(callgate_database_url):

    stores = await asyncio.gather(*(CreditStore.open(callgate_database_url) for _ in range(4)))
    try:
        await stores[0].add_account("acme", "EUR")
        assert all([(await s.account("acme")).currency == "EUR" for s in stores])
    finally:
        for s in stores:
            await s.close()


# --- one conditional statement per money move (issue 17) ---------------------------------------------

async def test_two_instances_reserving_more_than_the_balance_together_one_is_denied(two_credit_stores):
    stores = two_credit_stores
    await account_with(stores[0], amount=1_000_000)                 # 1.00: one 10-minute call
    for round_ in range(5):
        results = await asyncio.gather(*(reserve(s, f"race-{round_}-{i}", cap=600)
                                         for i, s in enumerate(stores)))
        assert sorted(r.status for r in results) == (["denied", "reserved"] if round_ == 0 else ["denied"] * 2)
        if round_ == 0:
            [won] = [r for r in results if r.status == "reserved"]
            assert (won.seconds, won.reserved, won.repeated) == (600, 1_000_000, False)
        account = await stores[1].account("acme")
        assert (account.balance, account.reserved, account.available) == (1_000_000, 1_000_000, 0)
    await assert_ledger_explains(stores[0], "acme")


async def test_a_reservation_short_of_the_cap_grants_what_is_left_exactly(credit_store):
    store = credit_store
    await account_with(store, amount=1_500_000)                          # 1.50
    first, second, third = [await reserve(store, f"short-{i}", cap=600) for i in range(3)]
    assert (first.seconds, first.reserved, first.available) == (600, 1_000_000, 1_500_000)
    assert (second.status, second.seconds, second.reserved, second.available) == ("reserved", 300, 500_000, 500_000)
    assert (third.status, third.available, third.reason) == ("denied", 0, "insufficient credit")
    assert (await store.call("short-1")).max_duration == 300
    assert (await store.call("short-2")).state == "denied"
    await assert_ledger_explains(store, "acme")


async def test_the_same_dice_settled_at_two_instances_at_once_bills_once(two_credit_stores):
    stores = two_credit_stores
    await account_with(stores[0], amount=10_000_000)
    for i in range(5):
        await reserve(stores[i % 2], f"twice-{i}", cap=600)
    settled = await asyncio.gather(*(s.settle(f"twice-{i}", 61, unit=1) for i in range(5) for s in stores))
    for i in range(5):
        pair = settled[2 * i:2 * i + 2]
        assert sorted(x.repeated for x in pair) == [False, True]
        assert all((x.call.cost, x.call.billed_seconds) == (200_000, 120) for x in pair)
    account = await stores[0].account("acme")
    assert (account.balance, account.reserved) == (10_000_000 - 5 * 200_000, 0)
    entries = await stores[1].ledger("acme", limit=1000)
    assert [e.kind for e in entries].count("debit") == 5 and [e.kind for e in entries].count("release") == 5
    await assert_ledger_explains(stores[0], "acme")


async def test_a_settlement_writes_its_release_and_debit_in_order_with_their_running_totals(credit_store):
    store = credit_store
    await account_with(store, amount=10_000_000)
    await reserve(store, "call", cap=600)                               # holds 1.00
    await store.settle("call", 61, unit=1)                              # 120 s billed: 0.20
    *_, release, debit = await store.ledger("acme")
    assert (release.kind, release.amount, release.balance_after, release.reserved_after, release.note) == \
        ("release", 1_000_000, 10_000_000, 0, "settled")
    assert (debit.kind, debit.amount, debit.balance_after, debit.reserved_after, debit.note) == \
        ("debit", 200_000, 9_800_000, 0, "120 s billed")
    assert release.id < debit.id


# --- DICEs for calls this plugin denied (issue 15, item 1) -------------------------------------------

async def test_a_dice_for_a_denied_call_changes_nothing_whatever_its_result_and_duration(credit_store):
    store = credit_store
    await account_with(store, "poor", amount=0)
    assert (await reserve(store, "denied-call", "poor")).status == "denied"
    account = await store.account("poor")
    for duration in (60, 0, 3600, 14400):
        assert await store.settle("denied-call", duration, unit=1, sinch_debit=Decimal("0.50"),
                                  sinch_currency="EUR") is None
    assert await store.account("poor") == account
    assert await store.ledger("poor") == []
    call = await store.call("denied-call")
    assert (call.state, call.cost, call.billed_seconds) == ("denied", None, None)
    # and the repeated ICE after those DICEs still gets the first answer: denied, with no time
    repeated = await reserve(store, "denied-call", "poor")
    assert (repeated.status, repeated.seconds, repeated.repeated) == ("denied", 0, True)


async def test_a_repeated_ice_for_a_denied_call_billed_by_an_earlier_version_is_still_denied(credit_store):
    """Databases written before the fix hold denied calls marked settled (their DICE was billed): a call that
    was granted no time is answered as denied, never as an Allow of 0 seconds."""
    store = credit_store
    await account_with(store, "poor", amount=0)
    await reserve(store, "old-denied", "poor")
    await store.db.execute("UPDATE credit_calls SET state = 'settled', cost = 500000 WHERE callid = $1", "old-denied")
    repeated = await reserve(store, "old-denied", "poor")
    assert (repeated.status, repeated.seconds, repeated.repeated) == ("denied", 0, True)


async def test_repeated_ices_and_dices_for_denied_calls_racing_change_nothing(credit_store):
    store = credit_store
    await account_with(store, "poor", amount=40_000)                 # 0.04: less than the first minute (0.10)
    before = await store.account("poor")
    callids = [f"denied-{i}" for i in range(10)]
    work = []
    for callid in callids:
        work += [reserve(store, callid, "poor") for _ in range(3)]
        work += [store.settle(callid, 60 * (n + 1), unit=1) for n in range(3)]
    results = await asyncio.gather(*work)
    reservations = [r for r in results if isinstance(r, Reservation)]
    settlements = [r for r in results if isinstance(r, Settlement)]
    assert len(reservations) == 30 and {r.status for r in reservations} == {"denied"}
    assert {r.seconds for r in reservations} == {0}
    assert settlements == []
    assert await store.account("poor") == before
    assert [e.kind for e in await store.ledger("poor")] == ["topup"]
    assert {(await store.call(c)).state for c in callids} == {"denied"}
    await assert_ledger_explains(store, "poor")


async def test_under_load_dices_for_denied_calls_never_move_the_balance(credit_store):
    """An account runs dry under a burst of calls; the DICEs of every call it could not pay for arrive
    (twice, as from Sinch's primary and fallback URL) among the settlements of the calls it paid for:
    the balance moves by exactly what the paid calls cost."""
    store = credit_store
    await account_with(store, amount=10_000_000)                     # 10.00: 100 minutes at 0.10/min
    callids = [f"load-{i}" for i in range(60)]
    results = await asyncio.gather(*(reserve(store, callid, cap=600) for callid in callids))
    paid = [c for c, r in zip(callids, results) if r.status == "reserved"]
    denied = [c for c, r in zip(callids, results) if r.status == "denied"]
    assert len(paid) == 10 and len(denied) == 50                      # ten calls of 600 s hold the 10.00
    dices = [store.settle(c, 600, unit=1) for c in denied for _ in range(2)]
    dices += [store.settle(c, 120, unit=1) for c in paid]            # each paid call talked 2 minutes: 0.20
    settled = await asyncio.gather(*dices)
    assert sum(s is not None for s in settled) == len(paid)
    account = await store.account("acme")
    assert (account.balance, account.reserved) == (10_000_000 - 10 * 200_000, 0)
    assert {e.callid for e in await store.ledger("acme", limit=1000) if e.kind == "debit"} == set(paid)
    await assert_ledger_explains(store, "acme")
# --- dry runs (callgate simulate) -------------------------------------------------------------------


async def money_state(store, account_id="acme"):
    """Everything a dry run must leave as it was: the account, its ledger, its calls (and the ledger's next id)."""
    account = await store.account(account_id)
    ledger = await store.ledger(account_id, limit=100_000)
    calls = await store.db.fetch("SELECT * FROM credit_calls ORDER BY callid")
    return account, ledger, calls


async def test_dry_runs_answer_as_the_real_thing_and_write_nothing(credit_store):
    """reserve / limit / release / settle with dry_run give the answers the real ones give, in a transaction that
    is rolled back: balance, ledger and calls stay as they were (on PostgreSQL too)."""
    store = credit_store
    await account_with(store, amount=1_000_000)                     # 1.00 EUR at 0.10/min: 10 minutes
    await reserve(store, "held")                                    # a real call in progress, for settle/limit
    before = await money_state(store)

    dry = await store.reserve("new", "acme", "+46850001234", fixed_rate(), cap=3600, unit=1, grace=600, dry_run=True)
    assert (dry.status, dry.available) == ("denied", 0)              # all the credit is held by "held"
    assert await store.limit("held", 60, unit=1, grace=600, dry_run=True) == 900_000
    assert (await store.release("held", reason="dry", dry_run=True)).reserved == 1_000_000
    settled = await store.settle("held", 125, unit=1, dry_run=True)
    assert (settled.call.cost, settled.released, settled.repeated) == (300_000, 1_000_000, False)   # 3 minutes
    assert await store.settle("unknown", 60, unit=1, dry_run=True) is None
    assert await money_state(store) == before

    # The same requests for real answer the same, and then change the money.
    assert await store.settle("held", 125, unit=1) == Settlement_like(settled)
    assert await money_state(store) != before
    after_real = await money_state(store)
    assert (await store.settle("held", 125, unit=1, dry_run=True)).repeated is True
    assert await money_state(store) == after_real


def Settlement_like(settled):
    """A settlement equal to ``settled`` but for the settled_at time (the real one is a moment later)."""
    class Same:
        def __eq__(self, other):
            return (other.call.cost, other.call.billed_seconds, other.released, other.repeated) == \
                (settled.call.cost, settled.call.billed_seconds, settled.released, settled.repeated)
    return Same()


async def test_a_dry_run_does_not_use_up_a_ledger_id(credit_store):
    """On PostgreSQL a rolled-back insert still takes the next value of the ledger's sequence: a dry run inserts
    no ledger row at all, so the next real entry gets the id it would have got."""
    store = credit_store
    await account_with(store, amount=10_000_000)
    last = (await store.ledger("acme"))[-1].id
    await store.reserve("dry", "acme", "+46850001234", fixed_rate(), cap=60, unit=1, grace=600, dry_run=True)
    await reserve(store, "real", cap=60)
    assert (await store.ledger("acme"))[-1].id == last + 1


async def test_open_dry_run_never_creates_or_migrates(tmp_path, callgate_database_url, monkeypatch):
    missing = f"sqlite:///{tmp_path}/none/credit.sqlite3"
    store = await CreditStore.open_dry_run(missing)                  # simulated as an empty store, in memory
    assert await store.accounts() == [] and store.db.dialect == "sqlite"
    await store.close()
    assert not (tmp_path / "none").exists()

    from callgate.storage import Database
    from callgate_credit_check import schema
    db = await Database.connect(callgate_database_url)              # a database without the credit tables
    try:
        store = await CreditStore.open_dry_run(callgate_database_url)
        assert await store.accounts() == []
        await store.close()
        assert await db.applied_migrations("credit_check") == 0      # still without them
        real = await CreditStore.open(callgate_database_url)
        await account_with(real, amount=5)
        await real.close()
        store = await CreditStore.open_dry_run(callgate_database_url)   # up to date: the real store
        assert (await store.account("acme")).balance == 5
        await store.close()
        # A newer plugin (one more migration) on this store: a dry run refuses rather than migrate it.
        current = len(schema._MIGRATIONS)
        monkeypatch.setattr(schema, "_MIGRATIONS", [*schema._MIGRATIONS, "CREATE TABLE credit_newer (id TEXT)"])
        with pytest.raises(DatabaseError, match=f"credit_check tables are at schema version {current} and this version "
                                                f"needs {current + 1}; a dry run does not"):
            await CreditStore.open_dry_run(callgate_database_url)
        assert await db.applied_migrations("credit_check") == current
    finally:
        await db.close()
