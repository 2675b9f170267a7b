"""HTTP handlers: the v1 callback path, the v2 webhook path, /healthz, /readyz and /metrics.

Both signed paths run one handler body, parameterised by their generation's
:class:`~callgate.endpoints.Endpoint`.  It checks, in this order, before any plugin
runs: the method (405), the body size (413), the content type and encoding (415), the body's
arrival (408 after ``body_timeout_seconds``; 400 ``incomplete_body``), the
signature (401: v1 ``Application``, v2 ``service``), the body (400; an event
callgate does not know is answered 200 with the generation's empty answer -- v1
``{}``, v2 ``{"commands": []}`` -- so that newer Sinch events never break calls).
Every refusal is a JSON body ``{"error": code, "message": ...}``, and so is the 404
of any other path.  A v2 answer is never a 5xx: Sinch hangs up a call whose webhook
fails.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

import structlog
from aiohttp import hdrs, web
from aiohttp.http_exceptions import HttpProcessingError

from . import dispatch, exchange, logs
from .calls import CallEventType
from .endpoints import Endpoint, IgnoredEvent
from .pipeline import Reply
from .protocols.errors import EventError
from .protocols.signing_common import SignatureError
from .responses import error_body, error_response
from .state import CALLBACK, CONFIG, LIFECYCLE, METRICS, PIPELINE, PLUGINS, WEBHOOK

log = structlog.get_logger("callgate")
JSON = "application/json"
#: The Content-Type headers Sinch sends (docs: the first; its SDKs' tests: the second).
_SINCH_JSON = frozenset({JSON, "application/json; charset=utf-8"})
#: CloudEvents headers of a v2 webhook (binary content mode): logged, never required.
_CLOUDEVENT_FIELDS = (("ce-id", "ce_id"), ("ce-type", "ce_type"))
_NO_FIELDS: dict[str, str] = {}
#: The 400 ``incomplete_body``'s message (the callback paths and the plugins' pages).
INCOMPLETE_BODY = "the body ended before its Content-Length, or its chunked encoding is broken"


async def callback(request: web.Request) -> web.StreamResponse:
    """The v1 callback path: ICE, ACE, PIE, DICE, Notify."""
    app = request.app
    return await _serve(request, app, app[CALLBACK])


async def webhook(request: web.Request) -> web.StreamResponse:
    """The v2 webhook path: ``call.incoming``, ``call.answered``, ``call.menu``, ``call.hangup``, ..."""
    app = request.app
    return await _serve(request, app, app[WEBHOOK])


async def _serve(request: web.Request, app: web.Application, endpoint: Endpoint) -> web.StreamResponse:
    """One signed path's request (``app`` is the request's, read once: ``request.app`` is a property chain)."""
    if request.method in ("GET", "HEAD"):
        # The Sinch dashboard's "Test a callback URL" button (v1), the URL test of a service's webhook (v2).
        return web.json_response({"service": "callgate", "status": "ok"})
    if request.method != "POST":
        log.warning("callback_refused", reason="method_not_allowed", method=request.method, remote=request.remote)
        return error_response(405, "method_not_allowed", f"{request.method} is not allowed here; Sinch POSTs "
                                                         f"{_posts(endpoint)}", headers={"Allow": "GET, HEAD, POST"})
    started = time.perf_counter()
    response, event, answer = await _handle(request, app, endpoint, started)
    app[METRICS].answered(event, response.status, time.perf_counter() - started, answer,
                                  generation=endpoint.generation)
    return response


def _posts(endpoint: Endpoint) -> str:
    return "callbacks" if endpoint.generation == "v1" else "webhooks"


async def _handle(request: web.Request, app: web.Application, endpoint: Endpoint,
                  started: float) -> tuple[web.Response, str, Reply | None]:
    """The response, the event name for metrics ("-" when refused before decoding) and the answer."""
    server = app[CONFIG].server
    length = request.content_length
    if length is not None and length > server.max_body_bytes:
        return _too_large(request, server.max_body_bytes), "-", None
    # The two forms Sinch sends need no parsing (aiohttp's content_type parses the header on every request).
    if request.headers.get("Content-Type") not in _SINCH_JSON and request.content_type != JSON:
        log.warning("callback_refused", reason="unsupported_media_type", remote=request.remote)
        return error_response(415, "unsupported_media_type", f"Content-Type must be application/json, got "
                                                             f"{request.headers.get('Content-Type', 'none')!r}"), "-", None
    encoding = request.headers.get(hdrs.CONTENT_ENCODING)      # an istr: looked up without folding its case
    if encoding is not None and encoding.strip().lower() != "identity":
        # aiohttp would decompress it, and the signature would then be checked over bytes other than those sent.
        log.warning("callback_refused", reason="unsupported_content_encoding", remote=request.remote)
        return error_response(415, "unsupported_media_type", f"Content-Encoding {encoding!r:.40} is not accepted: "
                                                             f"send the JSON body as it is"), "-", None
    try:
        if request.content.is_eof():     # the whole body came with the headers: nothing to wait for
            body = await request.read()
        else:
            async with asyncio.timeout(server.body_timeout_seconds):
                body = await request.read()
    except web.HTTPRequestEntityTooLarge:
        return _too_large(request, server.max_body_bytes), "-", None
    except TimeoutError:
        log.warning("callback_refused", reason="body_timeout", remote=request.remote)
        return await _close_after(request, error_response(
            408, "body_timeout", f"the body did not arrive within {server.body_timeout_seconds:g} s "
                                 f"([server] body_timeout_seconds)")), "-", None
    except (ConnectionError, HttpProcessingError, web.RequestPayloadError) as exc:
        # The client closed the connection, or sent a body shorter than its Content-Length or a
        # broken chunked body: nothing to decide; answered (if anyone still listens) and closed.
        log.warning("callback_refused", reason="incomplete_body", error=type(exc).__name__, remote=request.remote)
        return await _close_after(request, error_response(400, "incomplete_body", INCOMPLETE_BODY)), "-", None

    verifier = endpoint.verifier
    if verifier is None:
        unsigned = SignatureError(endpoint.unsigned_reason, endpoint.unsigned_message)
        return _refused_signature(request, app, endpoint, unsigned), "-", None
    try:
        signer, signed_at = verifier.verify_timed("POST", endpoint.signed_path, request.headers, body)
    except SignatureError as exc:
        return _refused_signature(request, app, endpoint, exc), "-", None

    cloudevent = _cloudevent(request)
    try:
        event = endpoint.decode(body, signed_at)
    except IgnoredEvent as exc:
        log.warning(exc.log_event, sinch_event=exc.event, callid=exc.callid, **cloudevent)
        _told(request, app, endpoint, exc.event, None, body, 200, endpoint.ignored_body, None, "ignored",
              elapsed_ms(started), [])
        return web.Response(body=endpoint.ignored_body, content_type=JSON), "unknown", None
    except EventError as exc:
        log.warning("callback_refused", reason=exc.code, error=str(exc), **cloudevent)
        _told(request, app, endpoint, "-", None, body, 400, error_body(exc.code, str(exc)), None,
              f"refused: {exc.code}", elapsed_ms(started), [], problem=str(exc))
        return error_response(400, exc.code, str(exc)), "-", None
    except Exception:
        # A body the decoder should have refused with an EventError but did not (a bug in callgate): still a 400 in
        # callgate's words, never a 5xx (Sinch hangs up a call whose v2 webhook fails); the traceback is logged.
        log.exception("decode_failed", **cloudevent)
        message = "the body could not be decoded (callgate's log has why: decode_failed)"
        _told(request, app, endpoint, "-", None, body, 400, error_body("invalid_body", message), None,
              "refused: invalid_body", elapsed_ms(started), [], problem=message)
        return error_response(400, "invalid_body", message), "-", None

    named = event.application
    if named is not None and named != signer:
        try:
            verifier.check_named(signer, named)
        except SignatureError as exc:
            return _refused_signature(request, app, endpoint, exc), "-", None

    # Every line logged while the plugins work on this callback carries its callid and event:
    # bind_contextvars(callid=..., sinch_event=...) through structlog's own variables, for less.
    callid_token, event_token = logs.CALLID.set(event.callid), logs.SINCH_EVENT.set(event.event)
    pipeline = app[PIPELINE]
    try:
        try:
            answer = await pipeline.answer(event)
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            # A bug in the core still gets the generation's safe answer (its renderer's), never a 500, and never
            # a 5xx for v2.
            log.exception("pipeline_failed")
            answer = pipeline.failed(event, f"internal error: {exc!r}")
        summary, ms, trace = answer.summary, elapsed_ms(started), answer.trace()
        logs.info("callback", status=answer.status, decision=summary, problem=answer.problem, ms=ms,
                  plugins=trace, **cloudevent)
    finally:
        logs.SINCH_EVENT.reset(event_token)
        logs.CALLID.reset(callid_token)
    _told(request, app, endpoint, event.event, event, body, answer.status, answer.body, answer, summary, ms, trace)
    return web.Response(status=answer.status, body=answer.body, content_type=JSON), event.event, answer


def _refused_signature(request: web.Request, app: web.Application, endpoint: Endpoint,
                       exc: SignatureError) -> web.Response:
    log.warning("callback_refused", reason=exc.reason, remote=request.remote)
    app[METRICS].refused_signature(exc.reason, generation=endpoint.generation)
    return error_response(401, "signature", str(exc), reason=exc.reason)


def _told(request: web.Request, app: web.Application, endpoint: Endpoint, event: str, call: CallEventType | None, body: bytes,
          status: int, answer: bytes, reply: Reply | None, summary: str, ms: float,
          trace: list[dict[str, Any]], problem: str | None = None) -> None:
    """The ``callback_answered`` hook, when an enabled plugin implements it (nothing is built otherwise).
    ``summary``, ``ms`` and ``trace`` as on the ``callback`` log line (an ignored or refused body has no trace:
    ``[]``); ``problem`` is the reply's when there is one."""
    impls = app[PLUGINS].impls(exchange.HOOK)
    if impls:
        if reply is not None:
            problem = reply.problem
        exchange.tell(impls, app[METRICS], endpoint.generation, event, call, request.headers, body, status,
                      answer, reply.decision if reply else None, tuple(reply.outcomes) if reply else (), problem,
                      summary, ms, trace)


def elapsed_ms(started: float) -> float:
    """Milliseconds since ``started`` (a ``time.perf_counter()``), rounded to the microsecond as
    ``Outcome.log_entry``'s (``round(x, 3)`` goes through a decimal conversion: 4,600 instructions a call under callgrind)."""
    return round((time.perf_counter() - started) * 1_000_000) / 1000


def _cloudevent(request: web.Request) -> dict[str, str]:
    """The CloudEvents ``ce-id`` / ``ce-type`` headers a v2 webhook carries, as log fields (none when absent:
    the shared empty dict, only ever spread into a log call)."""
    headers = request.headers
    if "ce-id" not in headers and "ce-type" not in headers:      # the names of _CLOUDEVENT_FIELDS
        return _NO_FIELDS
    return {field: headers[name] for name, field in _CLOUDEVENT_FIELDS if name in headers}


async def _close_after(request: web.Request, response: web.Response) -> web.Response:
    """Send ``response`` now and close the connection, without waiting for the rest of the body.

    aiohttp would otherwise keep reading (and discarding) the unread body of a slow sender for
    its lingering time; here the body already had its time.  The returned response is sent.
    """
    response.force_close()
    try:
        await response.prepare(request)
        await response.write_eof()
    except (ConnectionError, RuntimeError):
        pass                      # the client is gone: nobody to answer
    request.protocol.force_close()
    return response


def _too_large(request: web.Request, limit: int) -> web.Response:
    log.warning("callback_refused", reason="body_too_large", remote=request.remote)
    return error_response(413, "body_too_large", f"the body is larger than the limit of {limit} bytes "
                                                 f"([server] max_body_bytes)")


async def not_found(request: web.Request) -> web.Response:
    """Any other path on the callback port (and the ops paths when ``ops_port`` is set): 404, or 405 with ``Allow``
    when the path is served with other methods (``POST /metrics``)."""
    return await _nothing_here(request, "nothing here: Sinch callbacks go to the callback path, v2 webhooks to the "
                                        "webhook path")


async def ops_not_found(request: web.Request) -> web.Response:
    """Any other path on the ops port: 404, or 405 with ``Allow`` (``DELETE`` on a console page)."""
    return await _nothing_here(request, "nothing here: this port serves /metrics, /healthz, /readyz and the "
                                        "plugins' pages under /<plugin name>/")


async def _nothing_here(request: web.Request, message: str) -> web.Response:
    allowed = await _allowed_methods(request)
    if allowed:
        listed = ", ".join(sorted(allowed))
        return error_response(405, "method_not_allowed", f"{request.method} is not allowed on {request.path}; "
                                                         f"it takes {listed}", headers={"Allow": listed})
    return error_response(404, "not_found", message)


@web.middleware
async def plugin_page_errors(request: web.Request, handler: Any) -> web.StreamResponse:
    """On the ops application: a plugin's page that raises, or returns something other than a response, answers a
    JSON 500 in callgate's words (the plugin named in the log, ``ops_page_failed``, with its exception or what it
    returned), instead of aiohttp's plain-text one; a request whose body broke off (the client's fault) a JSON 400
    ``incomplete_body``, and one whose body is not all there ``[server] body_timeout_seconds`` after its head a JSON
    408 ``body_timeout`` (the connection closed), as on the callback paths."""
    try:
        response = await _in_body_time(request, handler)
    except _BodyTimeout:
        seconds = request.app[CONFIG].server.body_timeout_seconds
        log.warning("ops_request_refused", reason="body_timeout", path=request.path)
        return await _close_after(request, error_response(
            408, "body_timeout", f"the body did not arrive within {seconds:g} s ([server] body_timeout_seconds)"))
    except (web.HTTPException, asyncio.CancelledError):
        raise
    except (ConnectionError, HttpProcessingError, web.RequestPayloadError) as exc:
        # The client's fault, not the page's: a body shorter than its Content-Length, a broken chunked encoding.
        log.warning("ops_request_refused", reason="incomplete_body", error=type(exc).__name__, path=request.path)
        return error_response(400, "incomplete_body", INCOMPLETE_BODY)
    except Exception as exc:
        return _page_failed(request, f"{type(exc).__name__}: {exc}", exc_info=True)
    if not isinstance(response, web.StreamResponse):
        return _page_failed(request, f"the handler returned {type(response).__name__}, not an aiohttp response")
    return response


#: The methods whose body a page reads (a form, JSON); a body sent with another (a GET) is not waited for.
_SENDS_A_BODY = frozenset({"POST", "PUT", "PATCH"})


class _BodyTimeout(Exception):
    """A page's request body was not all there ``[server] body_timeout_seconds`` after its head."""


async def _in_body_time(request: web.Request, handler: Any) -> web.StreamResponse:
    """``handler(request)``, cancelled when the request's body has not all arrived ``[server] body_timeout_seconds``
    after its head (:class:`_BodyTimeout`); once it has, the page takes as long as it takes (a stream, a slow
    query).  The body is left for the page to read as it likes (a form, JSON, a multipart stream)."""
    content = request.content
    if content.is_eof() or request.method not in _SENDS_A_BODY:   # nothing to wait for (a stream's GET included)
        return await handler(request)
    body_time = asyncio.timeout(request.app[CONFIG].server.body_timeout_seconds)
    waiting = True

    def arrived() -> None:
        if waiting:
            body_time.reschedule(None)

    try:
        async with body_time:
            content.on_eof(arrived)
            return await handler(request)
    except TimeoutError:
        if body_time.expired():
            raise _BodyTimeout from None
        raise                        # the page's own timeout: its failure
    finally:
        waiting = False


def _page_failed(request: web.Request, error: str, exc_info: bool = False) -> web.Response:
    log.error("ops_page_failed", plugin=request.path.split("/")[1] or None, path=request.path, error=error,
              exc_info=exc_info)
    return error_response(500, "internal_error", "this page failed; the reason is in callgate's log "
                                                 "(ops_page_failed, with the plugin's name)")


async def _allowed_methods(request: web.Request) -> set[str]:
    """The methods the routes other than the catch-all take on this request's path (none: the path is not served).
    Only asked on the way to a 404: the routes are resolved again, one by one."""
    allowed: set[str] = set()
    for resource in request.app.router.resources():
        match, methods = await resource.resolve(request)
        if match is None:           # a match here is the catch-all itself, or a route that takes this method
            allowed |= methods
    return allowed


async def healthz(request: web.Request) -> web.Response:
    """Alive: the process answers HTTP."""
    return web.json_response({"status": "alive"})


async def readyz(request: web.Request) -> web.Response:
    """Ready to answer calls: not shutting down, an application or a service configured, every plugin ready."""
    app = request.app
    if app[LIFECYCLE].draining:
        return web.json_response({"status": "draining", "problems": ["shutting down"]}, status=503)
    problems = []
    if not (app[CALLBACK].configured or app[WEBHOOK].configured):
        problems.append("no Sinch application or service configured (SINCH_APPLICATION_KEY / "
                        "SINCH_APPLICATION_SECRET for v1, SINCH_SERVICE_ID / SINCH_SERVICE_SECRET for v2)")
    deadline = time.monotonic() + 2.0
    for outcome in await dispatch.collect(app[PLUGINS], "check_ready", deadline):
        if outcome.status == "timeout":
            problems.append(f"{outcome.plugin}: {outcome.verdict}")
        elif outcome.status != "ok":      # the exception's text is in the log (plugin_failed), not here
            problems.append(f"{outcome.plugin}: check_ready raised an error (see the log)")
        elif isinstance(outcome.value, str) and outcome.value.strip():
            problems.append(f"{outcome.plugin}: {outcome.value}")
        elif outcome.value is not None:   # not the str or None the hook answers: not ready, and not its repr
            log.error("plugin_failed", plugin=outcome.plugin, hook="check_ready", status="error",
                      error=f"returned {type(outcome.value).__name__} {outcome.value!r:.100}: not a reason (a str) "
                            f"or None")
            problems.append(f"{outcome.plugin}: check_ready gave no reason it could show (see the log)")
    if problems:
        return web.json_response({"status": "not_ready", "problems": problems}, status=503)
    return web.json_response({"status": "ready"})


async def metrics(request: web.Request) -> web.Response:
    """Prometheus exposition of this server's metrics (all workers' when there are several)."""
    app = request.app
    body = await app[METRICS].render(app[PLUGINS])
    return web.Response(body=body, headers={"Content-Type": app[METRICS].content_type})
