"""``callgate.testing``: a pytest plugin for testing callgate plugins against the real server.

Install with ``pip install "callgate[testing]"`` and enable it in your
``conftest.py``::

    pytest_plugins = ["callgate.testing"]

and set ``asyncio_mode = "auto"`` and ``asyncio_default_fixture_loop_scope = "function"``
in your pytest configuration (``[tool.pytest.ini_options]``).  Then::

    async def test_denies_unknown_callers(callgate_client, callgate_events):
        client = await callgate_client(
            config={"plugins": {"allowlist": {"default": "deny"}}},
            plugins={"allowlist": Allowlist},   # or leave out: the installed entry point is used
        )
        status, answer = await client.event(callgate_events.ice(caller="46700000000"))
        assert answer["action"]["name"] == "hangup"

Fixtures:

* ``callgate_client``: async factory ``await callgate_client(config=None, plugins=None)``
  building the real aiohttp app (plugins enabled and configured as config.toml
  would) and returning a ``SignedClient`` that signs every request with a test
  application key and secret, like Sinch does; ``client.plugin(name)`` is the
  plugin instance the app runs.
* ``callgate_events``: the event factories (``ice()``, ``ace()``, ``pie()``,
  ``dice()``, ``notify()``), returning plain dicts shaped as Sinch sends them.
* ``callgate_v2_events``: the Voice API v2 webhook factories (``incoming()``, ``answered()``,
  ``menu()``, ``hangup()``, ``ended("call.busy")``, ``custom(name)``; :mod:`callgate.v2_samples`),
  whose bodies load in the Sinch SDK's ``VoiceSinchEventRequest``.  Send them with
  ``await client.webhook(body)``: signed with the test service (``TEST_SERVICE_ID`` /
  ``TEST_SERVICE_SECRET``) on the webhook path, as Sinch signs them.
* ``callgate_config``: ``callgate_config(config)`` -> a validated ``Config`` (the core's
  settings only: plugins' tables are checked when the plugins are loaded).
* ``callgate_check_config``: ``callgate_check_config(config=None, plugins=None)`` -> what
  ``callgate check-config`` says of that configuration: the ``callgate.PluginError`` (or
  ``callgate.ConfigError``) it would print, or ``None`` when it accepts it.  Use it to test
  that a bad ``[plugins.<name>]`` table is refused, and how.  (``callgate_client`` raises the
  same error.)
* ``callgate_database_url``: parametrized over ``sqlite`` (a fresh file) and ``postgresql``
  (a fresh schema in the server named by ``$CALLGATE_TEST_POSTGRES_DSN``; skipped, saying
  so, when it is not set), so one test proves a store on both.
* ``callgate_server``: factory ``callgate_server(config_toml_text, env=None)`` starting
  the real ``callgate serve`` command in a subprocess on a free port (stopped after
  the test), for end-to-end tests over real HTTP.  It returns a ``ServerProcess``
  (``url``, ``port``, ``logs()``, ``log_lines()``, ``stop()``); the server trusts the
  test application (``TEST_APPLICATION_KEY`` / ``TEST_APPLICATION_SECRET``, given to it
  as ``SINCH_APPLICATION_KEY`` / ``SINCH_APPLICATION_SECRET``): sign requests to it with
  ``callgate.protocols.v1.signing.signed_headers(TEST_APPLICATION_KEY, TEST_APPLICATION_SECRET, path, body)``,
  or send them with ``server.callback(body)``.  It trusts the test service too (``TEST_SERVICE_ID`` /
  ``TEST_SERVICE_SECRET``, given as ``SINCH_SERVICE_ID`` / ``SINCH_SERVICE_SECRET``):
  ``server.webhook(body)`` sends a v2 webhook signed by it (:func:`webhook_headers`).
"""

from __future__ import annotations

import base64
import json
import os
import signal
import socket
import subprocess
import sys
import time
import tomllib
import urllib.error
import urllib.request
import uuid
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import pytest

from . import samples, v2_samples
from .app import create_app, preflight
from .config import Config, ConfigError, config_from_dict
from .manager import PluginError
from .protocols.v1 import signing
from .protocols.v2.signing import service_signed_headers
from .state import PLUGINS

POSTGRES_DSN_ENV = "CALLGATE_TEST_POSTGRES_DSN"
TEST_APPLICATION_KEY = "callgate-test-application"
#: A fresh random secret per test session: nothing secret is ever written down.
TEST_APPLICATION_SECRET = base64.b64encode(os.urandom(32)).decode()
_SECRET_ENV = "CALLGATE_TEST_APPLICATION_SECRET"
#: The Voice API v2 service the test client and server trust (beside the test application).
TEST_SERVICE_ID = "callgate-test-service"
TEST_SERVICE_SECRET = base64.b64encode(os.urandom(16)).decode()
_SERVICE_SECRET_ENV = "CALLGATE_TEST_SERVICE_SECRET"
#: The webhook path of the default configuration.
WEBHOOK_PATH = "/sinch/webhook"
CALLBACK_PATH = "/sinch/callback"


def webhook_headers(body: bytes, path: str = WEBHOOK_PATH, *, service_id: str = TEST_SERVICE_ID,
                    secret: str = TEST_SERVICE_SECRET, timestamp: str | None = None,
                    content_type: str = "application/json") -> dict[str, str]:
    """The headers of a v2 webhook signed by the test service (callgate's own signer, the ``service``
    scheme), for ``body`` POSTed to ``path``; with a fresh CloudEvents ``ce-id`` as Sinch sends."""
    return {**service_signed_headers(service_id, secret, path, body, content_type=content_type, timestamp=timestamp),
            "ce-id": str(uuid.uuid4()), "ce-specversion": "1.0"}


def make_config(config: Mapping[str, Any] | str | None = None, *, plugins: Mapping[str, type] | None = None,
                environ: Mapping[str, str] | None = None) -> Config:
    """A validated Config from a dict or TOML text, with the test application and the test service unless
    ``applications`` / ``services`` are configured.

    Plugins given by class are appended to ``[plugins] enabled`` when the config does not list them.
    """
    data = tomllib.loads(config) if isinstance(config, str) else json.loads(json.dumps(config or {}))
    if plugins:
        section = data.setdefault("plugins", {})
        enabled = list(section.get("enabled", []))
        section["enabled"] = enabled + [name for name in plugins if name not in enabled]
    data.setdefault("applications", [{"key": TEST_APPLICATION_KEY, "secrets": [{"env": _SECRET_ENV}]}])
    data.setdefault("services", [{"id": TEST_SERVICE_ID, "secrets": [{"env": _SERVICE_SECRET_ENV}]}])
    env = {**os.environ, **(environ or {}), _SECRET_ENV: TEST_APPLICATION_SECRET,
           _SERVICE_SECRET_ENV: TEST_SERVICE_SECRET}
    return config_from_dict(data, source="<test config>", environ=env)


def check_config(config: Mapping[str, Any] | str | None = None, *,
                 plugins: Mapping[str, type] | None = None) -> ConfigError | PluginError | None:
    """What ``callgate check-config`` says of a configuration: the error it would print, or None when it is
    accepted.  The configuration is validated and every enabled plugin imported (or taken from ``plugins``),
    configured and built, as at start-up (:func:`callgate.app.preflight`); no plugin's ``startup()`` runs."""
    try:
        preflight(make_config(config, plugins=plugins), plugin_classes=plugins)
    except (ConfigError, PluginError) as exc:
        return exc
    return None


class SignedClient:
    """An aiohttp test client that sends v1 callbacks and v2 webhooks signed like Sinch's."""

    def __init__(self, client: Any, config: Config, key: str = TEST_APPLICATION_KEY,
                 secret: str = TEST_APPLICATION_SECRET, service_id: str = TEST_SERVICE_ID,
                 service_secret: str = TEST_SERVICE_SECRET) -> None:
        self.client = client
        self.config = config
        self.key = key
        self.secret = secret
        self.service_id = service_id
        self.service_secret = service_secret

    @property
    def app(self):
        return self.client.app

    def plugin(self, name: str) -> Any:
        """The instance of the enabled plugin ``name`` that this app runs (to look at what it recorded)."""
        for loaded in self.app[PLUGINS].loaded:
            if loaded.name == name:
                return loaded.instance
        raise KeyError(f"no enabled plugin named {name!r}")

    async def send(self, body: Mapping[str, Any] | bytes, *, sign: bool = True, headers: Mapping[str, str] | None = None,
                   content_type: str = "application/json", timestamp: str | None = None, path: str | None = None):
        """POST a callback; returns the aiohttp response.  ``headers`` are added after signing (to tamper)."""
        raw = body if isinstance(body, bytes) else json.dumps(body).encode()
        path = path or self.config.server.callback_path
        all_headers = {"Content-Type": content_type}
        if sign:
            all_headers = signing.signed_headers(self.key, self.secret, self.config.server.signed_path, raw,
                                                 content_type=content_type, timestamp=timestamp)
        all_headers.update(headers or {})
        return await self.client.post(path, data=raw, headers=all_headers)

    async def event(self, body: Mapping[str, Any] | bytes, **kwargs: Any) -> tuple[int, Any]:
        """Send a callback; returns ``(status, decoded JSON body)``."""
        response = await self.send(body, **kwargs)
        return response.status, await response.json()

    async def send_webhook(self, body: Mapping[str, Any] | bytes, *, sign: bool = True,
                           headers: Mapping[str, str] | None = None, content_type: str = "application/json",
                           timestamp: str | None = None, path: str | None = None):
        """POST a v2 webhook signed by the test service (``service`` scheme); returns the aiohttp response.
        ``headers`` are added after signing (to tamper, or to send CloudEvents ``ce-*`` headers)."""
        raw = body if isinstance(body, bytes) else json.dumps(body).encode()
        path = path or self.config.server.webhook_path
        all_headers = {"Content-Type": content_type}
        if sign:
            all_headers = webhook_headers(raw, self.config.server.signed_webhook_path, service_id=self.service_id,
                                          secret=self.service_secret, content_type=content_type, timestamp=timestamp)
        all_headers.update(headers or {})
        return await self.client.post(path, data=raw, headers=all_headers)

    async def webhook(self, body: Mapping[str, Any] | bytes, **kwargs: Any) -> tuple[int, Any]:
        """Send a v2 webhook (see :meth:`send_webhook`); returns ``(status, decoded JSON body)``."""
        response = await self.send_webhook(body, **kwargs)
        return response.status, await response.json()


def pytest_configure(config: pytest.Config) -> None:
    """Register the ``slow`` marker for every suite that uses this plugin: tests that start processes
    (``callgate_server``, the ``callgate`` command) or wait in real time; ``-m "not slow"`` skips them."""
    config.addinivalue_line("markers", "slow: starts processes or waits in real time (-m 'not slow' skips it)")


@pytest.fixture
def callgate_events():
    """The event factories: ``callgate_events.ice(caller=..., to=...)`` and so on."""
    return samples


@pytest.fixture
def callgate_v2_events():
    """The Voice API v2 webhook factories: ``callgate_v2_events.incoming(caller=..., to=...)`` and so on."""
    return v2_samples


@pytest.fixture
def callgate_config():
    """``callgate_config(dict_or_toml, plugins=None)`` -> a validated Config with the test application."""
    return make_config


@pytest.fixture
def callgate_check_config():
    """``callgate_check_config(config=None, plugins=None)`` -> the PluginError or ConfigError ``callgate
    check-config`` would print for this configuration, or None when it accepts it."""
    return check_config


@pytest.fixture
def callgate_client(aiohttp_client):
    """``await callgate_client(config=None, plugins=None)`` -> a SignedClient on the real app."""

    async def factory(config: Mapping[str, Any] | str | None = None,
                      plugins: Mapping[str, type] | None = None) -> SignedClient:
        cfg = make_config(config, plugins=plugins)
        client = await aiohttp_client(create_app(cfg, plugin_classes=plugins))
        return SignedClient(client, cfg)

    return factory


@pytest.fixture(params=["sqlite", "postgresql"])
async def callgate_database_url(request, tmp_path):
    """A database URL for a store under test: SQLite, then PostgreSQL (a schema of its own)."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path}/test.sqlite3"
        return
    dsn = os.environ.get(POSTGRES_DSN_ENV)
    if not dsn:
        pytest.skip(f"PostgreSQL tests run when {POSTGRES_DSN_ENV} is set, e.g. "
                    f"{POSTGRES_DSN_ENV}=postgresql://postgres@127.0.0.1:5432/test (CI sets it)")
    async with postgres_schema(dsn) as url:
        yield url


@asynccontextmanager
async def postgres_schema(dsn: str) -> AsyncIterator[str]:
    """A fresh schema in the PostgreSQL server at ``dsn``, as a URL any number of processes can share
    (instances sharing one database); dropped afterwards."""
    import asyncpg
    schema = f"test_{uuid.uuid4().hex[:12]}"
    conn = await asyncpg.connect(dsn)
    try:
        await conn.execute(f"CREATE SCHEMA {schema}")
        yield f"{dsn}{'&' if '?' in dsn else '?'}search_path={schema}"
    finally:
        await conn.execute(f"DROP SCHEMA IF EXISTS {schema} CASCADE")
        await conn.close()


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class ServerProcess:
    """The real ``callgate serve`` command, started as a user would start it, on a free port."""

    def __init__(self, config_path: Path, env: Mapping[str, str] | None = None, port: int | None = None,
                 args: tuple[str, ...] = (), ops_port: int | None = None) -> None:
        self.config_path = Path(config_path)
        self.args = tuple(args)
        #: Set when the config has ``[server] ops_port``: health is then answered there only.
        self.ops_port = ops_port
        self.port = port or free_port()
        self.env = {**os.environ, "SINCH_APPLICATION_KEY": TEST_APPLICATION_KEY,
                    "SINCH_APPLICATION_SECRET": TEST_APPLICATION_SECRET, "SINCH_SERVICE_ID": TEST_SERVICE_ID,
                    "SINCH_SERVICE_SECRET": TEST_SERVICE_SECRET, **(env or {})}
        self.log_path = self.config_path.with_suffix(f".{self.port}.log")
        self.process: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def ops_url(self) -> str:
        """Where /healthz, /readyz and /metrics are served (the callback port unless ``ops_port``)."""
        return f"http://127.0.0.1:{self.ops_port}" if self.ops_port else self.url

    def start(self, timeout: float = 20.0) -> ServerProcess:
        command = [str(Path(sys.executable).with_name("callgate")), "serve", "--config", str(self.config_path),
                   "--host", "127.0.0.1", "--port", str(self.port), *self.args]
        with open(self.log_path, "ab") as log:
            self.process = subprocess.Popen(command, env=self.env, stdout=log, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"callgate serve exited with {self.process.returncode}:\n{self.logs()}")
            try:
                with urllib.request.urlopen(self.ops_url + "/healthz", timeout=1) as response:
                    if response.status == 200:
                        return self
            except OSError:
                time.sleep(0.05)
        self.stop()
        raise RuntimeError(f"callgate serve did not answer /healthz within {timeout} s:\n{self.logs()}")

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 15.0) -> int | None:
        if self.process is None or self.process.poll() is not None:
            return None if self.process is None else self.process.returncode
        self.process.send_signal(sig)
        try:
            return self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            self.process.kill()
            return self.process.wait()

    def post(self, path: str, body: bytes, headers: Mapping[str, str], timeout: float = 10) -> tuple[int, Any]:
        """POST ``body`` to ``path`` over real HTTP; ``(status, decoded JSON body)`` (None when not JSON)."""
        request = urllib.request.Request(self.url + path, data=body, headers=dict(headers), method="POST")
        try:
            with urllib.request.urlopen(request, timeout=timeout) as response:
                status, raw = response.status, response.read()
        except urllib.error.HTTPError as error:
            status, raw = error.code, error.read()
        try:
            return status, json.loads(raw)
        except ValueError:
            return status, None

    def callback(self, body: Mapping[str, Any] | bytes, path: str = CALLBACK_PATH) -> tuple[int, Any]:
        """Send a v1 callback signed by the test application; ``(status, decoded JSON body)``."""
        raw = body if isinstance(body, bytes) else json.dumps(body).encode()
        return self.post(path, raw, signing.signed_headers(TEST_APPLICATION_KEY, TEST_APPLICATION_SECRET, path, raw))

    def webhook(self, body: Mapping[str, Any] | bytes, path: str = WEBHOOK_PATH,
                headers: Mapping[str, str] | None = None) -> tuple[int, Any]:
        """Send a v2 webhook signed by the test service (:func:`webhook_headers`); ``(status, decoded JSON body)``.
        ``headers`` are added after signing."""
        raw = body if isinstance(body, bytes) else json.dumps(body).encode()
        return self.post(path, raw, {**webhook_headers(raw, path), **(headers or {})})

    def logs(self) -> str:
        """Everything the server wrote so far.

        callgate writes its log lines once per event-loop iteration, a moment after the answers they
        tell of; so while the server runs, a ``GET /healthz`` goes first: it is answered in a later
        iteration, once the lines of everything answered before it are written.  (With ``--workers``
        it reaches one worker: poll for another worker's lines.)
        """
        if self.process is not None and self.process.poll() is None:
            try:
                urllib.request.urlopen(self.ops_url + "/healthz", timeout=5).close()
            except OSError:
                pass              # not answering (stopping, hung): what is written is what there is
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def log_lines(self) -> list[dict[str, Any]]:
        """The server's JSON log lines (``[server] log_format = "json"``), parsed."""
        lines = []
        for line in self.logs().split("\n"):   # not splitlines(): orjson leaves U+2028 etc. unescaped in strings
            try:
                lines.append(json.loads(line))
            except ValueError:
                continue          # a line that is not JSON (a crash's traceback) is in logs()
        return lines


@pytest.fixture
def callgate_server(tmp_path):
    """``callgate_server(config_toml_text, env=None, args=())`` -> a started ServerProcess (stopped after the test)."""
    started = []

    def factory(config: str = "", env: Mapping[str, str] | None = None, port: int | None = None,
                args: tuple[str, ...] = ()) -> ServerProcess:
        path = tmp_path / f"config-{len(started)}.toml"
        path.write_text(config)
        server = ServerProcess(path, env=env, port=port, args=args)
        started.append(server)
        return server.start()

    yield factory
    for server in started:
        server.stop()


# --- the shipped plugins together ---------------------------------------------------------------------


def full_stack_config(folder: Path | str, *, overrides: Mapping[str, Any] | None = None) -> str:
    """config.toml text enabling the three shipped plugins together, with a catch-all route.

    ``allowlist`` (deny by default, allow callers ``+4670*``), ``credit_check`` (SQLite in
    ``folder``), ``crm_export`` (SQLite in ``folder``, a JSON-lines file sink ``folder/calls.jsonl``)
    in that order, JSON log lines, and a router that connects every call to its callee.
    ``overrides`` is merged into that table by table: a table merges key by key, any other
    value (a list included) replaces, and ``None`` removes the key.  Needs the ``tomli-w``
    package (in ``callgate[testing]``).
    """
    import tomli_w

    folder = Path(folder)
    base: dict[str, Any] = {
        "server": {"log_format": "json"},
        "plugins": {
            "enabled": ["allowlist", "credit_check", "crm_export"],
            "allowlist": {"default": "deny", "rules": [{"action": "allow", "caller": "+4670*"}]},
            "credit_check": {"database_url": f"sqlite:///{folder / 'credit.sqlite3'}"},
            "crm_export": {"database_url": f"sqlite:///{folder / 'crm.sqlite3'}",
                           "sinks": [{"name": "file", "type": "file", "path": str(folder / "calls.jsonl")}]},
            "router": {"routes": [{"action": {"name": "connectPstn", "number": "{to}"}}]},
        },
    }
    return tomli_w.dumps(_merged(base, overrides or {}))


def _merged(base: Mapping[str, Any], overrides: Mapping[str, Any]) -> dict[str, Any]:
    merged = dict(base)
    for key, value in overrides.items():
        if value is None:
            merged.pop(key, None)
        elif isinstance(value, Mapping) and isinstance(merged.get(key), Mapping):
            merged[key] = _merged(merged[key], value)
        else:
            merged[key] = value
    return merged
