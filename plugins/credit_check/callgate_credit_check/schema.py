"""The database schema, as numbered migrations applied once at start-up (``Database.migrate``).

Money columns are BIGINT micro-units (see ``money``); times for people are ISO-8601
UTC text; ``expires_at`` is epoch seconds, for the expiry query.  The ledger is
append-only: the plugin only ever inserts into it.
"""

from __future__ import annotations

COMPONENT = "credit_check"

_ID = {"sqlite": "INTEGER PRIMARY KEY AUTOINCREMENT", "postgresql": "BIGSERIAL PRIMARY KEY"}

_MIGRATIONS: list[str | dict[str, str]] = [
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
    # 3: the rate table's version, raised by every change to credit_rates however it is made (a trigger), so an
    # instance keeping the rates in memory reads one row per reservation to know they are still current.
    {
        "sqlite": """
    CREATE TABLE credit_rates_version (
        id INTEGER PRIMARY KEY CHECK (id = 1),
        version BIGINT NOT NULL
    );
    INSERT INTO credit_rates_version (id, version) VALUES (1, 1);
    CREATE TRIGGER credit_rates_inserted AFTER INSERT ON credit_rates
    BEGIN UPDATE credit_rates_version SET version = version + 1 WHERE id = 1; END;
    CREATE TRIGGER credit_rates_updated AFTER UPDATE ON credit_rates
    BEGIN UPDATE credit_rates_version SET version = version + 1 WHERE id = 1; END;
    CREATE TRIGGER credit_rates_deleted AFTER DELETE ON credit_rates
    BEGIN UPDATE credit_rates_version SET version = version + 1 WHERE id = 1; END
    """,
        # The function names the version table in the changed table's own schema: it holds whatever the
        # search_path of the session that changes the rates.
        "postgresql": """
    CREATE TABLE credit_rates_version (
        id INTEGER PRIMARY KEY CHECK (id = 1),
        version BIGINT NOT NULL
    );
    INSERT INTO credit_rates_version (id, version) VALUES (1, 1);
    CREATE FUNCTION credit_rates_changed() RETURNS trigger LANGUAGE plpgsql AS $$
    BEGIN
        EXECUTE format('UPDATE %I.credit_rates_version SET version = version + 1 WHERE id = 1', TG_TABLE_SCHEMA);
        RETURN NULL;
    END
    $$;
    CREATE TRIGGER credit_rates_changed AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE ON credit_rates
        FOR EACH STATEMENT EXECUTE PROCEDURE credit_rates_changed()
    """,
    },
]


def migrations(dialect: str) -> list[str]:
    """The migration scripts for ``sqlite`` or ``postgresql``."""
    return [(script if isinstance(script, str) else script[dialect]).replace("{id}", _ID[dialect])
            for script in _MIGRATIONS]
