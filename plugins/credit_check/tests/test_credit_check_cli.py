"""``callgate credit ...``: the real command, in its own process, on SQLite and PostgreSQL."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

#: Starts the real callgate command or waits in real time: skipped by -m 'not slow'.
pytestmark = pytest.mark.slow

CALLGATE = str(Path(sys.executable).with_name("callgate"))


@pytest.fixture
def credit(tmp_path, callgate_database_url):
    """``credit("topup", "+46...", "10")`` -> CompletedProcess of ``callgate credit ...`` with a config naming the DB."""
    config = tmp_path / "config.toml"
    config.write_text('[plugins]\nenabled = ["credit_check"]\n'
                      '[plugins.credit_check]\ndatabase_url = { env = "CREDIT_DATABASE_URL" }\n')

    def run(*args, config_path=config):
        env = {"PATH": "/usr/bin:/bin", "CREDIT_DATABASE_URL": callgate_database_url}
        return subprocess.run([CALLGATE, "credit", *args, "--config", str(config_path)], capture_output=True,
                              text=True, env=env, cwd=tmp_path, timeout=60)
    return run


def ok(result):
    assert result.returncode == 0, result.stderr
    return result.stdout


def refused(result, message, status=1):
    assert result.returncode == status, result.stdout
    assert message in result.stderr
    assert "Traceback" not in result.stderr


def test_accounts_top_up_balance_and_ledger(credit):
    assert "added account +46701234567 (EUR)" in ok(credit("add", "46 70 123 45 67", "--currency", "eur"))
    refused(credit("add", "+46701234567", "--currency", "EUR"), "already exists")
    refused(credit("add", "acme", "--currency", "EUR"), "not a phone number", status=2)   # a usage error
    ok(credit("topup", "+46701234567", "10.50", "--note", "card payment"))
    ok(credit("adjust", "+46701234567", "-0.50", "--note", "correction"))
    refused(credit("topup", "+46701234567", "-1"), "must not be negative")
    refused(credit("topup", "+46701234567", "0.0000001"), "more than 6 decimal places")
    refused(credit("topup", "+46709999999", "1"), "no account '+46709999999'")
    balance = json.loads(ok(credit("balance", "+46701234567", "--json")))
    assert balance == {"account": "+46701234567", "currency": "EUR", "balance": "10.00", "reserved": "0.00",
                       "available": "10.00", "numbers": [], "users": [], "open_calls": []}
    ledger = json.loads(ok(credit("ledger", "+46701234567", "--json")))
    assert [(e["kind"], e["amount"], e["balance"], e["note"]) for e in ledger] == \
        [("topup", "10.50", "10.50", "card payment"), ("adjust", "-0.50", "10.00", "correction")]
    text = ok(credit("balance", "+46701234567"))
    assert "available" in text and "10.00" in text
    assert "card payment" in ok(credit("ledger", "+46701234567"))
    assert json.loads(ok(credit("accounts", "--json")))[0]["account"] == "+46701234567"


def test_rates_import_export_and_quote(credit, tmp_path, rates_csv):
    (tmp_path / "rates.csv").write_text(rates_csv)
    assert "imported 3 rate(s)" in ok(credit("rates", "import", "rates.csv"))
    assert ok(credit("rates", "export")).splitlines()[1:] == [
        "+46,EUR,0.10,0.00,60/60,Sweden", "+4670,EUR,0.12,0.01,30/6,Sweden mobile",
        "+1,USD,0.01,0.00,1/1,North America"]
    (tmp_path / "bad.csv").write_text("prefix,currency,per_minute\n44,GBP,0.05\n45,DKK,abc\n")
    refused(credit("rates", "import", "bad.csv"), "bad.csv:3: per_minute: 'abc' is not a number")
    (tmp_path / "latin1.csv").write_bytes("prefix,currency,per_minute,name\n46,EUR,0.10,Sverige\n47,NOK,0.2,Norge s\u00f8r\n"
                                          .encode("latin-1"))
    refused(credit("rates", "import", "latin1.csv"), "latin1.csv:3: not UTF-8 text (byte 0xf8); save the file as UTF-8")
    assert len(ok(credit("rates", "export")).splitlines()) == 4          # nothing was imported
    refused(credit("quote", "+46701234567", "300s"), "the rate table has EUR, USD")
    quote = json.loads(ok(credit("quote", "+46701234567", "5m", "--currency", "EUR", "--json")))
    assert quote == {"destination": "+46701234567", "duration": 300, "currency": "EUR", "prefix": "+4670",
                     "name": "Sweden mobile", "per_minute": "0.12", "connect_fee": "0.01", "increments": "30/6",
                     "billed_seconds": 300, "cost": "0.61"}
    ok(credit("add", "+46701234567", "--currency", "EUR"))
    ok(credit("topup", "+46701234567", "1.01"))
    quote = json.loads(ok(credit("quote", "+46701234567", "300s", "--account", "+46701234567", "--json")))
    assert (quote["max_duration"], quote["reserve"], quote["available"]) == (498, "1.006", "1.01")
    assert "0.61 EUR" in ok(credit("quote", "+46701234567", "300s", "--account", "+46701234567"))
    refused(credit("quote", "+442012345678", "60", "--currency", "EUR"), "no rate for +442012345678 in EUR")
    refused(credit("quote", "+46701234567", "five minutes", "--currency", "EUR"), "is not a duration")
    refused(credit("quote", "+46701234567", "300", "--currency", "EUR", "--user-rate", "0.05"),
            '--user-rate prices with rates = "sinch", and rates is "table"')       # it would be ignored
    refused(credit("quote", "+46701234567", "300", "--account", "+46701234567", "--currency", "USD"),
            "give --account or --currency, not both")
    (tmp_path / "more.csv").write_text("prefix,currency,per_minute\n44,EUR,0.05\n")
    assert "merged; 4 in the table" in ok(credit("rates", "import", "more.csv", "--merge"))


def test_number_table_commands(credit, tmp_path):
    config = tmp_path / "table.toml"
    config.write_text('[plugins]\nenabled = ["credit_check"]\n[plugins.credit_check]\n'
                      'database_url = { env = "CREDIT_DATABASE_URL" }\naccount_by = "number_table"\n')
    ok(credit("add", "acme", "--currency", "EUR", config_path=config))
    assert "paid by account acme" in ok(credit("link", "46701234567", "acme", config_path=config))
    assert json.loads(ok(credit("balance", "acme", "--json", config_path=config)))["numbers"] == ["+46701234567"]
    refused(credit("link", "+46701234567", "ghost", config_path=config), "no account 'ghost'")
    ok(credit("unlink", "+46701234567", config_path=config))
    refused(credit("unlink", "+46701234567", config_path=config), "is not linked")


def test_user_table_commands(credit, tmp_path):
    config = tmp_path / "users.toml"
    config.write_text('[plugins]\nenabled = ["credit_check"]\n[plugins.credit_check]\n'
                      'database_url = { env = "CREDIT_DATABASE_URL" }\naccount_by = "user"\n')
    ok(credit("add", "acme", "--currency", "USD", config_path=config))
    assert "calls from user alice are paid by account acme" in ok(credit("link", "--user", "alice", "acme",
                                                                         config_path=config))
    ok(credit("link", "acme", "--user", "bob", config_path=config))
    balance = json.loads(ok(credit("balance", "acme", "--json", config_path=config)))
    assert (balance["users"], balance["numbers"]) == (["alice", "bob"], [])
    assert "users      alice, bob" in ok(credit("balance", "acme", config_path=config))
    refused(credit("link", "--user", "carol", "ghost", config_path=config), "no account 'ghost'")
    refused(credit("link", "+46701234567", "acme", "--user", "carol", config_path=config), "not both")
    refused(credit("link", "acme", config_path=config), "give the NUMBER (or --user USER)")
    refused(credit("link", "--user", " ", "acme", config_path=config), "must not be empty")
    assert "user alice is no longer linked" in ok(credit("unlink", "--user", "alice", config_path=config))
    refused(credit("unlink", "--user", "alice", config_path=config), "user alice is not linked")
    assert json.loads(ok(credit("balance", "acme", "--json", config_path=config)))["users"] == ["bob"]
def test_numbers_are_read_as_people_write_them(credit, tmp_path):
    assert "added account +46701234567 (EUR)" in ok(credit("add", "0046 (0)70 123 45 67", "--currency", "EUR"))
    assert "balance 5" in ok(credit("topup", "+46 (0)70 123 45 67", "5"))
    refused(credit("balance", "070 123 45 67"), "'070 123 45 67' is a national number", status=2)
    refused(credit("balance", "+4670123456712345678901"), "22 digits", status=2)
    swedish = tmp_path / "se.toml"
    swedish.write_text('[server]\ndefault_region = "SE"\n[plugins]\nenabled = ["credit_check"]\n'
                       '[plugins.credit_check]\ndatabase_url = { env = "CREDIT_DATABASE_URL" }\n'
                       'account_by = "number_table"\n')
    ok(credit("add", "acme", "--currency", "EUR", config_path=swedish))
    assert "calls from +46701234567 are paid by account acme" in ok(
        credit("link", "070-123 45 67", "acme", config_path=swedish))
    refused(credit("link", "+46 70 CALL ME", "acme", config_path=swedish), "is not a phone number", status=2)


def test_an_unreachable_database_is_a_clear_error(tmp_path):
    from callgate.testing import free_port
    config = tmp_path / "config.toml"
    config.write_text('[plugins]\nenabled = ["credit_check"]\n[plugins.credit_check]\n'
                      'database_url = { env = "CREDIT_TEST_DATABASE_URL" }\n')   # it holds a password
    env = {**os.environ, "CREDIT_TEST_DATABASE_URL": f"postgresql://postgres:hunter2@127.0.0.1:{free_port()}/test"}
    result = subprocess.run([CALLGATE, "credit", "balance", "+46701234567", "--config", str(config)],
                            capture_output=True, text=True, timeout=60, env=env)
    assert result.returncode == 1
    assert "cannot connect to postgresql://postgres:***@127.0.0.1" in result.stderr
    assert "hunter2" not in result.stderr + result.stdout
