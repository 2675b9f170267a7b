"""The built-in router (routing table) and caller-id rules."""

import json
from datetime import datetime, timezone

import pytest
from hypothesis import given
from hypothesis import strategies as st
from structlog.testing import capture_logs

from callgate import samples
from callgate.builtin.caller_id import CallerIdConfig, CallerIdRules
from callgate.builtin.router import Router, RouterConfig
from callgate.calls import Callee, Incoming
from callgate.config import PluginsConfig, ServerConfig
from callgate.decisions import (
    Conference,
    DigitMenu,
    EndCall,
    InAppUser,
    PhoneNumber,
    Proceed,
    Prompt,
    Route,
    SipEndpoint,
    SvamlRoute,
)
from callgate.hookspecs import hookimpl
from callgate.manager import PluginError, load_plugins
from callgate.phone import is_e164, normalize
from callgate.protocols.v1.decode import decode_event
from callgate.protocols.v1.render import V1Renderer
from callgate.protocols.v1.svaml import ConnectPstn, Svaml


def ice(**kw):
    return decode_event(json.dumps(samples.ice(**kw)).encode())


def pie(**kw):
    return decode_event(json.dumps(samples.pie(**kw)).encode())


def pstn(number="{to}", **extra):
    return {"name": "connectPstn", "number": number, **extra}


def router(routes=(), clock=None, **config):
    return Router(RouterConfig.model_validate({"routes": list(routes), **config}), clock=clock)


TABLE = [
    {"name": "catch-all", "action": {"name": "hangup"}},
    {"name": "pattern", "pattern": r"\+1\d{10}", "action": pstn("+15550000003")},
    {"name": "short", "prefix": "+46", "action": pstn("+15550000001")},
    {"name": "long", "prefix": "46 8", "action": pstn("+15550000002")},
    {"name": "exact", "number": "+46850001234", "action": pstn("+15550000000")},
]


@pytest.mark.parametrize("callee,expected", [
    ("+46850001234", "exact"),     # exact beats every prefix
    ("46850009999", "long"),       # longest prefix, numbers compared normalised
    ("+46701234567", "short"),
    ("+14155550123", "pattern"),
    ("+4915112345", "catch-all"),
])
def test_hook_route_call_picks_exact_then_longest_prefix_then_pattern_then_catch_all(callee, expected):
    route = router(TABLE).route_call(ice(to=callee))
    assert route.name == expected


def test_table_order_does_not_matter():
    assert router(reversed(TABLE)).route_call(ice(to="46850009999")).name == "long"


def test_no_matching_route_is_none():
    assert router([{"prefix": "+1", "action": pstn()}]).route_call(ice(to="+46850001234")) is None


def test_templates_fill_callee_and_caller():
    r = router([{"action": pstn("{to}"), "instructions": [{"name": "say", "text": "Call from {caller}", "locale": "sv-SE"}]}])
    route = r.route_call(ice(caller="46701234567", to="14155550123"))
    assert route.to == PhoneNumber("+14155550123")
    assert route.prompts == (Prompt.say("Call from +46701234567", "sv-SE"),)


def test_template_routes_are_built_once_per_value_and_never_mixed_up(monkeypatch):
    import callgate.builtin.router as router_module
    monkeypatch.setattr(router_module, "BUILT_CACHE_SIZE", 2)
    r = router([{"action": pstn("{to}"), "instructions": [{"name": "say", "text": "Call from {caller}"}]}])
    first = r.route_call(ice(caller="46701234567", to="14155550123"))
    assert r.route_call(ice(caller="46701234567", to="14155550123")) is first          # built once
    other_caller = r.route_call(ice(caller="46709999999", to="14155550123"))
    assert other_caller.svaml.instructions[0].text == "Call from +46709999999"         # caller is in the key
    third = r.route_call(ice(caller="46701234567", to="14155550199"))                  # cache full: cleared
    assert third.svaml.action.number == "+14155550199"
    again = r.route_call(ice(caller="46701234567", to="14155550123"))
    assert again is not first and again == first                                       # rebuilt, the same


def test_sdk_conference_is_confirmed_with_its_id():
    r = router([{"to_type": "conference", "action": {"name": "connectConf", "conferenceId": "{to}"}}])
    route = r.route_call(ice(to="room-42", to_type="conference", domain="mxp"))
    assert route.to == Conference("room-42")
    assert r.route_call(ice(to="+46850001234")) is None   # to_type does not match
    # A conference id (or a user name) of digits is not a phone number: taken as sent, not made "+1234".
    assert r.route_call(ice(to="1234", to_type="conference", domain="mxp")).to == Conference("1234")
    users = router([{"to_type": "username", "action": {"name": "connectMxp",
                                                       "destination": {"type": "username", "endpoint": "{to}"}}}])
    assert users.route_call(ice(to="46701234567", to_type="username", domain="mxp")).to == InAppUser("46701234567")
    # ... and a route written as a number still matches a user name of digits (apps that name users by number).
    by_number = router([{"number": "+46701234567", "to_type": "username", "action": {
        "name": "connectMxp", "destination": {"type": "username", "endpoint": "{to}"}}}])
    assert by_number.route_call(ice(to="46701234567", to_type="username", domain="mxp")) is not None
    # A route that took the callee for a phone number (it matched by number or prefix) gets it as one in {to}.
    to_phone = router([{"number": "+46701234567", "action": pstn()}, {"prefix": "+1", "action": pstn()}])
    assert to_phone.route_call(ice(to="46701234567", to_type="username", domain="mxp")).to == PhoneNumber("+46701234567")
    assert to_phone.route_call(ice(to="14155550123", to_type="username", domain="mxp")).to == PhoneNumber("+14155550123")


def test_domain_condition():
    r = router([{"domain": "mxp", "action": {"name": "connectMxp"}}])
    assert r.route_call(ice(to="bob", to_type="username", domain="MXP")) is not None
    assert r.route_call(ice(to="bob", to_type="username", domain="pstn")) is None


def at(year, month, day, hour, minute=0):
    return lambda: datetime(year, month, day, hour, minute, tzinfo=timezone.utc)


@pytest.mark.parametrize("clock,expected", [
    (at(2026, 11, 23, 9), "office"),       # Monday 10:00 in Stockholm
    (at(2026, 11, 23, 17, 30), "after"),   # Monday 18:30 in Stockholm: closed
    (at(2026, 11, 22, 9), "after"),        # Sunday
])
def test_time_of_day_routes(clock, expected):
    table = [
        {"name": "office", "number": "+46850001234", "hours": "08:00-18:00", "days": ["mon", "tue", "wed", "thu", "fri"],
         "timezone": "Europe/Stockholm", "action": pstn("+46850009999")},
        {"name": "after", "prefix": "+46", "action": {"name": "hangup"}},
    ]
    assert router(table, clock=clock).route_call(ice(to="+46850001234")).name == expected


def test_overnight_hours_wrap():
    table = [{"name": "night", "hours": "22:00-06:00", "action": pstn()}]
    assert router(table, clock=at(2026, 11, 23, 23)).route_call(ice()) is not None
    assert router(table, clock=at(2026, 11, 23, 3)).route_call(ice()) is not None
    assert router(table, clock=at(2026, 11, 23, 12)).route_call(ice()) is None


def test_menu_answers_match_menu_type_and_value():
    r = router(menu_answers=[
        {"menu": "main", "value": "support", "action": {"name": "connectSip",
                                                        "destination": {"type": "sip", "endpoint": "s@pbx.example"}}},
        {"menu": "main", "type": "timeout", "action": {"name": "hangup"},
         "instructions": [{"name": "say", "text": "Goodbye"}]},
    ])
    assert r.on_prompt_input(pie(type="return", value="support")).to == SipEndpoint("sip:s@pbx.example")
    assert r.on_prompt_input(pie(type="Timeout", value="")).to_dict() == {   # a say without locale: v1 SVAML
        "instructions": [{"name": "say", "text": "Goodbye"}], "action": {"name": "hangup"}}
    assert r.on_prompt_input(pie(menu="other")) == Proceed()   # pie_default


def v2_call(to="+46850001234", to_type="did"):
    return Incoming(generation="v2", event="call.incoming", raw={}, callid="c", cli="+46701234567",
                    to=Callee(to_type, to), domain="pstn")


#: A runMenu rule written as callgate renders a DigitMenu for v1: one menu, no options, the prompt repeated.
MENU = {"name": "runMenu", "locale": "en-US", "mainMenu": "main",
        "menus": [{"id": "main", "mainPrompt": "#tts[Press 1 for sales.]", "repeatPrompt": "#tts[Press 1 for sales.]",
                   "repeats": 2, "maxDigits": 1, "timeoutMills": 5000}]}


@pytest.mark.parametrize("action,instructions,neutral", [
    (pstn("+15550000001", cli="+46850001234", maxDuration=600, dialTimeout=30), [], Route(
        PhoneNumber("+15550000001"), name="r", max_duration=600, cli="+46850001234", dial_timeout=30)),
    ({"name": "connectSip", "destination": {"type": "sip", "endpoint": "a@pbx.example"}, "transport": "TLS"}, [],
     Route(SipEndpoint("sip:a@pbx.example", transport="tls"), name="r")),
    ({"name": "connectMxp", "destination": {"type": "username", "endpoint": "bob"}}, [], Route(InAppUser("bob"), name="r")),
    ({"name": "connectConf", "conferenceId": "room"}, [], Route(Conference("room"), name="r")),
    ({"name": "hangup"}, [{"name": "say", "text": "Closed.", "locale": "en-GB"},
                          {"name": "playFiles", "ids": ["https://x/a.wav"]}],
     Route(EndCall(), name="r", prompts=(Prompt.say("Closed.", "en-GB"), Prompt.play("https://x/a.wav")))),
    (pstn("+15550000001", amd={"enabled": True}), [], None),                 # no neutral AMD
    (pstn("+15550000001"), [{"name": "say", "text": "Hi"}], None),           # a say without locale
    (pstn("+15550000001", maxDuration=0), [], None),                         # 0: no neutral limit
    ({"name": "connectMxp"}, [], None),                                      # the dialled user: no neutral form
    ({"name": "connectSip", "destination": {"type": "sip", "endpoint": "sip:a@pbx.example"}}, [], None),
    ({"name": "runMenu", "menus": [{"id": "main", "mainPrompt": "#tts[Hi]"}]}, [], None),
    (MENU, [], Route(DigitMenu(Prompt.say("Press 1 for sales.", "en-US"), max_digits=1, timeout_seconds=5, repeats=2),
                     name="r")),
    ({**MENU, "menus": [{**MENU["menus"][0], "mainPrompt": "#href[https://x/menu.wav]",
                         "repeatPrompt": "#href[https://x/menu.wav]"}], "locale": None},
     [], Route(DigitMenu(Prompt.play("https://x/menu.wav"), max_digits=1, timeout_seconds=5, repeats=2), name="r")),
    ({**MENU, "menus": [{**MENU["menus"][0], "options": [{"dtmf": "1", "action": "return(one)"}]}]}, [], None),
])
def test_a_rule_is_a_neutral_route_only_when_it_renders_as_the_same_v1_svaml(action, instructions, neutral):
    route = router([{"name": "r", "action": action, "instructions": instructions}]).route_call(ice(to="bob"))
    if neutral is None:
        assert isinstance(route, SvamlRoute) and route.name == "r"
        assert route.svaml.action.name == action["name"]
    else:
        assert route == neutral
        rendered = V1Renderer(ServerConfig()).step_svaml(route).to_dict()
        expected = {k: v for k, v in action.items() if v is not None}
        assert rendered == {"action": expected, **({"instructions": instructions} if instructions else {})}


def test_a_menu_route_serves_v2_calls_too():
    """A runMenu rule that is a DigitMenu answers v2 calls (a ``menu`` command); one with options stays v1 only."""
    options = {**MENU, "menus": [{**MENU["menus"][0], "options": [{"dtmf": "1", "action": "return(one)"}]}]}
    r = router([{"name": "ivr", "number": "+46850001234", "action": MENU},
                {"name": "ivr-v1", "number": "+46850009999", "action": options},
                {"name": "out", "action": pstn("+15550000002")}])
    route = r.route_call(v2_call())
    assert route.name == "ivr" and isinstance(route.to, DigitMenu)
    assert r.route_call(v2_call(to="+46850009999")).name == "out"
    assert isinstance(r.route_call(ice(to="+46850009999")), SvamlRoute)


def test_v2_calls_pass_over_v1_svaml_and_v1_only_targets():
    table = [{"name": "amd", "number": "+46850001234", "action": pstn("+15550000001", amd={"enabled": True})},
             {"name": "user", "prefix": "+46", "action": {"name": "connectMxp",
                                                          "destination": {"type": "username", "endpoint": "bob"}}},
             {"name": "out", "action": pstn("+15550000002")}]
    r = router(table)
    assert r.route_call(ice()).name == "amd"                       # v1: the best route
    with capture_logs() as logs:
        assert r.route_call(v2_call()).name == "out"               # v2: the next best it can take, with a warning
    assert [(line["event"], line["route"]) for line in logs] == [("route_skipped", "amd"), ("route_skipped", "user")]
    assert "no Voice API v2 form" in logs[0]["reason"]
    assert r.route_call(v2_call(to="+15550000009")).name == "out"
    menus = router(menu_answers=[{"value": "1", "action": pstn("+15550000001", amd={"enabled": True})},
                                 {"value": "1", "action": {"name": "hangup"}}],
                   pie_default={"name": "runMenu", "menus": [{"id": "main"}]})
    from callgate.calls import MenuInput, MenuResult
    v2_input = MenuInput(generation="v2", event="call.menu", raw={}, callid="c",
                         menu_result=MenuResult("main", "sequence", "1", "dtmf"))
    assert isinstance(menus.on_prompt_input(pie(value="1")), Svaml)
    with capture_logs() as logs:
        assert menus.on_prompt_input(v2_input) == EndCall()
    assert [(line["event"], line["menu_answer"]) for line in logs] == [("menu_answer_skipped", 0)]
    assert menus.on_prompt_input(pie(value="2")).action.name == "runMenu"
    with capture_logs() as logs:
        assert menus.on_prompt_input(MenuInput(generation="v2", event="call.menu", raw={}, callid="c",
                                               menu_result=MenuResult("main", "sequence", "2", "dtmf"))) is None
    assert [(line["event"], line["menu_answer"]) for line in logs] == [("menu_answer_skipped", "pie_default")]


@pytest.mark.parametrize("table,needle", [
    ({"routes": [{"action": {"name": "continue"}}]}, "continue"),                       # not allowed in ICE
    ({"routes": [{"action": pstn(maxDuration=99999)}]}, "maxDuration"),
    ({"routes": [{"prefix": "+1", "number": "+15551230000", "action": pstn()}]}, "at most one"),
    ({"routes": [{"pattern": "(", "action": pstn()}]}, "regular expression"),
    ({"routes": [{"hours": "8-18", "action": pstn()}]}, "hours"),
    ({"routes": [{"timezone": "Mars/Olympus", "action": pstn()}]}, "timezone"),
    ({"routes": [{"action": {"name": "connectPSTN", "number": "+15550000000"}, "nme": "x"}]}, "nme"),
    ({"menu_answers": [{"action": {"name": "park"}}]}, "park"),                        # not allowed in PIE
    ({"pie_default": {"name": "answer"}}, "answer"),
])
def test_bad_tables_stop_start_up_naming_the_key(table, needle):
    with pytest.raises(PluginError) as err:
        load_plugins(PluginsConfig.model_validate({"router": table}))
    assert "[plugins.router]" in str(err.value) and needle in str(err.value)


def test_sinch_spelling_of_action_names_is_accepted():
    r = router([{"action": {"name": "ConnectPSTN", "number": "+15550000000"}}])
    assert r.route_call(ice()).to == PhoneNumber("+15550000000")


# --- caller-id rules -----------------------------------------------------------------------

def cli_rules(*rules):
    return CallerIdRules(CallerIdConfig.model_validate({"rules": list(rules)}))


def test_hook_set_cli_route_rule_beats_prefix():
    rules = cli_rules({"prefix": "+1", "cli": "+14155550100"}, {"route": "vip", "cli": "private"})
    route = Route(PhoneNumber("+14155550123"), name="vip")
    assert rules.set_cli(ice(), route).number == "private"
    assert rules.set_cli(ice(), SvamlRoute(Svaml(action=ConnectPstn(number="+14155550123", dtmf="1")), "vip")).number \
        == "private"


def test_set_cli_longest_prefix_of_the_dialled_number():
    rules = cli_rules({"prefix": "+1", "cli": "+14155550100"}, {"prefix": "1 415", "cli": "+14155550199"})
    assert rules.set_cli(ice(), Route(PhoneNumber("+14155550123"))).number == "+14155550199"
    assert rules.set_cli(ice(), Route(PhoneNumber("+12125550123"))).number == "+14155550100"
    assert rules.set_cli(ice(), Route(PhoneNumber("+46850001234"))) is None
    assert rules.set_cli(ice(), SvamlRoute(Svaml(action=ConnectPstn(number="+12125550123", dtmf="1")))).number \
        == "+14155550100"


def test_set_cli_uses_the_callee_when_the_route_has_no_number():
    rules = cli_rules({"prefix": "+46", "cli": "+46850001234"})
    sip = Route(SipEndpoint("sip:a@pbx.example"))
    assert rules.set_cli(ice(to="+46701234567"), sip).number == "+46850001234"


@pytest.mark.parametrize("condition, says", [({"to_type": "fax"}, "'fax' is not one of conference, did, number"),
                                             ({"domain": "pstm"}, "'pstm' is not one of conference, mxp, pstn")])
def test_a_route_condition_that_no_call_can_meet_is_refused(condition, says):
    """A typo in ``to_type`` or ``domain`` would make the route never match, silently."""
    with pytest.raises(PluginError, match=r"\[plugins.router\].routes\[0\]") as refused:
        load_plugins(PluginsConfig.model_validate({"router": {"routes": [
            {**condition, "action": {"name": "connectPstn", "number": "+46850001234"}}]}}))
    assert says in str(refused.value)
    routes = load_plugins(PluginsConfig.model_validate({"router": {"routes": [
        {"to_type": " DID ", "domain": "PSTN", "action": {"name": "connectPstn", "number": "+46850001234"}}]}}))
    assert routes.loaded                                        # case and spaces as people write them are taken


def test_a_menu_answer_type_no_menu_can_report_is_refused():
    """A typo in a menu answer's ``type`` ("sequnce") would make it never match, silently."""
    with pytest.raises(PluginError, match=r"\[plugins.router\].menu_answers\[0\]") as refused:
        load_plugins(PluginsConfig.model_validate({"router": {"menu_answers": [
            {"type": "sequnce", "action": {"name": "hangup"}}]}}))
    assert "'sequnce' is not one of error, hangup, invalidinput, return, sequence, timeout" in str(refused.value)
    r = router(menu_answers=[{"type": " Sequence ", "action": {"name": "hangup"}}])
    assert r.on_prompt_input(pie(type="sequence", value="12")) == EndCall()


def test_a_caller_id_rule_naming_no_route_of_the_router_is_refused():
    """A rule whose ``route`` names no route of the built-in router (a typo, a route renamed) would never apply."""
    from callgate.app import create_app
    from callgate.testing import check_config, make_config

    routes = {"routes": [{"name": "sales", "prefix": "+46", "action": {"name": "connectPstn", "number": "{to}"}},
                         {"prefix": "+1", "action": {"name": "hangup"}}]}
    config = {"plugins": {"router": routes, "caller_id": {"rules": [{"route": "sales", "cli": "+46850001234"},
                                                                      {"route": "salse", "cli": "+46850001234"}]}}}
    refused = check_config(config)
    assert isinstance(refused, PluginError) and str(refused) == (
        "plugin 'caller_id': rules: route 'salse' is not a route of [plugins.router] (its named routes are sales), "
        "so the rule would never apply")
    with pytest.raises(PluginError, match="route 'salse' is not a route"):
        create_app(make_config(config))
    del config["plugins"]["caller_id"]["rules"][1]
    assert check_config(config) is None

    class OtherRouter:                          # another plugin routes too: its routes may be the ones named
        @hookimpl
        def route_call(self, call):
            return None
    other = {"plugins": {**config["plugins"], "caller_id": {"rules": [{"route": "theirs", "cli": "+46850001234"}]},
                         "enabled": ["other"]}}
    assert check_config(other, plugins={"other": OtherRouter}) is None


def test_bad_cli_rule_is_refused():
    with pytest.raises(PluginError, match=r"\[plugins.caller_id\].rules\[0\]"):
        load_plugins(PluginsConfig.model_validate({"caller_id": {"rules": [{"prefix": "+1", "cli": "12345"}]}}))


def _normalize_with_phonenumbers(value):
    """phone.normalize without its fast path: what phonenumbers reads (00 as +), None when it reads nothing."""
    import phonenumbers
    compact = "".join(c for c in value if c not in " -().\n")
    compact = "+" + compact[2:] if compact.startswith("00") else compact
    try:
        number = phonenumbers.parse(compact if compact.startswith("+") else "+" + compact)
    except phonenumbers.NumberParseException:
        return None
    return phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)


@given(st.text(alphabet="+0123456789 -().\n٣a", max_size=16))
def test_normalize_fast_path_agrees_with_phonenumbers(value):
    fast = normalize(value)
    assert fast is None or is_e164(fast)
    slow = _normalize_with_phonenumbers(value)
    if fast is not None and slow is not None and is_e164(slow):
        assert fast == slow


def test_a_v2_menu_input_matches_the_digits_a_v1_pie_would_report():
    """call.menu's input ends with the "#" that ended it; the same menu answer matches it and the v1 PIE."""
    from callgate import v2_samples
    from callgate.protocols.v2.adapt import decode_event as decode_v2

    r = router(menu_answers=[{"menu": "main", "value": "12", "action": {"name": "hangup"}}])
    v2_input = decode_v2(json.dumps(v2_samples.menu(input="12#")).encode())
    assert v2_input.menu_result.value == "12" and v2_input.raw["menu"]["input"] == "12#"
    assert r.on_prompt_input(v2_input) == EndCall()
    assert r.on_prompt_input(pie(value="12")) == EndCall()
