"""Access: the token from CALLGATE_CONSOLE_TOKEN, the session cookie, and 401 for everything else."""

from __future__ import annotations

import asyncio

import pytest
from callgate_console import Console
from callgate_console.access import COOKIE, Access
from callgate_console.store import ConsoleStore
from console_setup import TOKEN, console_config
from structlog.testing import capture_logs

from callgate import PluginError, samples
from callgate.app import create_app
from callgate.testing import check_config, make_config

GUARDED_PAGES = ["/console/", "/console/calls/anything", "/console/calls/v2%3Aabc", "/console/search",
                 "/console/search?number=4670", "/console/stats"]
GUARDED_DATA = ["/console/stream", "/console/api/callbacks", "/console/api/calls/x", "/console/api/stats"]
GUARDED_ASSETS = ["/console/static/console.css", "/console/static/live.js"]


async def test_without_a_session_every_page_stream_api_and_asset_is_401(make_console):
    console = await make_console()
    for path in GUARDED_PAGES:
        response = await console.ops.get(path)
        assert response.status == 401, path
        assert response.content_type == "text/html"
        assert 'href="/console/login"' in await response.text(), path
    for path in GUARDED_DATA:
        response = await console.ops.get(path)
        assert response.status == 401, path
        assert (await response.json())["error"] == "unauthorized"
    for path in GUARDED_ASSETS:
        response = await console.ops.get(path)
        assert response.status == 401, path
        assert await response.text() == "log in first: /console/login"


async def test_the_login_page_and_its_stylesheet_need_no_session(make_console):
    console = await make_console()
    page = await console.ops.get("/console/login")
    html = await page.text()
    assert page.status == 200
    assert '<form id="login"' in html and 'name="token"' in html and 'id="login-submit"' in html
    assert 'id="login-error"' not in html
    css = await console.ops.get("/console/static/login.css")
    assert css.status == 200 and css.content_type == "text/css"


async def test_a_wrong_token_is_401_with_the_form_and_an_error(make_console):
    console = await make_console()
    for token in ("wrong", TOKEN + "x", TOKEN[:-1], ""):
        response = await console.ops.post("/console/login", data={"token": token}, allow_redirects=False)
        assert response.status == 401
        html = await response.text()
        assert 'id="login-error"' in html and '<form id="login"' in html
        assert "Set-Cookie" not in response.headers
    assert (await console.ops.get("/console/")).status == 401


async def test_the_right_token_gives_a_strict_httponly_cookie_scoped_to_the_console(make_console):
    console = await make_console()
    response = await console.ops.post("/console/login", data={"token": TOKEN}, allow_redirects=False)
    assert response.status == 303 and response.headers["Location"] == "/console/"
    cookie = response.headers["Set-Cookie"]
    attributes = {part.strip().split("=")[0].lower(): part.strip() for part in cookie.split(";")}
    assert cookie.startswith(f"{COOKIE}=")
    assert "httponly" in attributes
    assert attributes["samesite"].lower() == "samesite=strict"
    assert attributes["path"] == "Path=/console"
    assert TOKEN not in cookie
    for path in GUARDED_PAGES[:1] + ["/console/search", "/console/stats", "/console/api/callbacks",
                                      "/console/static/console.css", "/console/static/live.js"]:
        assert (await console.ops.get(path)).status == 200, path
    assert (await console.ops.get("/console/calls/nothing-recorded")).status == 404
    assert "secure" not in attributes                  # over plain HTTP (the ops port on localhost, say)


@pytest.mark.parametrize("proxy_says", [{"X-Forwarded-Proto": "https"}, {"X-Forwarded-Proto": "HTTPS, http"},
                                        {"Forwarded": 'for=192.0.2.1;proto=https, proto=http'}])
async def test_the_cookie_is_secure_when_a_tls_proxy_says_the_browser_came_over_https(make_console, proxy_says):
    console = await make_console()
    response = await console.ops.post("/console/login", data={"token": TOKEN}, headers=proxy_says,
                                      allow_redirects=False)
    assert response.status == 303
    attributes = [part.strip().lower() for part in response.headers["Set-Cookie"].split(";")]
    assert "secure" in attributes and "httponly" in attributes
    plain = await console.ops.post("/console/login", data={"token": TOKEN}, headers={"X-Forwarded-Proto": "http"},
                                   allow_redirects=False)
    assert "secure" not in [part.strip().lower() for part in plain.headers["Set-Cookie"].split(";")]


async def test_bearer_token_works_without_a_cookie(make_console):
    console = await make_console()
    ok = await console.ops.get("/console/api/callbacks", headers={"Authorization": f"Bearer {TOKEN}"})
    assert ok.status == 200 and "Set-Cookie" not in ok.headers
    assert (await console.ops.get("/console/api/callbacks", headers={"Authorization": "Bearer nope"})).status == 401
    assert (await console.ops.get("/console/api/callbacks", headers={"Authorization": TOKEN})).status == 401


async def test_a_session_is_valid_in_another_instance_with_the_same_token(make_console):
    """Stateless: any worker or instance with the token accepts it (``--workers``, several instances)."""
    first, second = await make_console(), await make_console()
    await first.login()
    cookie = first.ops.session.cookie_jar.filter_cookies(first.ops.make_url("/console/"))[COOKIE].value
    response = await second.ops.get("/console/", headers={"Cookie": f"{COOKIE}={cookie}"})
    assert response.status == 200


def test_a_tampered_or_expired_cookie_is_refused():
    access = Access(TOKEN, 3600)
    good = access.new_session(now=1000.0)
    assert access.session_ok(good, now=1000.0 + 3599)
    assert not access.session_ok(good, now=1000.0 + 3601)                    # expired
    expires, signature = good.split(".")
    assert not access.session_ok(f"{int(expires) + 10**6}.{signature}", now=1000.0)   # a later expiry, same signature
    assert not access.session_ok(f"{expires}.{'0' * len(signature)}", now=1000.0)
    assert not access.session_ok("garbage", now=1000.0)
    assert not Access(TOKEN + "-rotated", 3600).session_ok(good, now=1000.0)  # a new token ends old sessions


async def test_the_token_and_the_cookie_are_never_logged(make_console):
    console = await make_console()
    with capture_logs() as logs:
        await console.ops.post("/console/login", data={"token": "wrong-token-guess"})
        await console.login()
        await console.callgate.event(samples.ice())
        await console.flush()
        await console.ops.get("/console/")
        await console.ops.get("/console/api/callbacks", headers={"Authorization": f"Bearer {TOKEN}"})
    cookie = console.ops.session.cookie_jar.filter_cookies(console.ops.make_url("/console/"))[COOKIE].value
    text = repr(logs)
    assert TOKEN not in text and cookie not in text and "wrong-token-guess" not in text


async def test_the_console_is_read_only(make_console):
    console = await make_console()
    await console.login()
    for path in ("/console/", "/console/api/callbacks", "/console/calls/x", "/console/stats"):
        for method in ("POST", "PUT", "DELETE", "PATCH"):
            response = await console.ops.request(method, path)
            assert response.status == 405 and response.headers["Allow"] == "GET, HEAD", (method, path)


@pytest.mark.parametrize("value, says", [(None, "is not set"), ("short", "shorter than 16 characters"),
                                         (" " * 16, "begins or ends with whitespace"),
                                         (" a-long-enough-token", "begins or ends with whitespace")])
def test_start_up_needs_a_long_enough_token(monkeypatch, value, says):
    if value is None:
        monkeypatch.delenv("CALLGATE_CONSOLE_TOKEN")
    else:
        monkeypatch.setenv("CALLGATE_CONSOLE_TOKEN", value)
    error = check_config(console_config("sqlite:///x.sqlite3"), plugins={"console": Console})
    assert isinstance(error, PluginError)
    assert "CALLGATE_CONSOLE_TOKEN" in str(error) and says in str(error)


async def test_start_up_and_check_config_need_an_ops_port(tmp_path):
    config = console_config(f"sqlite:///{tmp_path}/c.sqlite3")
    config["server"]["ops_port"] = 0
    with pytest.raises(PluginError, match=r"ops_port") as refused:
        create_app(make_config(config, plugins={"console": Console}), plugin_classes={"console": Console})
    assert str(refused.value).startswith("plugin 'console': its pages are served on the ops port only")
    assert str(check_config(config, plugins={"console": Console})) == str(refused.value)
    assert not (tmp_path / "c.sqlite3").exists()


async def _raw(console, head: bytes, body: bytes = b"") -> tuple[int, bytes]:
    """Send ``head`` (the request line and headers, as bytes) and ``body`` over a socket: bytes no client sends."""
    url = console.ops.make_url("/")
    reader, writer = await asyncio.open_connection(url.host, url.port)
    writer.write(head + b"\r\nHost: x\r\nConnection: close\r\nContent-Length: " + str(len(body)).encode()
                 + b"\r\n\r\n" + body)
    answer = await reader.read()
    writer.close()
    status_line, _, rest = answer.partition(b"\r\n")
    return int(status_line.split()[1]), rest


async def test_credentials_that_are_not_utf8_are_refused_as_wrong(make_console):
    """Bytes that are not UTF-8 in the token, by header or by the login form, and a form in a charset that cannot be
    read or too large to read, are a wrong token: 401 with the login form, never a 500 or aiohttp's plain 413."""
    console = await make_console()
    with capture_logs() as logs:
        status, answer = await _raw(console, b"GET /console/api/stats HTTP/1.1\r\nAuthorization: Bearer \xff\xfe")
        assert status == 401 and b'"error":"unauthorized"' in answer
        status, answer = await _raw(console, b"GET /console/ HTTP/1.1\r\nCookie: callgate_console=9999999999.\xff")
        assert status == 401
        status, answer = await _raw(console, b"POST /console/login HTTP/1.1\r\n"
                                    b"Content-Type: application/x-www-form-urlencoded", b"token=\xff\xfe")
        assert status == 401 and b'id="login-error"' in answer and b"Set-Cookie" not in answer
        for charset in (b"no-such-charset", b"utf-16"):          # a charset Python does not know, one it cannot read
            status, answer = await _raw(console, b"POST /console/login HTTP/1.1\r\nContent-Type: "
                                        b"application/x-www-form-urlencoded; charset=" + charset, b"token=abc")
            assert status == 401 and b'id="login-error"' in answer and b"Set-Cookie" not in answer
        status, answer = await _raw(console, b"POST /console/login HTTP/1.1\r\n"       # over the ops port's 1 MiB
                                    b"Content-Type: application/x-www-form-urlencoded", b"token=" + b"a" * 3_000_000)
        assert status == 401 and b'id="login-error"' in answer and b"Set-Cookie" not in answer
    assert not [line for line in logs if line["log_level"] in ("error", "critical")]


async def test_an_open_stream_ends_when_its_session_does(make_console):
    """The session is checked when the stream opens and its end is kept: the stream then says ``expired`` and
    closes (the live view reloads and asks for a login), while one opened with the token lasts."""
    console = await make_console(session_hours=1.5 / 3600)          # a session of 1.5 s
    await console.login()
    async with console.ops.get("/console/stream") as stream:
        assert await stream.content.readuntil(b"\n\n") == b"retry: 2000\n\n"
        assert (await stream.content.readuntil(b"\n\n")).startswith(b"event: ready")
        assert await asyncio.wait_for(stream.content.readuntil(b"\n\n"), 3.0) == b"event: expired\ndata: {}\n\n"
        assert await asyncio.wait_for(stream.content.read(), 1.0) == b""                 # and it is closed
    assert (await console.ops.get("/console/stream")).status == 401
    console.ops.session.cookie_jar.clear()
    async with console.ops.get("/console/stream", headers={"Authorization": f"Bearer {TOKEN}"}) as stream:
        await stream.content.readuntil(b"\n\n")
        await stream.content.readuntil(b"\n\n")
        with pytest.raises(TimeoutError):            # no end: the token has none
            await asyncio.wait_for(stream.content.readuntil(b"\n\n"), 2.0)


async def test_a_store_that_cannot_be_read_gives_a_503_logged_at_most_every_ten_seconds(make_console):
    """Every page, the API and the stream answer 503 in the console's words (HTML or JSON) while the store fails,
    instead of a bare 500; the log says so once, not once per request, and the live poller likewise."""
    console = await make_console()
    await console.login()
    state = console.plugin.state
    working, broken = state.store, await ConsoleStore.open("sqlite://:memory:")
    await broken.close()                                   # every read now raises DatabaseError
    feed_queue = None
    try:
        with capture_logs() as logs:
            state.store = broken
            async with console.ops.get("/console/stream") as stream:        # it reads where to start: 503
                assert stream.status == 503 and (await stream.json())["error"] == "store_unavailable"
            for path in GUARDED_PAGES:
                if path == "/console/search":              # the empty form reads nothing
                    continue
                response = await console.ops.get(path)
                assert response.status == 503 and response.content_type == "text/html", path
                assert "cannot be read now" in await response.text()
            for path in GUARDED_DATA[1:]:
                response = await console.ops.get(path)
                assert response.status == 503, path
                assert (await response.json())["error"] == "store_unavailable"
            state.store = working
            feed_queue = await state.feed.subscribe()      # the poller runs from here on
            state.store = broken
            await asyncio.sleep(1.0)                       # three polls or more, each failing
        events = [line["event"] for line in logs]
        assert events.count("console_store_unreadable") == 1
        assert events.count("console_live_poll_failed") == 1
    finally:
        state.store = working
        if feed_queue is not None:
            state.feed.unsubscribe(feed_queue)
    assert (await console.ops.get("/console/api/stats")).status == 200               # and back once it reads


async def test_log_out_drops_the_cookie_and_shows_the_login_form(make_console):
    console = await make_console()
    await console.login()
    live = await console.ops.get("/console/")
    assert live.status == 200 and '<form id="logout" class="logout" method="post" action="/console/logout">' in (
        await live.text())
    response = await console.ops.post("/console/logout", allow_redirects=False)
    assert response.status == 303 and response.headers["Location"] == "/console/login"
    cleared = response.cookies[COOKIE]
    assert cleared.value == "" and cleared["max-age"] == "0" and cleared["path"] == "/console"
    assert cleared["httponly"] and cleared["samesite"] == "Strict"
    assert (await console.ops.get("/console/")).status == 401                    # the browser has no session now
    again = await console.ops.get("/console/logout")                            # only POST
    assert again.status == 405 and again.headers["Allow"] == "POST"
    assert (await console.ops.post("/console/logout", allow_redirects=False)).status == 401   # as every URL



async def test_an_open_stream_says_when_the_store_cannot_be_read_and_a_new_one_is_refused_meanwhile(make_console):
    """The live view must not say "live" while nothing can be read: its stream says ``unavailable`` at the first
    failed poll and ``ready`` once a poll works again; a stream opened meanwhile gets the 503 of every other URL,
    whether or not another stream is open."""
    console = await make_console()
    await console.login()
    state = console.plugin.state
    working, broken = state.store, await ConsoleStore.open("sqlite://:memory:")
    await broken.close()
    async with console.ops.get("/console/stream") as stream:
        await stream.content.readuntil(b"\n\n")
        assert (await stream.content.readuntil(b"\n\n")).startswith(b"event: ready")
        state.store = broken
        try:
            said = await asyncio.wait_for(stream.content.readuntil(b"\n\n"), 2.0)
            assert said == b"event: unavailable\ndata: {}\n\n"
            async with console.ops.get("/console/stream") as second:
                assert second.status == 503 and (await second.json())["error"] == "store_unavailable"
        finally:
            state.store = working
        assert await asyncio.wait_for(stream.content.readuntil(b"\n\n"), 2.0) == b"event: ready\ndata: {}\n\n"
        await console.callgate.send(samples.ice(callid="after-the-outage"))
        await console.flush()
        event = await asyncio.wait_for(stream.content.readuntil(b"\n\n"), 2.0)
        assert event.startswith(b"event: callback") and b"after-the-outage" in event
