"""``[server] event_loop``: which event loop the real ``callgate serve`` runs on, and what it answers there."""

from __future__ import annotations

import asyncio
import json
import sys
import time

import pytest
from plugins_for_tests import Hangs

from callgate import hookimpl, samples, v2_samples
from callgate.config import ConfigError, PluginsConfig, ServerConfig
from callgate.loops import loop_factory
from callgate.manager import load_plugins
from callgate.pipeline import Pipeline
from callgate.protocols.v1.decode import decode_event

ROUTE = '[[plugins.router.routes]]\naction = { name = "connectPstn", number = "{to}" }\n'


def _listening(server) -> dict:
    return next(line for line in server.log_lines() if line.get("event") == "listening")


@pytest.mark.slow
@pytest.mark.parametrize(("setting", "expected"), [("asyncio", "asyncio"), ("uvloop", "uvloop"), ("auto", "uvloop"),
                                                   (None, "asyncio")])
def test_the_setting_selects_the_loop_of_the_real_server(callgate_server, setting, expected):
    server_table = '[server]\nlog_format = "json"\n' + (f'event_loop = "{setting}"\n' if setting else "")
    server = callgate_server(server_table + ROUTE)
    assert _listening(server)["event_loop"] == expected
    status, answer = server.callback(samples.ice(caller="46700000001", to="+46850001234"))
    assert (status, answer["action"]["name"]) == (200, "connectPstn")
    status, answer = server.webhook(v2_samples.incoming(caller="+46700000001", to="+46850001234"))
    assert status == 200 and [c["command"] for c in answer["commands"]] == ["bridgeCall", "dial"]


def test_uvloop_asked_for_and_not_installed_is_a_config_error(monkeypatch):
    monkeypatch.setitem(sys.modules, "uvloop", None)       # what `import uvloop` meets where it is not installed
    with pytest.raises(ConfigError, match=r'event_loop = "uvloop", but uvloop is not installed'):
        loop_factory("uvloop")
    assert loop_factory("auto") is None                    # auto: asyncio's own loop
    assert loop_factory("asyncio") is None


def test_auto_and_uvloop_give_uvloop_where_it_is_installed():
    uvloop = pytest.importorskip("uvloop")         # a dependency everywhere but Windows

    assert loop_factory("auto") is uvloop.new_event_loop
    assert loop_factory("uvloop") is uvloop.new_event_loop


class _Works:
    """A plain ``authorize_call`` that works for 0.4 ms before it abstains."""

    @hookimpl
    def authorize_call(self, call):
        until = time.perf_counter() + 0.0004
        while time.perf_counter() < until:
            pass


def test_plugin_times_and_timeouts_are_measured_the_same_on_uvloop():
    """uvloop's ``loop.time()`` counts whole milliseconds: the dispatcher does not read its times from it, or a hook
    of 0.4 ms would report 0 or 1 ms (0 in most of ten callbacks)."""
    uvloop = pytest.importorskip("uvloop")
    classes = {"works": _Works, "hangs": Hangs}
    config = PluginsConfig.model_validate({"enabled": list(classes), "hangs": {"timeout_ms": 30, "on_error": "skip"}})
    pipeline = Pipeline(load_plugins(config, classes=classes), ServerConfig())

    async def answer():
        started = time.perf_counter()
        reply = await pipeline.answer(decode_event(json.dumps(samples.ice()).encode()))
        return reply, (time.perf_counter() - started) * 1000

    with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
        replies = [runner.run(answer()) for _ in range(10)]
    for reply, took_ms in replies:
        works, hangs = (o for o in reply.outcomes if o.hook == "authorize_call")
        assert (works.plugin, works.status) == ("works", "ok") and 0.4 <= works.elapsed_ms < took_ms
        assert (hangs.plugin, hangs.status) == ("hangs", "timeout") and 29 <= hangs.elapsed_ms <= took_ms
