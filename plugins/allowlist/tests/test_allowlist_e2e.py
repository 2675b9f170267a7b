"""End to end: the real ``callgate serve`` with the allowlist enabled, signed ICE callbacks over real HTTP,
and the rules file edited (and broken) while the server runs."""

from __future__ import annotations

import json
import signal

import pytest

#: Starts the real callgate command or waits in real time: skipped by -m 'not slow'.
pytestmark = pytest.mark.slow

PROMPT = "Sorry, calls from your number are not accepted."


def server_config(rules_file, *, reload_seconds: float = 0.1, extra: str = "") -> str:
    return f"""
[server]
log_format = "json"
default_decision = "allow"       # the allowlist, not the server default, must be what denies

[plugins]
enabled = ["allowlist"]

[plugins.allowlist]
default = "deny"
rules_file = {json.dumps(str(rules_file))}
reload_seconds = {reload_seconds}
prompt = "{PROMPT}"
{extra}

[[plugins.router.routes]]
name = "my-phone"
number = "+15612600684"
action = {{ name = "connectPstn", number = "+15612600684", maxDuration = 600 }}

[[plugins.router.routes]]
name = "everything"
action = {{ name = "connectPstn", number = "{{to}}" }}
"""


DENIED = {"instructions": [{"name": "answer"}, {"name": "say", "text": PROMPT, "locale": "en-US"}],
          "action": {"name": "hangup"}}


def log_events(server, name: str) -> list[dict]:
    events = []
    for line in server.logs().splitlines():
        if line.startswith("{"):
            entry = json.loads(line)
            if entry.get("event") == name:
                events.append(entry)
    return events


async def test_listed_callers_are_connected_and_the_others_hear_the_prompt(callgate_server, post_ice, tmp_path):
    rules = tmp_path / "customers.csv"
    rules.write_text("action,caller,name\nallow,+46701234567,Anna\nallow,+4420*,London office\ndeny,+442079*,\n")
    server = callgate_server(server_config(rules))

    assert (await post_ice(server, caller="46701234567", to="+15551234567"))["action"] == {
        "name": "connectPstn", "number": "+15551234567"}
    assert (await post_ice(server, caller="+44 20 7123 4567"))["action"]["name"] == "connectPstn"
    assert await post_ice(server, caller="442079000000") == DENIED      # deny wins inside the allowed range
    assert await post_ice(server, caller="46709999999") == DENIED       # not listed: the default
    assert await post_ice(server, caller="private") == DENIED

    verdicts = [(e["plugins"][0]["plugin"], e["plugins"][0]["verdict"]) for e in log_events(server, "callback")]
    assert verdicts[2] == ("allowlist", "deny: rule deny caller=+442079* (customers.csv:4)")
    assert verdicts[3] == ("allowlist", "deny: no rule matches; the default is deny")


async def test_the_seed_tutorial_only_calls_to_one_number_are_connected(callgate_server, post_ice, tmp_path):
    rules = tmp_path / "empty.csv"
    rules.write_text("action,callee\n")
    extra = """
[[plugins.allowlist.rules]]
action = "allow"
callee = "+15612600684"
name = "my phone"
"""
    server = callgate_server(server_config(rules, extra=extra))
    assert await post_ice(server, caller="46701234567", to="+15612600684") == {
        "action": {"name": "connectPstn", "number": "+15612600684", "maxDuration": 600}}
    assert await post_ice(server, caller="46701234567", to="+15612600685") == DENIED
    assert await post_ice(server, caller="46701234567", to="+4646") == DENIED


async def test_an_edited_rules_file_takes_effect_without_a_restart(callgate_server, post_ice, tmp_path, eventually):
    rules = tmp_path / "customers.csv"
    rules.write_text("action,caller\nallow,+46701234567\n")
    server = callgate_server(server_config(rules))
    pid = server.process.pid
    assert (await post_ice(server, caller="46701234567"))["action"]["name"] == "connectPstn"
    assert await post_ice(server, caller="46708888888") == DENIED

    rules.write_text("action,caller\nallow,+46708888888\ndeny,+46701234567\n")

    async def new_rules_in_force():
        return (await post_ice(server, caller="46708888888"))["action"]["name"] == "connectPstn"

    await eventually(new_rules_in_force, what="the edited rules file in force")
    assert await post_ice(server, caller="46701234567") == DENIED
    assert server.process.pid == pid and server.process.poll() is None
    assert log_events(server, "allowlist_rules_loaded")[-1]["rules"] == {"deny": 1, "allow": 1}


async def test_a_broken_rules_file_leaves_the_old_rules_in_force_and_the_log_says_why(
        callgate_server, post_ice, tmp_path, eventually):
    rules = tmp_path / "customers.toml"
    rules.write_text('[[rules]]\naction = "allow"\ncaller = "+46701234567"\n')
    server = callgate_server(server_config(rules))
    assert (await post_ice(server, caller="46701234567"))["action"]["name"] == "connectPstn"

    # Half an edit: a new number added, and a typo in a second rule.
    rules.write_text('[[rules]]\naction = "allow"\ncaller = "+46708888888"\n\n'
                     '[[rules]]\naction = "allow"\ncaller = "+4670 12 34 5x"\n')

    async def failure_logged():
        return bool(log_events(server, "allowlist_reload_failed"))

    await eventually(failure_logged, what="the broken file reported in the log")
    [failure] = log_events(server, "allowlist_reload_failed")
    assert "customers.toml: 1 problem, file not loaded" in failure["error"]
    assert "line 5: caller: '+4670 12 34 5x' is not a phone number" in failure["error"]
    assert failure["kept_rules"] == {"deny": 0, "allow": 1} and failure["level"] == "error"

    assert (await post_ice(server, caller="46701234567"))["action"]["name"] == "connectPstn"   # old rules
    assert await post_ice(server, caller="46708888888") == DENIED          # nothing of the broken file

    rules.write_text('[[rules]]\naction = "allow"\ncaller = "+46708888888"\n')   # fixed

    async def fixed_file_in_force():
        return (await post_ice(server, caller="46708888888"))["action"]["name"] == "connectPstn"

    await eventually(fixed_file_in_force, what="the fixed file in force")
    assert len(log_events(server, "allowlist_reload_failed")) == 1          # reported once, not at every look


@pytest.mark.skipif(not hasattr(signal, "SIGHUP"), reason="no SIGHUP on this platform")
async def test_sighup_reloads_the_rules_file(callgate_server, post_ice, tmp_path, eventually):
    rules = tmp_path / "customers.csv"
    rules.write_text("action,caller\nallow,+46701234567\n")
    server = callgate_server(server_config(rules, reload_seconds=0))    # no polling: only the signal reloads
    rules.write_text("action,caller\nallow,+46708888888\n")
    assert await post_ice(server, caller="46708888888") == DENIED

    server.process.send_signal(signal.SIGHUP)

    async def reloaded():
        return (await post_ice(server, caller="46708888888"))["action"]["name"] == "connectPstn"

    await eventually(reloaded, what="the rules re-read on SIGHUP")
    assert log_events(server, "allowlist_rules_loaded")[-1]["trigger"] == "sighup"
    assert server.process.poll() is None
    assert server.stop(signal.SIGTERM) == 0
