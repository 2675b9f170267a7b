"""``[server] event_loop``: which event loop the real ``callgate serve`` runs on, and what it answers there."""

from __future__ import annotations

import sys

import pytest

from callgate import samples, v2_samples
from callgate.config import ConfigError
from callgate.loops import loop_factory

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
