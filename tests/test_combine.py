"""The pure combine step: plugins' answers in, one decision and its SVAML out (no server, no pluggy)."""

import itertools
import json

import pluggy
import pytest
from hypothesis import given
from hypothesis import strategies as st

from callgate import Allow, Deny, Route, hookimpl, hookspecs, samples
from callgate.combine import Authorization, combine_authorization, first_answer, ice_answer, route_action
from callgate.config import ServerConfig
from callgate.events import decode_event
from callgate.hookspecs import PROJECT
from callgate.manager import LoadedPlugin, Plugins
from callgate.pipeline import Pipeline
from callgate.results import Outcome
from callgate.svaml import ConnectConf, ConnectPstn, ConnectSip, Destination, PlayFiles, Say


def outcome(plugin, value):
    return Outcome(plugin, "authorize_call", value)


def test_any_deny_wins_and_the_first_names_the_reason():
    outcomes = [outcome("a", Allow(max_duration=60)), outcome("b", Deny("no credit")), outcome("c", Deny("blocked"))]
    auth = combine_authorization(outcomes, "allow")
    assert (auth.allowed, auth.decided_by, auth.reason) == (False, "b", "no credit")


def test_allows_combine_smallest_duration_and_instructions_in_order():
    hello, credit = Say(text="hello"), Say(text="you have 3 minutes")
    outcomes = [outcome("a", Allow(max_duration=600, instructions=(hello,))), outcome("b", None),
                outcome("c", Allow(max_duration=180, instructions=(credit,))), outcome("d", Allow())]
    auth = combine_authorization(outcomes, "deny")
    assert auth.allowed and auth.max_duration == 180
    assert auth.instructions == (hello, credit)
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


def test_denied_call_hears_the_prompt_after_answer_then_hangs_up():
    auth = Authorization(False, "allowlist", "blocked", prompt=Say(text="Not allowed."))
    svaml = ice_answer(auth, None, None).to_dict()
    assert [i["name"] for i in svaml["instructions"]] == ["answer", "say"]
    assert svaml["action"] == {"name": "hangup"}
    assert ice_answer(auth, None, None, answer_before_prompts=False).to_dict()["instructions"] == [
        {"name": "say", "text": "Not allowed."}]


def test_allowed_call_gets_route_with_smallest_duration_and_cli():
    auth = Authorization(True, "credit", "ok", max_duration=120, instructions=(Say(text="2 minutes left"),))
    route = Route(ConnectPstn(number="+15550001111", max_duration=3600), instructions=(PlayFiles(ids=["https://x/a.wav"]),))
    svaml = ice_answer(auth, route, "+46850001234").to_dict()
    assert svaml["action"] == {"name": "connectPstn", "number": "+15550001111", "maxDuration": 120, "cli": "+46850001234"}
    assert [i["name"] for i in svaml["instructions"]] == ["answer", "say", "playFiles"]


def test_route_limit_is_kept_when_smaller_than_the_plugins():
    route = Route(ConnectPstn(number="+15550001111", max_duration=60))
    assert route_action(route, max_duration=600, cli=None).max_duration == 60


def test_cli_and_duration_only_where_svaml_has_them():
    conf = Route(ConnectConf(conference_id="room-1"))
    assert route_action(conf, max_duration=60, cli="+46850001234") == conf.action
    sip = Route(ConnectSip(destination=Destination(type="sip", endpoint="a@b.example")))
    assert route_action(sip, max_duration=None, cli="private").cli == "private"


def test_no_route_hangs_up_with_the_no_route_prompt():
    auth = Authorization(True, "default", "ok")
    svaml = ice_answer(auth, None, None, no_route_prompt=Say(text="No route.")).to_dict()
    assert svaml["action"] == {"name": "hangup"}
    assert svaml["instructions"][-1] == {"name": "say", "text": "No route."}


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
    def route_call(self, call): return Route(ConnectPstn(number=self.number, max_duration=3600))


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
