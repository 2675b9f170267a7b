"""run_transaction: a PostgreSQL transaction that lost a deadlock or a serialization race runs again."""

import asyncio
import os
from collections import Counter

import pytest

from callgate.storage import Database, DatabaseError, SerializationError, TransactionConflict
from callgate.testing import POSTGRES_DSN_ENV, postgres_schema


@pytest.fixture
async def postgres_url():
    dsn = os.environ.get(POSTGRES_DSN_ENV) or pytest.skip(f"needs {POSTGRES_DSN_ENV}")
    async with postgres_schema(dsn) as url:
        yield url


async def open_db(url: str, **options) -> Database:
    db = await Database.connect(url, **options)
    await db.migrate("test", ["CREATE TABLE counters (name TEXT PRIMARY KEY, value INTEGER NOT NULL); "
                              "INSERT INTO counters (name, value) VALUES ('a', 0), ('b', 0)"])
    return db


async def deadlock(db: Database) -> tuple[list, Counter]:
    """Two transactions lock 'a' and 'b' in opposite orders, each waiting until the other holds its first
    row (the first time they run): PostgreSQL ends one of them to break the deadlock."""
    both_hold_one = asyncio.Barrier(2)
    runs: Counter = Counter()

    async def move(first: str, second: str) -> str:
        async def work(tx) -> str:
            runs[first] += 1
            await tx.execute("UPDATE counters SET value = value + 1 WHERE name = $1", first)
            if runs[first] == 1:
                await both_hold_one.wait()
            await tx.execute("UPDATE counters SET value = value + 1 WHERE name = $1", second)
            return first
        return await db.run_transaction(work)

    results = await asyncio.gather(move("a", "b"), move("b", "a"), return_exceptions=True)
    return results, runs


@pytest.mark.postgres
async def test_the_loser_of_a_deadlock_runs_again_and_both_commit(postgres_url):
    db = await open_db(postgres_url)
    try:
        results, runs = await deadlock(db)
        assert results == ["a", "b"]
        assert sorted(runs.values()) == [1, 2]            # one transaction ran twice
        rows = await db.fetch("SELECT name, value FROM counters ORDER BY name")
        assert [(r["name"], r["value"]) for r in rows] == [("a", 2), ("b", 2)]   # each committed once
    finally:
        await db.close()


@pytest.mark.postgres
async def test_without_retries_the_deadlock_reaches_the_caller_as_a_database_error(postgres_url):
    db = await open_db(postgres_url, transaction_attempts=1)
    try:
        results, runs = await deadlock(db)
        [error] = [r for r in results if isinstance(r, BaseException)]
        assert isinstance(error, DatabaseError) and isinstance(error, TransactionConflict)
        assert "deadlock" in str(error).lower()
        assert sorted(runs.values()) == [1, 1]
    finally:
        await db.close()


@pytest.mark.postgres
async def test_a_serialization_failure_is_tried_a_bounded_number_of_times(postgres_url):
    """Every run loses to a write committed meanwhile: run three times, then the error reaches the caller."""
    db = await open_db(postgres_url, transaction_attempts=3)
    runs = 0

    async def work(tx) -> None:
        nonlocal runs
        runs += 1
        await tx.fetchval("SELECT value FROM counters WHERE name = 'a'")              # the snapshot is taken
        await db.execute("UPDATE counters SET value = value + 10 WHERE name = 'a'")   # another session commits
        await tx.execute("UPDATE counters SET value = value + 1 WHERE name = 'a'")

    try:
        with pytest.raises(SerializationError) as raised:
            await db.run_transaction(work, serializable=True)
        assert runs == 3 and "3 tries" in str(raised.value)
        assert await db.fetchval("SELECT value FROM counters WHERE name = 'a'") == 30   # none of the tx's writes
    finally:
        await db.close()


async def test_a_transaction_without_conflict_runs_once_and_returns_its_result(callgate_database_url):
    db = await Database.connect(callgate_database_url)
    try:
        await db.migrate("test", ["CREATE TABLE counters (name TEXT PRIMARY KEY, value INTEGER NOT NULL)"])
        runs = []

        async def work(tx) -> int:
            runs.append(1)
            await tx.execute("INSERT INTO counters (name, value) VALUES ('x', 7)")
            return await tx.fetchval("SELECT value FROM counters WHERE name = 'x'")

        assert await db.run_transaction(work) == 7 and runs == [1]
    finally:
        await db.close()
