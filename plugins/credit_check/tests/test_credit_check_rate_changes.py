"""Rates kept in memory (issue 17): a change to the rate table, however it is made, is used by the next reservation.

Each store keeps the rate table in memory and reads the table's version row inside every reservation; every
change to ``credit_rates`` raises that version (schema triggers).  These tests change the rates from another
store (another callgate instance, or the ``callgate credit rates import`` command) and by hand in SQL, on
SQLite and on PostgreSQL, and check what the next reservation reserves.
"""


from callgate.storage import Database
from callgate_credit_check.rate_csv import parse_rates
from callgate_credit_check.store import NoRate

LANDLINE = "+46850001234"
MOBILE = "+46701234567"


def rates(*rows: str) -> list:
    return parse_rates("prefix,currency,per_minute,increments\n" + "\n".join(rows) + "\n")


def table_lookup(store, number=LANDLINE):
    """The plugin's lookup (``rates = "table"``): the rate table's longest prefix of ``number``."""
    async def lookup(tx, currency):
        return await store.find_rate(tx, currency, number)
    return lookup


async def reserve(store, callid, number=LANDLINE):
    return await store.reserve(callid, "acme", number, table_lookup(store, number), cap=600, unit=1, grace=600)


async def reserved_per_minute(store, callid):
    """The per-minute price the call was reserved at, and what it holds (10 minutes of it)."""
    call = await store.call(callid)
    return call.rate.per_minute, call.reserved


async def funded(stores):
    """``stores`` (the fixture ``two_credit_stores``), with the account ``acme`` holding 100.00 EUR."""
    await stores[0].add_account("acme", "EUR")
    await stores[0].credit("acme", 100_000_000)
    return stores


async def test_a_rate_imported_by_another_instance_is_used_by_the_next_reservation(two_credit_stores):
    a, b = await funded(two_credit_stores)
    await b.import_rates(rates("+46,EUR,0.10,60/60"))
    assert (await reserve(a, "c1")).status == "reserved"
    assert (await reserve(b, "c2")).status == "reserved"      # both instances now hold the table in memory
    assert await reserved_per_minute(a, "c1") == (100_000, 1_000_000)

    await b.import_rates(rates("+46,EUR,0.20,60/60"))         # replaced by the other instance
    assert (await reserve(a, "c3")).reserved == 2_000_000
    assert await reserved_per_minute(a, "c3") == (200_000, 2_000_000)

    await a.import_rates(rates("+4670,EUR,0.50,60/60"), replace=False)   # merged: a longer prefix appears
    assert (await reserve(b, "c4", MOBILE)).reserved == 5_000_000
    assert (await reserve(b, "c5", LANDLINE)).reserved == 2_000_000

    await a.import_rates(rates("+1,EUR,0.01,1/1"))            # replaced: no rate for Sweden any more
    result = await reserve(b, "c6")
    assert (result.status, result.reserved) == ("no_rate", 0)
    await b.import_rates(rates("+46,EUR,0.30,60/60"))         # and back: a call denied for no rate is not cached
    assert (await reserve(a, "c7")).reserved == 3_000_000

    account = await a.account("acme")
    assert account.reserved == 1_000_000 * 2 + 2_000_000 * 2 + 5_000_000 + 3_000_000


async def test_a_rate_changed_by_hand_in_sql_is_used_by_the_next_reservation(two_credit_stores, callgate_database_url):
    store, _ = await funded(two_credit_stores)
    db = await Database.connect(callgate_database_url)          # an operator's own SQL session
    try:
        await store.import_rates(rates("+46,EUR,0.10,60/60"))
        assert (await reserve(store, "c1")).reserved == 1_000_000

        await db.execute("UPDATE credit_rates SET per_minute = 400000 WHERE prefix = '46'")
        assert (await reserve(store, "c2")).reserved == 4_000_000

        await db.execute("INSERT INTO credit_rates (currency, prefix, per_minute, connect_fee, first_increment, "
                         "next_increment, name) VALUES ('EUR', '4685', 50000, 0, 60, 60, 'Stockholm')")
        assert (await reserve(store, "c3")).reserved == 500_000

        await db.execute("DELETE FROM credit_rates")
        assert isinstance(await store.find_rate(None, "EUR", LANDLINE), NoRate)
        assert (await reserve(store, "c4")).status == "no_rate"

        if db.dialect == "postgresql":
            await db.execute("INSERT INTO credit_rates (currency, prefix, per_minute, connect_fee, first_increment, "
                             "next_increment, name) VALUES ('EUR', '46', 100000, 0, 60, 60, '')")
            assert (await reserve(store, "c5")).reserved == 1_000_000
            await db.execute("TRUNCATE credit_rates")
            assert (await reserve(store, "c6")).status == "no_rate"
    finally:
        await db.close()


async def test_the_rate_table_is_read_once_while_it_does_not_change(two_credit_stores, monkeypatch):
    store, other = await funded(two_credit_stores)
    await other.import_rates(rates("+46,EUR,0.10,60/60", "+4670,EUR,0.12,60/60", "+1,USD,0.01,1/1"))
    reads = []
    original = store._rate_table

    async def counted(conn, currency):
        table = await original(conn, currency)
        reads.append(len(table))
        return table
    monkeypatch.setattr(store, "_rate_table", counted)
    for i in range(5):
        assert (await reserve(store, f"c{i}")).reserved == 1_000_000
    assert reads == [2] * 5                                   # the EUR rates only
    assert store._rates_version is not None and list(store._rates) == ["EUR"]
    version = store._rates_version
    await other.import_rates(rates("+46,EUR,0.10,60/60"))
    assert (await reserve(store, "c9")).reserved == 1_000_000
    assert store._rates_version != version and reads[-1] == 1


async def test_the_rates_in_memory_add_nothing_to_the_garbage_collectors_work(credit_store):
    """A big rate table kept in memory must not lengthen CPython's full collections (which stop the event loop):
    its rows are tuples of plain values, which the collector stops tracking."""
    import gc

    store = credit_store
    await store.add_account("acme", "EUR")
    await store.credit("acme", 100_000_000)
    await store.import_rates(rates(*(f"+46{i:04d},EUR,0.{i % 90 + 10},60/60" for i in range(2000)),
                                   "+46,EUR,0.10,60/60"))
    assert (await reserve(store, "c1")).reserved == 1_000_000
    gc.collect()
    table = store._rates["EUR"]
    assert len(table) == 2001
    assert not any(gc.is_tracked(row) for row in table.values())
    rate = await store.find_rate(None, "EUR", "+4600051234")        # the longest prefix, as a Rate
    assert (rate.prefix, rate.per_minute, str(rate.increments)) == ("460005", 150_000, "60/60")
