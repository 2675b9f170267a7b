"""The console's URLs on the ops application (all under /console; read-only but for the login and the logout).

Every handler but the login page and its stylesheet is wrapped by :func:`guarded`: without a valid
session (or ``Authorization: Bearer <token>``) it answers 401, an HTML page with a link to the
login for pages, JSON for the API and the stream, plain text for assets.  Pages are Jinja2
templates with autoescaping on; the live view's script inserts values with ``textContent`` only.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from datetime import datetime, timezone
from importlib import resources
from typing import Any

import jinja2
import orjson
import structlog
from aiohttp import web

from callgate.storage import DatabaseError

from . import present, stats
from .access import COOKIE, Access
from .state import STATE, ConsoleState
from .store import ConsoleStore, Search

log = structlog.get_logger("callgate.console")
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
PREFIX = "/console"
#: The console's own assets (no CDN: it works without internet), by URL name.
ASSETS = {"console.css": "text/css", "live.js": "text/javascript", "login.css": "text/css"}
#: Served without a session: the login page's own stylesheet.
PUBLIC_ASSETS = frozenset({"login.css"})
SECURITY_HEADERS = {
    "Content-Security-Policy": "default-src 'none'; style-src 'self'; script-src 'self'; connect-src 'self'; "
                               "img-src 'self'; form-action 'self'; base-uri 'none'; frame-ancestors 'none'",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-store",
}
LATEST = 50
#: The most callbacks a search shows (the newest ones); the page and the JSON say when it found more.
SEARCH_LIMIT = 200
LIVE_HORIZON_SECONDS = 4 * 3600
KEEPALIVE_SECONDS = 15.0

_templates = jinja2.Environment(loader=jinja2.PackageLoader("callgate_console", "templates"),
                                autoescape=True, undefined=jinja2.StrictUndefined)


def register(app: web.Application, state: ConsoleState) -> None:
    """Add every console URL to the ops ``app``."""
    app[STATE] = state
    add = app.router.add_get
    add(PREFIX + "/login", login_page)
    app.router.add_post(PREFIX + "/login", login)
    app.router.add_post(PREFIX + "/logout", guarded(logout))
    add(PREFIX + "/", guarded(live_page))
    add(PREFIX, guarded(to_live))
    add(PREFIX + "/calls/{key:.+}", guarded(call_page))
    add(PREFIX + "/search", guarded(search_page))
    add(PREFIX + "/stats", guarded(stats_page))
    add(PREFIX + "/stream", guarded(stream))
    add(PREFIX + "/api/callbacks", guarded(api_callbacks))
    add(PREFIX + "/api/calls/{key:.+}", guarded(api_call))
    add(PREFIX + "/api/stats", guarded(api_stats))
    add(PREFIX + "/static/{name}", asset)


# --- access ---------------------------------------------------------------------------------------

def _wants_html(request: web.Request) -> bool:
    path = request.path
    return not (path.startswith(PREFIX + "/api/") or path == PREFIX + "/stream" or path.startswith(PREFIX + "/static/"))


def unauthorized(request: web.Request) -> web.Response:
    if request.path.startswith(PREFIX + "/static/"):
        return web.Response(status=401, text="log in first: /console/login", headers=SECURITY_HEADERS)
    if not _wants_html(request):
        return _json({"error": "unauthorized", "message": "log in at /console/login, or send "
                                                          "Authorization: Bearer <CALLGATE_CONSOLE_TOKEN>"}, 401)
    return _page("unauthorized.html", status=401, title="Log in")


def unavailable(request: web.Request) -> web.Response:
    """503: the store is not open, or cannot be read now (a page, the API or the stream)."""
    if not _wants_html(request):
        return _json({"error": "store_unavailable", "message": "the console's store cannot be read now (see the log)"},
                     503)
    return _page("unavailable.html", status=503, title="Unavailable", nav="")


def guarded(handler: Handler) -> Handler:
    """``handler`` for a valid session only (else 401); a store that fails to answer gives a 503, logged at most
    every 10 s (never the request's content)."""
    async def check(request: web.Request) -> web.StreamResponse:
        state = request.app[STATE]
        if not state.access.allowed(request):
            return unauthorized(request)
        try:
            return await handler(request)
        except DatabaseError as exc:
            if state.read_failures.due():
                log.warning("console_store_unreadable", error=str(exc), path=request.path)
            return unavailable(request)
    check.__name__ = handler.__name__
    return check


async def login_page(request: web.Request) -> web.Response:
    return _page("login.html", title="Log in", error=False)


async def login(request: web.Request) -> web.Response:
    state = request.app[STATE]
    try:
        token = (await request.post()).get("token")
    except (ValueError, LookupError, web.HTTPRequestEntityTooLarge):
        # Not in its charset (UnicodeDecodeError), a charset Python does not know, or over the ops port's 1 MiB: a
        # form that cannot be read cannot hold the token: a wrong one.
        token = None
    if not isinstance(token, str) or not state.access.token_ok(token):
        return _page("login.html", status=401, title="Log in", error=True)
    redirect = web.HTTPSeeOther(PREFIX + "/", headers=SECURITY_HEADERS)
    state.access.set_cookie(request, redirect)
    raise redirect


async def logout(request: web.Request) -> web.Response:
    """The header's "Log out": the cookie is dropped and the login form shown."""
    redirect = web.HTTPSeeOther(PREFIX + "/login", headers=SECURITY_HEADERS)
    Access.clear_cookie(redirect)
    raise redirect


async def to_live(request: web.Request) -> web.Response:
    raise web.HTTPSeeOther(PREFIX + "/")


async def asset(request: web.Request) -> web.Response:
    name = request.match_info["name"]
    if name not in ASSETS:
        raise web.HTTPNotFound()
    if name not in PUBLIC_ASSETS and not request.app[STATE].access.allowed(request):
        return unauthorized(request)
    body = resources.files("callgate_console").joinpath("static", name).read_bytes()
    return web.Response(body=body, content_type=ASSETS[name],
                        headers={**SECURITY_HEADERS, "Cache-Control": "private, max-age=300"})


# --- pages ----------------------------------------------------------------------------------------

def _page(template: str, status: int = 200, **context: Any) -> web.Response:
    html = _templates.get_template(template).render(**context)
    return web.Response(text=html, status=status, content_type="text/html", headers=SECURITY_HEADERS)


def _json(data: Any, status: int = 200) -> web.Response:
    return web.Response(body=orjson.dumps(data), status=status, content_type="application/json",
                        headers=SECURITY_HEADERS)


def _store(state: ConsoleState) -> ConsoleStore:
    if state.store is None:
        raise DatabaseError("the console's store is not open")
    return state.store


async def live_page(request: web.Request) -> web.Response:
    state = request.app[STATE]
    store = _store(state)
    mask = state.mask
    now = datetime.now(timezone.utc).timestamp()
    calls = [{**present.summary(r, mask), "open_legs": r["open_legs"], "ended_legs": r["ended_legs"]}
             for r in await store.in_progress(now - LIVE_HORIZON_SECONDS)]
    latest = [present.summary(r, mask) for r in await store.latest(LATEST)]
    return _page("live.html", title="Live", nav="live", calls=calls, latest=latest, latest_limit=LATEST)


async def call_page(request: web.Request) -> web.Response:
    state = request.app[STATE]
    key = request.match_info["key"]
    rows = await _store(state).call(key)
    if not rows:
        return _page("not_found.html", status=404, title="No such call", nav="", key=key)
    mask = state.mask
    return _page("call.html", title=f"Call {key}", nav="", call=present.call_summary(key, rows, mask),
                 timeline=[present.entry(r, mask) for r in rows])


class BadQuery(ValueError):
    """A search field that cannot be understood; the message names it."""


def _time(value: str, field: str) -> float:
    """``datetime-local`` (``2026-12-06T21:03``, taken as UTC) or ISO 8601 with an offset -> unix seconds."""
    try:
        parsed = datetime.fromisoformat(value.strip())
    except ValueError:
        raise BadQuery(f"{field} must be a date and time such as 2026-12-06T21:03 (UTC) or ISO 8601, "
                       f"got {value!r}") from None
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=timezone.utc)
    return parsed.timestamp()


def _search(request: web.Request) -> tuple[Search, dict[str, str]]:
    q = {name: request.query.get(name, "").strip()
         for name in ("number", "callid", "decision", "plugin", "since", "until")}
    if q["decision"] and q["decision"] not in ("allowed", "denied", "error"):
        raise BadQuery(f"decision must be allowed, denied or error, got {q['decision']!r}")
    since = _time(q["since"], "since") if q["since"] else None
    until = _time(q["until"], "until") if q["until"] else None
    if since is not None and until is not None and until <= since:
        raise BadQuery(f"until must be after since (since is included, until is not), got since {q['since']!r} and "
                       f"until {q['until']!r}")
    return Search(number=q["number"] or None, callid=q["callid"] or None, decision=q["decision"] or None,
                  plugin=q["plugin"] or None, since=since, until=until), q


async def search_page(request: web.Request) -> web.Response:
    state = request.app[STATE]
    try:
        query, fields = _search(request)
    except BadQuery as exc:
        return _page("search.html", status=400, title="Search", nav="search", fields=dict(request.query),
                     error=str(exc), results=None)
    results, truncated = await _found(state, query) if any(fields.values()) else (None, False)
    return _page("search.html", title="Search", nav="search", fields=fields, error=None, results=results,
                 truncated=truncated, limit=SEARCH_LIMIT)


async def _found(state: ConsoleState, query: Search) -> tuple[list[dict[str, Any]], bool]:
    """The newest :data:`SEARCH_LIMIT` callbacks ``query`` finds, as summaries, and whether it found more."""
    rows = await _store(state).search(query, SEARCH_LIMIT + 1)
    return [present.summary(r, state.mask) for r in rows[:SEARCH_LIMIT]], len(rows) > SEARCH_LIMIT


async def _stats(state: ConsoleState) -> tuple[list[dict[str, int]], list[dict[str, Any]]]:
    store = _store(state)
    now = datetime.now(timezone.utc).timestamp()
    now_minute = int(now // 60)
    series = stats.minutes(await store.per_minute(now_minute - stats.MINUTES + 1), now_minute)
    return series, stats.health(await store.traces(now - 3600, stats.HEALTH_SAMPLE))


async def stats_page(request: web.Request) -> web.Response:
    series, health = await _stats(request.app[STATE])
    return _page("stats.html", title="Stats", nav="stats", chart=stats.chart(series), health=health,
                 sample=stats.HEALTH_SAMPLE)


# --- JSON and the stream --------------------------------------------------------------------------

async def api_callbacks(request: web.Request) -> web.Response:
    state = request.app[STATE]
    try:
        query, _ = _search(request)
    except BadQuery as exc:
        return _json({"error": "bad_query", "message": str(exc)}, 400)
    callbacks, truncated = await _found(state, query)
    return _json({"callbacks": callbacks, "truncated": truncated, "limit": SEARCH_LIMIT})


async def api_call(request: web.Request) -> web.Response:
    state = request.app[STATE]
    key = request.match_info["key"]
    rows = await _store(state).call(key)
    if not rows:
        return _json({"error": "not_found", "message": f"no callback of the call {key!r} is recorded"}, 404)
    mask = state.mask
    return _json({"call": present.call_summary(key, rows, mask), "timeline": [present.entry(r, mask) for r in rows]})


async def api_stats(request: web.Request) -> web.Response:
    series, health = await _stats(request.app[STATE])
    return _json({"minutes": series, "plugins": health})


async def stream(request: web.Request) -> web.StreamResponse:
    """Server-sent events: ``callback`` (data: a callback's summary JSON) for every callback recorded from now
    on, by any worker or instance sharing the store; ``unavailable`` when the store cannot be read and ``ready``
    when it can again; ``skipped`` when callbacks were left out (a burst: the page reads its calls in progress
    again); ``expired`` when the session ends; a comment every few seconds keeps proxies from closing it."""
    state = request.app[STATE]
    _store(state)
    response = web.StreamResponse(headers={**SECURITY_HEADERS, "Content-Type": "text/event-stream",
                                           "X-Accel-Buffering": "no"})
    cookie = request.cookies.get(COOKIE)
    # A stream opened with a session ends with it (an ``expired`` event; the page then asks for a login again); one
    # opened with the token (Authorization: Bearer) lasts while the token does.
    ends = None if cookie is None else state.access.session_end(cookie)
    queue = await state.feed.subscribe()           # a DatabaseError: guarded's 503
    await response.prepare(request)
    mask = state.mask
    try:
        await response.write(b"retry: 2000\n\nevent: ready\ndata: {}\n\n")
        while True:
            wait = KEEPALIVE_SECONDS if ends is None else min(KEEPALIVE_SECONDS, ends - time.time())
            if wait <= 0:
                await response.write(b"event: expired\ndata: {}\n\n")
                break
            try:
                item = await asyncio.wait_for(queue.get(), wait)
            except TimeoutError:
                if ends is None or time.time() < ends:
                    await response.write(b": keepalive\n\n")
                continue
            if item is None:            # the console is shutting down
                break
            if isinstance(item, str):   # "unavailable", "ready" (the store's state) or "skipped"
                await response.write(b"event: " + item.encode() + b"\ndata: {}\n\n")
                continue
            await response.write(b"event: callback\ndata: " + orjson.dumps(present.summary(item, mask)) + b"\n\n")
    except ConnectionError:
        pass                            # the browser went away
    finally:
        state.feed.unsubscribe(queue)
    return response
