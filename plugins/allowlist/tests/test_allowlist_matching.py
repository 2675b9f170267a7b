"""The rule language and the decision, without a server: values, conditions, deny-wins, scope, default."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from callgate_allowlist.config import AllowlistConfig, Scope
from callgate_allowlist.facts import CallFacts
from callgate_allowlist.index import RuleSet
from callgate_allowlist.matchers import caller_key, parse_matcher, value_key
from callgate_allowlist.policy import evaluate
from callgate_allowlist.rules import RuleSpec, compile_rule


def ruleset(*specs: dict) -> RuleSet:
    return RuleSet.build([compile_rule(RuleSpec(**s), ordinal=i, source=f"test[{i}]") for i, s in enumerate(specs)])


def decide(rules: RuleSet, cli: str | None = "46701234567", to: str = "+15551234567", *, default="deny",
           scope: Scope | None = None, **facts):
    facts.setdefault("to_type", "number")
    facts.setdefault("domain", "pstn")
    facts.setdefault("origination_type", "PSTN")
    return evaluate(CallFacts.of(cli=cli, to=to, **facts), rules, scope=scope or Scope(), default=default)


# --- numbers are normalised on both sides -----------------------------------------------------

@pytest.mark.parametrize("written", ["+46701234567", "46701234567", "+46 70 123 45 67", "46-70-123 45 67"])
@pytest.mark.parametrize("sent", ["46701234567", "+46701234567", " +46 70 123 45 67 "])
def test_a_number_matches_however_it_is_written_or_sent(written, sent):
    rules = ruleset({"action": "allow", "caller": written})
    result = decide(rules, sent)
    assert (result.verdict, result.rule.source) == ("allow", "test[0]")


def test_a_different_number_does_not_match():
    rules = ruleset({"action": "allow", "caller": "+46701234567"})
    assert decide(rules, "46701234568").verdict == "deny"
    assert decide(rules, "4670123456").verdict == "deny"   # a prefix of it is another number


def test_prefixes_match_numbers_that_start_with_them_whatever_the_spelling():
    rules = ruleset({"action": "deny", "caller": "46 70*"})
    assert decide(rules, "46701234567", default="allow").verdict == "deny"
    assert decide(rules, "+4670", default="allow").verdict == "deny"
    assert decide(rules, "46801234567", default="allow").verdict == "allow"


def test_patterns_match_the_whole_normalised_value():
    rules = ruleset({"action": "deny", "caller": r"re:\+4670\d{7}"})
    assert decide(rules, "46701234567", default="allow").verdict == "deny"
    assert decide(rules, "467012345678", default="allow").verdict == "allow"   # fullmatch: one digit too many


@pytest.mark.parametrize("cli", ["private", "Anonymous", "withheld", "unknown", "RESTRICTED", ""])
def test_withheld_callers_are_their_own_case(cli):
    rules = ruleset({"action": "deny", "caller": "private"}, {"action": "allow", "caller": "*"})
    result = decide(rules, cli)
    assert (result.verdict, result.rule.source) == ("deny", "test[0]")
    assert decide(rules, "46701234567").verdict == "allow"


def test_a_pstn_call_without_cli_counts_as_private_an_in_app_call_has_no_caller():
    rules = ruleset({"action": "deny", "caller": "anonymous"})
    assert decide(rules, None, default="allow").verdict == "deny"
    assert decide(rules, None, default="allow", origination_type="MXP").verdict == "allow"
    assert caller_key(None, "mxp") is None and caller_key(None, "pstn") == "private"


def test_values_keys_are_consistent_for_numbers_and_names():
    assert value_key("46 70-123") == value_key("+4670123") == "+4670123"
    assert value_key(" alice ") == "alice"
    assert value_key("sip:alice@example.com") == "sip:alice@example.com"


# --- conditions ---------------------------------------------------------------------------------

def test_every_condition_of_a_rule_must_hold():
    rules = ruleset({"action": "allow", "caller": "+4670*", "callee": "+1555*", "callee_type": "number",
                     "domain": "pstn", "origination_type": "pstn", "application_key": "APP-1"})
    assert decide(rules, "46701234567", "+15551234567", application_key="app-1").verdict == "allow"
    assert decide(rules, "46801234567", "+15551234567", application_key="app-1").verdict == "deny"
    assert decide(rules, "46701234567", "+15561234567", application_key="app-1").verdict == "deny"
    assert decide(rules, "46701234567", "+15551234567", application_key="app-2").verdict == "deny"
    assert decide(rules, "46701234567", "+15551234567", application_key="app-1", to_type="did").verdict == "deny"
    assert decide(rules, "46701234567", "+15551234567", application_key="app-1", domain="mxp").verdict == "deny"
    assert decide(rules, "46701234567", "+15551234567", application_key="app-1",
                  origination_type="MXP").verdict == "deny"


def test_a_list_of_values_is_met_by_any_of_them():
    rules = ruleset({"action": "allow", "callee": ["+15612600684", "+4420*"], "callee_type": ["number", "did"]})
    assert decide(rules, to="+15612600684").verdict == "allow"
    assert decide(rules, to="+442071234567", to_type="did").verdict == "allow"
    assert decide(rules, to="+15612600685").verdict == "deny"


def test_callees_that_are_not_numbers_are_compared_as_written():
    rules = ruleset({"action": "allow", "callee": "alice", "callee_type": "username"},
                    {"action": "allow", "callee": "re:sip:.*@pbx\\.example\\.com", "callee_type": "sip"})
    assert decide(rules, to="alice", to_type="username").verdict == "allow"
    assert decide(rules, to="alice", to_type="number").verdict == "deny"
    assert decide(rules, to="bob", to_type="username").verdict == "deny"
    assert decide(rules, to="sip:desk@pbx.example.com", to_type="sip").verdict == "allow"
    assert decide(rules, to="sip:desk@evil.example.com", to_type="sip").verdict == "deny"


def test_star_means_anything_even_a_missing_value():
    rules = ruleset({"action": "deny", "caller": "*", "domain": "*"})
    assert decide(rules, None, default="allow", origination_type="MXP").verdict == "deny"


# --- deny wins, the default decides the rest, the scope decides whether we speak at all --------

def test_a_deny_rule_wins_over_any_allow_rule_whatever_the_order_or_specificity():
    rules = ruleset({"action": "allow", "caller": "+46701234567"},          # exact, written first
                    {"action": "deny", "caller": "+4670*"})                   # broad, written later
    result = decide(rules, "46701234567", default="allow")
    assert (result.verdict, result.rule.source) == ("deny", "test[1]")


def test_the_first_matching_rule_written_is_the_one_reported():
    rules = ruleset({"action": "deny", "caller": r"re:\+46.*"},    # scanned
                    {"action": "deny", "caller": "+4670*"},          # prefix index
                    {"action": "deny", "caller": "+46701234567"})    # exact index
    assert decide(rules, "46701234567").rule.source == "test[0]"
    rules = ruleset({"action": "deny", "callee": "+15551234567"},
                    {"action": "deny", "caller": "+46701234567"})
    assert decide(rules, "46701234567", "+15551234567").rule.source == "test[0]"


@pytest.mark.parametrize("default", ["allow", "deny"])
def test_without_a_matching_rule_the_default_decides(default):
    result = decide(ruleset({"action": "allow", "caller": "+1*"}), "46701234567", default=default)
    assert (result.verdict, result.rule) == (default, None)
    assert f"default is {default}" in result.reason


def test_calls_outside_the_scope_get_no_opinion():
    scope = Scope(domains=["pstn"], origination_types=["PSTN"], callee_types=["number", "did"],
                  application_keys=["App-1"])
    rules = ruleset({"action": "deny", "caller": "*"})
    assert decide(rules, application_key="app-1", scope=scope).verdict == "deny"
    for outside in ({"domain": "mxp"}, {"origination_type": "mxp"}, {"to_type": "username"},
                    {"application_key": "app-2"}, {"application_key": None}):
        result = decide(rules, scope=scope, **{"application_key": "app-1", **outside})
        assert (result.verdict, result.in_scope) == ("none", False), outside


# --- bad values are refused with a message that says how to write them ---------------------------

@pytest.mark.parametrize(("spec", "message"), [
    ({"action": "allow", "caller": "+46abc"}, "caller: '+46abc' is not a phone number"),
    ({"action": "allow", "caller": "alice"}, "caller: 'alice' is not a phone number"),
    ({"action": "allow", "callee": "+1 555 CALL"}, "callee: '+1 555 CALL' is not a phone number"),
    ({"action": "allow", "caller": "+46*70"}, "* may only end a prefix"),
    ({"action": "allow", "caller": "re:(+46"}, "not a valid regular expression"),
    ({"action": "allow", "caller": "re:"}, "empty pattern"),
    ({"action": "allow", "caller": "  "}, "caller: empty value"),
    ({"action": "allow", "caller": []}, "caller: empty list"),
    ({"action": "allow", "callee_type": "phone"}, "callee_type: 'phone' is not one of"),
    ({"action": "allow", "domain": "voip"}, "domain: 'voip' is not one of"),
    ({"action": "allow", "origination_type": "voip"}, "origination_type: 'voip' is not one of"),
    ({"action": "permit", "caller": "+1"}, "action"),
    ({"action": "allow", "caller": 46701234567}, 'write numbers as strings: "+46701234567", not 46701234567'),
    ({"action": "allow", "callee_type": ["number", 5]}, "expected a string or a list of strings, got 5"),
    ({"action": "allow", "number": "+1"}, "number"),
])
def test_bad_rules_are_refused_with_a_clear_message(spec, message):
    with pytest.raises(ValueError) as info:
        RuleSpec.model_validate(spec)
    assert message in str(info.value)


def test_the_default_must_be_stated_and_prompts_are_one_kind():
    with pytest.raises(ValueError, match="default"):
        AllowlistConfig.model_validate({})
    with pytest.raises(ValueError, match="not both"):
        AllowlistConfig.model_validate({"default": "deny", "prompt": "No.", "prompt_files": ["https://x/no.wav"]})
    with pytest.raises(ValueError, match="600"):
        AllowlistConfig.model_validate({"default": "deny", "prompt": "x" * 601})
    with pytest.raises(ValueError, match=r"must end in .csv or .toml"):
        AllowlistConfig.model_validate({"default": "deny", "rules_file": "rules.txt"})
    with pytest.raises(ValueError, match="'voip' is not one of"):
        AllowlistConfig.model_validate({"default": "deny", "scope": {"domains": ["voip"]}})
    assert AllowlistConfig.model_validate({"default": "DENY"}).default == "deny"


def test_matchers_say_what_they_are():
    assert parse_matcher("*", field="caller") is None
    assert parse_matcher("46701234567", field="caller").kind == "exact"
    assert parse_matcher("+4670*", field="callee").value == "+4670"
    assert parse_matcher("withheld", field="caller").value == "private"
    assert parse_matcher("private", field="callee").value == "private"   # a username called "private"


# --- the index finds exactly what looking at every rule would find --------------------------------

_numbers = st.sampled_from(["+46701234567", "+46701234568", "+46701239999", "+15559876543", "+15551234567", "private",
                           "alice"])
_values = st.one_of(
    _numbers,
    st.sampled_from(["+46*", "+4670*", "+4670123*", "+1*", "+1555*", "*", r"re:\+46.*7", "re:alice|bob"]),
)
_caller_values = _values.filter(lambda v: v != "alice")   # a caller is a number, private or a pattern
_rule = st.fixed_dictionaries(
    {"action": st.sampled_from(["allow", "deny"])},
    optional={"caller": st.one_of(_caller_values, st.lists(_caller_values, min_size=1, max_size=3)),
              "callee": st.one_of(_values, st.lists(_values, min_size=1, max_size=3)),
              "callee_type": st.sampled_from(["number", "did", "username"]),
              "domain": st.sampled_from(["pstn", "mxp"])},
)


@settings(max_examples=300, deadline=None)
@given(specs=st.lists(_rule, max_size=12), caller=_numbers, callee=_numbers,
       to_type=st.sampled_from(["number", "did", "username"]), domain=st.sampled_from(["pstn", "mxp"]))
@pytest.mark.slow
def test_the_index_agrees_with_looking_at_every_rule(specs, caller, callee, to_type, domain):
    rules = [compile_rule(RuleSpec(**s), ordinal=i, source=f"r{i}") for i, s in enumerate(specs)]
    facts = CallFacts.of(cli=caller, to=callee, to_type=to_type, domain=domain, origination_type="pstn")
    matching = [r for r in rules if r.matches(facts)]
    expected = (next((r for r in matching if r.action == "deny"), None)
                or next((r for r in matching if r.action == "allow"), None))
    found = RuleSet.build(rules).match(facts)
    assert (found and (found.ordinal, found.action, found.source)) == (expected and (expected.ordinal, expected.action,
                                                                                   expected.source))


# --- in-app callers: the ICE's user -------------------------------------------------------------

def in_app(rules: RuleSet, user: str | None, to: str = "+15551234567", **kwargs):
    """An app-to-phone call from a Sinch SDK client: cli "private", the client's user id, origination mxp."""
    return decide(rules, "private", to, user=user, origination_type="MXP", **kwargs)


def test_a_user_rule_matches_the_in_app_caller_by_user_id():
    rules = ruleset({"action": "allow", "user": "alice"}, {"action": "allow", "user": ["bob", "carol"]})
    result = in_app(rules, "alice")
    assert (result.verdict, result.rule.source, result.rule.text) == ("allow", "test[0]", "allow user=alice")
    assert in_app(rules, "carol").rule.source == "test[1]"
    assert in_app(rules, "mallory").verdict == "deny"                  # the default
    assert in_app(rules, "Alice").verdict == "deny"                    # user ids are exact, as Sinch sends them
    assert in_app(rules, None).verdict == "deny"
    assert decide(rules, "46701234567").verdict == "deny"              # a phone caller has no user


def test_user_values_are_exact_prefixes_patterns_or_anything():
    rules = ruleset({"action": "deny", "user": "guest-*"}, {"action": "deny", "user": r"re:test\d+"},
                    {"action": "allow", "user": "*", "callee": "+1555*"})
    assert in_app(rules, "guest-42", default="allow").verdict == "deny"
    assert in_app(rules, "test7", default="allow").verdict == "deny"
    assert in_app(rules, "test7x", default="allow").verdict == "allow"  # a pattern matches the whole id
    assert in_app(rules, "alice").verdict == "allow"                    # user = "*": any in-app user...
    assert in_app(rules, None).verdict == "allow"                       # ... like leaving the condition out
    assert in_app(rules, "alice", to="+4420").verdict == "deny"


def test_a_user_condition_combines_with_the_others_and_deny_still_wins():
    rules = ruleset({"action": "allow", "user": "alice", "callee": "+1*"},
                    {"action": "deny", "user": "alice", "callee": "+1900*"})
    assert in_app(rules, "alice", to="+15551234567").verdict == "allow"
    assert in_app(rules, "alice", to="+19005550100").verdict == "deny"
    assert in_app(rules, "alice", to="+46850001234").verdict == "deny"  # the default


def test_an_in_app_call_is_from_private_so_block_withheld_numbers_for_pstn_only():
    blunt = ruleset({"action": "deny", "caller": "private"}, {"action": "allow", "user": "alice"})
    assert in_app(blunt, "alice").verdict == "deny"                      # cli "private": the deny rule wins
    careful = ruleset({"action": "deny", "caller": "private", "origination_type": "pstn"},
                      {"action": "allow", "user": "alice"})
    assert in_app(careful, "alice").verdict == "allow"
    assert decide(careful, "private", default="allow").verdict == "deny"


def test_the_user_is_taken_from_the_ice(ice_event):
    facts = CallFacts.from_call(ice_event(caller="private", to="+14155550123", user=" alice ", originationType="MXP"))
    assert (facts.caller, facts.user, facts.origination_type) == ("private", "alice", "mxp")
    assert "user alice" in facts.describe()
    assert CallFacts.from_call(ice_event(caller="46701234567")).user is None


@pytest.mark.parametrize(("spec", "message"), [
    ({"action": "allow", "user": " "}, "user: empty value"),
    ({"action": "allow", "user": []}, "user: empty list"),
    ({"action": "allow", "user": "al*ce"}, "* may only end a prefix"),
    ({"action": "allow", "user": "re:(a"}, "not a valid regular expression"),
    ({"action": "allow", "user": 42}, "expected a string"),
])
def test_bad_user_values_are_refused_with_a_clear_message(spec, message):
    with pytest.raises(ValueError) as info:
        RuleSpec.model_validate(spec)
    assert message in str(info.value)


_users = st.sampled_from(["alice", "alicia", "bob", "guest-1", "guest-22"])
_user_values = st.one_of(_users, st.sampled_from(["ali*", "guest-*", "*", "re:guest-\\d", "re:bob|alice"]))
_user_rule = st.fixed_dictionaries(
    {"action": st.sampled_from(["allow", "deny"])},
    optional={"user": st.one_of(_user_values, st.lists(_user_values, min_size=1, max_size=3)),
              "caller": st.sampled_from(["private", "+4670*", "*"]),
              "callee": st.sampled_from(["+1555*", "+15551234567", "re:\\+1.*"]),
              "origination_type": st.sampled_from(["pstn", "mxp"])},
)


@settings(max_examples=300, deadline=None)
@given(specs=st.lists(_user_rule, max_size=12), user=st.one_of(st.none(), _users),
       caller=st.sampled_from(["private", "46701234567"]), callee=st.sampled_from(["+15551234567", "+4420"]),
       origination=st.sampled_from(["pstn", "mxp"]))
def test_the_index_agrees_with_looking_at_every_rule_with_users(specs, user, caller, callee, origination):
    rules = [compile_rule(RuleSpec(**s), ordinal=i, source=f"r{i}") for i, s in enumerate(specs)]
    facts = CallFacts.of(cli=caller, to=callee, to_type="number", domain="pstn", origination_type=origination,
                         user=user)
    matching = [r for r in rules if r.matches(facts)]
    expected = (next((r for r in matching if r.action == "deny"), None)
                or next((r for r in matching if r.action == "allow"), None))
    found = RuleSet.build(rules).match(facts)
    assert (found and (found.ordinal, found.action)) == (expected and (expected.ordinal, expected.action))
