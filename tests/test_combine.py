"""The pure combine step: plugins' answers in, one plan out, and the plan as v1 SVAML (no server, no pluggy)."""

import itertools
import json

import pluggy
import pytest
from hypothesis import given
from hypothesis import strategies as st

from callgate import Allow, Conference, Deny, PhoneNumber, Prompt, Route, SipEndpoint, SvamlRoute, hookimpl, hookspecs, samples
from callgate.combine import Authorization, combine_authorization, first_answer, incoming_plan
from callgate.config import ServerConfig
from callgate.hookspecs import PROJECT
from callgate.manager import LoadedPlugin, Plugins
from callgate.pipeline import Pipeline
from callgate.protocols.v1.decode import decode_event
from callgate.protocols.v1.render import V1Renderer
from callgate.protocols.v1.svaml import ConnectConf, ConnectPstn, Svaml
from callgate.results import Outcome


def outcome(plugin, value):
    return Outcome(plugin, "authorize_call", value)


def test_any_deny_wins_and_the_first_names_the_reason():
    outcomes = [outcome("a", Allow(max_duration=60)), outcome("b", Deny("no credit")), outcome("c", Deny("blocked"))]
    auth = combine_authorization(outcomes, "allow")
    assert (auth.allowed, auth.decided_by, auth.reason) == (False, "b", "no credit")


def test_allows_combine_smallest_duration_and_prompts_in_order():
    hello, credit = Prompt.say("hello"), Prompt.say("you have 3 minutes")
    outcomes = [outcome("a", Allow(max_duration=600, prompts=(hello,))), outcome("b", None),
                outcome("c", Allow(max_duration=180, prompts=(credit,))), outcome("d", Allow())]
    auth = combine_authorization(outcomes, "deny")
    assert auth.allowed and auth.max_duration == 180
    assert auth.prompts == (hello, credit)
    assert auth.decided_by == "a,c,d"


@pytest.mark.parametrize("default,allowed", [("allow", True), ("deny", False)])
def test_no_opinion_means_the_configured_default(default, allowed):
    auth = combine_authorization([outcome("a", None), outcome("b", None)], default)
    assert auth.allowed is allowed and auth.decided_by == "default"


answers = st.one_of(st.none(), st.builds(Allow, max_duration=st.one_of(st.none(), st.integers(1, 14400))),
                    st.builds(Deny, reason=st.sampled_from(["x", "y"])))


@given(st.lists(answers, max_size=6), st.randoms())
def test_the_decision_does_not_depend_on_plugin_order(values, rnd):
    outcomes = [outcome(f"p{i}", v) for i, v in enumerate(values)]
    shuffled = outcomes[:]
    rnd.shuffle(shuffled)
    a, b = combine_authorization(outcomes, "allow"), combine_authorization(shuffled, "allow")
    assert a.allowed == b.allowed == (not any(isinstance(v, Deny) for v in values))
    assert a.max_duration == b.max_duration


def test_first_answer_skips_none():
    outs = [Outcome("a", "route_call", None), Outcome("b", "route_call", "x"), Outcome("c", "route_call", "y")]
    assert first_answer(outs).plugin == "b"
    assert first_answer([Outcome("a", "route_call", None)]) is None


def v1_answer(plan, **server):
    return V1Renderer(ServerConfig(**server)).incoming(plan).svaml.to_dict()


def test_denied_call_hears_the_prompt_after_answer_then_hangs_up():
    auth = Authorization(False, "allowlist", "blocked", prompt=Prompt.say("Not allowed."))
    plan = incoming_plan(auth, None, None, None)
    assert not plan.allowed and plan.route is None
    svaml = v1_answer(plan)
    assert [i["name"] for i in svaml["instructions"]] == ["answer", "say"]
    assert svaml["action"] == {"name": "hangup"}
    assert v1_answer(plan, answer_before_prompts=False)["instructions"] == [
        {"name": "say", "text": "Not allowed.", "locale": "en-US"}]


def test_allowed_call_gets_route_with_smallest_duration_and_cli():
    auth = Authorization(True, "credit", "ok", max_duration=120, prompts=(Prompt.say("2 minutes left"),))
    route = Route(PhoneNumber("+15550001111"), max_duration=3600, prompts=(Prompt.play("https://x/a.wav"),))
    plan = incoming_plan(auth, route, "+46850001234", None)
    assert (plan.max_duration, plan.cli) == (120, "+46850001234")
    svaml = v1_answer(plan)
    assert svaml["action"] == {"name": "connectPstn", "number": "+15550001111", "maxDuration": 120, "cli": "+46850001234"}
    assert [i["name"] for i in svaml["instructions"]] == ["answer", "say", "playFiles"]


def test_route_limit_is_kept_when_smaller_than_the_plugins():
    route = Route(PhoneNumber("+15550001111"), max_duration=60)
    assert incoming_plan(Authorization(True, "a", "ok", max_duration=600), route, None, None).max_duration == 60


def test_cli_and_duration_only_where_svaml_has_them():
    auth = Authorization(True, "a", "ok", max_duration=60)
    conf = incoming_plan(auth, Route(Conference("room-1")), "+46850001234", None)
    assert (conf.max_duration, conf.cli) == (None, None)
    assert v1_answer(conf)["action"] == {"name": "connectConf", "conferenceId": "room-1"}
    sip = incoming_plan(auth, Route(SipEndpoint("sip:a@b.example")), "private", None)
    assert v1_answer(sip)["action"] == {"name": "connectSip", "destination": {"type": "sip", "endpoint": "a@b.example"},
                                        "maxDuration": 60, "cli": "private"}
    v1 = incoming_plan(auth, SvamlRoute(Svaml(action=ConnectConf(conference_id="room-1"))), "private", None)
    assert v1_answer(v1)["action"] == {"name": "connectConf", "conferenceId": "room-1"}
    pstn = incoming_plan(auth, SvamlRoute(Svaml(action=ConnectPstn(number="+15550001111", max_duration=30))), "private",
                         None)
    assert v1_answer(pstn)["action"] == {"name": "connectPstn", "number": "+15550001111", "maxDuration": 30,
                                         "cli": "private"}


def test_no_route_hangs_up_with_the_no_route_prompt():
    auth = Authorization(True, "default", "ok")
    svaml = v1_answer(incoming_plan(auth, None, None, Prompt.say("No route.", "en-GB")))
    assert svaml["action"] == {"name": "hangup"}
    assert svaml["instructions"][-1] == {"name": "say", "text": "No route.", "locale": "en-GB"}


# --- the same decision whatever order plugins were registered in ------------------------------

class _Allow:
    def __init__(self, seconds): self.seconds = seconds
    @hookimpl
    def authorize_call(self, call): return Allow(max_duration=self.seconds)


class _Deny:
    @hookimpl
    def authorize_call(self, call): return Deny("vetoed")


class _Route:
    def __init__(self, number): self.number = number
    @hookimpl
    def route_call(self, call): return Route(PhoneNumber(self.number), max_duration=3600)


def _plugins(config_order, registration_order, instances):
    pm = pluggy.PluginManager(PROJECT)
    pm.add_hookspecs(hookspecs)
    for name in registration_order:
        pm.register(instances[name], name=name)
    return Plugins(pm, [LoadedPlugin(name, instances[name]) for name in config_order])


@pytest.mark.parametrize("with_deny", [False, True])
async def test_shuffled_registration_gives_the_same_decision(with_deny):
    instances = {"a": _Allow(300), "b": _Allow(90), "r1": _Route("+15550000001"), "r2": _Route("+15550000002")}
    if with_deny:
        instances["d"] = _Deny()
    config_order = list(instances)
    call = decode_event(json.dumps(samples.ice()).encode())
    answers = set()
    for registration in itertools.islice(itertools.permutations(config_order), 0, None, 7):
        pipeline = Pipeline(_plugins(config_order, registration, instances), ServerConfig())
        answer = await pipeline.answer(call)
        answers.add(answer.body)
    assert len(answers) == 1
    body = json.loads(answers.pop())
    if with_deny:
        assert body["action"] == {"name": "hangup"}
    else:
        # config order decides routing (r1 first), the smallest limit wins whatever the order
        assert body["action"] == {"name": "connectPstn", "number": "+15550000001", "maxDuration": 90}
