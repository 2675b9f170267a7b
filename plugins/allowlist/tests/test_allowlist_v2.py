"""Rules over Voice API v2 calls (neutral ``callgate.calls`` objects): the same rules and config serve both
generations; ``application_key`` matches the v2 service id, ``user`` never matches a v2 call."""

import pytest

from callgate.calls import Callee, Incoming
from callgate.decisions import Allow, Deny, Prompt
from callgate_allowlist import Allowlist
from callgate_allowlist.config import AllowlistConfig
from callgate_allowlist.facts import CallFacts

SERVICE = "B7E4C2D9-1111-2222-3333-444455556666"


def v2_call(cli="+46701234567", to="+46850001234", to_type="did", origination="pstn", **fields) -> Incoming:
    """A ``call.incoming`` as the v2 adapter decodes it."""
    return Incoming(generation="v2", event="call.incoming", raw={}, callid="01JQ8ZK3V9A4B6C8D0E2F4G6H8",
                    session_id="01JQ8ZK3V7N5W2R4T6Y8B0C1DE", application=SERVICE, cli=cli, to=Callee(to_type, to),
                    origination_type=origination, **fields)


def allowlist(**config) -> Allowlist:
    return Allowlist(AllowlistConfig.model_validate(config))


def test_v2_facts_are_the_neutral_calls():
    facts = CallFacts.from_call(v2_call(cli="+46 70 123 45 67", to_type="did"))
    assert (facts.caller, facts.callee, facts.callee_type, facts.origination_type) == (
        "+46701234567", "+46850001234", "did", "pstn")
    assert facts.application_key == SERVICE.lower() and facts.user is None


def test_caller_and_callee_rules_decide_v2_calls():
    plugin = allowlist(default="deny", prompt="Not from here.", locale="en-GB",
                       rules=[{"action": "allow", "callee": "+4685*", "callee_type": "did"},
                              {"action": "deny", "caller": "+1900*"}])
    assert isinstance(plugin.authorize_call(v2_call()), Allow)
    denied = plugin.authorize_call(v2_call(cli="+19005550100"))
    assert isinstance(denied, Deny) and "caller=+1900*" in denied.reason
    assert denied.prompt == Prompt.say("Not from here.", "en-GB")
    assert isinstance(plugin.authorize_call(v2_call(to="+46850001234", to_type="number")), Deny)   # a did rule


def test_the_application_key_rule_matches_the_v2_service_id():
    plugin = allowlist(default="deny", rules=[{"action": "allow", "application_key": SERVICE.lower()}],
                       scope={"application_keys": [SERVICE]})
    assert isinstance(plugin.authorize_call(v2_call()), Allow)
    other = Incoming(generation="v2", event="call.incoming", raw={}, callid="x", application="another-service",
                     cli="+46701234567", to=Callee("did", "+46850001234"))
    assert plugin.authorize_call(other) is None                                     # outside the scope


def test_user_rules_never_match_v2_calls():
    plugin = allowlist(default="allow", rules=[{"action": "deny", "user": "re:.*"}, {"action": "deny", "user": "alice"},
                                               {"action": "deny", "user": "guest-*"}])
    assert isinstance(plugin.authorize_call(v2_call()), Allow)      # every user condition needs a user


@pytest.mark.parametrize(("origination", "to_type", "verdict"), [("sip", "sip", Deny), ("pstn", "did", Allow),
                                                                  ("server", "number", Allow)])
def test_v2_origination_and_callee_types_are_rule_words(origination, to_type, verdict):
    plugin = allowlist(default="allow", rules=[{"action": "deny", "origination_type": "sip", "callee_type": "sip"}])
    to = "sip:support@pbx.example.com" if to_type == "sip" else "+46850001234"
    assert isinstance(plugin.authorize_call(v2_call(origination=origination, to_type=to_type, to=to)), verdict)


def test_a_sip_caller_is_compared_as_written():
    plugin = allowlist(default="deny", rules=[{"action": "allow", "caller": "re:sip:.*@pbx\\.example\\.com"}])
    assert isinstance(plugin.authorize_call(v2_call(cli="sip:alice@pbx.example.com", origination="sip")), Allow)


def test_the_prompt_file_is_a_neutral_audio_prompt():
    plugin = allowlist(default="deny", prompt_files=["https://media.example.com/blocked.wav"])
    denied = plugin.authorize_call(v2_call())
    assert isinstance(denied, Deny) and denied.prompt == Prompt.play("https://media.example.com/blocked.wav", locale="en-US")
