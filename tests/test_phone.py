"""Phone numbers people write (config, command line) and the ones Sinch sends: one normaliser, callgate.phone."""

import os
import subprocess
import sys
from pathlib import Path

import pytest
from structlog.testing import capture_logs

from callgate import phone
from callgate.phone import PhoneNumberError, normalize, parse_number, parse_prefix

CALLGATE = str(Path(sys.executable).with_name("callgate"))
TWENTY_TWO_DIGITS = "+4670123456712345678901"


@pytest.fixture(autouse=True)
def no_default_region_after_the_test():
    """[server] default_region is one setting for the process: leave it unset for the next test."""
    yield
    phone.set_default_region(None)


def run(*args, cwd=None):
    return subprocess.run([CALLGATE, *args], check=False, capture_output=True, text=True, timeout=60, cwd=cwd,
                          env={**os.environ})


# --- the normaliser: numbers people write ---------------------------------------------------------

@pytest.mark.parametrize("written", [
    "+46701234567", "46701234567", "+46 70 123 45 67", "0046701234567", "00 46 70-123 45 67",
    "+46 (0)70 123 45 67", "0046 (0)70 123 45 67", "+46.70.123.45.67", "+460701234567",
])
def test_international_forms_are_one_number(written):
    assert parse_number(written) == "+46701234567"


@pytest.mark.parametrize("written,why", [
    (TWENTY_TWO_DIGITS, "22 digits, and a phone number has at most 15"),
    ("0046701234567123456789", "20 digits, and a phone number has at most 15"),
    ("+46 70 CALL NOW", "only digits"),
    ("+46abc", "only digits"),
    ("alice", "only digits"),
    ("+46 70 123 45 67 ext. 12", "only digits"),
    ("+4670", "too few digits for a +46 number"),
    ("+999 123 456 789", "no country has"),
    ("4670+1234567", "not a phone number"),
    ("", "empty"),
])
def test_what_is_not_a_number_is_refused_saying_why(written, why):
    with pytest.raises(PhoneNumberError, match=r"is not a phone number|empty phone number") as err:
        parse_number(written)
    assert why in str(err.value)


@pytest.mark.parametrize("written", ["(415) 555-0123", "415-555-0123"])
def test_digits_read_as_international_that_are_no_number_say_a_national_one_needs_the_region(written):
    """Without + or 00 and without [server] default_region, digits are read as Sinch writes caller ids (+41 5...):
    when that is no number, the refusal says how a national number would be read."""
    with pytest.raises(PhoneNumberError) as err:
        parse_number(written)
    assert "too few digits for a +41 number" in str(err.value)
    assert "for a national number, set [server] default_region" in str(err.value)
    assert parse_number(written, region="US") == "+14155550123"
    with pytest.raises(PhoneNumberError) as err:
        parse_number("+41 55")                          # written international: no such hint
    assert "default_region" not in str(err.value)


def test_a_national_format_needs_the_default_region():
    with pytest.raises(PhoneNumberError) as err:
        parse_number("070 123 45 67")
    assert "is a national number" in str(err.value) and "[server] default_region" in str(err.value)
    assert "+46701234567" in str(err.value)
    assert parse_number("070 123 45 67", region="SE") == "+46701234567"
    phone.set_default_region("se")
    assert phone.default_region() == "SE"
    assert parse_number("070-123 45 67") == "+46701234567"
    assert parse_number("08-500 012 34") == "+46850001234"
    assert parse_number("+1 415 555 0123") == "+14155550123"     # international forms are not national
    assert parse_number("0046701234567") == "+46701234567"
    with pytest.raises(PhoneNumberError, match=r"too many digits|too few digits|not a phone number"):
        parse_number("070 123 45 67 89 01")
    phone.set_default_region("US")
    assert parse_number("(415) 555-0123") == "+14155550123"
    with pytest.raises(ValueError, match="'XX' is not a region code"):
        phone.set_default_region("XX")


@pytest.mark.parametrize("written,prefix", [
    ("+", "+"), ("+46", "+46"), ("+46 70", "+4670"), ("0046 70", "+4670"), ("4670", "+4670"), ("+1-415", "+1415"),
])
def test_prefixes_are_international_without_a_length_to_check(written, prefix):
    assert parse_prefix(written) == prefix


@pytest.mark.parametrize("written,why", [
    ("070", "not an international prefix"),      # never national, whatever the region
    ("+46 (0)70", "no letters or brackets"),
    ("+46x", "no letters or brackets"),
    ("0", "not an international prefix"),
    ("+999", "no country"),
    ("+" + "4" * 16, "at most 15 digits"),
])
def test_bad_prefixes_are_refused(written, why):
    phone.set_default_region("SE")
    with pytest.raises(PhoneNumberError) as err:
        parse_prefix(written)
    assert why in str(err.value)


# --- the fast path: numbers Sinch sends -------------------------------------------------------------

@pytest.mark.parametrize("sent,number", [
    ("46701234567", "+46701234567"), ("+46701234567", "+46701234567"), ("0046701234567", "+46701234567"),
    ("+46 (0)70 123 45 67", "+46701234567"), ("46 70 123 45 67", "+46701234567"),
    ("0701234567", None), (TWENTY_TWO_DIGITS, None), ("4670123456712345678901", None), ("alice", None),
    ("+0701234567", None), ("", None),
])
def test_numbers_sinch_sends_are_read_without_a_region(sent, number):
    phone.set_default_region("US")      # the region is for people's numbers, never for Sinch's
    assert normalize(sent) == number


# --- config.toml: exit 2 from check-config, naming the key -----------------------------------------

ROUTE = '[[plugins.router.routes]]\n{key} = "{value}"\naction = {{ name = "connectPstn", number = "{{to}}" }}\n'


@pytest.mark.parametrize("toml,key,message", [
    (ROUTE.format(key="number", value="070 123 45 67"), "[plugins.router].routes[0].number",
     "national number"),
    (ROUTE.format(key="number", value=TWENTY_TWO_DIGITS), "[plugins.router].routes[0].number", "at most 15"),
    (ROUTE.format(key="number", value="+46 70 CALL ME"), "[plugins.router].routes[0].number", "only digits"),
    (ROUTE.format(key="prefix", value="070"), "[plugins.router].routes[0].prefix", "international prefix"),
    ('[plugins.caller_id]\nrules = [{ prefix = "+1", cli = "+1 555 CALLGATE" }]\n',
     "[plugins.caller_id].rules[0].cli", "only digits"),
    ('[plugins.caller_id]\nrules = [{ prefix = "0046 (0)8", cli = "private" }]\n',
     "[plugins.caller_id].rules[0].prefix", "no letters or brackets"),
    ('[server]\ndefault_region = "Sweden"\n', "[server].default_region", "not a region code"),
])
def test_check_config_refuses_numbers_naming_the_key(tmp_path, toml, key, message):
    path = tmp_path / "config.toml"
    path.write_text(toml)
    result = run("check-config", "--config", str(path))
    assert result.returncode == 2, result.stdout
    assert f"{key}: " in result.stderr and message in result.stderr
    assert "Traceback" not in result.stderr


def test_check_config_reads_national_numbers_with_the_default_region(tmp_path):
    path = tmp_path / "config.toml"
    path.write_text('[server]\ndefault_region = "SE"\n' + ROUTE.format(key="number", value="070 123 45 67"))
    result = run("check-config", "--config", str(path))
    assert result.returncode == 0, result.stderr


async def test_route_numbers_and_prefixes_match_as_written(callgate_client, callgate_events):
    config = {"server": {"default_region": "SE"}, "plugins": {"router": {"routes": [
        {"name": "mobile", "number": "070-123 45 67", "action": {"name": "hangup"}},
        {"name": "office", "number": "+46 (0)8 500 012 34", "action": {"name": "hangup"}},
        {"name": "uk", "prefix": "0044 20", "action": {"name": "hangup"}},
    ]}, "caller_id": {"rules": [{"route": "office", "cli": "08 500 012 34"}]}}}
    client = await callgate_client(config)
    with capture_logs() as logs:
        for callee, _route in (("+46701234567", "mobile"), ("46850001234", "office"), ("+442071234567", "uk")):
            status, _ = await client.event(callgate_events.ice(to=callee))
            assert status == 200
    assert [line["decision"] for line in logs if line["event"] == "callback"] == [
        f"allowed by default, route {name} from router -> hangup" for name in ("mobile", "office", "uk")]


# --- the router's {caller} template --------------------------------------------------------------

CALLER_ROUTES = {"plugins": {"router": {"routes": [
    {"name": "with-caller-id", "prefix": "+1", "action": {"name": "connectPstn", "number": "{to}", "cli": "{caller}"}},
    {"name": "fallback", "action": {"name": "connectPstn", "number": "{to}", "cli": "+46850001234"}},
]}}}


@pytest.mark.parametrize("cli", ["0046701234567", "+46 (0)70 123 45 67", "46701234567"])
async def test_caller_template_fills_in_the_caller_as_e164(callgate_client, callgate_events, cli):
    client = await callgate_client(CALLER_ROUTES)
    status, answer = await client.event(callgate_events.ice(caller=cli, to="+14155550123"))
    assert status == 200
    assert answer["action"] == {"name": "connectPstn", "number": "+14155550123", "cli": "+46701234567"}


@pytest.mark.parametrize("fields", [
    {"caller": None, "user": "alice", "origination": "MXP", "domain": "mxp"},     # an in-app caller, no cli
    {"caller": "alice", "user": "alice", "origination": "MXP", "domain": "mxp"},  # a cli that is no number
    {"caller": "0701234567"},                                                     # national: no country
])
async def test_a_route_whose_template_has_no_valid_value_does_not_match(callgate_client, callgate_events, fields):
    client = await callgate_client(CALLER_ROUTES)
    with capture_logs() as logs:
        status, answer = await client.event(callgate_events.ice(to="+14155550123", **fields))
    assert status == 200
    assert answer["action"] == {"name": "connectPstn", "number": "+14155550123", "cli": "+46850001234"}
    skipped = [line for line in logs if line["event"] == "route_skipped"]
    assert len(skipped) == 1 and skipped[0]["route"] == "with-caller-id"
    assert "{caller} = ''" in skipped[0]["reason"] and skipped[0]["log_level"] == "warning"
    assert not [line for line in logs if line["event"] == "plugin_failed" or "exc_info" in line]
    callback = next(line for line in logs if line["event"] == "callback")
    assert callback["decision"] == "allowed by default, route fallback from router -> connectPstn"


async def test_without_another_route_the_no_route_answer_applies(callgate_client, callgate_events):
    routes = {"plugins": {"router": {"routes": CALLER_ROUTES["plugins"]["router"]["routes"][:1]}}}
    client = await callgate_client(routes)
    with capture_logs() as logs:
        status, answer = await client.event(callgate_events.ice(caller=None, user="alice", to="+14155550123",
                                                                origination="MXP", domain="mxp"))
    assert status == 200 and answer == {"action": {"name": "hangup"}}
    assert [line["event"] for line in logs if line["log_level"] != "info"] == ["route_skipped"]
    assert next(line for line in logs if line["event"] == "callback")["decision"] == "allowed by default, no route -> hangup"


async def test_a_private_caller_fills_cli_but_not_a_number(callgate_client, callgate_events):
    routes = {"plugins": {"router": {"routes": [
        {"name": "back", "number": "+46850001234", "action": {"name": "connectPstn", "number": "{caller}"}},
        {"name": "hidden", "action": {"name": "connectPstn", "number": "{to}", "cli": "{caller}"}},
    ]}}}
    client = await callgate_client(routes)
    _, answer = await client.event(callgate_events.ice(caller="private", to="+46850001234"))
    assert answer["action"] == {"name": "connectPstn", "number": "+46850001234", "cli": "private"}   # "hidden"
    _, answer = await client.event(callgate_events.ice(caller="0046701234567", to="+46850001234"))
    assert answer["action"] == {"name": "connectPstn", "number": "+46701234567"}                       # "back"


# --- the command line: simulate and sign ------------------------------------------------------------

SIMULATE_ROUTE = ('[[plugins.router.routes]]\nprefix = "+1"\n'
                  'action = { name = "connectPstn", number = "{to}", cli = "{caller}" }\n')


@pytest.mark.parametrize("caller", ["0046701234567", "+46 (0)70 123 45 67"])
def test_simulate_reads_from_and_to_as_people_write_them(tmp_path, caller):
    path = tmp_path / "config.toml"
    path.write_text(SIMULATE_ROUTE)
    result = run("simulate", "ice", "--from", caller, "--to", "001 415 555 0123", "--config", str(path))
    assert result.returncode == 0, result.stderr
    assert '"number": "+14155550123"' in result.stdout and '"cli": "+46701234567"' in result.stdout


@pytest.mark.parametrize("args,message", [
    (["--from", "070 123 45 67"], "--from: '070 123 45 67' is a national number"),
    (["--from", TWENTY_TWO_DIGITS], "--from: '+4670123456712345678901' is not a phone number: 22 digits"),
    (["--to", "+1 415 CALL NOW"], "--to: '+1 415 CALL NOW' is not a phone number"),
])
@pytest.mark.parametrize("command", ["simulate", "sign"])
def test_simulate_and_sign_refuse_what_is_not_a_number(tmp_path, command, args, message):
    path = tmp_path / "config.toml"
    path.write_text('[[applications]]\nkey = "k"\nsecrets = [{ env = "HOME" }]\n' + SIMULATE_ROUTE)
    result = run(command, "ice", *args, "--config", str(path))
    assert result.returncode == 2, result.stdout
    assert message in result.stderr and "Traceback" not in result.stderr


def test_simulate_reads_national_numbers_with_the_default_region(tmp_path):
    path = tmp_path / "config.toml"
    path.write_text('[server]\ndefault_region = "SE"\n' + SIMULATE_ROUTE)
    result = run("simulate", "ice", "--from", "070 123 45 67", "--to", "+1 (415) 555-0123", "--config", str(path))
    assert result.returncode == 0, result.stderr
    assert '"cli": "+46701234567"' in result.stdout
    result = run("simulate", "ice", "--from", "private", "--to", "alice", "--to-type", "username",
                 "--config", str(path))
    assert result.returncode == 0, result.stderr
