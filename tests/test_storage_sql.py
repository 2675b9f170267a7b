"""SQL text as written: a ``;`` or a ``$1`` inside a string literal, a comment or a trigger body is not
touched by the migration runner or the placeholder handling, on SQLite and PostgreSQL alike."""

import pytest

from callgate.storage import Database, sqlite_statements

COMMON = """
    CREATE TABLE notes (id INTEGER PRIMARY KEY, body TEXT NOT NULL, seen INTEGER NOT NULL DEFAULT 0);
    -- a comment; with a semicolon and a $1
    INSERT INTO notes (id, body) VALUES (1, 'first; second'), (2, 'costs $1; or $2');
    /* a block comment; also $1 */
    INSERT INTO notes (id, body) VALUES (3, 'it''s; quoted')
"""
#: A trigger whose body has several statements, each ending in ``;``.
TRIGGER = {
    "sqlite": """
        CREATE TABLE audit (note_id INTEGER NOT NULL, what TEXT NOT NULL);
        CREATE TRIGGER notes_seen AFTER UPDATE OF seen ON notes
        BEGIN
            INSERT INTO audit (note_id, what) VALUES (new.id, 'seen; once');
            INSERT INTO audit (note_id, what) VALUES (new.id, 'and again');
        END;
    """,
    "postgresql": """
        CREATE TABLE audit (note_id INTEGER NOT NULL, what TEXT NOT NULL);
        CREATE FUNCTION notes_seen() RETURNS trigger LANGUAGE plpgsql AS $$
        BEGIN
            INSERT INTO audit (note_id, what) VALUES (new.id, 'seen; once');
            INSERT INTO audit (note_id, what) VALUES (new.id, 'and again');
            RETURN new;
        END;
        $$;
        CREATE TRIGGER notes_seen AFTER UPDATE OF seen ON notes FOR EACH ROW EXECUTE FUNCTION notes_seen();
    """,
}


@pytest.fixture
async def db(callgate_database_url):
    database = await Database.connect(callgate_database_url)
    yield database
    await database.close()


async def test_a_semicolon_in_a_string_or_a_comment_does_not_end_a_migration_statement(db):
    await db.migrate("notes", [COMMON])
    rows = await db.fetch("SELECT id, body FROM notes ORDER BY id")
    assert [(r["id"], r["body"]) for r in rows] == [(1, "first; second"), (2, "costs $1; or $2"),
                                                    (3, "it's; quoted")]


async def test_a_trigger_whose_body_has_several_statements_migrates_and_fires(db):
    await db.migrate("notes", [COMMON, TRIGGER[db.dialect]])
    await db.execute("UPDATE notes SET seen = 1 WHERE id = $1", 2)
    rows = await db.fetch("SELECT note_id, what FROM audit ORDER BY what DESC")
    assert [(r["note_id"], r["what"]) for r in rows] == [(2, "seen; once"), (2, "and again")]


async def test_a_dollar_placeholder_inside_a_string_literal_is_text(db):
    assert await db.fetchval("SELECT CAST($1 AS TEXT) || ' costs $1' || CAST($2 AS TEXT)", "tea", "!") == \
        "tea costs $1!"
    assert await db.fetchval("SELECT CAST($2 AS TEXT) || '$2''s' || CAST($1 AS TEXT) -- and $1\n", "y", "x") == \
        "x$2'sy"


async def test_a_dollar_placeholder_inside_a_quoted_name_or_a_block_comment_is_text(db):
    row = await db.fetchrow('SELECT /* $2 */ CAST($1 AS TEXT) AS "price$2"', "one")
    assert row == {"price$2": "one"}


async def test_placeholders_may_come_in_any_order_and_repeat(db):
    row = await db.fetchrow("SELECT CAST($2 AS TEXT) AS b, CAST($1 AS TEXT) AS a, CAST($2 AS TEXT) AS b2", "A", "B")
    assert row == {"b": "B", "a": "A", "b2": "B"}


def test_sqlite_statements_split_where_sqlite_ends_a_statement():
    assert sqlite_statements("CREATE TABLE a (x TEXT DEFAULT ';'); ; CREATE TABLE b (y)") == \
        ["CREATE TABLE a (x TEXT DEFAULT ';');", "CREATE TABLE b (y)"]
    assert len(sqlite_statements(TRIGGER["sqlite"])) == 2
    assert sqlite_statements("  \n") == []
