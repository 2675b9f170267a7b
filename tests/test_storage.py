"""The storage layer plugins share: the same behaviour on SQLite and PostgreSQL."""

import asyncio
import os
from decimal import Decimal

import pytest

from callgate.storage import KEEPALIVE_DETECTION_SECONDS, Database, DatabaseError, redact
from callgate.testing import POSTGRES_DSN_ENV, postgres_schema

MIGRATIONS = [
    "CREATE TABLE counters (name TEXT PRIMARY KEY, value INTEGER NOT NULL)",
    "ALTER TABLE counters ADD COLUMN note TEXT; INSERT INTO counters (name, value) VALUES ('seed', 0)",
]


@pytest.fixture
async def db(callgate_database_url):
    database = await Database.connect(callgate_database_url)
    await database.migrate("test", MIGRATIONS)
    yield database
    await database.close()


async def test_migrations_apply_once(db):
    assert await db.migrate("test", MIGRATIONS) == 2          # again: nothing re-applied
    assert await db.fetchval("SELECT COUNT(*) FROM counters WHERE name = $1", "seed") == 1


async def test_concurrent_transactions_never_lose_an_update(db):
    async def increment():
        async with db.transaction() as tx:
            lock = " FOR UPDATE" if db.dialect == "postgresql" else ""
            value = await tx.fetchval(f"SELECT value FROM counters WHERE name = 'seed'{lock}")
            await asyncio.sleep(0)
            await tx.execute("UPDATE counters SET value = $1 WHERE name = 'seed'", value + 1)

    await asyncio.gather(*(increment() for _ in range(40)))
    assert await db.fetchval("SELECT value FROM counters WHERE name = 'seed'") == 40


async def test_failed_transaction_rolls_back(db):
    with pytest.raises(RuntimeError):
        async with db.transaction() as tx:
            await tx.execute("INSERT INTO counters (name, value) VALUES ($1, $2)", "temp", 1)
            raise RuntimeError("abort")
    assert await db.fetchrow("SELECT * FROM counters WHERE name = 'temp'") is None


async def test_insert_on_conflict_and_rowcount(db):
    sql = "INSERT INTO counters (name, value) VALUES ($1, $2) ON CONFLICT DO NOTHING"
    assert await db.execute(sql, "once", 1) == 1
    assert await db.execute(sql, "once", 2) == 0
    assert await db.fetchval("SELECT value FROM counters WHERE name = $1", "once") == 1


async def test_decimal_money_round_trips_as_text(db):
    await db.execute("INSERT INTO counters (name, value, note) VALUES ($1, 0, $2)", "money", str(Decimal("0.0135")))
    assert Decimal(await db.fetchval("SELECT note FROM counters WHERE name = 'money'")) == Decimal("0.0135")


async def test_unreachable_postgres_is_a_database_error_without_password():
    with pytest.raises(DatabaseError) as err:
        await Database.connect("postgresql://user:hunter2@127.0.0.1:1/none", connect_timeout=1)
    assert "hunter2" not in str(err.value) and "***" in str(err.value)


def test_redact():
    assert redact("postgresql://u:pw@h/db") == "postgresql://u:***@h/db"
    assert redact("sqlite:///x.db") == "sqlite:///x.db"


async def test_unknown_scheme_is_refused():
    with pytest.raises(DatabaseError, match="unsupported database URL"):
        await Database.connect("mysql://x")


async def test_a_sqlite_path_under_a_file_is_a_database_error_naming_that_file(tmp_path):
    """A folder of the path that is a file (a typo in database_url) is said as such, not as ``FileExistsError``."""
    (tmp_path / "rates.csv").write_text("prefix,currency,per_minute\n")
    with pytest.raises(DatabaseError) as err:
        await Database.connect(f"sqlite:///{tmp_path}/rates.csv/credit.sqlite3")
    assert str(err.value) == (f"cannot create the folder of SQLite database {tmp_path}/rates.csv/credit.sqlite3: "
                              f"{tmp_path}/rates.csv is a file, not a folder")


async def test_transaction_cancelled_while_waiting_leaves_the_connection_usable(tmp_path):
    """Another process holds the write lock; our BEGIN IMMEDIATE waits and is cancelled meanwhile."""
    import sqlite3
    path = tmp_path / "locked.sqlite3"
    db = await Database.connect(f"sqlite:///{path}", busy_timeout_ms=400)
    await db.execute("CREATE TABLE t (x INTEGER)")
    other = sqlite3.connect(path, isolation_level=None)
    other.execute("BEGIN IMMEDIATE")                     # holds the write lock

    async def write():
        async with db.transaction() as tx:
            await tx.execute("INSERT INTO t VALUES (1)")

    task = asyncio.create_task(write())
    await asyncio.sleep(0.1)                              # our BEGIN is waiting for the lock
    task.cancel()
    other.execute("COMMIT")                               # the lock frees: the BEGIN would now succeed
    with pytest.raises(asyncio.CancelledError):
        await task
    await write()                                         # the connection is not stuck in a transaction
    assert await db.fetchval("SELECT COUNT(*) FROM t") == 1
    other.close()
    await db.close()


async def test_instances_starting_together_on_a_fresh_database_all_migrate(callgate_database_url):
    async def start():
        db = await Database.connect(callgate_database_url)
        try:
            return await db.migrate("together", MIGRATIONS)
        finally:
            await db.close()

    assert await asyncio.gather(*(start() for _ in range(12))) == [2] * 12
    db = await Database.connect(callgate_database_url)
    assert await db.fetchval("SELECT COUNT(*) FROM callgate_migrations WHERE component = 'together'") == 2
    await db.close()


async def test_sqlite_group_commit_answers_each_transaction_only_once_it_is_durable(tmp_path, monkeypatch):
    """Concurrent transactions share flushes; a failing one is rolled back alone; none returns before
    another connection (another process) can see what it wrote."""
    import sqlite3

    from callgate.storage import SQLiteDatabase
    path = tmp_path / "group.sqlite3"
    db = await Database.connect(f"sqlite:///{path}")
    await db.execute("CREATE TABLE t (x INTEGER PRIMARY KEY)")
    commits = []
    original = SQLiteDatabase._commit

    async def counting(self, group):
        commits.append(group)
        await original(self, group)
    monkeypatch.setattr(SQLiteDatabase, "_commit", counting)
    outside = sqlite3.connect(path, isolation_level=None)

    async def write(x):
        async with db.transaction() as tx:
            await tx.execute("INSERT INTO t VALUES ($1)", x)
            await asyncio.sleep(0)
            if x == 13:
                raise RuntimeError("this one fails")
        return outside.execute("SELECT COUNT(*) FROM t WHERE x = ?", (x,)).fetchone()[0]

    results = await asyncio.gather(*(write(x) for x in range(50)), return_exceptions=True)
    assert isinstance(results[13], RuntimeError)
    assert [r for i, r in enumerate(results) if i != 13] == [1] * 49        # each visible when it returned
    assert outside.execute("SELECT COUNT(*) FROM t").fetchone()[0] == 49    # the failed one left nothing
    assert 1 <= len(commits) < 10, len(commits)                              # flushes were shared
    outside.close()
    await db.close()


async def test_sqlite_failed_flush_fails_every_transaction_of_its_group(tmp_path, monkeypatch):
    import sqlite3

    db = await Database.connect(f"sqlite:///{tmp_path / 'flush.sqlite3'}")
    await db.execute("CREATE TABLE t (x INTEGER PRIMARY KEY)")
    real_execute = sqlite3.Connection.execute

    class FailingCommit(sqlite3.Connection):
        def execute(self, sql, *args):
            if sql == "COMMIT":
                raise sqlite3.OperationalError("disk I/O error")
            return real_execute(self, sql, *args)

    conn = db._conn
    db._conn = FailingCommit(db.path, isolation_level=None, check_same_thread=False)
    db._conn.row_factory = sqlite3.Row
    conn.close()

    async def write(x):
        async with db.transaction() as tx:
            await tx.execute("INSERT INTO t VALUES ($1)", x)

    results = await asyncio.gather(*(write(x) for x in range(5)), return_exceptions=True)
    assert all(isinstance(r, DatabaseError) and "disk I/O error" in str(r) for r in results), results
    assert not db._conn.in_transaction                                     # rolled back, usable again
    monkeypatch.setattr(FailingCommit, "execute", lambda self, sql, *a: real_execute(self, sql, *a))
    await write(99)
    assert await db.fetchval("SELECT COUNT(*) FROM t") == 1                  # only the later one
    await db.close()


@pytest.mark.postgres
@pytest.mark.parametrize("query, idle", [("", "5"), ("&tcp_keepalives_idle=9", "9")])
async def test_postgres_sessions_set_tcp_keepalive_unless_the_url_does(query, idle):
    """A client that becomes unreachable in the middle of a statement (locks held, the server waiting for the
    rest of it, so not "idle in transaction") is noticed by TCP keepalive in seconds, not Linux's two hours."""
    dsn = os.environ.get(POSTGRES_DSN_ENV) or pytest.skip(f"needs {POSTGRES_DSN_ENV}")
    async with postgres_schema(dsn) as url:
        db = await Database.connect(url + query)
        try:
            settings = [await db.fetchval(f"SHOW {name}")
                        for name in ("tcp_keepalives_idle", "tcp_keepalives_interval", "tcp_keepalives_count")]
        finally:
            await db.close()
    assert settings == [idle, "2", "3"]
    assert KEEPALIVE_DETECTION_SECONDS == 11


@pytest.mark.postgres
async def test_postgres_connection_goes_back_to_the_pool_without_a_reset_round_trip():
    """The last statement a pooled session ran is the transaction's COMMIT: asyncpg's reset query (RESET ALL, ...),
    a round trip per transaction on every answer's way, is not sent; and what the transaction SET LOCAL is gone."""
    dsn = os.environ.get(POSTGRES_DSN_ENV) or pytest.skip(f"needs {POSTGRES_DSN_ENV}")
    async with postgres_schema(dsn) as url:
        db = await Database.connect(url, max_size=1)
        watcher = await Database.connect(url)
        try:
            async with db.transaction() as tx:
                pid = await tx.fetchval("SELECT pg_backend_pid()")
                assert await tx.fetchval("SHOW lock_timeout") == "5s"
            for _ in range(50):      # pg_stat_activity shows a statement once the backend has reported it
                row = await watcher.fetchrow("SELECT state, query FROM pg_stat_activity WHERE pid = $1", pid)
                if row and row["state"] == "idle":
                    break
                await asyncio.sleep(0.02)
            assert row == {"state": "idle", "query": "COMMIT"}
            assert await db.fetchval("SELECT pg_backend_pid()") == pid          # the same pooled session
            assert await db.fetchval("SHOW lock_timeout") == "0"               # SET LOCAL ended with its transaction
        finally:
            await watcher.close()
            await db.close()


# --- rollback-only transactions and read-only checks (dry runs: `callgate simulate`) ---------------


async def test_rollback_only_transaction_sees_its_writes_then_leaves_nothing(db):
    """``transaction(rollback=True)`` runs every statement as a real one would (its reads see its writes, its
    rowcounts are real) and ends by rolling back: the same answer, nothing written."""
    async with db.transaction(rollback=True) as tx:
        assert await tx.execute("UPDATE counters SET value = value + 5 WHERE name = 'seed'") == 1
        assert await tx.execute("INSERT INTO counters (name, value) VALUES ($1, $2)", "dry", 1) == 1
        assert await tx.fetchval("SELECT value FROM counters WHERE name = 'seed'") == 5
        assert await tx.fetchval("SELECT value FROM counters WHERE name = 'dry'") == 1
    assert await db.fetchval("SELECT value FROM counters WHERE name = 'seed'") == 0
    assert await db.fetchrow("SELECT * FROM counters WHERE name = 'dry'") is None
    async with db.transaction() as tx:                       # an ordinary transaction still commits
        await tx.execute("INSERT INTO counters (name, value) VALUES ($1, $2)", "kept", 2)
    assert await db.fetchval("SELECT value FROM counters WHERE name = 'kept'") == 2


async def test_rollback_only_transactions_beside_real_ones_roll_back_only_themselves(db):
    """On SQLite transactions are group-committed savepoints: a rolled-back member must not take the others'
    writes with it, nor have its own committed by them."""
    async def real(i: int) -> None:
        async with db.transaction() as tx:
            await tx.execute("INSERT INTO counters (name, value) VALUES ($1, $2)", f"real{i}", i)
            await asyncio.sleep(0)

    async def dry(i: int) -> None:
        async with db.transaction(rollback=True) as tx:
            await tx.execute("INSERT INTO counters (name, value) VALUES ($1, $2)", f"dry{i}", i)
            await tx.execute("UPDATE counters SET value = value + 1 WHERE name = 'seed'")
            await asyncio.sleep(0)

    await asyncio.gather(*(f(i) for i in range(10) for f in (real, dry)))
    names = {r["name"] for r in await db.fetch("SELECT name FROM counters")}
    assert names == {"seed", *(f"real{i}" for i in range(10))}
    assert await db.fetchval("SELECT value FROM counters WHERE name = 'seed'") == 0


async def test_a_rollback_only_transaction_leaves_the_sqlite_file_byte_for_byte(tmp_path):
    """A savepoint rolled back inside a group leaves its pages dirty, and the group's COMMIT would write them,
    unchanged, to the file (its header's change counter moves).  A rollback-only transaction is its own
    SQLite transaction, rolled back whole: after it, and after closing, the file is as it was."""
    path = tmp_path / "dry.sqlite3"
    database = await Database.connect(f"sqlite:///{path}")
    await database.migrate("test", MIGRATIONS)
    await database.execute("INSERT INTO counters (name, value) VALUES ($1, $2)", "real", 1)
    await database.close()
    before = path.read_bytes()
    database = await Database.connect(f"sqlite:///{path}")
    try:
        for i in range(3):
            async with database.transaction(rollback=True) as tx:     # a large note: the file grows (page 1)
                await tx.execute("INSERT INTO counters (name, value, note) VALUES ($1, $2, $3)", f"dry{i}", i, "x" * 20_000)
                await tx.execute("UPDATE counters SET value = value + 1 WHERE name = 'real'")
    finally:
        await database.close()
    assert path.read_bytes() == before


async def test_applied_migrations_reads_the_version_without_creating_anything(callgate_database_url):
    database = await Database.connect(callgate_database_url)
    try:
        assert await database.applied_migrations("test") == 0       # no bookkeeping table yet: 0, and none made
        assert await database.applied_migrations("test") == 0
        tables = ("SELECT COUNT(*) FROM information_schema.tables WHERE table_name = 'callgate_migrations' "
                  "AND table_schema = current_schema()") if database.dialect == "postgresql" else \
                 "SELECT COUNT(*) FROM sqlite_master WHERE name = 'callgate_migrations'"
        assert await database.fetchval(tables) == 0
        await database.migrate("test", MIGRATIONS[:1])
        assert await database.applied_migrations("test") == 1
        assert await database.applied_migrations("other") == 0
    finally:
        await database.close()


async def test_plugins_sharing_a_sqlite_url_share_one_database_and_its_group_commit(tmp_path):
    """``shared=True``: one connection per file in a process, so the transactions of two plugins on one file
    are one group (one flush), and the last ``close()`` closes it."""
    url = f"sqlite:///{tmp_path / 'both.sqlite3'}"
    first, second = await asyncio.gather(Database.connect(url, shared=True), Database.connect(url, shared=True))
    assert first is second
    alone = await Database.connect(url)                   # not shared: a connection of its own
    assert alone is not first
    await first.migrate("one", ["CREATE TABLE one (x INTEGER)"])
    await second.migrate("two", ["CREATE TABLE two (x INTEGER)"])

    async def write(table: str, value: int) -> None:
        async with first.transaction() as tx:
            await tx.execute(f"INSERT INTO {table} VALUES ($1)", value)

    statements: list[str] = []
    first._conn.set_trace_callback(statements.append)
    await asyncio.gather(*(write("one" if i % 2 else "two", i) for i in range(10)))
    assert statements.count("COMMIT") == 1                # both tables' writes in one group, one flush
    await first.close()
    assert await second.fetchval("SELECT COUNT(*) FROM one") == 5     # still open for the other user
    await second.close()
    with pytest.raises(DatabaseError, match="closed"):
        await second.fetchval("SELECT 1")
    again = await Database.connect(url, shared=True)      # a new one once the last user closed it
    assert again is not first and await again.fetchval("SELECT COUNT(*) FROM two") == 5
    await again.close()
    await alone.close()


async def test_a_sqlite_page_size_applies_to_a_file_it_creates_and_never_to_one_that_exists(tmp_path):
    async def page_size(path, **options) -> int:
        db = await Database.connect(f"sqlite:///{path}", **options)
        try:
            await db.migrate("pages", ["CREATE TABLE t (x BLOB)"])
            return int(await db.fetchval("PRAGMA page_size"))
        finally:
            await db.close()
    assert await page_size(tmp_path / "big.db", page_size=65536) == 65536
    assert await page_size(tmp_path / "big.db") == 65536                    # the file keeps its own
    assert await page_size(tmp_path / "small.db") == 4096
    assert await page_size(tmp_path / "small.db", page_size=65536) == 4096   # never changed once it exists


@pytest.mark.postgres
async def test_a_page_size_is_ignored_by_postgres():
    """A component asks for its SQLite page size whatever its URL (the console does); PostgreSQL takes no such option."""
    dsn = os.environ.get(POSTGRES_DSN_ENV) or pytest.skip(f"needs {POSTGRES_DSN_ENV}")
    async with postgres_schema(dsn) as url:
        db = await Database.connect(url, page_size=65536)
        try:
            assert db.dialect == "postgresql" and await db.fetchval("SELECT 1") == 1
        finally:
            await db.close()
