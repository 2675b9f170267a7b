"""A real HTTP receiver standing in for a CRM in the tests: a generic webhook endpoint and HubSpot's calls API.

Every request is logged (method, path, headers, body, arrival time, the status answered).  What a
request gets is decided by ``behave(request_number, callid)``, which returns a :class:`ReceiverReply`: a
status, an optional Retry-After, an optional delay.  A record is *accepted* only when the
receiver answers it 2xx (``accepted`` lists them in order, duplicates included: the tests count
them, they do not dedupe).
"""

from __future__ import annotations

import asyncio
import json
import socket
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web

from callgate_crm_export.signature import SIGNATURE_HEADER, TIMESTAMP_HEADER, verify


@dataclass
class ReceiverReply:
    status: int = 200
    retry_after: str | None = None
    delay: float = 0.0


OK = ReceiverReply()


@dataclass
class Seen:
    method: str
    path: str
    headers: dict[str, str]
    body: bytes
    at: float
    callid: str | None
    status: int | None = None

    def json(self) -> Any:
        return json.loads(self.body)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@dataclass
class Receiver:
    """Run with ``async with Receiver(...) as receiver``; ``receiver.url`` is its base URL."""

    secret: str | None = None
    token: str | None = None
    behave: Callable[[int, str | None], ReceiverReply] = lambda n, callid: OK
    port: int = field(default_factory=free_port)
    seen: list[Seen] = field(default_factory=list)
    accepted: list[Seen] = field(default_factory=list)
    in_flight: int = 0
    max_in_flight: int = 0
    hubspot_calls: dict[str, dict[str, Any]] = field(default_factory=dict)
    _runner: web.AppRunner | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    async def __aenter__(self) -> Receiver:
        await self.start()
        return self

    async def __aexit__(self, *exc: Any) -> None:
        await self.stop()

    async def start(self) -> None:
        app = web.Application()
        app.router.add_post("/hook", self._webhook)
        app.router.add_post("/crm/v3/objects/calls", self._hubspot_create)
        app.router.add_post("/crm/v3/objects/calls/batch/upsert", self._hubspot_upsert)
        app.router.add_patch("/crm/v3/objects/calls/{id}", self._hubspot_update)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        await web.TCPSite(self._runner, "127.0.0.1", self.port).start()

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    # --- counting ----------------------------------------------------------------------------

    def accepted_callids(self, version: int = 1) -> Counter:
        return Counter(s.callid for s in self.accepted if s.headers.get("X-Callgate-Record-Version", "1") == str(version))

    async def wait_for(self, predicate: Callable[[], bool], timeout: float = 20.0) -> None:
        deadline = time.monotonic() + timeout
        while not predicate():
            if time.monotonic() > deadline:
                raise AssertionError(f"receiver: condition not met within {timeout} s "
                                     f"({len(self.seen)} requests, {len(self.accepted)} accepted)")
            await asyncio.sleep(0.02)

    # --- handlers -----------------------------------------------------------------------------

    async def _handle(self, request: web.Request, callid_of: Callable[[bytes], str | None],
                      accept: Callable[[Seen], web.Response]) -> web.Response:
        body = await request.read()
        callid = callid_of(body)
        seen = Seen(request.method, request.path, dict(request.headers), body, time.monotonic(), callid)
        self.seen.append(seen)
        reply = self.behave(len(self.seen), callid)
        self.in_flight += 1
        self.max_in_flight = max(self.max_in_flight, self.in_flight)
        try:
            if reply.delay:
                await asyncio.sleep(reply.delay)
        finally:
            self.in_flight -= 1
        seen.status = reply.status
        if reply.status >= 300:
            headers = {"Retry-After": reply.retry_after} if reply.retry_after else {}
            return web.json_response({"error": "planned failure"}, status=reply.status, headers=headers)
        self.accepted.append(seen)
        return accept(seen)

    async def _webhook(self, request: web.Request) -> web.Response:
        if self.secret is not None:
            body = await request.read()
            try:
                verify(self.secret, body, request.headers.get(TIMESTAMP_HEADER), request.headers.get(SIGNATURE_HEADER))
            except ValueError as exc:
                self.seen.append(Seen(request.method, request.path, dict(request.headers), body, time.monotonic(),
                                      None, 401))
                return web.json_response({"error": str(exc)}, status=401)
        return await self._handle(request, lambda body: json.loads(body)["callid"],
                                  lambda seen: web.json_response({"ok": True}))

    def _authorized(self, request: web.Request) -> bool:
        return self.token is None or request.headers.get("Authorization") == f"Bearer {self.token}"

    async def _hubspot_create(self, request: web.Request) -> web.Response:
        if not self._authorized(request):
            return web.json_response({"status": "error", "category": "INVALID_AUTHENTICATION"}, status=401)

        def store(seen: Seen) -> web.Response:
            object_id = str(len(self.hubspot_calls) + 1)
            self.hubspot_calls[object_id] = dict(seen.json()["properties"])
            return web.json_response({"id": object_id, "properties": self.hubspot_calls[object_id]}, status=201)
        return await self._handle(request, lambda body: _hubspot_callid(json.loads(body)["properties"]), store)

    async def _hubspot_update(self, request: web.Request) -> web.Response:
        if not self._authorized(request):
            return web.json_response({"status": "error"}, status=401)
        object_id = request.match_info["id"]
        if object_id not in self.hubspot_calls:
            return web.json_response({"status": "error", "category": "OBJECT_NOT_FOUND"}, status=404)

        def update(seen: Seen) -> web.Response:
            self.hubspot_calls[object_id].update(seen.json()["properties"])
            return web.json_response({"id": object_id, "properties": self.hubspot_calls[object_id]})
        return await self._handle(request, lambda body: _hubspot_callid(json.loads(body)["properties"]), update)

    async def _hubspot_upsert(self, request: web.Request) -> web.Response:
        if not self._authorized(request):
            return web.json_response({"status": "error"}, status=401)

        def upsert(seen: Seen) -> web.Response:
            results = []
            for item in seen.json()["inputs"]:
                key = (item["idProperty"], item["id"])
                object_id = next((i for i, p in self.hubspot_calls.items()
                                  if p.get(item["idProperty"]) == item["id"]), None)
                new = object_id is None
                if new:
                    object_id = str(len(self.hubspot_calls) + 1)
                    self.hubspot_calls[object_id] = {}
                self.hubspot_calls[object_id].update(item["properties"])
                results.append({"id": object_id, "new": new, "properties": self.hubspot_calls[object_id],
                                "key": list(key)})
            return web.json_response({"status": "COMPLETE", "results": results})
        return await self._handle(request, lambda body: json.loads(body)["inputs"][0]["id"], upsert)


def _hubspot_callid(properties: dict[str, str]) -> str | None:
    body = properties.get("hs_call_body", "")
    marker = "Sinch callid: "
    return body.split(marker, 1)[1].split("<br>")[0] if marker in body else None
