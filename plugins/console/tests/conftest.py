"""The console under test: the real callgate app and its real ops app, both served over HTTP."""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping
from typing import TYPE_CHECKING, Any

import pytest
from aiohttp import ClientSession
from aiohttp.test_utils import TestClient, TestServer

if TYPE_CHECKING:
    from callgate.testing import SignedClient
from callgate_console import Console
from console_settings import TOKEN, console_config

from callgate.app import create_app, create_ops_app

pytest_plugins = ["callgate.testing"]


@pytest.fixture(autouse=True)
def console_token(monkeypatch):
    monkeypatch.setenv("CALLGATE_CONSOLE_TOKEN", TOKEN)
    return TOKEN


class Console_:
    """A running console: ``callgate`` (a SignedClient on the callback app) and ``ops`` (a client on the ops app)."""

    def __init__(self, callgate: SignedClient, ops: TestClient, plugin: Console) -> None:
        self.callgate = callgate
        self.ops = ops
        self.plugin = plugin

    async def flush(self) -> None:
        """Write what is queued now (the background flush would, within flush_interval_ms)."""
        assert self.plugin.state.store is not None
        await self.plugin.state.recorder.flush(self.plugin.state.store)

    async def login(self) -> None:
        response = await self.ops.post("/console/login", data={"token": TOKEN}, allow_redirects=False)
        assert response.status == 303


@pytest.fixture
async def make_console(tmp_path) -> AsyncIterator[Any]:
    """``await make_console(database_url=None, plugins=None, **console_settings)`` -> a started Console_."""
    started: list[tuple[TestServer, TestClient, TestClient]] = []

    async def factory(database_url: str | None = None, plugins: Mapping[str, type] | None = None,
                      enabled: tuple[str, ...] = ("console",), **settings: Any) -> Console_:
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
        started.append((callgate.server, callgate, ops))
        signed = SignedClient(callgate, cfg)
        return Console_(signed, ops, signed.plugin("console"))

    yield factory
    for _, callgate, ops in reversed(started):
        await ops.close()
        await callgate.close()


async def fetch_text(session: ClientSession, url: str) -> tuple[int, str]:
    async with session.get(url) as response:
        return response.status, await response.text()
