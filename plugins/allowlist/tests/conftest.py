"""Fixtures shared by the allowlist tests (no test module imports another: names stay unique)."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable

import aiohttp
import pytest

from callgate import samples
from callgate.protocols.v1 import signing
from callgate.protocols.v1.decode import decode_event

pytest_plugins = ["callgate.testing"]

@pytest.fixture
def route_table() -> dict:
    """``[plugins.router]`` with a catch-all route: every allowed call is connected to the number dialled."""
    return {"routes": [{"name": "everything", "action": {"name": "connectPstn", "number": "{to}"}}]}


@pytest.fixture
def ice_event() -> Callable:
    """``ice_event(caller, to, **fields)`` -> a decoded ``Ice``, as the hook receives it."""

    def build(caller: str | None = "46701234567", to: str = "+15551234567", **fields):
        return decode_event(json.dumps(samples.ice(caller=caller, to=to, **fields)))

    return build


@pytest.fixture
async def post_ice():
    """``await post_ice(server, caller=..., to=...)`` -> the SVAML a real server answers, signed like Sinch."""
    from callgate.testing import TEST_APPLICATION_KEY, TEST_APPLICATION_SECRET  # after pytest has loaded it

    async with aiohttp.ClientSession() as session:

        async def post(server, caller: str | None = "46701234567", to: str = "+15551234567", **fields) -> dict:
            raw = json.dumps(samples.ice(caller=caller, to=to, **fields)).encode()
            headers = signing.signed_headers(TEST_APPLICATION_KEY, TEST_APPLICATION_SECRET, "/sinch/callback", raw)
            async with session.post(server.url + "/sinch/callback", data=raw, headers=headers) as response:
                assert response.status == 200, await response.text()
                return await response.json()

        yield post


@pytest.fixture
def eventually():
    """``await eventually(check, timeout)``: retry an async check until it returns true, else fail."""

    async def wait(check: Callable, timeout: float = 10.0, what: str = "condition") -> None:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while True:
            if await check():
                return
            if loop.time() > deadline:
                pytest.fail(f"{what} not reached within {timeout} s")
            await asyncio.sleep(0.05)

    return wait
