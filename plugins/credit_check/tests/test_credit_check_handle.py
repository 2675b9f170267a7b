"""The database handle: one connection attempt at a time, paced while the database is unreachable."""

import asyncio

import pytest

from callgate.storage import DatabaseError
from callgate.testing import free_port
from callgate_credit_check.handle import StoreHandle
from callgate_credit_check.store import CreditStore


class Clock:
    def __init__(self):
        self.now = 1000.0

    def __call__(self):
        return self.now


async def test_unreachable_is_tried_once_per_interval_and_recovers(tmp_path):
    down = f"postgresql://postgres@127.0.0.1:{free_port()}/test"
    up = f"sqlite:///{tmp_path}/credit.sqlite3"
    tried = []
    reachable = False

    async def opener(url):                  # the real CreditStore.open, on a database that is down, then up
        tried.append(url)
        return await CreditStore.open(up if reachable else down)

    clock = Clock()
    handle = StoreHandle("postgresql://ignored", retry_seconds=5, opener=opener, clock=clock)
    results = await asyncio.gather(*(handle.get() for _ in range(20)), return_exceptions=True)
    assert all(isinstance(r, DatabaseError) for r in results)
    assert len(tried) == 1                                       # 20 waiting calls, one attempt
    with pytest.raises(DatabaseError, match=r"cannot connect .*\(next attempt within 5 s\)"):
        await handle.get()
    assert len(tried) == 1                                       # not again within the interval
    assert handle.error is not None
    reachable, clock.now = True, clock.now + 5
    store = await handle.get()
    assert len(tried) == 2 and handle.error is None
    assert await handle.get() is store
    await handle.close()
