"""The result types' fast constructor: the same frozen objects as their keyword constructor."""

import dataclasses

import pytest

from callgate.decisions import Allow, EndCall, PhoneNumber, Route, SipEndpoint
from callgate.drafts import positional_builder
from callgate.plan import IncomingPlan
from callgate.protocols.v1.svaml import ConnectPstn, Svaml
from callgate.results import Decision, Outcome, new_decision, new_outcome


def test_new_outcome_builds_what_the_constructor_builds():
    built = new_outcome("router", "route_call", None, "ok", None, 0.25)
    assert built == Outcome("router", "route_call", None, "ok", None, 0.25)
    assert hash(built) == hash(Outcome("router", "route_call", None, "ok", None, 0.25))
    assert type(built) is Outcome and built.verdict == "abstain"
    with pytest.raises(dataclasses.FrozenInstanceError):
        built.status = "error"


@pytest.mark.parametrize("hook", ["on_disconnect", "on_notify"])
def test_a_recording_hook_that_returned_is_recorded_and_one_that_failed_is_not(hook):
    assert new_outcome("crm", hook, None, "ok", None, 1.0).verdict == "recorded"
    assert new_outcome("crm", hook, None, "timeout", "no answer within 200 ms", 200.0).verdict == \
        "timeout: no answer within 200 ms"


def test_new_decision_takes_every_field_in_order():
    route = Route(PhoneNumber("+46850001234"), name="sweden")
    svaml = Svaml(action=ConnectPstn(number="+46850001234"))
    plan = IncomingPlan(True, (), route, None, 600, "+46701234567")
    outcomes = (Outcome("router", "route_call", route),)
    built = new_decision(True, "default", "allowed", svaml, route, "router", "+46701234567", 600, outcomes, "v1", plan,
                         "sweden")
    assert built == Decision(allowed=True, decided_by="default", reason="allowed", svaml=svaml, route=route,
                             routed_by="router", cli="+46701234567", max_duration=600, outcomes=outcomes,
                             generation="v1", plan=plan, route_name="sweden")
    with pytest.raises(dataclasses.FrozenInstanceError):
        built.allowed = False
    with pytest.raises(TypeError):
        new_decision(True, "default", "allowed", svaml)         # every field must be given


def test_classes_that_check_themselves_keep_their_constructor():
    with pytest.raises(TypeError, match="without __post_init__"):
        positional_builder(Allow)                   # Allow validates in __post_init__: nothing may skip it

    @dataclasses.dataclass(frozen=True)
    class NoSlots:
        x: int

    with pytest.raises(TypeError, match="slotted"):
        positional_builder(NoSlots)


@pytest.mark.parametrize(("route", "said"), [
    (Route(PhoneNumber("+46850001234"), name="sweden"), "route sweden"),
    (Route(PhoneNumber("+46850001234")), "route to a number"),
    (Route(SipEndpoint("sip:desk@pbx.example.com")), "route to a SIP address"),
    (Route(EndCall()), "route: hang up"),
])
def test_a_route_is_described_by_its_name_or_what_it_goes_to_never_the_address(route, said):
    """A plugin's verdict on the callback log line and in the console: a label, not the class name, and never the
    number or address."""
    assert new_outcome("router", "on_prompt_input", route, "ok", None, 0.1).verdict == said
