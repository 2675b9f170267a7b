"""The console's test helpers (a module of its own: every test folder's ``conftest`` is a different module)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from aiohttp.test_utils import TestClient
    from callgate_console import Console

    from callgate.testing import SignedClient

TOKEN = "test-console-token-0123456789"
ROUTE_ALL = {"name": "all", "prefix": "+", "action": {"name": "connectPstn", "number": "{to}", "maxDuration": 600}}


class RunningConsole:
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


def console_config(database_url: str, **settings: Any) -> dict[str, Any]:
    return {"server": {"ops_port": 9}, "plugins": {"enabled": ["console"], "console": {
        "database_url": database_url, **settings}, "router": {"routes": [ROUTE_ALL]}}}
