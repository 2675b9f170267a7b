"""Numbers in rules are read like every number people write (callgate.phone), in config.toml, rule files and
``callgate allowlist check``; national formats need ``[server] default_region``."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from callgate import phone
from callgate.manager import PluginError
from callgate_allowlist import Allowlist
from callgate_allowlist.rulefile import RulesFileError, parse_rules_file

CALLGATE = str(Path(sys.executable).with_name("callgate"))
WRITTEN = ["+46 (0)70 123 45 67", "0046701234567", "00 46 70-123 45 67", "+46 70 123 45 67"]


@pytest.fixture(autouse=True)
def no_default_region_after_the_test():
    yield
    phone.set_default_region(None)


def allowlist(route_table: dict, rules: list[dict], **server) -> dict:
    return {"server": server, "plugins": {"allowlist": {"default": "deny", "rules": rules}, "router": route_table}}


@pytest.mark.parametrize("written", WRITTEN)
async def test_an_inline_rule_matches_a_call_from_the_number_it_writes(callgate_client, callgate_events,
                                                                       route_table, written):
    client = await callgate_client(allowlist(route_table, [{"action": "allow", "caller": written}]),
                                   plugins={"allowlist": Allowlist})
    _, answer = await client.event(callgate_events.ice(caller="46701234567", to="+15551234567"))
    assert answer["action"] == {"name": "connectPstn", "number": "+15551234567"}
    _, answer = await client.event(callgate_events.ice(caller="46701234568", to="+15551234567"))
    assert answer == {"action": {"name": "hangup"}}


@pytest.mark.parametrize("written", WRITTEN)
@pytest.mark.parametrize("name,template", [("rules.csv", 'action,caller\nallow,"{}"\n'),
                                           ("rules.toml", '[[rules]]\naction = "allow"\ncaller = "{}"\n')])
def test_a_rule_file_rule_matches_a_call_from_the_number_it_writes(tmp_path, ice_event, written, name, template):
    path = tmp_path / name
    path.write_text(template.format(written))
    plugin = Allowlist(Allowlist.Config(default="deny", rules_file=path))
    assert type(plugin.authorize_call(ice_event(caller="46701234567"))).__name__ == "Allow"
    assert type(plugin.authorize_call(ice_event(caller="0046701234567"))).__name__ == "Allow"
    assert type(plugin.authorize_call(ice_event(caller="46701234568"))).__name__ == "Deny"


async def test_national_rules_are_read_in_the_default_region(callgate_client, callgate_events, route_table):
    rules = [{"action": "allow", "caller": "070-123 45 67"}, {"action": "allow", "callee": "08 500 012 34"}]
    with pytest.raises(PluginError) as err:
        await callgate_client(allowlist(route_table, rules), plugins={"allowlist": Allowlist})
    assert "[plugins.allowlist].rules[0]" in str(err.value) and "default_region" in str(err.value)
    client = await callgate_client(allowlist(route_table, rules, default_region="SE"), plugins={"allowlist": Allowlist})
    _, answer = await client.event(callgate_events.ice(caller="46701234567", to="+15551234567"))
    assert answer["action"]["name"] == "connectPstn"
    _, answer = await client.event(callgate_events.ice(caller="46709999999", to="+46850001234"))
    assert answer["action"]["name"] == "connectPstn"
    _, answer = await client.event(callgate_events.ice(caller="46709999999", to="+15551234567"))
    assert answer == {"action": {"name": "hangup"}}


@pytest.mark.parametrize("row,message", [
    ("allow,070 123 45 67", "line 2: caller: '070 123 45 67' is a national number"),
    ("allow,+4670123456712345678901", "line 2: caller: '+4670123456712345678901' is not a phone number: 22 digits"),
    ("allow,+46 70 CALL ME", "line 2: caller: '+46 70 CALL ME' is not a phone number"),
    ("allow,070*", "line 2: caller: '070' is not an international prefix"),
])
def test_a_rule_file_with_a_bad_number_is_refused_by_line(row, message):
    with pytest.raises(RulesFileError) as err:
        parse_rules_file(f"action,caller\n{row}\n".encode(), Path("rules.csv"))
    assert message in str(err.value)


def run(tmp_path: Path, *args: str, region: str | None = None) -> subprocess.CompletedProcess:
    config = tmp_path / "config.toml"
    server = f'[server]\ndefault_region = "{region}"\n' if region else ""
    config.write_text(server + '[plugins]\nenabled = ["allowlist"]\n[plugins.allowlist]\ndefault = "deny"\n'
                      'rules = [{ action = "allow", caller = "+46 (0)70 123 45 67" }]\n')
    return subprocess.run([CALLGATE, "allowlist", "check", *args, "--config", str(config)], check=False,
                          capture_output=True, text=True, timeout=60, env={**os.environ})


def test_check_reads_numbers_as_people_write_them(tmp_path):
    result = run(tmp_path, "0046 70 123 45 67", "+1 (415) 555-0123")
    assert result.returncode == 0, result.stderr
    assert "call:     +46701234567 -> +14155550123" in result.stdout
    assert run(tmp_path, "070 123 45 67", "+14155550123", region="SE").returncode == 0


@pytest.mark.parametrize("args,message", [
    (["070 123 45 67", "+14155550123"], "'070 123 45 67' is a national number"),
    (["+4670123456712345678901", "+14155550123"], "22 digits"),
    (["+46701234567", "+1 415 CALL NOW"], "'+1 415 CALL NOW' is not a phone number"),
])
def test_check_refuses_what_is_not_a_number_with_exit_2(tmp_path, args, message):
    result = run(tmp_path, *args)
    assert result.returncode == 2 and message in result.stderr and "Traceback" not in result.stderr
