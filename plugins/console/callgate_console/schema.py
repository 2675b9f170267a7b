"""The console store's schema and the two statements that write a batch (shared by :mod:`.store` and the SQLite
writer thread, :mod:`.writer`)."""

from __future__ import annotations

COMPONENT = "console"
_TABLE = """
    CREATE TABLE console_callbacks (
        id {id},
        received_at DOUBLE PRECISION NOT NULL,
        minute BIGINT NOT NULL,
        generation TEXT NOT NULL,
        event TEXT NOT NULL,
        kind TEXT NOT NULL,
        call_key TEXT,
        callid TEXT,
        caller TEXT,
        callee TEXT,
        status INTEGER NOT NULL,
        decision TEXT,
        deciding_plugin TEXT,
        reason TEXT,
        summary TEXT NOT NULL,
        problem TEXT,
        ms DOUBLE PRECISION NOT NULL,
        headers TEXT NOT NULL,
        body TEXT NOT NULL,
        answer TEXT NOT NULL,
        trace TEXT NOT NULL
    );
    CREATE INDEX console_callbacks_time ON console_callbacks (received_at);
    CREATE INDEX console_callbacks_key ON console_callbacks (call_key);
"""
_CALL_HASH = """
    ALTER TABLE console_callbacks ADD COLUMN call_hash BIGINT;
    DROP INDEX console_callbacks_key;
    CREATE INDEX console_callbacks_call ON console_callbacks (call_hash);
"""
#: 0.4.0: callbacks are stored in batches (see the module docstring).  The callbacks an earlier 0.4.0
#: development build recorded, a row each, are dropped with their table.
_BATCHES = """
    DROP TABLE console_callbacks;
    CREATE TABLE console_batches (
        id {id},
        first_id BIGINT NOT NULL,
        size INTEGER NOT NULL,
        first_at DOUBLE PRECISION NOT NULL,
        last_at DOUBLE PRECISION NOT NULL,
        calls TEXT NOT NULL,
        numbers TEXT NOT NULL,
        summaries {blob} NOT NULL,
        details {blob} NOT NULL
    );
    CREATE INDEX console_batches_first ON console_batches (first_id);
    CREATE INDEX console_batches_last ON console_batches (last_at);
    CREATE TABLE console_sequence (next_id BIGINT NOT NULL);
    INSERT INTO console_sequence (next_id) VALUES (1);
"""

#: 0.4.0: a batch's blobs are zstd frames and its traces the log line's ``{"plugin", "hook", "status", "verdict",
#: "ms"}`` maps.  What an earlier 0.4.0 development build recorded (plain MessagePack, traces as lists) is dropped.
_COMPRESSED = "DELETE FROM console_batches"


def migrations(dialect: str) -> list[str]:
    """The schema, for ``Database.migrate``: the id column is each dialect's growing integer."""
    postgres = dialect == "postgresql"
    ids = "BIGSERIAL PRIMARY KEY" if postgres else "INTEGER PRIMARY KEY AUTOINCREMENT"
    return [_TABLE.format(id=ids), _CALL_HASH, _BATCHES.format(id=ids, blob="BYTEA" if postgres else "BLOB"),
            _COMPRESSED]


#: The most callbacks in one batch: the live feed finds the batches after an id among those whose first id is at most
#: this much lower (an index range, not a scan of the store).
MAX_BATCH = 2000
#: The columns of a batch, in the order :data:`INSERT` takes them: its first callback's id, then
#: :class:`~.record.Packed`'s fields.
COLUMNS = ("first_id", "size", "first_at", "last_at", "calls", "numbers", "summaries", "details")
#: The ids of a batch's callbacks (``$1`` of them), handed out in the batch's own transaction: the first is returned.
TAKE_IDS = "UPDATE console_sequence SET next_id = next_id + $1 RETURNING next_id - $1"
INSERT = f"INSERT INTO console_batches ({', '.join(COLUMNS)}) VALUES ({', '.join(f'${n}' for n in range(1, 9))})"
