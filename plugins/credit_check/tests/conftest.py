"""Fixtures shared by the credit_check tests (no test module imports another: names stay unique)."""

import asyncio

import pytest

from callgate_credit_check.store import CreditStore

pytest_plugins = ["callgate.testing"]

#: The rate table most tests use: Sweden 0.10/min by the minute, Swedish mobiles 0.12/min + 0.01 by 30/6.
RATES_CSV = """prefix,currency,per_minute,connect_fee,increments,name
+46,EUR,0.10,0,60/60,Sweden
+4670,EUR,0.12,0.01,30/6,Sweden mobile
+1,USD,0.01,,1/1,North America
"""


@pytest.fixture
def rates_csv() -> str:
    return RATES_CSV


@pytest.fixture
async def credit_store(callgate_database_url):
    """A CreditStore on a fresh database (SQLite, then PostgreSQL when configured), schema applied."""
    store = await CreditStore.open(callgate_database_url)
    yield store
    await store.close()


@pytest.fixture
async def two_credit_stores(callgate_database_url):
    """Two CreditStores on one fresh database, each with its own connection(s), as two callgate instances have."""
    stores = await asyncio.gather(CreditStore.open(callgate_database_url), CreditStore.open(callgate_database_url))
    yield stores
    for store in stores:
        await store.close()
