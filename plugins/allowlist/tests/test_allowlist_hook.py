"""The plugin inside the real aiohttp app: signed ICE callbacks in, SVAML out."""

from __future__ import annotations

import pytest

from callgate.manager import PluginError
from callgate_allowlist import Allowlist

SEED_TUTORIAL = {
    "allowlist": {"default": "deny", "rules": [{"action": "allow", "callee": "+15612600684"}]},
    "router": {"routes": [{"name": "my-phone", "number": "+15612600684",
                           "action": {"name": "connectPstn", "number": "+15612600684", "maxDuration": 600}}]},
}


def config(route_table: dict, **allowlist) -> dict:
    return {"plugins": {"allowlist": allowlist, "router": route_table}}


async def test_the_seed_tutorial_rule_connects_only_calls_to_one_number(callgate_client, callgate_events):
    client = await callgate_client({"plugins": SEED_TUTORIAL}, plugins={"allowlist": Allowlist})
    status, answer = await client.event(callgate_events.ice(caller="46701234567", to="+15612600684"))
    assert status == 200
    assert answer == {"action": {"name": "connectPstn", "number": "+15612600684", "maxDuration": 600}}
    _, answer = await client.event(callgate_events.ice(caller="46701234567", to="+15612600685"))
    assert answer == {"action": {"name": "hangup"}}


async def test_allowed_calls_are_connected_and_denied_ones_hear_the_prompt_then_hang_up(
        callgate_client, callgate_events, route_table):
    cfg = config(route_table, default="allow", prompt="This number cannot be reached from here.", locale="en-GB",
                 rules=[{"action": "deny", "callee": "+1900*"}, {"action": "deny", "caller": "private"}])
    client = await callgate_client(cfg, plugins={"allowlist": Allowlist})
    _, answer = await client.event(callgate_events.ice(caller="46701234567", to="+15551234567"))
    assert answer["action"] == {"name": "connectPstn", "number": "+15551234567"}
    for caller, to in (("46701234567", "+19005550100"), ("private", "+15551234567"), (None, "+15551234567")):
        _, answer = await client.event(callgate_events.ice(caller=caller, to=to))
        assert answer == {"instructions": [{"name": "answer"},
                                           {"name": "say", "text": "This number cannot be reached from here.",
                                            "locale": "en-GB"}],
                          "action": {"name": "hangup"}}, (caller, to)


async def test_the_prompt_may_be_recordings_or_nothing(callgate_client, callgate_events, route_table):
    rules = [{"action": "deny", "caller": "+4670*"}]
    client = await callgate_client(config(route_table, default="allow", rules=rules,
                                          prompt_files=["https://media.example.com/blocked.wav",
                                                        "https://media.example.com/goodbye.wav"]),
                                   plugins={"allowlist": Allowlist})
    _, answer = await client.event(callgate_events.ice(caller="46701234567"))
    # as in 0.2: one playFiles with every file, in the allowlist's locale
    assert answer["instructions"][1] == {"name": "playFiles", "ids": ["https://media.example.com/blocked.wav",
                                                                      "https://media.example.com/goodbye.wav"],
                                         "locale": "en-US"}
    client = await callgate_client(config(route_table, default="allow", rules=rules),
                                   plugins={"allowlist": Allowlist})
    _, answer = await client.event(callgate_events.ice(caller="46701234567"))
    assert answer == {"action": {"name": "hangup"}}


async def test_numbers_match_with_or_without_plus_and_spaces(callgate_client, callgate_events, route_table):
    cfg = config(route_table, default="deny", rules=[{"action": "allow", "caller": "46 70 123 45 67"}])
    client = await callgate_client(cfg, plugins={"allowlist": Allowlist})
    for caller in ("46701234567", "+46701234567", "+46 70-123 45 67"):
        _, answer = await client.event(callgate_events.ice(caller=caller))
        assert answer["action"]["name"] == "connectPstn", caller


async def test_calls_outside_the_scope_are_left_to_the_server_default(callgate_client, callgate_events,
                                                                       route_table, ice_event):
    cfg = config(route_table, default="deny", scope={"origination_types": ["pstn"]})
    for server_default, expected in (("allow", "connectPstn"), ("deny", "hangup")):
        client = await callgate_client({**cfg, "server": {"default_decision": server_default}},
                                       plugins={"allowlist": Allowlist})
        _, answer = await client.event(callgate_events.ice(origination="MXP", domain="pstn"))
        assert answer["action"]["name"] == expected
        _, answer = await client.event(callgate_events.ice(origination="PSTN"))
        assert answer["action"]["name"] == "hangup"   # inside the scope: the allowlist's default, deny
    plugin = Allowlist(Allowlist.Config(**cfg["plugins"]["allowlist"]))
    assert plugin.authorize_call(ice_event(origination="MXP")) is None
    denied = plugin.authorize_call(ice_event(origination="PSTN"))
    assert type(denied).__name__ == "Deny" and "default is deny" in denied.reason


async def test_the_deny_reason_names_the_rule_and_where_it_is_written(ice_event):
    plugin = Allowlist(Allowlist.Config(default="allow", rules=[{"action": "allow", "caller": "+1*"},
                                                                {"action": "deny", "caller": "+1900*"}]))
    denied = plugin.authorize_call(ice_event(caller="19005550100"))
    assert denied.reason == "rule deny caller=+1900* ([plugins.allowlist] rules[1])"
    allowed = plugin.authorize_call(ice_event(caller="15551234567"))
    assert allowed.reason == "rule allow caller=+1* ([plugins.allowlist] rules[0])"


async def test_the_installed_entry_point_is_the_plugin(callgate_client, callgate_events, route_table):
    client = await callgate_client({"plugins": {"enabled": ["allowlist"],
                                                "allowlist": {"default": "deny"}, "router": route_table}})
    _, answer = await client.event(callgate_events.ice())
    assert answer == {"action": {"name": "hangup"}}


@pytest.mark.parametrize(("table", "message"), [
    ({}, "default"),
    ({"default": "maybe"}, "default"),
    ({"default": "deny", "rules": [{"action": "allow", "caller": "+46abc"}]}, "'+46abc' is not a phone number"),
    ({"default": "deny", "rule": []}, "rule"),
    ({"default": "deny", "scope": {"callee_types": ["phone"]}}, "'phone' is not one of"),
])
async def test_bad_configuration_stops_start_up_naming_the_key(callgate_client, table, message):
    with pytest.raises(PluginError) as info:
        await callgate_client({"plugins": {"allowlist": table}}, plugins={"allowlist": Allowlist})
    assert "allowlist" in str(info.value) and message in str(info.value)


async def test_a_broken_or_missing_rules_file_stops_start_up(callgate_client, tmp_path):
    broken = tmp_path / "rules.csv"
    broken.write_text("action,caller\nallow,alice\n")
    with pytest.raises(PluginError, match=r"rules.csv: 1 problem, file not loaded:\n  line 2: caller: 'alice'"):
        await callgate_client({"plugins": {"allowlist": {"default": "deny", "rules_file": str(broken)}}},
                              plugins={"allowlist": Allowlist})
    with pytest.raises(PluginError, match="the file does not exist"):
        await callgate_client({"plugins": {"allowlist": {"default": "deny", "rules_file": str(tmp_path / "no.csv")}}},
                              plugins={"allowlist": Allowlist})


async def test_a_relative_rules_file_is_found_from_the_working_directory(tmp_path, monkeypatch, ice_event):
    (tmp_path / "lists").mkdir()
    (tmp_path / "lists" / "allowed.csv").write_text("action,callee\nallow,+15551234567\n")
    monkeypatch.chdir(tmp_path)
    plugin = Allowlist(Allowlist.Config(default="deny", rules_file="lists/allowed.csv"))
    assert plugin.rules.path == tmp_path / "lists" / "allowed.csv"
    assert type(plugin.authorize_call(ice_event(to="+15551234567"))).__name__ == "Allow"
    assert type(plugin.authorize_call(ice_event(to="+15551234568"))).__name__ == "Deny"


async def test_inline_rules_come_before_file_rules(tmp_path, ice_event):
    path = tmp_path / "more.toml"
    path.write_text('[[rules]]\naction = "deny"\ncaller = "+4670*"\n')
    plugin = Allowlist(Allowlist.Config(default="allow", rules_file=path,
                                        rules=[{"action": "deny", "caller": "+46701234567"}]))
    assert plugin.authorize_call(ice_event(caller="46701234567")).reason.endswith("([plugins.allowlist] rules[0])")
    assert plugin.authorize_call(ice_event(caller="46709999999")).reason.endswith("(more.toml:1)")


async def test_in_app_callers_are_allowed_or_denied_by_user(callgate_client, callgate_events, route_table):
    cfg = config(route_table, default="deny", prompt="Not for you.",
                 rules=[{"action": "allow", "user": ["alice", "bob"], "callee": "+1*"},
                        {"action": "deny", "user": "bob"}])
    client = await callgate_client(cfg, plugins={"allowlist": Allowlist})

    async def call(user, to="+14155550123"):
        fields = {"user": user} if user is not None else {}
        _, answer = await client.event(callgate_events.ice(caller="private", to=to, origination="MXP", **fields))
        return answer["action"]["name"]

    assert await call("alice") == "connectPstn"
    assert await call("alice", to="+46850001234") == "hangup"    # the rule is for +1 only
    assert await call("bob") == "hangup"                         # a deny rule wins
    assert await call("mallory") == "hangup"
    assert await call(None) == "hangup"
