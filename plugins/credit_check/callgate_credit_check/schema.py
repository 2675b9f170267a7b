"""The database schema, as numbered migrations applied once at start-up (``Database.migrate``).

Money columns are BIGINT micro-units (see ``money``); times for people are ISO-8601
UTC text; ``expires_at`` is epoch seconds, for the expiry query.  The ledger is
append-only: the plugin only ever inserts into it.
"""

from __future__ import annotations

COMPONENT = "credit_check"

_ID = {"sqlite": "INTEGER PRIMARY KEY AUTOINCREMENT", "postgresql": "BIGSERIAL PRIMARY KEY"}

_MIGRATIONS = [
    """
    CREATE TABLE credit_accounts (
        id TEXT PRIMARY KEY,
        currency TEXT NOT NULL,
        balance BIGINT NOT NULL DEFAULT 0,
        reserved BIGINT NOT NULL DEFAULT 0,
        created_at TEXT NOT NULL,
        updated_at TEXT NOT NULL
    );
    CREATE TABLE credit_numbers (
        number TEXT PRIMARY KEY,
        account_id TEXT NOT NULL REFERENCES credit_accounts (id)
    );
    CREATE TABLE credit_rates (
        currency TEXT NOT NULL,
        prefix TEXT NOT NULL,
        per_minute BIGINT NOT NULL,
        connect_fee BIGINT NOT NULL,
        first_increment INTEGER NOT NULL,
        next_increment INTEGER NOT NULL,
        name TEXT NOT NULL DEFAULT '',
        PRIMARY KEY (currency, prefix)
    );
    CREATE TABLE credit_calls (
        callid TEXT PRIMARY KEY,
        account_id TEXT NOT NULL REFERENCES credit_accounts (id),
        state TEXT NOT NULL,
        currency TEXT NOT NULL,
        destination TEXT,
        prefix TEXT NOT NULL,
        per_minute BIGINT NOT NULL,
        connect_fee BIGINT NOT NULL,
        first_increment INTEGER NOT NULL,
        next_increment INTEGER NOT NULL,
        max_duration INTEGER NOT NULL,
        reserved BIGINT NOT NULL,
        expires_at BIGINT NOT NULL,
        reason TEXT NOT NULL DEFAULT '',
        duration INTEGER,
        billed_seconds INTEGER,
        cost BIGINT,
        sinch_debit TEXT,
        sinch_currency TEXT,
        created_at TEXT NOT NULL,
        settled_at TEXT
    );
    CREATE INDEX credit_calls_due ON credit_calls (state, expires_at);
    CREATE TABLE credit_ledger (
        id {id},
        account_id TEXT NOT NULL REFERENCES credit_accounts (id),
        kind TEXT NOT NULL,
        amount BIGINT NOT NULL,
        balance_after BIGINT NOT NULL,
        reserved_after BIGINT NOT NULL,
        callid TEXT,
        note TEXT NOT NULL DEFAULT '',
        created_at TEXT NOT NULL
    );
    CREATE INDEX credit_ledger_account ON credit_ledger (account_id, id)
    """,
    # 2: the user-to-account table (account_by = "user": in-app callers, by their Sinch user id).
    """
    CREATE TABLE credit_users (
        user_id TEXT PRIMARY KEY,
        account_id TEXT NOT NULL REFERENCES credit_accounts (id)
    )
    """,
]


def migrations(dialect: str) -> list[str]:
    """The migration scripts for ``sqlite`` or ``postgresql``."""
    return [script.replace("{id}", _ID[dialect]) for script in _MIGRATIONS]
