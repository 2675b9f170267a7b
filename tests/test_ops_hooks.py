"""The two hooks for plugins that watch and show: ``callback_answered`` and ``register_ops_routes``."""

from __future__ import annotations

import asyncio
import time

import pytest
from aiohttp import web
from structlog.testing import capture_logs

from callgate import PluginError, hookimpl, samples, v2_samples
from callgate.app import create_app, create_ops_app
from callgate.exchange import Exchange
from callgate.testing import make_config

ROUTE_ALL = {"plugins": {"router": {"routes": [
    {"name": "all", "prefix": "+", "action": {"name": "connectPstn", "number": "{to}", "maxDuration": 600}}]}}}


class Watcher:
    """Keeps every exchange it is given."""

    def __init__(self) -> None:
        self.seen: list[Exchange] = []

    @hookimpl
    def callback_answered(self, exchange: Exchange) -> None:
        self.seen.append(exchange)


class Breaks:
    """Raises on every exchange."""

    @hookimpl
    def callback_answered(self, exchange: Exchange) -> None:
        raise RuntimeError("the recorder is broken")


class AsyncWatcher:
    @hookimpl
    async def callback_answered(self, exchange: Exchange) -> None:
        pass


class Pages:
    """Adds one page under its own prefix (the plugin is enabled as ``pages``)."""

    @hookimpl
    def register_ops_routes(self, app: web.Application) -> None:
        async def hello(request: web.Request) -> web.Response:
            return web.Response(text="hello from pages")
        app.router.add_get("/pages/hello", hello)


async def empty(request: web.Request) -> web.Response:
    return web.Response()


class BrokenPage:
    """A page whose handler raises (the plugin is enabled as ``pages``)."""

    @hookimpl
    def register_ops_routes(self, app: web.Application) -> None:
        async def broken(request: web.Request) -> web.Response:
            raise RuntimeError("/var/lib/pages/secret.db is locked")
        app.router.add_get("/pages/broken", broken)

        async def forgets(request: web.Request) -> web.Response:
            return {"balance": 12}                  # type: ignore[return-value]   # a dict, not json_response(...)
        app.router.add_get("/pages/forgets", forgets)


async def test_a_plugin_page_that_raises_or_returns_no_response_is_a_json_500_naming_the_plugin_in_the_log(aiohttp_client):
    config = make_config({**ROUTE_ALL, "server": {"ops_port": 9999}}, plugins={"pages": BrokenPage})
    ops = await aiohttp_client(create_ops_app(create_app(config, plugin_classes={"pages": BrokenPage})))
    with capture_logs() as logs:
        response = await ops.get("/pages/broken")
        body = await response.json()
    assert response.status == 500 and body["error"] == "internal_error" and "secret.db" not in body["message"]
    [failed] = [line for line in logs if line["event"] == "ops_page_failed"]
    assert failed["plugin"] == "pages" and "secret.db is locked" in failed["error"]
    with capture_logs() as logs:
        response = await ops.get("/pages/forgets")
    assert response.status == 500 and (await response.json())["error"] == "internal_error"
    [failed] = [line for line in logs if line["event"] == "ops_page_failed"]
    assert failed["plugin"] == "pages" and failed["error"] == "the handler returned dict, not an aiohttp response"
    missing = await ops.get("/nowhere")
    assert missing.status == 404 and "this port serves /metrics" in (await missing.json())["message"]


class Trespasses:
    """Adds a route outside its prefix."""

    @hookimpl
    def register_ops_routes(self, app: web.Application) -> None:
        app.router.add_get("/admin", empty)


class PrefixLookalike:
    """``/pagesx`` is not under ``/pages``."""

    @hookimpl
    def register_ops_routes(self, app: web.Application) -> None:
        app.router.add_get("/pagesx/hello", empty)


async def test_hook_callback_answered_sees_both_generations_without_authorization(callgate_client):
    client = await callgate_client(ROUTE_ALL, plugins={"watcher": Watcher})
    watcher = client.plugin("watcher")
    status, _ = await client.event(dict(samples.ice(caller="46701234567", to="+46812345678"), callid="c-1"))
    assert status == 200
    credentials = {"Proxy-Authorization": "Basic cHJveHk6c2VjcmV0", "Cookie": "session=secret"}
    status2, _ = await client.webhook(v2_samples.incoming(callid="v2-call", caller="+46701234567",
                                                          to="+46812345678"), headers=credentials)
    assert status2 == 200
    first, second = watcher.seen
    assert (first.generation, first.event, first.call.key, first.status) == ("v1", "ice", "c-1", 200)
    assert first.decision is not None and first.decision.allowed
    assert first.answer and b"connectPstn" in first.answer
    assert [o.plugin for o in first.outcomes] == ["router", "caller_id"][:len(first.outcomes)]
    assert first.outcomes and first.outcomes[0].plugin == "router"
    assert "Authorization" not in first.headers and first.headers["content-type"] == "application/json"
    assert "x-timestamp" in first.headers
    assert b'"c-1"' in first.body
    assert first.ms > 0 and first.received_at > 1.7e9
    assert "route all from router" in first.summary
    assert (second.generation, second.event, second.call.key) == ("v2", "call.incoming", "v2:v2-call")
    assert second.call.caller == "+46701234567"
    assert "authorization" not in second.headers
    assert "proxy-authorization" not in second.headers and "cookie" not in second.headers   # nor other credentials
    assert second.headers["content-type"] == "application/json"


async def test_hook_callback_answered_ms_summary_and_trace_are_the_callback_log_lines(callgate_client):
    client = await callgate_client(ROUTE_ALL, plugins={"watcher": Watcher})
    with capture_logs() as logs:
        await client.event(dict(samples.ice(caller="46701234567", to="+46812345678"), callid="c-ms"))
        await client.event(samples.dice(callid="c-ms"))
    lines = [line for line in logs if line["event"] == "callback"]
    seen = client.plugin("watcher").seen
    assert len(lines) == len(seen) == 2
    assert [(e.ms, e.summary, e.trace) for e in seen] == [(line["ms"], line["decision"], line["plugins"])
                                                          for line in lines]
    assert all(e.ms > 0 for e in seen)
    ice = seen[0]
    assert [(step["plugin"], step["hook"], step["status"], step["verdict"]) for step in ice.trace] == [
        (o.plugin, o.hook, o.status, o.verdict) for o in ice.outcomes]
    assert ice.trace[0]["verdict"] == "route all" and ice.trace[0]["ms"] >= 0


async def test_hook_callback_answered_sees_ignored_and_refused_bodies_but_never_unsigned_ones(callgate_client):
    client = await callgate_client(ROUTE_ALL, plugins={"watcher": Watcher})
    watcher = client.plugin("watcher")
    unsigned = await client.send(samples.ice(), sign=False)
    assert unsigned.status == 401
    assert watcher.seen == []
    status, _ = await client.event({"event": "somethingNew", "callid": "x"})
    assert status == 200
    bad = await client.send(b'{"event": "ice", "callid": 5}')
    assert bad.status == 400
    ignored, refused = watcher.seen
    assert (ignored.event, ignored.call, ignored.status, ignored.summary) == ("somethingNew", None, 200, "ignored")
    assert (refused.event, refused.call, refused.status) == ("-", None, 400)
    assert ignored.trace == refused.trace == []
    assert refused.problem and refused.answer == await bad.read()


async def test_hook_callback_answered_failing_never_changes_the_answer_and_is_logged_and_counted(callgate_client):
    plain = await callgate_client(ROUTE_ALL)
    broken = await callgate_client(ROUTE_ALL, plugins={"breaks": Breaks, "watcher": Watcher})
    body = samples.ice(caller="46701234567", to="+46812345678")
    expected = await (await plain.send(body)).read()
    with capture_logs() as logs:
        response = await broken.send(body)
        got = await response.read()
    assert response.status == 200 and got == expected
    failures = [e for e in logs if e["event"] == "plugin_failed"]
    assert failures and failures[0]["plugin"] == "breaks" and failures[0]["hook"] == "callback_answered"
    assert "the recorder is broken" in failures[0]["error"]
    assert (failures[0]["callid"], failures[0]["sinch_event"]) == (body["callid"], "ice")     # which callback
    assert len(broken.plugin("watcher").seen) == 1          # the plugin after it still sees the exchange
    v2 = await broken.webhook(v2_samples.incoming(caller="+46701234567", to="+46812345678"))
    assert v2[0] == 200
    metrics = await (await broken.client.get("/metrics")).text()
    line = next(line for line in metrics.splitlines() if line.startswith("callgate_plugin_failures_total{")
                and 'hook="callback_answered"' in line)
    assert 'plugin="breaks"' in line and 'kind="error"' in line and line.endswith(" 2.0")


async def test_hook_callback_answered_async_is_refused_at_load(callgate_check_config):
    error = callgate_check_config(ROUTE_ALL, plugins={"asyncwatch": AsyncWatcher})
    assert isinstance(error, PluginError) and "asyncwatch" in str(error) and "plain def" in str(error)


async def test_hook_register_ops_routes_served_on_the_ops_app_only(aiohttp_client):
    config = make_config({**ROUTE_ALL, "server": {"ops_port": 9999}}, plugins={"pages": Pages})
    app = create_app(config, plugin_classes={"pages": Pages})
    public = await aiohttp_client(app)
    ops = await aiohttp_client(create_ops_app(app))
    page = await ops.get("/pages/hello")
    assert page.status == 200 and await page.text() == "hello from pages"
    assert (await ops.get("/healthz")).status == 200
    on_public = await public.get("/pages/hello")
    assert on_public.status == 404 and (await on_public.json())["error"] == "not_found"
    on_public = await public.post("/pages/hello")               # not served there with any method: still 404
    assert on_public.status == 404 and (await on_public.json())["error"] == "not_found"


@pytest.mark.parametrize("port", [9999, 0])
async def test_an_ops_path_asked_with_another_method_is_405_with_allow(aiohttp_client, port):
    plugins = {"pages": Pages} if port else None             # pages need an ops port
    config = make_config({**ROUTE_ALL, "server": {"ops_port": port}}, plugins=plugins)
    app = create_app(config, plugin_classes=plugins)
    client = await aiohttp_client(create_ops_app(app) if port else app)
    paths = ["/metrics", "/healthz", "/readyz"] + (["/pages/hello"] if port else [])
    for method in ("POST", "PUT", "DELETE", "PATCH"):
        for path in paths:
            response = await client.request(method, path)
            body = await response.json()
            assert (response.status, body["error"]) == (405, "method_not_allowed"), (method, path)
            assert response.headers["Allow"] == "GET, HEAD" and f"{method} is not allowed on {path}" in body["message"]
    assert (await client.put("/nothing/here")).status == 404


async def test_hook_register_ops_routes_without_an_ops_port_is_refused_naming_the_plugin(callgate_check_config):
    """Its pages would be served nowhere (never on the public callback port): serve and check-config refuse it."""
    config = make_config(ROUTE_ALL, plugins={"pages": Pages})
    with pytest.raises(PluginError, match=r"^plugin 'pages': its pages are served on the ops port only, and "
                                          r"\[server\] ops_port is 0: set \[server\] ops_port"):
        create_app(config, plugin_classes={"pages": Pages})
    error = callgate_check_config(ROUTE_ALL, plugins={"pages": Pages})
    assert isinstance(error, PluginError) and "ops_port is 0" in str(error)


@pytest.mark.parametrize("cls, path", [(Trespasses, "/admin"), (PrefixLookalike, "/pagesx/hello")])
def test_hook_register_ops_routes_a_route_outside_the_plugins_prefix_stops_start_up(cls, path, callgate_check_config):
    config = make_config({**ROUTE_ALL, "server": {"ops_port": 9999}}, plugins={"pages": cls})
    app = create_app(config, plugin_classes={"pages": cls})
    with pytest.raises(PluginError) as raised:
        create_ops_app(app)
    assert "'pages'" in str(raised.value) and path in str(raised.value) and "/pages/" in str(raised.value)
    checked = callgate_check_config({**ROUTE_ALL, "server": {"ops_port": 9999}}, plugins={"pages": cls})
    assert str(checked) == str(raised.value)                   # check-config says what serve would


class RaisesOnRoutes:
    @hookimpl
    def register_ops_routes(self, app: web.Application) -> None:
        raise RuntimeError("no pages today")


def test_hook_register_ops_routes_that_raises_stops_start_up_and_check_config(callgate_check_config):
    error = callgate_check_config({**ROUTE_ALL, "server": {"ops_port": 9999}}, plugins={"pages": RaisesOnRoutes})
    assert isinstance(error, PluginError) and "register_ops_routes failed" in str(error) and "'pages'" in str(error)


class FormPages:
    """A page that reads its request's body, and one that takes its time after the body came."""

    @hookimpl
    def register_ops_routes(self, app: web.Application) -> None:
        async def echo(request: web.Request) -> web.Response:
            return web.Response(text=await request.text())

        async def slow(request: web.Request) -> web.Response:
            body = await request.text()
            await asyncio.sleep(BODY_TIMEOUT * 3)   # after the body came: the page's own time
            return web.Response(text=body)
        async def own_timeout(request: web.Request) -> web.Response:
            async with asyncio.timeout(BODY_TIMEOUT / 8):   # the page's own deadline, not the body's
                await asyncio.sleep(BODY_TIMEOUT)
            return web.Response()
        app.router.add_post("/pages/echo", echo)
        app.router.add_post("/pages/slow", slow)
        app.router.add_post("/pages/own", own_timeout)

        async def stream(request: web.Request) -> web.StreamResponse:   # a GET that answers without reading a body
            response = web.StreamResponse()
            await response.prepare(request)
            await asyncio.sleep(BODY_TIMEOUT * 2)
            await response.write(b"still streaming")
            return response
        app.router.add_get("/pages/stream", stream)


BODY_TIMEOUT = 0.4


async def _dribbled(*parts: bytes, pause: float):
    for i, part in enumerate(parts):
        if i:
            await asyncio.sleep(pause)
        yield part


@pytest.fixture
async def form_pages(aiohttp_client):
    config = make_config({**ROUTE_ALL, "server": {"ops_port": 9999, "body_timeout_seconds": BODY_TIMEOUT}},
                         plugins={"pages": FormPages})
    return await aiohttp_client(create_ops_app(create_app(config, plugin_classes={"pages": FormPages})))


async def test_a_plugin_page_whose_body_stalls_is_a_408_body_timeout(form_pages):
    """The ops port, like the callback paths, gives a request's body [server] body_timeout_seconds after its head: a
    sender that stalls (a slowloris on the console's login) gets 408 and the connection is closed, where the page
    used to wait for as long as the sender liked."""
    with capture_logs() as logs:
        started = time.monotonic()
        response = await form_pages.post("/pages/echo", data=_dribbled(b"token=", b"abc", pause=BODY_TIMEOUT * 10))
        body = await response.json()
    assert (response.status, body["error"]) == (408, "body_timeout"), body
    assert time.monotonic() - started < BODY_TIMEOUT * 5
    assert response.headers.get("Connection", "").lower() == "close"
    assert [line["reason"] for line in logs if line["event"] == "ops_request_refused"] == ["body_timeout"]


async def test_a_plugin_page_whose_body_comes_in_time_takes_as_long_as_it_needs(form_pages):
    """A body sent in pieces within the timeout is the page's to read whole; once it is there the timer is off (a page
    may then take longer than body_timeout_seconds); a page's own TimeoutError is not a body timeout."""
    response = await form_pages.post("/pages/echo", data=_dribbled(b"token=", b"abc", pause=BODY_TIMEOUT / 4))
    assert (response.status, await response.text()) == (200, "token=abc")
    response = await form_pages.post("/pages/slow", data=_dribbled(b"a", b"b", pause=BODY_TIMEOUT / 4))
    assert (response.status, await response.text()) == (200, "ab")
    response = await form_pages.post("/pages/own", data=_dribbled(b"a", b"b", pause=BODY_TIMEOUT / 4))
    assert (response.status, (await response.json())["error"]) == (500, "internal_error")
    # a GET's body is not waited for: a stream that began never gets a 408 written into it
    response = await form_pages.get("/pages/stream", data=_dribbled(b"a", b"b", pause=BODY_TIMEOUT * 4))
    assert (response.status, await response.read()) == (200, b"still streaming")
