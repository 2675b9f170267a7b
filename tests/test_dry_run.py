"""Dry runs (``callgate simulate``): every call hook and ``startup`` that accepts ``dry_run`` gets it, bound
once when the plugins are loaded; the server path passes False; plugins that do not accept it are named."""

import json

import pytest

from callgate import Allow, hookimpl, samples
from callgate.config import PluginsConfig, ServerConfig
from callgate.manager import DRY_RUN_HOOKS, load_plugins
from callgate.pipeline import Pipeline
from callgate.protocols.v1.decode import decode_event
from callgate.protocols.v1.svaml import Continue, Svaml


class Sees:
    """Records the dry_run each hook (and startup) received; dry_run declared last, without a default."""

    def __init__(self):
        self.seen = []

    async def startup(self, dry_run):
        self.seen.append(("startup", dry_run))

    @hookimpl
    def authorize_call(self, call, dry_run):
        self.seen.append(("authorize_call", dry_run))
        return Allow(max_duration=60)

    @hookimpl
    def route_call(self, call, dry_run):
        self.seen.append(("route_call", dry_run))

    @hookimpl
    def set_cli(self, call, route, dry_run):
        self.seen.append(("set_cli", dry_run))

    @hookimpl
    async def call_decided(self, call, decision, dry_run):
        self.seen.append(("call_decided", dry_run))

    @hookimpl
    def on_answer(self, call, dry_run):
        self.seen.append(("on_answer", dry_run))

    @hookimpl
    def on_prompt_input(self, call, dry_run):
        self.seen.append(("on_prompt_input", dry_run))
        return Svaml(action=Continue())

    @hookimpl
    async def on_disconnect(self, call, dry_run):
        self.seen.append(("on_disconnect", dry_run))

    @hookimpl
    def on_notify(self, call, dry_run):
        self.seen.append(("on_notify", dry_run))


class SeesFirst:
    """dry_run declared before the call."""

    def __init__(self):
        self.seen = []

    @hookimpl
    def authorize_call(self, dry_run, call):
        self.seen.append(("authorize_call", dry_run, call.callid))


class SeesWithDefault:
    """dry_run with a default: pluggy does not pass such arguments; callgate does."""

    def __init__(self):
        self.seen = []

    def startup(self, dry_run=False):
        self.seen.append(("startup", dry_run))

    @hookimpl
    async def on_disconnect(self, call, dry_run: bool = False):
        self.seen.append(("on_disconnect", dry_run))


class SeesKeywordOnly:
    """dry_run keyword-only, without a default: pluggy does not see it at all; callgate passes it."""

    def __init__(self):
        self.seen = []

    @hookimpl
    def on_notify(self, call, *, dry_run):
        self.seen.append(("on_notify", dry_run))


class Unaware:
    """A plugin written before dry runs existed."""

    async def startup(self):
        pass

    @hookimpl
    def authorize_call(self, call):
        return None

    @hookimpl
    def on_disconnect(self, call):
        return None


def event(body):
    return decode_event(json.dumps(body).encode())


ALL_EVENTS = (samples.ice(callid="c1"), samples.ace("c1"), samples.pie("c1"), samples.dice("c1"),
              samples.notify("c1"))


async def run_all(classes, dry_run):
    plugins = load_plugins(PluginsConfig.model_validate({
        "enabled": list(classes),
        "router": {"routes": [{"action": {"name": "connectPstn", "number": "{to}"}}]}}),
        classes=classes, dry_run=dry_run)
    await plugins.startup()
    pipeline = Pipeline(plugins, ServerConfig())
    answers = [await pipeline.answer(event(body)) for body in ALL_EVENTS]
    await plugins.shutdown()
    return plugins, answers


def test_every_call_hook_has_dry_run_in_its_spec():
    assert set(DRY_RUN_HOOKS) == {"authorize_call", "route_call", "set_cli", "call_decided", "on_answer",
                                  "on_prompt_input", "on_disconnect", "on_notify"}


@pytest.mark.parametrize("dry_run", [False, True])
async def test_every_call_hook_and_startup_receive_dry_run(dry_run):
    plugins, answers = await run_all({"sees": Sees}, dry_run)
    seen = plugins.loaded[0].instance.seen
    assert seen == [("startup", dry_run), ("authorize_call", dry_run), ("route_call", dry_run),
                    ("set_cli", dry_run), ("call_decided", dry_run), ("on_answer", dry_run),
                    ("on_prompt_input", dry_run), ("on_disconnect", dry_run), ("on_notify", dry_run)]
    assert [a.status for a in answers] == [200] * 5
    assert answers[0].decision.max_duration == 60            # the answer does not depend on the mode


@pytest.mark.parametrize("dry_run", [False, True])
async def test_dry_run_in_any_position_or_with_a_default(dry_run):
    plugins, answers = await run_all({"first": SeesFirst, "default": SeesWithDefault,
                                      "keyword": SeesKeywordOnly}, dry_run)
    assert plugins.loaded[0].instance.seen == [("authorize_call", dry_run, "c1")]
    assert plugins.loaded[1].instance.seen == [("startup", dry_run), ("on_disconnect", dry_run)]
    assert plugins.loaded[2].instance.seen == [("on_notify", dry_run)]
    assert answers[3].status == 200 and answers[4].status == 200
    assert plugins.not_dry_run_safe() == []


async def test_plugins_that_do_not_accept_dry_run_still_run_and_are_named():
    plugins, answers = await run_all({"sees": Sees, "unaware": Unaware, "default": SeesWithDefault}, True)
    assert [a.status for a in answers] == [200] * 5
    assert plugins.not_dry_run_safe() == ["unaware.authorize_call", "unaware.on_disconnect", "unaware.startup"]
