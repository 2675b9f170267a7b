"""Secrets and surface: no secret in any log line, answer or command output; ops endpoints off the public port.

The secrets (all from the environment, as config.toml requires): two application secrets of a key
being rotated, the test application's secret, a CRM webhook signing secret, a webhook receiver's
Authorization header, a HubSpot token and a PostgreSQL password inside a database URL.  They are
looked for as written, and the Base64 application secrets also as the decoded bytes' repr (plain
and JSON-escaped), hex and unpadded Base64.  The signatures the test sends are looked for in the
server's log too (README: "Secrets, signatures and headers are never logged").
"""

from __future__ import annotations

import asyncio
import base64
import json
import os
import secrets as random_secrets
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import aiohttp
import pytest
from aiohttp import web
from reliability_helpers_input import CALLBACK, raw_request, send_raw, signed

from callgate import samples, v2_samples
from callgate.protocols.v1 import signing
from callgate.protocols.v2.signing import service_signed_headers
from callgate.testing import TEST_APPLICATION_SECRET, TEST_SERVICE_SECRET, ServerProcess, free_port

#: Starts the real callgate command or waits in real time: skipped by -m 'not slow'.
pytestmark = pytest.mark.slow

CALLGATE = str(Path(sys.executable).with_name("callgate"))
KEY = "secret-app"


def b64_secret() -> str:
    return base64.b64encode(os.urandom(32)).decode()


SECRETS = {
    "APP_SECRET_CURRENT": b64_secret(),
    "APP_SECRET_NEXT": b64_secret(),
    "CRM_WEBHOOK_SECRET": "whsec_" + random_secrets.token_urlsafe(24),
    "RECEIVER_AUTH": "Bearer rcv_" + random_secrets.token_urlsafe(24),
    "HUBSPOT_TOKEN": "pat-eu1-" + random_secrets.token_hex(16),
    "SERVICE_SECRET_CURRENT": base64.b64encode(os.urandom(16)).decode(),
    "SERVICE_SECRET_NEXT": base64.b64encode(os.urandom(16)).decode(),
}
DB_PASSWORD = "pw_" + random_secrets.token_urlsafe(18)
BASE64_SECRETS = {"APP_SECRET_CURRENT", "APP_SECRET_NEXT", "SINCH_APPLICATION_SECRET", "SERVICE_SECRET_CURRENT",
                  "SERVICE_SECRET_NEXT", "SINCH_SERVICE_SECRET"}
SERVICE = "secret-service"


def forms(name: str, value: str) -> dict[str, str]:
    """The ways a secret could show up in text."""
    found = {name: value}
    if name in BASE64_SECRETS:
        raw = base64.b64decode(value)
        inner = repr(raw)[2:-1]
        found.update({f"{name} bytes repr": repr(raw), f"{name} bytes repr inner": inner,
                      f"{name} bytes repr, JSON-escaped": json.dumps(inner)[1:-1], f"{name} hex": raw.hex(),
                      f"{name} unpadded": value.rstrip("=")})
    return found


def all_forms(extra: dict[str, str] | None = None) -> dict[str, str]:
    result = {}
    for name, value in {**SECRETS, "SINCH_APPLICATION_SECRET": TEST_APPLICATION_SECRET,
                        "SINCH_SERVICE_SECRET": TEST_SERVICE_SECRET, "DB_PASSWORD": DB_PASSWORD,
                        **(extra or {})}.items():
        result.update(forms(name, value))
    return result


def assert_no_secret(text: str, where: str, extra: dict[str, str] | None = None) -> None:
    leaked = [name for name, value in all_forms(extra).items() if value and value in text]
    assert not leaked, f"{where} shows {leaked}"


def config(tmp: Path, receiver_port: int, **server: object) -> str:
    server_lines = "\n".join(f"{k} = {json.dumps(v)}" for k, v in server.items())
    return f"""
[server]
log_format = "json"
log_level = "debug"
body_timeout_seconds = 0.5
{server_lines}

[[applications]]
key = "{KEY}"
secrets = [{{ env = "APP_SECRET_CURRENT" }}, {{ env = "APP_SECRET_NEXT" }}]

[[services]]
id = "{SERVICE}"
secrets = [{{ env = "SERVICE_SECRET_CURRENT" }}, {{ env = "SERVICE_SECRET_NEXT" }}]

[plugins]
enabled = ["credit_check", "crm_export"]

[plugins.credit_check]
database_url = {{ env = "CREDIT_DATABASE_URL" }}
reconnect_seconds = 1

[plugins.crm_export]
database_url = "sqlite:///{tmp}/crm.sqlite3"
poll_interval_seconds = 0.1
shutdown_grace_seconds = 0.5
[[plugins.crm_export.sinks]]
name = "hook"
type = "webhook"
url = "http://127.0.0.1:{receiver_port}/hook"
secret = {{ env = "CRM_WEBHOOK_SECRET" }}
headers = {{ Authorization = {{ env = "RECEIVER_AUTH" }} }}
backoff_initial_seconds = 0.1
[[plugins.crm_export.sinks]]
name = "hub"
type = "hubspot"
base_url = "http://127.0.0.1:{receiver_port}/hub"
token = {{ env = "HUBSPOT_TOKEN" }}

[[plugins.router.routes]]
action = {{ name = "connectPstn", number = "{{to}}" }}
"""


def environment(db_port: int) -> dict[str, str]:
    return {**SECRETS, "CREDIT_DATABASE_URL": f"postgresql://callgate:{DB_PASSWORD}@127.0.0.1:{db_port}/credit"}


class Receiver:
    """The CRM's side: the webhook answers 503 (retry later), HubSpot 401 (a dead letter)."""

    def __init__(self) -> None:
        self.paths: list[str] = []
        self.runner: web.AppRunner | None = None
        self.port = free_port()

    async def __aenter__(self) -> Receiver:
        async def handle(request: web.Request) -> web.Response:
            self.paths.append(request.path)
            await request.read()
            if request.path.startswith("/hub"):
                return web.Response(status=401, text="invalid token")
            return web.Response(status=503, text="busy", headers={"Retry-After": "1"})

        app = web.Application()
        app.router.add_route("*", "/{path:.*}", handle)
        self.runner = web.AppRunner(app)
        await self.runner.setup()
        await web.TCPSite(self.runner, "127.0.0.1", self.port).start()
        return self

    async def __aexit__(self, *exc) -> None:
        await self.runner.cleanup()


async def test_no_error_path_shows_a_secret(callgate_server, tmp_path):
    pytest.importorskip("callgate_credit_check", reason="callgate-credit-check is not installed")
    pytest.importorskip("callgate_crm_export", reason="callgate-crm-export is not installed")
    sent_signatures: list[str] = []
    answers: list[bytes] = []
    async with Receiver() as receiver:
        server = callgate_server(config(tmp_path, receiver.port), env=environment(free_port()))
        url = server.url + CALLBACK
        secret = SECRETS["APP_SECRET_CURRENT"]

        def sign(body: bytes, *, key: str = KEY, secret: str = secret, **kwargs) -> dict[str, str]:
            headers = dict(signed(body, key, secret, **kwargs))
            sent_signatures.append(headers["Authorization"].rsplit(":", 1)[1])
            return headers

        async with aiohttp.ClientSession() as session:
            async def post(body: bytes, headers: dict[str, str], expect: int, **kwargs) -> dict | None:
                async with session.request(kwargs.pop("method", "POST"), kwargs.pop("url", url), data=body,
                                           headers=headers, **kwargs) as response:
                    raw = await response.read()
                    answers.append(raw)
                    assert response.status == expect, (response.status, raw[:300])
                    return json.loads(raw) if raw and response.content_type == "application/json" else None

            ace = json.dumps(samples.ace()).encode()
            ice = json.dumps(samples.ice(to="+46850001234")).encode()
            dice = json.dumps(samples.dice()).encode()
            stale = "2020-01-01T00:00:00Z"
            # every documented refusal
            await post(ace, sign(ace), 405, method="PUT")
            await post(ace, sign(ace), 404, url=server.url + "/nope")
            await post(b"x" * 70_000, sign(b"x" * 70_000), 413)
            await post(ace, sign(ace, content_type="text/plain"), 415)
            for body, code in ((b"{nope", "invalid_json"), (b"[]", "not_an_object"), (b"{}", "missing_event"),
                               (b'{"event": "ice", "callid": 7}', "invalid_field")):
                assert (await post(body, sign(body), 400))["error"] == code
            good = sign(ace)
            refusals = {
                "missing_authorization": {k: v for k, v in good.items() if k != "Authorization"},
                "malformed_authorization": {**good, "Authorization": good["Authorization"].replace(" ", "  ")},
                "unsupported_scheme": {**good, "Authorization": "Bearer" + good["Authorization"][len("Application"):]},
                "unknown_key": sign(ace, key="someone-else"),
                "missing_timestamp": {k: v for k, v in good.items() if k != "x-timestamp"},
                "invalid_timestamp": sign(ace, timestamp="yesterday"),
                "bad_signature": sign(ace, secret=b64_secret()),
                "stale_timestamp": sign(ace, timestamp=stale),
                "future_timestamp": sign(ace, timestamp="2999-01-01T00:00:00Z"),
            }
            for reason, headers in refusals.items():
                assert (await post(ace, headers, 401))["reason"] == reason
            assert (await post(ace + b" ", good, 401))["reason"] == "bad_signature"     # the body changed
            # accepted, with either secret of the rotation; the plugins' failures
            await post(ace, sign(ace, secret=SECRETS["APP_SECRET_NEXT"]), 200)
            answer = await post(ice, sign(ice), 200)                 # credit_check's database is down: deny
            assert answer["action"]["name"] == "hangup"
            assert (await post(dice, sign(dice), 503))["error"] == "not_recorded"
            notify = json.dumps(samples.notify()).encode()
            await post(notify, sign(notify), 200)
            unknown = b'{"event": "call.recording.ready"}'
            assert await post(unknown, sign(unknown), 200) == {}
            for path, status in (("/readyz", 503), ("/healthz", 200), ("/metrics", 200)):
                await post(b"", {}, status, method="GET", url=server.url + path)
        # the HTTP layer's refusals: a signature too long for a header line, too many headers
        padded = sign(ace)
        padded["Authorization"] += "A" * 9000
        for headers in ([*padded.items()], [*sign(ace).items(), *((f"X-{i}", "v") for i in range(200))]):
            reply = await send_raw(server.url, raw_request("POST", CALLBACK, headers, ace, len(ace)))
            assert reply.status == 400
            answers.append(reply.body)
        # a body that stops half way (408), one whose connection closes (400 incomplete_body)
        head = raw_request("POST", CALLBACK, [*sign(dice).items()], dice[:20], len(dice))
        reply = await send_raw(server.url, head)
        assert reply.status == 408
        host, port = server.url.removeprefix("http://").split(":")
        _reader, writer = await asyncio.open_connection(host, int(port))
        writer.write(head)
        await writer.drain()
        writer.close()
        # the CRM receiver refuses the records: retries and a dead letter are logged
        for _ in range(100):
            if any(p.startswith("/hook") for p in receiver.paths) and any(p.startswith("/hub") for p in receiver.paths):
                break
            await asyncio.sleep(0.05)
        assert any(p.startswith("/hub") for p in receiver.paths) and any(p.startswith("/hook") for p in receiver.paths)
        await asyncio.sleep(0.3)
        assert server.stop() == 0

    logs = server.logs()
    events = {line.get("event") for line in server.log_lines()}
    assert {"callback_refused", "http_request_refused", "plugin_failed", "crm_retry_scheduled",
            "crm_dead_letter", "callback", "stopped"} <= events, events
    assert_no_secret(logs, "the server's log")
    assert_no_secret(b"\n".join(answers).decode("utf-8", "replace"), "an answer")
    shown = [sig for sig in sent_signatures if sig in logs]
    assert not shown, f"{len(shown)} signatures are in the log"


async def test_no_v2_error_path_shows_a_secret(callgate_server, tmp_path):
    """The same on the webhook path: every refusal, both secrets of a service being rotated, the plugins' failures
    (the credit database unreachable: 424 for an end event); no service secret, application secret
    or signature in the log or in an answer, and no exception text in an error body."""
    pytest.importorskip("callgate_credit_check", reason="callgate-credit-check is not installed")
    pytest.importorskip("callgate_crm_export", reason="callgate-crm-export is not installed")
    sent_signatures: list[str] = []
    answers: list[bytes] = []
    async with Receiver() as receiver:
        server = callgate_server(config(tmp_path, receiver.port), env=environment(free_port()))
        url = server.url + "/sinch/webhook"

        def sign(body: bytes, *, service: str = SERVICE, secret: str = SECRETS["SERVICE_SECRET_CURRENT"],
                 **kwargs) -> dict[str, str]:
            headers = service_signed_headers(service, secret, "/sinch/webhook", body, **kwargs)
            sent_signatures.append(headers["Authorization"].rsplit(":", 1)[1])
            return headers

        async with aiohttp.ClientSession() as session:
            async def post(body: bytes, headers: dict[str, str], expect: int, **kwargs) -> dict | None:
                async with session.request(kwargs.pop("method", "POST"), url, data=body, headers=headers,
                                           **kwargs) as response:
                    raw = await response.read()
                    answers.append(raw)
                    assert response.status == expect, (response.status, raw[:300])
                    answer = json.loads(raw) if raw and response.content_type == "application/json" else None
                    if expect >= 400 and answer is not None:
                        assert set(answer) <= {"error", "message", "reason", "commands"}, answer
                        assert not any(word in answer["message"] for word in ("Traceback", ".py", "Error(", "0x")), answer
                    return answer

            incoming = json.dumps(v2_samples.incoming(to="+46850001234", service_id=SERVICE)).encode()
            hangup = json.dumps(v2_samples.hangup(service_id=SERVICE)).encode()
            await post(incoming, sign(incoming), 405, method="PUT")
            await post(b"x" * 70_000, sign(b"x" * 70_000), 413)
            await post(incoming, sign(incoming, content_type="text/plain"), 415)
            for body, code in ((b"{nope", "invalid_json"), (b"[]", "not_an_object"), (b"{}", "missing_event"),
                               (b'{"event": "call.hangup", "call": {"callId": 7}}', "invalid_field")):
                assert (await post(body, sign(body), 400))["error"] == code
            good = sign(incoming)
            refusals = {
                "missing_authorization": {k: v for k, v in good.items() if k != "Authorization"},
                "unsupported_scheme": {**good, "Authorization": "Bearer " + SECRETS["SERVICE_SECRET_CURRENT"]},
                "unknown_key": sign(incoming, service="someone-else"),
                "missing_timestamp": {k: v for k, v in good.items() if k != "x-timestamp"},
                "bad_signature": sign(incoming, secret=base64.b64encode(os.urandom(16)).decode()),
                "stale_timestamp": sign(incoming, timestamp="2020-01-01T00:00:00Z"),
            }
            for reason, headers in refusals.items():
                assert (await post(incoming, headers, 401))["reason"] == reason
            app_signed = signed(incoming, KEY, SECRETS["APP_SECRET_CURRENT"], path="/sinch/webhook")
            assert (await post(incoming, dict(app_signed), 401))["reason"] == "unsupported_scheme"
            # accepted with either secret (credit_check does not charge a v2 inbound "did" call with its default
            # destination_types); the credit database is down: 424 for the end event
            for secret in ("SERVICE_SECRET_CURRENT", "SERVICE_SECRET_NEXT"):
                assert (await post(incoming, sign(incoming, secret=SECRETS[secret]), 200))["commands"]
            assert (await post(hangup, sign(hangup), 424))["error"] == "not_recorded"
            for body in (v2_samples.custom("ping", service_id=SERVICE), {"event": "call.new.thing", "call": {}}):
                raw = json.dumps(body).encode()
                assert await post(raw, sign(raw), 200) == {"commands": []}
        await asyncio.sleep(0.3)
        assert server.stop() == 0

    logs = server.logs()
    assert {"callback_refused", "plugin_failed", "callback"} <= {line.get("event") for line in server.log_lines()}
    assert_no_secret(logs, "the server's log")
    assert_no_secret(b"\n".join(answers).decode("utf-8", "replace"), "an answer")
    shown = [sig for sig in sent_signatures if sig in logs]
    assert not shown, f"{len(shown)} signatures are in the log"


def test_no_application_refusal_shows_no_secret(callgate_server):
    server = callgate_server('[server]\nlog_format = "json"\n',
                             env={**SECRETS, "SINCH_APPLICATION_KEY": "", "SINCH_APPLICATION_SECRET": ""})
    body = json.dumps(samples.ace()).encode()
    reply = asyncio.run(send_raw(server.url, raw_request("POST", CALLBACK, signed(body, KEY, SECRETS["APP_SECRET_CURRENT"]),
                                                         body, len(body))))
    assert reply.status == 401 and json.loads(reply.body)["reason"] == "no_application"
    server.stop()
    assert_no_secret(server.logs() + reply.body.decode(), "the log of a server without an application")


def run(*args: str, env: dict[str, str], expect: int) -> str:
    result = subprocess.run([CALLGATE, *args], env={**os.environ, **env}, capture_output=True, text=True, timeout=60)
    assert result.returncode == expect, (args, result.returncode, result.stdout[-500:], result.stderr[-800:])
    return result.stdout + result.stderr


def test_command_line_outputs_show_no_secret(tmp_path):
    pytest.importorskip("callgate_credit_check", reason="callgate-credit-check is not installed")
    pytest.importorskip("callgate_crm_export", reason="callgate-crm-export is not installed")
    good = tmp_path / "good.toml"
    good.write_text(config(tmp_path, free_port()))
    env = environment(free_port())
    # configuration errors: a secret that is not Base64, a secret written in the file, a secret given
    # to the wrong key, a webhook secret too short, a database URL callgate cannot use
    not_base64 = "not-base64!" + random_secrets.token_hex(12)
    short = "short" + random_secrets.token_hex(2)
    extra = {"NOT_BASE64": not_base64, "SHORT_WEBHOOK_SECRET": short}
    literal = tmp_path / "literal.toml"
    literal.write_text(good.read_text().replace('secrets = [{ env = "APP_SECRET_CURRENT" }, { env = "APP_SECRET_NEXT" }]',
                                                f'secrets = ["{SECRETS["APP_SECRET_CURRENT"]}"]'))
    misplaced = tmp_path / "misplaced.toml"
    misplaced.write_text(good.read_text().replace("[server]\n", '[server]\nport = { env = "APP_SECRET_NEXT" }\n', 1))
    broken_url = f"mysql://callgate:{DB_PASSWORD}@127.0.0.1/credit"
    check = ("check-config", "--config")
    runs = {   # name: (arguments, environment, exit status)
        "check-config": ((*check, str(good)), env, 0),
        "plugins": (("plugins", "--config", str(good)), env, 0),
        "sign": (("sign", "ice", "--config", str(good)), env, 0),
        "simulate (the credit database is down)": (("simulate", "ice", "--config", str(good)), env, 0),
        "crm status (no outbox yet: refused, naming its path)": (("crm", "status", "--config", str(good)), env, 1),
        "check-config, secret not Base64": ((*check, str(good)), {**env, "APP_SECRET_CURRENT": not_base64}, 2),
        "check-config, secret written in the file": ((*check, str(literal)), env, 2),
        "check-config, secret given to [server].port": ((*check, str(misplaced)), env, 2),
        "check-config, webhook secret too short": ((*check, str(good)), {**env, "CRM_WEBHOOK_SECRET": short}, 2),
        "check-config, database URL not usable": ((*check, str(good)), {**env, "CREDIT_DATABASE_URL": broken_url}, 2),
        "serve, secret not Base64": (("serve", "--config", str(good), "--port", str(free_port())),
                                     {**env, "APP_SECRET_CURRENT": not_base64}, 2),
        "serve, database URL not usable": (("serve", "--config", str(good), "--port", str(free_port())),
                                           {**env, "CREDIT_DATABASE_URL": broken_url}, 2),
    }
    with ThreadPoolExecutor(max_workers=4) as pool:       # each is a Python start-up: about a second
        futures = {name: pool.submit(run, *args, env=run_env, expect=status)
                   for name, (args, run_env, status) in runs.items()}
        outputs = {name: future.result() for name, future in futures.items()}
    for name, text in outputs.items():
        assert_no_secret(text, f"`callgate {name}`", extra)
        if runs[name][2] == 2:
            assert "callgate: " in text and "Traceback" not in text, (name, text)


async def test_ops_endpoints_are_kept_off_the_public_port(tmp_path):
    ops_port = free_port()
    path = tmp_path / "ops.toml"
    path.write_text(f'[server]\nlog_format = "json"\nops_port = {ops_port}\nops_host = "127.0.0.1"\n')
    server = ServerProcess(path, ops_port=ops_port).start()
    try:
        async with aiohttp.ClientSession() as session:
            async def get(url: str, method: str = "GET") -> tuple[int, bytes]:
                async with session.request(method, url) as response:
                    return response.status, await response.read()

            for endpoint in ("/metrics", "/healthz", "/readyz"):
                status, body = await get(server.url + endpoint)
                assert (status, json.loads(body)["error"]) == (404, "not_found"), endpoint
                assert (await get(server.url + endpoint, "HEAD"))[0] == 404
            body = json.dumps(samples.ace()).encode()
            from callgate.testing import TEST_APPLICATION_KEY
            async with session.post(server.url + CALLBACK, data=body,
                                    headers=signing.signed_headers(TEST_APPLICATION_KEY, TEST_APPLICATION_SECRET,
                                                                   CALLBACK, body)) as response:
                assert response.status == 200
            assert (await get(server.ops_url + "/healthz"))[0] == 200
            assert (await get(server.ops_url + "/readyz"))[0] == 200
            status, metrics = await get(server.ops_url + "/metrics")
            assert status == 200 and b'callgate_callbacks_total{event="ace",generation="v1",status="200"} 1.0' in metrics
            assert (await get(server.ops_url + CALLBACK))[0] == 404          # and no callbacks on the ops port
        # the ops port listens on the loopback address only
        assert listening_addresses(ops_port) == {"127.0.0.1"}
    finally:
        server.stop()


def listening_addresses(port: int) -> set[str]:
    """The IPv4/IPv6 addresses a TCP port is listening on, from /proc/net/tcp{,6}."""
    found = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        if not os.path.exists(table):
            continue
        for line in Path(table).read_text().splitlines()[1:]:
            fields = line.split()
            address, hex_port = fields[1].split(":")
            if int(hex_port, 16) == port and fields[3] == "0A":          # 0A: LISTEN
                if len(address) == 8:
                    found.add(".".join(str(b) for b in reversed(bytes.fromhex(address))))
                else:
                    found.add(address)
    return found
