"""Shared by the reliability tests of duplicates, faults and crashes (tests/test_reliability_*.py).

Real parts only: ``callgate serve`` processes (the ``callgate_server`` fixture), the real
``callgate credit`` commands, a real CRM receiver (an aiohttp server in the test's event loop
that verifies the webhook signature and counts what it accepted), and a real TCP proxy in front
of PostgreSQL that a test cuts and restores to make "the database stopped" without touching the
machine's PostgreSQL server.

Nothing here blocks the event loop: the receiver and the proxy run in it, so starting a server
(``start_server``) and the CLI (``credit``) run off the loop.
"""

from __future__ import annotations

import asyncio
import json
import os
import sys
import tempfile
import time
import uuid
from collections import Counter
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import aiohttp
from aiohttp import web

from callgate.protocols.v1 import signing
from callgate.storage import KEEPALIVE_DETECTION_SECONDS
from callgate.testing import (  # noqa: F401
    POSTGRES_DSN_ENV,
    TEST_APPLICATION_KEY,
    TEST_APPLICATION_SECRET,
    TEST_SERVICE_ID,
    WEBHOOK_PATH,
    free_port,
    full_stack_config,
    postgres_schema,
    webhook_headers,
)

CALLGATE = str(Path(sys.executable).with_name("callgate"))
#: The webhook's HMAC key, given to callgate through the environment (never written in a config file).
WEBHOOK_SECRET = "reliability-webhook-secret-" + uuid.uuid4().hex[:12]
SECRET_ENV = "RELIABILITY_CRM_SECRET"
ENV = {SECRET_ENV: WEBHOOK_SECRET}
#: Every caller's number starts with this (the allowlist allows it); every call goes to +1 (0.60 EUR/min, per second).
ALLOWED_PREFIX = "+4670"
DESTINATION = "+14155550123"
RATES_CSV = "prefix,currency,per_minute,connect_fee,increments,name\n+1,EUR,0.60,0,1/1,North America\n"
PER_SECOND = Decimal("0.01")


def caller(i: int) -> str:
    """The i-th test account's number (an allowed caller)."""
    return f"{ALLOWED_PREFIX}{i:07d}"


def pg_dsn() -> str | None:
    return os.environ.get(POSTGRES_DSN_ENV)


def skip_without_postgres(pytest: Any) -> str:
    dsn = pg_dsn()
    if not dsn:
        pytest.skip(f"PostgreSQL tests run when {POSTGRES_DSN_ENV} is set, e.g. "
                    f"{POSTGRES_DSN_ENV}=postgresql://postgres@127.0.0.1:5432/test (CI sets it)")
    return dsn


def via(url: str, port: int) -> str:
    """``url`` with its host and port replaced by 127.0.0.1:``port`` (the proxy)."""
    parts = urlsplit(url)
    user = parts.netloc.rsplit("@", 1)[0] + "@" if "@" in parts.netloc else ""
    return urlunsplit(parts._replace(netloc=f"{user}127.0.0.1:{port}"))


# --- configuration and the operator's commands -----------------------------------------------------------


def config_toml(credit_url: str, crm_url: str, receiver_url: str, *, deadline_ms: int = 2000,
                max_duration: int = 600, grace_seconds: int = 600, expiry_interval_seconds: float = 60.0,
                reconnect_seconds: float = 0.2, sink_timeout_seconds: float = 5.0,
                backoff_initial_seconds: float = 0.05, backoff_max_seconds: float = 0.5,
                poll_interval_seconds: float = 0.1, concurrency: int = 4, crm_timeout_ms: int = 3000,
                destination_types: list[str] | None = None, credit_on_error: str | None = None) -> str:
    """The three plugins in evaluation order (allowlist, credit_check, crm_export) and a catch-all route.

    ``crm_timeout_ms``: crm_export's per-hook budget (its default, 3000, unless a test is about something else
    than how fast a DICE is recorded).  ``destination_types``: credit_check's (its default, ``["number"]``,
    unless given: v2 inbound calls are ``did``, see its README); ``credit_on_error``: its ``on_error``."""
    folder = Path(tempfile.gettempdir())     # every path is given: the builder's file defaults are not used
    return full_stack_config(folder, overrides={
        "server": {"deadline_ms": deadline_ms},
        "plugins": {
            "allowlist": {"rules": [{"action": "allow", "caller": f"{ALLOWED_PREFIX}*"}]},
            "credit_check": {"database_url": credit_url, "max_duration": max_duration, "grace_seconds": grace_seconds,
                             "expiry_interval_seconds": expiry_interval_seconds,
                             "reconnect_seconds": reconnect_seconds, "destination_types": destination_types,
                             "on_error": credit_on_error},
            "crm_export": {"database_url": crm_url, "timeout_ms": crm_timeout_ms,
                           "poll_interval_seconds": poll_interval_seconds, "facts_flush_interval_seconds": 0.05,
                           "reconnect_seconds": reconnect_seconds, "shutdown_grace_seconds": 1,
                           "sinks": [{"name": "crm", "type": "webhook", "url": f"{receiver_url}/hook",
                                      "secret": {"env": SECRET_ENV}, "concurrency": concurrency,
                                      "timeout_seconds": sink_timeout_seconds,
                                      "backoff_initial_seconds": backoff_initial_seconds,
                                      "backoff_max_seconds": backoff_max_seconds, "max_attempts": 1000}]},
        },
    })


async def credit(config_path: Path, *args: str) -> str:
    """Run ``callgate credit ARGS --config PATH`` (the real command, off the event loop); its stdout."""
    process = await asyncio.create_subprocess_exec(
        CALLGATE, "credit", *args, "--config", str(config_path), stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE, env={**os.environ, **ENV})
    try:
        out, err = await asyncio.wait_for(process.communicate(), timeout=60)
    except TimeoutError:
        process.kill()
        await process.wait()
        raise AssertionError(f"callgate credit {' '.join(args)} took more than 60 s") from None
    assert process.returncode == 0, f"callgate credit {' '.join(args)}: {err.decode()}"
    return out.decode()


async def credit_json(config_path: Path, *args: str) -> Any:
    return json.loads(await credit(config_path, *args, "--json"))


async def open_accounts(config_path: Path, tmp_path: Path, accounts: dict[str, str]) -> None:
    """Import the rate table and open + top up each account (number -> amount) with the real commands."""
    rates = tmp_path / "rates.csv"
    rates.write_text(RATES_CSV)
    await credit(config_path, "rates", "import", str(rates))       # also creates the schema, before the others
    await asyncio.gather(*(credit(config_path, "add", number, "--currency", "EUR") for number in accounts))
    await asyncio.gather(*(credit(config_path, "topup", number, amount) for number, amount in accounts.items()))


def write_config(tmp_path: Path, name: str, text: str) -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


async def start_server(callgate_server: Any, config: str) -> Any:
    """``callgate_server(config)`` off the event loop (it polls /healthz with blocking sleeps)."""
    return await asyncio.to_thread(callgate_server, config, ENV)


async def kill(server: Any, sig: int) -> None:
    await asyncio.to_thread(server.stop, sig)


# --- HTTP ---------------------------------------------------------------------------------------------------


@dataclass
class Reply:
    """One callback's answer as the client saw it (``status`` None: no answer, the connection broke)."""

    status: int | None
    body: Any
    seconds: float
    sent_at: float


async def post(session: aiohttp.ClientSession, url: str, body: dict[str, Any], timeout: float = 10.0) -> Reply:
    """POST a callback signed like Sinch; never raises for a broken connection or a timeout."""
    raw = json.dumps(body).encode()
    headers = signing.signed_headers(TEST_APPLICATION_KEY, TEST_APPLICATION_SECRET, "/sinch/callback", raw)
    return await _send(session, url + "/sinch/callback", raw, headers, timeout)


async def post_webhook(session: aiohttp.ClientSession, url: str, body: dict[str, Any],
                       timeout: float = 10.0) -> Reply:
    """POST a Voice API v2 webhook to the webhook path, signed by the test service like Sinch; never raises for
    a broken connection or a timeout."""
    raw = json.dumps(body).encode()
    return await _send(session, url + WEBHOOK_PATH, raw, webhook_headers(raw), timeout)


async def _send(session: aiohttp.ClientSession, url: str, raw: bytes, headers: Any, timeout: float) -> Reply:
    started = time.monotonic()
    try:
        async with session.post(url, data=raw, headers=headers,
                                timeout=aiohttp.ClientTimeout(total=timeout)) as response:
            data = await response.read()
            try:
                decoded = json.loads(data)
            except ValueError:
                decoded = data.decode(errors="replace")
            return Reply(response.status, decoded, time.monotonic() - started, started)
    except (TimeoutError, aiohttp.ClientError, ConnectionError):
        return Reply(None, None, time.monotonic() - started, started)


def dials(body: Any) -> list[dict[str, Any]]:
    """The ``dial`` commands of a v2 answer, those after its prompts (in ``messages``' ``onFinish``) included;
    none when it is not a v2 answer."""
    if not isinstance(body, dict) or not isinstance(body.get("commands"), list):
        return []
    found = []
    for command in body["commands"]:
        if isinstance(command, dict) and command.get("command") == "dial":
            found.append(command)
        elif isinstance(command, dict) and command.get("command") == "messages":
            found.extend(dials({"commands": (command.get("events") or {}).get("onFinish") or []}))
    return found


async def get(session: aiohttp.ClientSession, url: str, timeout: float = 5.0) -> tuple[int, str]:
    async with session.get(url, timeout=aiohttp.ClientTimeout(total=timeout)) as response:
        return response.status, await response.text()


async def readyz(session: aiohttp.ClientSession, server: Any) -> tuple[int, dict[str, Any]]:
    status, text = await get(session, server.url + "/readyz")
    return status, json.loads(text)


def gauge(metrics_text: str, plugin: str, name: str) -> float | None:
    """A ``callgate_plugin_gauge{plugin=..., name=...}`` value from a /metrics scrape (None when absent)."""
    for line in metrics_text.splitlines():
        if line.startswith("callgate_plugin_gauge{") and f'plugin="{plugin}"' in line and f'name="{name}"' in line:
            return float(line.rsplit(" ", 1)[1])
    return None


async def eventually(predicate, timeout: float, what: str, interval: float = 0.05) -> float:
    """Wait until ``predicate()`` (sync or async) is true; returns the seconds it took.  Fails after ``timeout``."""
    started = time.monotonic()
    while True:
        value = predicate()
        if asyncio.iscoroutine(value):
            value = await value
        if value:
            return time.monotonic() - started
        if time.monotonic() - started > timeout:
            raise AssertionError(f"not within {timeout} s: {what}")
        await asyncio.sleep(interval)


def logged(server: Any, event: str) -> list[dict[str, Any]]:
    return [r for r in server.log_lines() if isinstance(r, dict) and r.get("event") == event]


# --- the CRM receiver ---------------------------------------------------------------------------------------


@dataclass
class Delivery:
    """One request the receiver accepted (answered 2xx)."""

    callid: str
    version: int
    idempotency_key: str
    body: bytes
    at: float
    #: The record's ``key``: the callid for v1, ``"v2:" + callId`` for a v2 leg.
    key: str = ""


@dataclass
class CrmReceiver:
    """A webhook endpoint standing in for a CRM: verifies the signature, accepts (200) and records every record.

    ``down()`` closes its port (connections are refused, as when the CRM is down); ``up()`` opens it again.
    """

    secret: str = WEBHOOK_SECRET
    #: Seconds the receiver takes to store a record before it answers (a slow CRM builds a backlog).
    delay: float = 0.0
    port: int = field(default_factory=free_port)
    accepted: list[Delivery] = field(default_factory=list)
    refused: int = 0
    _runner: web.AppRunner | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    async def __aenter__(self) -> CrmReceiver:
        await self.up()
        return self

    async def __aexit__(self, *exc: Any) -> None:
        await self.down()

    async def up(self) -> None:
        app = web.Application()
        app.router.add_post("/hook", self._hook)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        for _attempt in range(50):           # the port was ours a moment ago; rebinding it is normally at once
            try:
                await web.TCPSite(self._runner, "127.0.0.1", self.port).start()
                return
            except OSError:
                await asyncio.sleep(0.1)
        raise AssertionError(f"receiver: could not listen on port {self.port} again")

    async def down(self) -> None:
        if self._runner is not None:
            runner, self._runner = self._runner, None
            await runner.cleanup()

    async def _hook(self, request: web.Request) -> web.Response:
        from callgate_crm_export.signature import SIGNATURE_HEADER, TIMESTAMP_HEADER, verify

        body = await request.read()
        try:
            verify(self.secret, body, request.headers.get(TIMESTAMP_HEADER), request.headers.get(SIGNATURE_HEADER))
        except ValueError as exc:
            self.refused += 1
            return web.json_response({"error": str(exc)}, status=401)
        record = json.loads(body)
        if self.delay:
            await asyncio.sleep(self.delay)
        self.accepted.append(Delivery(record["callid"], int(request.headers["X-Callgate-Record-Version"]),
                                      request.headers["Idempotency-Key"], body, time.monotonic(),
                                      record.get("key") or record["callid"]))
        return web.json_response({"ok": True})

    def counts(self) -> Counter:
        """Accepted requests per callid (every version, duplicates included)."""
        return Counter(d.callid for d in self.accepted)

    def callids(self) -> set[str]:
        return {d.callid for d in self.accepted}

    def key_counts(self) -> Counter:
        """Accepted requests per record key (a v1 callid, or ``v2:`` + a v2 leg's callId)."""
        return Counter(d.key for d in self.accepted)

    def keys(self) -> set[str]:
        return {d.key for d in self.accepted}

    def records(self, key: str) -> list[dict[str, Any]]:
        """The bodies accepted for one key, decoded, in order."""
        return [json.loads(d.body) for d in self.accepted if d.key == key]

    def repeats(self, by_key: bool = False) -> dict[str, list[Delivery]]:
        """callid (``by_key``: record key) -> its deliveries, for every one accepted more than once."""
        by_callid: dict[str, list[Delivery]] = {}
        for d in self.accepted:
            by_callid.setdefault(d.key if by_key else d.callid, []).append(d)
        return {c: ds for c, ds in by_callid.items() if len(ds) > 1}

    def assert_repeats_are_identical(self) -> int:
        """A record accepted twice must be the same request (same Idempotency-Key and body): the documented
        at-least-once window.  Returns how many extra copies there were."""
        extra = 0
        for callid, copies in self.repeats(by_key=True).items():
            assert len({d.idempotency_key for d in copies}) == 1, (callid, [d.idempotency_key for d in copies])
            assert len({d.body for d in copies}) == 1, f"{callid}: a repeated delivery with a different body"
            extra += len(copies) - 1
        return extra


# --- the database "stopped": a TCP proxy in front of PostgreSQL ---------------------------------------------


class TcpProxy:
    """Forwards 127.0.0.1:``port`` to ``target``; ``cut()`` closes every connection and stops listening
    (new connections are refused, as when the database server is stopped); ``restore()`` listens again."""

    def __init__(self, target_host: str, target_port: int, port: int | None = None) -> None:
        self.target = (target_host, target_port)
        self.port = port or free_port()
        self._server: asyncio.Server | None = None
        self._links: set[asyncio.StreamWriter] = set()
        self._upstream: set[asyncio.StreamWriter] = set()
        self._frozen: set[asyncio.StreamWriter] = set()
        self._tasks: set[asyncio.Task] = set()
        self.connections = 0

    async def start(self) -> TcpProxy:
        for _attempt in range(50):
            try:
                self._server = await asyncio.start_server(self._accept, "127.0.0.1", self.port)
                return self
            except OSError:
                await asyncio.sleep(0.1)
        raise AssertionError(f"proxy: could not listen on port {self.port}")

    restore = start

    async def cut(self, *, keep_database_side: bool = False) -> None:
        """Close every connection and stop listening.  ``keep_database_side``: a network partition rather than a
        stopped server: callgate's side of each connection is closed, PostgreSQL's stays open, silent, until
        PostgreSQL's TCP keepalive would give up (KEEPALIVE_DETECTION_SECONDS, as callgate sets it): this
        machine's kernel answers the probes for the proxy, which an unreachable client's network would not."""
        server, self._server = self._server, None
        if server is not None:
            server.close()
        frozen = []
        for writer in list(self._links):
            if keep_database_side and writer in self._upstream:
                frozen.append(writer)
                continue
            writer.transport.abort()
        self._links.clear()
        if frozen:
            self._frozen.update(frozen)
            asyncio.get_running_loop().call_later(KEEPALIVE_DETECTION_SECONDS,
                                                  lambda: [w.transport.abort() for w in frozen])
        if server is not None:
            await asyncio.wait_for(server.wait_closed(), timeout=5)

    async def close(self) -> None:
        await self.cut()
        for writer in self._frozen:
            writer.transport.abort()
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        if self._server is None:
            writer.transport.abort()
            return
        try:
            up_reader, up_writer = await asyncio.wait_for(asyncio.open_connection(*self.target), timeout=5)
        except (TimeoutError, OSError):
            writer.transport.abort()
            return
        self.connections += 1
        self._links.update((writer, up_writer))
        self._upstream.add(up_writer)
        for src, dst in ((reader, up_writer), (up_reader, writer)):
            task = asyncio.create_task(self._pipe(src, dst))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

    async def _pipe(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while data := await reader.read(65536):
                if writer in self._frozen:
                    continue
                writer.write(data)
                await writer.drain()
        except (OSError, asyncio.CancelledError):
            pass
        finally:
            if writer not in self._frozen:
                writer.transport.abort()
            self._links.discard(writer)


def host_port(dsn: str) -> tuple[str, int]:
    parts = urlsplit(dsn)
    return parts.hostname or "127.0.0.1", parts.port or 5432


def ledger_debits(entries: list[dict[str, Any]]) -> dict[str, list[Decimal]]:
    """callid -> the amounts debited for it, from ``callgate credit ledger --json``."""
    debits: dict[str, list[Decimal]] = {}
    for entry in entries:
        if entry["kind"] == "debit":
            debits.setdefault(entry["callid"], []).append(Decimal(entry["amount"]))
    return debits



# --- a steady load of calls ---------------------------------------------------------------------------------


@dataclass
class PlacedCall:
    """One call of a load: its ICE's answer and its DICE's (sent right after the ICE was answered)."""

    callid: str
    number: str
    ice: Reply
    dice: Reply
    duration: int
    dice_body: dict[str, Any]
    #: "v1" (ICE, DICE on the callback path) or "v2" (``call.incoming``, ``call.hangup`` on the webhook path).
    generation: str = "v1"

    @property
    def key(self) -> str:
        """The key the plugins keep this call by (and the CRM record's ``key``)."""
        return self.callid if self.generation == "v1" else f"v2:{self.callid}"

    @property
    def connected(self) -> bool:
        return connected(self.ice, self.generation)


def connected(reply: Reply, generation: str = "v1") -> bool:
    """Whether an ICE / ``call.incoming`` answer connects the call (v1 ``connectPstn``, v2 a ``dial``)."""
    if reply.status != 200 or not isinstance(reply.body, dict):
        return False
    if generation == "v2":
        return bool(dials(reply.body))
    return reply.body.get("action", {}).get("name") == "connectPstn"


class SteadyLoad:
    """``workers`` callers, each placing calls one after another: a signed ICE, then its DICE (a connected call
    lasted 1-5 s; a call that was hung up has a FAILED DICE of 0 s, as Sinch sends), until ``stop()``.

    ``generation="v2"``: the same calls on the webhook path, a ``call.incoming`` to ``DESTINATION`` (then a
    number of the service) and the inbound leg's ``call.hangup`` (``COMPLETED`` after 1-5 s, or ``FAILED`` after 0 s
    for a call that was hung up)."""

    def __init__(self, session: aiohttp.ClientSession, url: str, numbers: list[str], *, workers: int = 3,
                 pause: float = 0.02, generation: str = "v1") -> None:
        self.session = session
        self.url = url
        self.numbers = numbers
        self.workers = workers
        self.pause = pause
        self.generation = generation
        self.exchanges: list[PlacedCall] = []
        self._stop = asyncio.Event()
        self._tasks: list[asyncio.Task] = []
        self._count = 0

    def start(self) -> SteadyLoad:
        self._tasks = [asyncio.create_task(self._worker(i)) for i in range(self.workers)]
        return self

    async def stop(self) -> list[PlacedCall]:
        self._stop.set()
        await asyncio.wait_for(asyncio.gather(*self._tasks), timeout=30)
        return self.exchanges

    async def _worker(self, worker: int) -> None:
        while not self._stop.is_set():
            await self.place_call(worker)
            await asyncio.sleep(self.pause)

    async def place_call(self, worker: int = 0) -> PlacedCall:
        """One call from the worker's number: its ICE, then its DICE; returns (and records) the exchange."""
        from callgate import samples

        number = self.numbers[worker % len(self.numbers)]
        self._count += 1
        if self.generation == "v2":
            return await self._place_v2_call(number)
        ice = samples.ice(caller=number.lstrip("+"), to=DESTINATION)
        ice_reply = await post(self.session, self.url, ice)
        connected = ice_reply.status == 200 and isinstance(ice_reply.body, dict) and \
            ice_reply.body.get("action", {}).get("name") == "connectPstn"
        duration = self._duration(ice_reply.body["action"].get("maxDuration")) if connected else 0
        dice = samples.dice(ice["callid"], caller=number.lstrip("+"), to=DESTINATION, duration=duration,
                            result="ANSWERED" if connected else "FAILED",
                            reason="CALLERHANGUP" if connected else "NONE")
        dice_reply = await post(self.session, self.url, dice)
        self.exchanges.append(PlacedCall(ice["callid"], number, ice_reply, dice_reply, duration, dice))
        return self.exchanges[-1]

    async def _place_v2_call(self, number: str) -> PlacedCall:
        from callgate import v2_samples

        session_id = v2_samples.new_call_id()
        incoming = v2_samples.incoming(number, DESTINATION, session=session_id, service_id=TEST_SERVICE_ID)
        callid = incoming["call"]["callId"]
        incoming_reply = await post_webhook(self.session, self.url, incoming)
        dialled = dials(incoming_reply.body) if incoming_reply.status == 200 else []
        duration = self._duration(dialled[0].get("maxDuration")) if dialled else 0
        hangup = v2_samples.hangup(callid, caller=number, to=DESTINATION, session=session_id, duration=duration,
                                   result="COMPLETED" if duration else "FAILED", service_id=TEST_SERVICE_ID)
        hangup_reply = await post_webhook(self.session, self.url, hangup)
        self.exchanges.append(PlacedCall(callid, number, incoming_reply, hangup_reply, duration, hangup, "v2"))
        return self.exchanges[-1]

    def _duration(self, max_duration: int | None) -> int:
        """A connected call's 1-5 s, never beyond the answer's maxDuration: Sinch hangs up there, so its end event
        never reports more (a call granted less than the load's 5 s by a nearly empty account lasts what it was
        granted)."""
        duration = 1 + self._count % 5
        return duration if max_duration is None else min(duration, max_duration)

    def connected_since(self, moment: float) -> int:
        return sum(1 for e in self.exchanges if e.ice.sent_at >= moment and e.connected and e.dice.status == 200)


class Poller:
    """GETs ``url`` every ``interval`` s until stopped; ``samples`` is [(sent_at, status, body text, answered_at)].

    A probe's answer reflects the server's state anywhere between ``sent_at`` and ``answered_at`` (``/readyz``
    pings the databases after the request arrives), so "answered before X" is what a probe says about X."""

    def __init__(self, session: aiohttp.ClientSession, url: str, interval: float = 0.1) -> None:
        self.session, self.url, self.interval = session, url, interval
        self.samples: list[tuple[float, int | None, str, float]] = []
        self._stop = asyncio.Event()
        self._task: asyncio.Task | None = None

    def start(self) -> Poller:
        self._task = asyncio.create_task(self._run())
        return self

    async def stop(self) -> list[tuple[float, int | None, str, float]]:
        self._stop.set()
        await asyncio.wait_for(self._task, timeout=15)
        return self.samples

    async def _run(self) -> None:
        while not self._stop.is_set():
            sent = time.monotonic()
            try:
                status, text = await get(self.session, self.url)
            except (TimeoutError, aiohttp.ClientError):
                status, text = None, ""
            self.samples.append((sent, status, text, time.monotonic()))
            try:
                await asyncio.wait_for(self._stop.wait(), timeout=self.interval)
            except TimeoutError:
                pass
