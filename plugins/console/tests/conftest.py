"""The console under test: the real callgate app and its real ops app, both served over HTTP."""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping
from typing import Any

import pytest
from aiohttp.test_utils import TestClient, TestServer
from callgate_console import Console
from console_setup import TOKEN, RunningConsole, console_config

from callgate.app import create_app, create_ops_app

pytest_plugins = ["callgate.testing"]


@pytest.fixture(autouse=True)
def console_token(monkeypatch):
    monkeypatch.setenv("CALLGATE_CONSOLE_TOKEN", TOKEN)
    return TOKEN


@pytest.fixture
async def make_console(tmp_path) -> AsyncIterator[Any]:
    """``await make_console(database_url=None, plugins=None, enabled=("console",), **console_settings)`` -> a
    started RunningConsole (its callback app and its ops app, each on a real port)."""
    started: list[tuple[TestClient, TestClient]] = []

    async def factory(database_url: str | None = None, plugins: Mapping[str, type] | None = None,
                      enabled: tuple[str, ...] = ("console",), **settings: Any) -> RunningConsole:
        from callgate.testing import SignedClient, make_config  # after pytest loaded it as a plugin
        url = database_url or f"sqlite:///{tmp_path}/console-{len(started)}.sqlite3"
        config = console_config(url, **settings)
        config["plugins"]["enabled"] = list(enabled)
        classes = {"console": Console, **(plugins or {})}
        cfg = make_config(config, plugins=classes)
        app = create_app(cfg, plugin_classes=classes)
        ops_app = create_ops_app(app)          # before the plugins start, as `callgate serve` does
        callgate = TestClient(TestServer(app))
        await callgate.start_server()
        ops = TestClient(TestServer(ops_app))
        await ops.start_server()
        started.append((callgate, ops))
        signed = SignedClient(callgate, cfg)
        return RunningConsole(signed, ops, signed.plugin("console"))

    yield factory
    for callgate, ops in reversed(started):
        await ops.close()
        await callgate.close()
