"""The dispatcher and pipeline: order, timeouts, the on_error policy, attribution, DICE recording."""

import asyncio
import json
import time

import msgspec
import pytest
from plugins_for_tests import (
    Abstain,
    AllowWith,
    AnswerHangup,
    AnswerInvalid,
    ContinueOnPie,
    DenyAll,
    FixedCli,
    Hangs,
    Raises,
    Recorder,
    RouteTo,
    WrongType,
)

from callgate import Allow, CallerId, Deny, EndCall, PhoneNumber, Route, SipEndpoint, Svaml, hookimpl, hookspecs, samples
from callgate.calls import Header
from callgate.config import PluginsConfig, ServerConfig
from callgate.manager import HOOK_NAMES, load_plugins
from callgate.pipeline import Pipeline
from callgate.protocols.v1.decode import decode_event
from callgate.protocols.v1.svaml import Continue
from callgate.protocols.v2.wire import V2Answer


def pipeline(classes, tables=None, **server):
    tables = tables or {}
    config = PluginsConfig.model_validate({"enabled": list(classes), **tables})
    plugins = load_plugins(config, classes=classes)
    return Pipeline(plugins, ServerConfig(**server)), plugins


def event(body):
    return decode_event(json.dumps(body).encode())


async def test_hook_authorize_call_first_deny_ends_evaluation():
    p, _plugins = pipeline({"deny": DenyAll, "allow": AllowWith})
    answer = await p.answer(event(samples.ice()))
    assert answer.decision.allowed is False and answer.decision.decided_by == "deny"
    hooks = [(o.plugin, o.hook) for o in answer.outcomes]
    assert ("allow", "authorize_call") not in hooks          # never asked after the deny
    assert ("deny", "call_decided") in hooks


async def test_hook_call_decided_sees_the_final_decision():
    p, plugins = pipeline({"allow": AllowWith, "deny": DenyAll})
    await p.answer(event(samples.ice()))
    deny = plugins.loaded[1].instance
    assert [d.allowed for d in deny.decisions] == [False]
    assert deny.decisions[0].decided_by == "deny" and deny.decisions[0].svaml.action.name == "hangup"


async def test_hook_route_call_and_set_cli_first_answer_wins():
    p, _ = pipeline({"route": RouteTo, "cli": FixedCli},
                    {"route": {"number": "+15550002222", "max_duration": 600}})
    answer = await p.answer(event(samples.ice()))
    body = json.loads(answer.body)
    assert body["action"] == {"name": "connectPstn", "number": "+15550002222", "maxDuration": 600, "cli": "+46850001234"}
    assert answer.decision.routed_by == "route" and answer.decision.cli == "+46850001234"


async def test_the_decisions_cli_is_the_routes_own_when_no_plugin_sets_one():
    """decision.cli is the caller id the call is dialled with (what call_decided, the CRM record and simulate show):
    set_cli's, else the route's own; it was None for a route's own caller id."""
    class RouteWithCli:
        @hookimpl
        def route_call(self, call):
            return Route(PhoneNumber("+15550002222"), cli="private")

    p, _ = pipeline({"route": RouteWithCli})
    answer = await p.answer(event(samples.ice()))
    assert json.loads(answer.body)["action"]["cli"] == "private" and answer.decision.cli == "private"
    p, _ = pipeline({"route": RouteWithCli, "cli": FixedCli})
    answer = await p.answer(event(samples.ice()))
    assert json.loads(answer.body)["action"]["cli"] == "+46850001234" and answer.decision.cli == "+46850001234"
    p, _ = pipeline({"route": RouteTo})
    assert (await p.answer(event(samples.ice()))).decision.cli is None      # Sinch's default: the caller's number


async def test_hook_set_cli_not_asked_for_actions_without_cli():
    # the built-in router answers SDK conference calls with connectConf: no caller id applies
    p, _ = pipeline({"cli": FixedCli}, {"router": {"routes": [
        {"to_type": "conference", "action": {"name": "connectConf", "conferenceId": "{to}"}}]}})
    answer = await p.answer(event(samples.ice(to="room-42", to_type="conference", domain="mxp")))
    assert json.loads(answer.body)["action"] == {"name": "connectConf", "conferenceId": "room-42"}
    assert all(o.hook != "set_cli" for o in answer.outcomes)


@pytest.mark.parametrize("policy,allowed", [("deny", False), ("skip", True)])
async def test_raising_plugin_is_handled_by_its_policy(policy, allowed):
    p, _ = pipeline({"raises": Raises, "route": RouteTo}, {"raises": {"on_error": policy}})
    answer = await p.answer(event(samples.ice()))
    assert answer.status == 200
    assert answer.decision.allowed is allowed
    failed = answer.outcomes[0]
    assert (failed.plugin, failed.status) == ("raises", "error") and "RuntimeError: boom" in failed.error


@pytest.mark.parametrize("policy,action", [("deny", "hangup"), ("skip", "connectPstn")])
async def test_hanging_plugin_times_out_within_its_timeout(policy, action):
    p, _ = pipeline({"hangs": Hangs, "route": RouteTo}, {"hangs": {"timeout_ms": 50, "on_error": policy}})
    started = time.perf_counter()
    answer = await p.answer(event(samples.ice()))
    assert time.perf_counter() - started < 1.0
    assert json.loads(answer.body)["action"]["name"] == action
    assert answer.outcomes[0].status == "timeout"


class CliFails:
    """A caller-id plugin (one that hides the caller's number, say) that fails."""

    @hookimpl
    def set_cli(self, call, route):
        raise RuntimeError("number pool unreachable")


@pytest.mark.parametrize("policy", ["deny", "skip"])
async def test_a_failing_set_cli_follows_its_on_error_policy(policy):
    """on_error = "deny" is a Deny for set_cli too: the call is not connected showing a number the plugin was
    there to replace; "skip" connects it as if the plugin had no opinion."""
    p, _ = pipeline({"route": RouteTo, "hides": CliFails}, {"hides": {"on_error": policy}})
    answer = await p.answer(event(samples.ice()))
    action = json.loads(answer.body)["action"]
    failed = next(o for o in answer.outcomes if o.hook == "set_cli")
    assert (failed.plugin, failed.status) == ("hides", "error")
    if policy == "deny":
        assert action["name"] == "hangup" and not answer.decision.allowed
        assert answer.decision.decided_by == "hides" and "on_error policy is deny" in answer.decision.reason
    else:
        assert action["name"] == "connectPstn" and "cli" not in action and answer.decision.allowed


class LeaksCancellation:
    """Awaits a task it cancelled, and lets the CancelledError out (``task.cancel(); await task``)."""

    @hookimpl
    async def authorize_call(self, call):
        task = asyncio.ensure_future(asyncio.sleep(10))
        task.cancel()
        await task


async def test_a_cancellation_a_plugin_lets_out_is_its_error_not_the_end_of_the_callback():
    p, _ = pipeline({"leaks": LeaksCancellation, "route": RouteTo}, {"leaks": {"on_error": "skip"}})
    answer = await p.answer(event(samples.ice()))
    assert json.loads(answer.body)["action"]["name"] == "connectPstn"
    leaked = answer.outcomes[0]
    assert (leaked.plugin, leaked.status) == ("leaks", "error") and "CancelledError" in leaked.error


class Blocks:
    """A plain def that holds the event loop (time.sleep): it cannot be stopped while it runs."""

    @hookimpl
    def authorize_call(self, call):
        time.sleep(0.3)
        return Allow()


@pytest.mark.parametrize("policy,action", [("deny", "hangup"), ("skip", "connectPstn")])
async def test_a_plain_def_past_its_timeout_counts_as_timed_out_and_the_next_plugin_still_runs(policy, action):
    p, _ = pipeline({"blocks": Blocks, "route": RouteTo}, {"blocks": {"timeout_ms": 100, "on_error": policy}})
    answer = await p.answer(event(samples.ice()))
    assert json.loads(answer.body)["action"]["name"] == action
    blocked = answer.outcomes[0]
    assert (blocked.plugin, blocked.status) == ("blocks", "timeout")
    assert blocked.error.startswith("answered after 3") and "past the 100 ms it had" in blocked.error
    routed = [(o.plugin, o.status) for o in answer.outcomes if o.hook == "route_call"]
    assert routed == ([] if policy == "deny" else [("route", "ok")])      # not blamed for the time the first took


async def test_a_plugin_whose_turn_comes_after_the_deadline_is_not_called_and_says_so():
    p, _ = pipeline({"blocks": Blocks, "route": RouteTo}, {"blocks": {"timeout_ms": 1000, "on_error": "skip"}},
                    deadline_ms=100)
    answer = await p.answer(event(samples.ice()))
    route = next(o for o in answer.outcomes if o.hook == "route_call")
    assert (route.plugin, route.status) == ("route", "timeout")
    assert route.error == ("not called: the callback's time ([server] deadline_ms or record_deadline_ms) had run out "
                           "before its turn")


async def test_one_deadline_for_the_whole_callback():
    classes = {"h1": Hangs, "h2": Hangs, "h3": Hangs}
    tables = {name: {"timeout_ms": 1000, "on_error": "skip"} for name in classes}
    p, _ = pipeline(classes, tables, deadline_ms=150)
    started = time.perf_counter()
    answer = await p.answer(event(samples.ice()))
    assert time.perf_counter() - started < 0.6     # not 3 x 1000 ms
    assert [o.status for o in answer.outcomes if o.hook == "authorize_call"] == ["timeout"] * 3


async def test_wrong_return_type_counts_as_failure():
    p, _ = pipeline({"wrong": WrongType}, {"wrong": {"on_error": "deny"}})
    answer = await p.answer(event(samples.ice()))
    assert answer.decision.allowed is False
    assert "TypeError" in answer.outcomes[0].error and "expected Allow or Deny" in answer.outcomes[0].error


async def test_abstaining_plugins_leave_the_default():
    p, _ = pipeline({"a": Abstain}, default_decision="deny")
    answer = await p.answer(event(samples.ice()))
    assert answer.decision.allowed is False and answer.decision.decided_by == "default"


async def test_hook_on_answer_first_answer_or_continue():
    p, _ = pipeline({"hangup": AnswerHangup})
    assert json.loads((await p.answer(event(samples.ace()))).body) == {"action": {"name": "hangup"}}
    p, _ = pipeline({"a": Abstain})
    assert json.loads((await p.answer(event(samples.ace()))).body) == {"action": {"name": "continue"}}


async def test_invalid_svaml_from_a_plugin_never_reaches_sinch():
    p, _ = pipeline({"invalid": AnswerInvalid, "hangup": AnswerHangup}, {"invalid": {"on_error": "skip"}})
    answer = await p.answer(event(samples.ace()))
    assert json.loads(answer.body) == {"action": {"name": "hangup"}}      # the next plugin answered
    assert "not allowed" in answer.outcomes[0].error or "ACE" in answer.outcomes[0].error.upper()


async def test_raising_on_answer_with_deny_policy_hangs_up():
    p, _ = pipeline({"raises": Raises})
    assert json.loads((await p.answer(event(samples.ace()))).body) == {"action": {"name": "hangup"}}


async def test_hook_on_prompt_input_first_answer_then_router_default():
    p, _ = pipeline({"cont": ContinueOnPie})
    assert json.loads((await p.answer(event(samples.pie()))).body) == {"action": {"name": "continue"}}
    p, _ = pipeline({}, {"router": {"pie_default": {"name": "hangup"}}})
    assert json.loads((await p.answer(event(samples.pie()))).body) == {"action": {"name": "hangup"}}


async def test_hook_on_disconnect_all_recorded_is_200():
    p, plugins = pipeline({"r1": Recorder, "r2": Recorder})
    dice = samples.dice()
    answer = await p.answer(event(dice))
    assert (answer.status, answer.body) == (200, b"{}")
    assert [pl.instance.seen for pl in plugins.loaded[:2]] == [[("dice", dice["callid"])]] * 2


@pytest.mark.parametrize("broken,policy", [(Raises, "skip"), (Hangs, "skip"), (Raises, "deny")])
async def test_dice_not_recorded_is_503_whatever_the_policy(broken, policy):
    p, _plugins = pipeline({"rec": Recorder, "broken": broken}, {"broken": {"on_error": policy, "timeout_ms": 50}})
    answer = await p.answer(event(samples.dice()))
    assert answer.status == 503
    assert json.loads(answer.body)["error"] == "not_recorded" and "broken" in answer.problem


async def test_hook_on_notify_every_plugin():
    p, plugins = pipeline({"r1": Recorder})
    body = samples.notify()
    answer = await p.answer(event(body))
    assert answer.status == 200 and plugins.loaded[0].instance.seen == [("notify", body["callid"])]


async def test_notes_carry_what_earlier_plugins_wrote_to_later_ones():
    from callgate import hookimpl

    class Writer:
        @hookimpl
        def on_disconnect(self, call):
            call.notes["writer"] = {"cost": "0.12"}

    class Reader:
        seen = None

        @hookimpl
        def on_disconnect(self, call):
            Reader.seen = dict(call.notes)

    p, _ = pipeline({"writer": Writer, "reader": Reader})
    first, second = event(samples.dice()), event(samples.dice())
    await p.answer(first)
    assert Reader.seen == {"writer": {"cost": "0.12"}}
    assert second.notes == {}              # every callback starts empty


class SlowRecorder:
    """Records after 0.2 s (a durable write's wait); ``fails`` raises instead."""

    fails = False

    def __init__(self):
        self.done = []

    @hookimpl
    async def on_disconnect(self, call):
        import asyncio
        await asyncio.sleep(0.2)
        if self.fails:
            raise RuntimeError("disk full")
        self.done.append(call.callid)

    @hookimpl
    async def on_notify(self, call):
        await self.on_disconnect(call)


class FailingSlowRecorder(SlowRecorder):
    fails = True


@pytest.mark.parametrize("sample", [samples.dice, samples.notify])
async def test_recording_plugins_run_at_the_same_time_and_the_answer_waits_for_all(sample):
    p, plugins = pipeline({"one": SlowRecorder, "two": SlowRecorder, "three": SlowRecorder})
    started = time.monotonic()
    answer = await p.answer(event(sample()))
    took = time.monotonic() - started
    assert answer.status == 200 and 0.19 < took < 0.45, took                  # ~ the slowest, not the sum (0.6 s)
    assert all(len(pl.instance.done) == 1 for pl in plugins.loaded[:3])     # every one finished before the answer
    assert [(o.plugin, o.status) for o in answer.outcomes] == [("one", "ok"), ("two", "ok"), ("three", "ok")]


async def test_a_failing_recording_plugin_among_concurrent_ones_still_gets_503_with_its_name():
    p, plugins = pipeline({"one": SlowRecorder, "bad": FailingSlowRecorder, "slow": Hangs},
                          {"slow": {"timeout_ms": 300}})
    started = time.monotonic()
    answer = await p.answer(event(samples.dice()))
    assert time.monotonic() - started < 0.5                                   # each under its own timeout, together
    assert answer.status == 503 and "bad" in answer.problem and "slow" in answer.problem
    assert [(o.plugin, o.status) for o in answer.outcomes] == [("one", "ok"), ("bad", "error"), ("slow", "timeout")]
    assert plugins.loaded[0].instance.done                                    # the others still recorded


async def test_a_recording_plugin_waits_for_an_earlier_ones_note_not_for_its_write():
    import asyncio

    from callgate import leave_note, wait_for_note
    order = []

    class Pricer:
        @hookimpl
        async def on_disconnect(self, call):
            await asyncio.sleep(0.05)                 # a read
            leave_note(call, "pricer", {"cost": "0.12"})
            await asyncio.sleep(0.2)                  # its durable write
            order.append("pricer wrote")

    class Silent:
        @hookimpl
        async def on_disconnect(self, call):
            await asyncio.sleep(0.05)                 # leaves no note: waiters get None when it returns

    class Exporter:
        seen = None

        @hookimpl
        async def on_disconnect(self, call):
            Exporter.seen = (await wait_for_note(call, "pricer"), await wait_for_note(call, "silent"),
                             await wait_for_note(call, "absent"))
            order.append("exporter noted")
            await asyncio.sleep(0.2)                  # its own durable write, beside the pricer's
            order.append("exporter wrote")

    p, _ = pipeline({"pricer": Pricer, "silent": Silent, "exporter": Exporter})
    call = event(samples.dice())
    started = time.monotonic()
    answer = await p.answer(call)
    assert answer.status == 200 and time.monotonic() - started < 0.4          # not 0.05 + 0.2 + 0.2 in series
    assert Exporter.seen == ({"cost": "0.12"}, None, None)
    assert order[0] == "exporter noted" and set(order[1:]) == {"pricer wrote", "exporter wrote"}
    assert call.notes == {"pricer": {"cost": "0.12"}}                          # nothing of the waiting left


async def test_two_recording_plugins_on_one_shared_sqlite_file_are_one_group_commit(tmp_path):
    """Run at the same time, the durable writes of two plugins sharing a SQLite file (``shared=True``) join one
    group: one flush for both, where one after another they took two."""
    from callgate.storage import Database
    url = f"sqlite:///{tmp_path / 'shared.sqlite3'}"
    db = await Database.connect(url, shared=True)
    await db.execute("CREATE TABLE records (plugin TEXT, callid TEXT)")

    class Writes:
        @hookimpl
        async def on_disconnect(self, call):
            store = await Database.connect(url, shared=True)
            try:
                async with store.transaction() as tx:
                    await tx.execute("INSERT INTO records VALUES ($1, $2)", type(self).__name__, call.callid)
            finally:
                await store.close()

    class Credit(Writes):
        pass

    class Crm(Writes):
        pass

    statements: list[str] = []
    db._conn.set_trace_callback(statements.append)
    p, _ = pipeline({"credit": Credit, "crm": Crm})
    answer = await p.answer(event(samples.dice()))
    assert answer.status == 200 and statements.count("COMMIT") == 1
    assert await db.fetchval("SELECT COUNT(*) FROM records") == 2
    await db.close()


async def test_an_answer_changed_after_its_checks_cannot_smuggle_an_invalid_ace_answer():
    from callgate import hookimpl
    from callgate.protocols.v1.svaml import Menu, RunMenu, Svaml

    class Sneaky:
        @hookimpl
        def on_answer(self, call):   # a runMenu whose menus were emptied behind the checks' back
            answer = Svaml(action=RunMenu(menus=(Menu(id="main"),)))
            msgspec.structs.force_setattr(answer.action, "menus", ())
            return answer

    p, _ = pipeline({"sneaky": Sneaky}, {"sneaky": {"on_error": "skip"}})
    answer = await p.answer(event(samples.ace()))
    assert json.loads(answer.body) == {"action": {"name": "continue"}}
    assert answer.outcomes[0].status == "error"


async def test_a_plan_v1_cannot_render_gets_the_safe_answer_and_call_decided_still_runs():
    from callgate import hookimpl

    class LongHeader:
        def __init__(self):
            self.decisions = []

        @hookimpl
        def route_call(self, call):     # a valid neutral route, but v1 carries call headers of at most 1024 bytes
            return Route(SipEndpoint("sip:a@pbx.example", headers=(Header("k", "x" * 2000),)))

        @hookimpl
        def call_decided(self, call, decision):
            self.decisions.append(decision)

    p, plugins = pipeline({"a": LongHeader})
    answer = await p.answer(event(samples.ice()))
    assert json.loads(answer.body) == {"action": {"name": "hangup"}}
    assert answer.problem.startswith("invalid SVAML replaced by a safe answer: the plugins' contributions do not "
                                     "make a valid answer") and "1024" in answer.problem
    assert [d.allowed for d in plugins.loaded[0].instance.decisions] == [False]


class AnswersV2:
    """Answers every hook that may return SVAML with v2 SVAML."""

    @hookimpl
    def route_call(self, call):
        return V2Answer(commands=[])

    @hookimpl
    def on_answer(self, call):
        return V2Answer(commands=[])


@pytest.mark.parametrize("policy,action", [("deny", "hangup"), ("skip", "connectPstn")])
async def test_v2_svaml_for_a_v1_call_counts_as_the_plugin_failing(policy, action):
    p, _ = pipeline({"v2": AnswersV2, "route": RouteTo}, {"v2": {"on_error": policy}})
    answer = await p.answer(event(samples.ice()))
    assert json.loads(answer.body)["action"]["name"] == action
    failed = next(o for o in answer.outcomes if o.plugin == "v2")
    assert failed.status == "error" and "V2Answer cannot answer a v1 call" in failed.error
    ace = await p.answer(event(samples.ace()))
    assert json.loads(ace.body) == {"action": {"name": "hangup" if policy == "deny" else "continue"}}
    assert ace.outcomes[0].status == "error"


class AllowByCaller:
    """Allows each caller for as many seconds as the last two digits of its number (a per-call answer part)."""

    @hookimpl
    def authorize_call(self, call):
        return Allow(max_duration=int(call.cli[-2:]) + 1)


async def test_ice_answers_are_reused_only_for_the_same_parts():
    p, _ = pipeline({"by_caller": AllowByCaller, "cli": FixedCli}, {"router": {"routes": [
        {"action": {"name": "connectPstn", "number": "{to}", "maxDuration": 3600}}]}})
    first = await p.answer(event(samples.ice(caller="46701234510", to="+15550001111")))
    again = await p.answer(event(samples.ice(caller="46701234510", to="+15550001111")))
    assert again.svaml is first.svaml and again.body == first.body        # the same parts: built once
    other_callee = await p.answer(event(samples.ice(caller="46701234510", to="+15550002222")))
    other_limit = await p.answer(event(samples.ice(caller="46701234520", to="+15550001111")))
    assert json.loads(first.body)["action"] == {"name": "connectPstn", "number": "+15550001111",
                                                "maxDuration": 11, "cli": "+46850001234"}
    assert json.loads(other_callee.body)["action"]["number"] == "+15550002222"
    assert json.loads(other_limit.body)["action"]["maxDuration"] == 21
    assert other_limit.decision.max_duration == 21 and first.decision.max_duration == 11


class AceBySequence:
    """Answers each ACE with the next SVAML object of a list: the same object twice, then an equal new one."""

    def __init__(self):
        from callgate.protocols.v1.svaml import Hangup, Svaml
        hangup = Svaml(action=Hangup())
        self.answers = [hangup, hangup, Svaml(action=Hangup())]

    @hookimpl
    def on_answer(self, call):
        return self.answers.pop(0)


async def test_ace_answers_are_rendered_once_per_answer_value():
    p, _plugins = pipeline({"seq": AceBySequence})
    served = [(await p.answer(event(samples.ace()))) for _ in range(3)]
    assert [json.loads(a.body) for a in served] == [{"action": {"name": "hangup"}}] * 3
    assert served[1].body is served[0].body          # the same object again: serialised once
    assert served[2].body is served[0].body          # an equal new object (checked by the dispatcher): the same answer
    assert all(a.outcomes[-1].status == "ok" for a in served)



class PieBySequence:
    """Answers PIEs with one prebuilt SVAML object, then with an object not allowed in PIE (twice)."""

    def __init__(self):
        from callgate.protocols.v1.svaml import ConnectMxp, Continue, Svaml
        good = Svaml(action=Continue())
        self.answers = [good, good, good]
        self.bad = Svaml(action=ConnectMxp())          # ICE only

    @hookimpl
    def on_prompt_input(self, call):
        return self.answers.pop(0) if self.answers else self.bad


async def test_a_plugins_svaml_is_checked_once_per_object_and_a_failing_one_every_time(monkeypatch):
    from callgate.protocols.v1.svaml import Svaml
    checks = []
    original = Svaml.validate_for

    def counted(self, event, **kwargs):
        checks.append(id(self))
        return original(self, event, **kwargs)

    monkeypatch.setattr(Svaml, "validate_for", counted)
    p, plugins = pipeline({"seq": PieBySequence})
    plugin = plugins.loaded[0].instance
    good = plugin.answers[0]
    first = await p.answer(event(samples.pie()))
    checked_once = checks.count(id(good))           # by the dispatcher, and for the event by the pipeline
    answers = [first] + [await p.answer(event(samples.pie())) for _ in range(2)]
    assert all(a.outcomes[-1].status == "ok" for a in answers)
    assert checked_once >= 1 and checks.count(id(good)) == checked_once     # the same object: not checked again
    failed = [await p.answer(event(samples.pie())) for _ in range(2)]
    assert [a.outcomes[-1].status for a in failed] == ["error", "error"]      # never remembered as checked
    assert checks.count(id(plugin.bad)) == 2        # failed in the dispatcher both times, so never passed on


async def test_call_one_answers_plain_functions_at_once_and_awaits_the_rest():
    import asyncio

    from callgate import dispatch
    from callgate.results import Outcome

    class Both:
        @hookimpl
        def route_call(self, call):
            return None

        @hookimpl
        async def on_disconnect(self, call):
            return None

        @hookimpl
        def on_notify(self, call):
            return asyncio.sleep(0)                    # a plain function returning an awaitable

    _p, plugins = pipeline({"both": Both})
    deadline = time.monotonic() + 1
    now = dispatch.call_one(plugins.impls("route_call")[0], "route_call", {"call": None}, deadline)
    assert type(now) is Outcome and now.status == "ok"
    for hook in ("on_disconnect", "on_notify"):
        later = dispatch.call_one(plugins.impls(hook)[0], hook, {"call": None}, deadline)
        assert asyncio.iscoroutine(later)
        outcome = await later
        assert type(outcome) is Outcome and (outcome.plugin, outcome.hook, outcome.status) == ("both", hook, "ok")


async def test_hookimpl_specname_answers_for_the_named_hook():
    class Named:
        @hookimpl(specname="authorize_call")
        def refuse_everyone(self, call):
            return Deny("refused by a method with another name")

    p, _ = pipeline({"named": Named})
    answer = await p.answer(event(samples.ice()))
    assert answer.decision.allowed is False and answer.decision.decided_by == "named"
    assert [(o.plugin, o.hook) for o in answer.outcomes] == [("named", "authorize_call")]


#: A valid answer other than None for every hook, so a test can see whether the next plugin is still asked.
ANSWERS = {
    "authorize_call": Allow(),
    "route_call": Route(EndCall()),
    "set_cli": CallerId("private"),
    "call_decided": "ignored",
    "on_answer": Svaml(action=Continue()),
    "on_prompt_input": Svaml(action=Continue()),
    "on_disconnect": "ignored",
    "on_notify": "ignored",
    "check_ready": "not ready",
    "collect_metrics": {"depth": 1.0},
    "register_commands": "ignored",
    "callback_answered": "ignored",
    "register_ops_routes": "ignored",
}


@pytest.mark.parametrize("hook", HOOK_NAMES)
async def test_first_answer_or_every_plugin_is_what_the_hookspec_says(hook):
    """The dispatcher stops at the first answer exactly for the hooks whose spec is ``firstresult=True``."""

    from callgate import dispatch

    asked = []

    def answering(name):
        def implementation(self):
            asked.append(name)
            return ANSWERS[hook]
        return type(name, (), {hook: hookimpl(specname=hook)(implementation)})

    _, plugins = pipeline({"one": answering("one"), "two": answering("two")})
    deadline = time.monotonic() + 1
    outcomes = await dispatch.collect(plugins, hook, deadline)
    ours = [o for o in outcomes if o.plugin in ("one", "two")]   # the built-ins come last, whatever they do
    assert [o.status for o in ours] == ["ok"] * len(ours)
    firstresult = getattr(hookspecs, hook).callgate_spec["firstresult"]
    assert asked == (["one"] if firstresult else ["one", "two"])


def test_the_first_answer_hooks_are_the_ones_that_choose_one_answer():
    firstresult = {hook for hook in HOOK_NAMES if getattr(hookspecs, hook).callgate_spec["firstresult"]}
    assert firstresult == {"route_call", "set_cli", "on_answer", "on_prompt_input"}


# --- one pipeline, both generations -------------------------------------------------------------

def v2_incoming(to="+46850001234"):
    from callgate.calls import Callee, Incoming
    return Incoming(generation="v2", event="call.incoming", raw={}, callid="leg-1", cli="+46701234567",
                    to=Callee("did", to), domain="pstn")


def both_generations(classes, tables=None):
    from callgate.protocols.v1.render import V1Renderer
    from callgate.protocols.v2.render import V2Renderer
    config = PluginsConfig.model_validate({"enabled": list(classes), **(tables or {})})
    server = ServerConfig()
    return Pipeline(load_plugins(config, classes=classes), server,
                    renderers={"v1": V1Renderer(server), "v2": V2Renderer()})


class AnswersV1:
    @hookimpl
    def route_call(self, call):
        return Svaml(action=Continue())      # not even valid in ICE: refused for v2 before it is checked


async def test_the_call_generation_picks_the_renderer_and_the_router_serves_both():
    p = both_generations({}, {"router": {"routes": [
        {"name": "amd", "number": "+46850001234", "action": {"name": "connectPstn", "number": "+15550000001",
                                                             "amd": {"enabled": True}}},
        {"name": "out", "action": {"name": "connectPstn", "number": "+15550000002", "maxDuration": 60}}]}})
    v1 = await p.answer(event(samples.ice()))
    assert json.loads(v1.body)["action"]["amd"] == {"enabled": True} and v1.decision.route is None
    assert (v1.decision.route_name, v1.decision.routed_by, v1.decision.generation) == ("amd", "router", "v1")
    v2 = await p.answer(v2_incoming())
    assert v2.decision.generation == "v2" and v2.decision.route.name == "out" and v2.decision.max_duration == 60
    assert "commands" in json.loads(v2.body) and v2.action != "connectPstn"


async def test_v1_svaml_for_a_v2_call_counts_as_the_plugin_failing():
    p = both_generations({"v1": AnswersV1, "route": RouteTo}, {"v1": {"on_error": "skip"}})
    answer = await p.answer(v2_incoming())
    failed = answer.outcomes[0]
    assert (failed.plugin, failed.status) == ("v1", "error") and "v1 SVAML is for v1 calls only" in failed.error
    assert answer.decision.routed_by == "route"


class DialsV2:
    @hookimpl
    def route_call(self, call):
        from callgate.protocols.v2.wire import decode_v2_answer
        return decode_v2_answer({"commands": [{"command": "dial", "to": {"type": "PHONE",
                                                                        "phone": {"number": "+15550000003"}}}]})


async def test_set_cli_gives_a_plugins_own_v2_dial_its_caller_id():
    """As for a plugin's own v1 connectPstn: the caller-id rules run, and their number becomes the dial's from."""
    p = both_generations({"dials": DialsV2}, {"caller_id": {"rules": [{"prefix": "+4685", "cli": "+46850009999"}]}})
    answer = await p.answer(v2_incoming())
    dials = [c for c in json.loads(answer.body)["commands"] if c["command"] == "dial"]
    assert [d.get("from") for d in dials] == [{"type": "PHONE", "phone": {"number": "+46850009999"}}]
    assert answer.decision.cli == "+46850009999"


async def test_implementations_get_the_arguments_they_name_in_any_order_sync_and_async_mixed():
    """The dispatch plan passes each implementation the hook's arguments it names, in its own order, and goes on
    after an implementation that must be awaited (the plan's synchronous path hands over to the awaiting one)."""
    seen = []

    class RouteFirst:
        @hookimpl
        def set_cli(self, route, call):
            seen.append(("route_first", route.name, call.callid))

    class Later:
        @hookimpl
        async def set_cli(self, call):
            seen.append(("later", call.callid))

    class RouteOnly:
        @hookimpl
        def set_cli(self, route):
            seen.append(("route_only", route.name))
            return CallerId("private")

    p, _ = pipeline({"route_first": RouteFirst, "later": Later, "route_only": RouteOnly, "to": RouteTo})
    ice = samples.ice()
    answer = await p.answer(event(ice))
    callid = ice["callid"]
    route = answer.decision.route
    assert seen == [("route_first", route.name, callid), ("later", callid), ("route_only", route.name)]
    assert answer.decision.cli == "private"
    assert [(o.plugin, o.status) for o in answer.outcomes if o.hook == "set_cli"] == [
        ("route_first", "ok"), ("later", "ok"), ("route_only", "ok")]


async def test_the_incoming_answer_follows_the_authorization_route_and_cli_of_each_call():
    """The pipeline keeps incoming plans and answers by what they come from: the same answers give the same
    plan again, and any change in the authorization, the route or the caller id gives its own answer."""
    class Cli:
        number = "+46850001234"

        @hookimpl
        def set_cli(self, call, route):
            return CallerId(self.number)

    p, plugins = pipeline({"allow": AllowWith, "to": RouteTo, "cli": Cli}, {"allow": {"max_duration": 600}})
    allow, to, cli = (plugin.instance for plugin in plugins.loaded[:3])
    first, again = [await p.answer(event(samples.ice())) for _ in range(2)]
    assert again.body == first.body and again.decision.plan == first.decision.plan
    assert first.decision.max_duration == 600 and b"600" in first.body and b"+46850001234" in first.body

    allow.config.max_duration = 300                                  # another authorization
    shorter = await p.answer(event(samples.ice()))
    assert shorter.decision.plan.max_duration == 300 and b"300" in shorter.body and b"600" not in shorter.body

    to.config.number = "+15550002222"                                # another route
    elsewhere = await p.answer(event(samples.ice()))
    assert b"+15550002222" in elsewhere.body and elsewhere.decision.plan.route.to.number == "+15550002222"

    cli.number = "+46850009999"                                      # another caller id
    shown = await p.answer(event(samples.ice()))
    assert shown.decision.cli == "+46850009999" and b"+46850009999" in shown.body and b"+46850001234" not in shown.body
