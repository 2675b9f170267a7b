"""aiohttp's connection handling, with a body that breaks mid-way answered at once.

aiohttp (3.9 to 3.14 at least) leaves the reader of a request's body waiting when the body breaks
after the request head arrived:

* a chunked body whose chunk is malformed (a size like ``zz``, a chunk longer than its size): the
  C parser raises, aiohttp queues a 400 for *after* the current request, and the body being read
  never ends, so the handler waits for its body timeout;
* a client that half-closes (``shutdown(SHUT_WR)``) before its ``Content-Length`` is all there:
  the transport is closed on the end of the stream, so no answer can be written at all; and so it
  is when a whole request and the end of the stream come in one read, before the request's
  handler started.

:class:`HttpConnection` ends such a body with an error at once (the callback handler answers
``400 incomplete_body``), and keeps the writing half of a half-closed connection open while a
request is in progress or waiting (pipelined), so that each answer (an error, or the answer to a
whole request) is sent; the connection is then closed.  A request the HTTP parser refuses gets
aiohttp's plain-text 400 with a sentence of callgate's instead of the parser's message, which
quotes the offending line (an ``Authorization`` header, say) back.  Both the callback port and the
ops port are served this way.  It reads four attributes of aiohttp's ``RequestHandler``
(``_current_request``, ``_request_in_progress``, ``_waiter``, and ``_messages`` with its ``(message,
payload)`` pairs) and builds it as ``web.Server`` does: the subclass is kept to those, and the tests in
tests/test_http_errors.py fail if an aiohttp release changes them.
"""

from __future__ import annotations

from typing import Any

from aiohttp import web
from aiohttp.http_exceptions import (
    BadHttpMethod,
    BadStatusLine,
    ContentLengthError,
    HttpProcessingError,
    InvalidHeader,
    InvalidURLError,
    LineTooLong,
    TransferEncodingError,
)
from aiohttp.streams import StreamReader
from aiohttp.web_protocol import RequestHandler
from aiohttp.web_request import BaseRequest
from aiohttp.web_response import StreamResponse

#: What a request the HTTP parser refused was, in callgate's words, by the parser's exception class
#: (most specific first); the plain-text body of the 400.
_REFUSALS: tuple[tuple[type[HttpProcessingError], str], ...] = (
    (LineTooLong, "a request line or header line is longer than [server] max_header_bytes"),
    (BadHttpMethod, "an HTTP method callgate does not know"),
    (InvalidURLError, "the request target is not a valid path"),
    (BadStatusLine, "a malformed request line"),
    (InvalidHeader, "a malformed header line (an invalid name, or a control character in a value)"),
)
#: How often a connection the client half-closed looks whether its last request has been answered.
IDLE_CHECK = 0.02
_MALFORMED = ("malformed HTTP (e.g. a control character in a header, a repeated Content-Type, Content-Length or "
              "Host header, Content-Length with Transfer-Encoding, more headers than [server] max_headers, a "
              "broken chunked body)")


def refusal(exc: BaseException | None) -> str:
    """The body of the 400 for a request the parser refused with ``exc``."""
    for kind, words in _REFUSALS:
        if isinstance(exc, kind):
            return f"Bad Request: {words}\n"
    return f"Bad Request: {_MALFORMED}\n"


class HttpConnection(RequestHandler):
    """One HTTP connection, of the callback port or the ops port (aiohttp's handler, see the module docstring)."""

    __slots__ = ("_received",)

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        #: The body of the request whose head came last (its handler may not have started yet).
        self._received: StreamReader | None = None

    def data_received(self, data: bytes) -> None:
        request = self._current_request
        if request is None or request.content.is_eof():   # no body being read: aiohttp's path as it is
            super().data_received(data)
            if self._messages:
                self._received = self._messages[-1][1]
            return
        body = request.content
        queued = len(self._messages)
        super().data_received(data)
        # A request queued while this body is unfinished can only be the parser's refusal of the body.
        if len(self._messages) > queued and not body.is_eof() and body.exception() is None:
            body.set_exception(TransferEncodingError("the chunked encoding of the body is broken"))

    def eof_received(self) -> bool | None:  # type: ignore[override]  # asyncio.Protocol allows True (aiohttp types None)
        request = self._current_request
        # A request (whole, or its head and part of its body) may have come just before the end of the stream, its
        # handler not started yet: its body is then the one that came last.
        body = request.content if request is not None else self._received
        if body is not None and not body.is_eof() and body.exception() is None:
            body.set_exception(ContentLengthError("the client ended the stream before the body's end"))
        if not self._busy() and self._waiter is not None and not self._waiter.done():
            return None                   # idle, waiting for a request: the connection closes, as in aiohttp
        # Requests in progress or waiting (pipelined ones too), or one taken off the queue whose handler starts on the
        # loop's next turn: each is answered, then the connection closed; the writing half is kept open until then.
        self._close_when_idle()
        return True

    def _busy(self) -> bool:
        return self._request_in_progress or bool(self._messages)

    def _close_when_idle(self) -> None:
        """Close the connection once no request is in progress or waiting (looked at every :data:`IDLE_CHECK`)."""
        if self._force_close or self.transport is None:
            return                        # closed already (after its last answer, or by aiohttp)
        if self._busy() or self._waiter is None:
            self._loop.call_later(IDLE_CHECK, self._close_when_idle)
            return
        self.force_close()                # as aiohttp's keep-alive timeout closes an idle connection

    def handle_error(self, request: BaseRequest, status: int = 500, exc: BaseException | None = None,
                     message: str | None = None) -> StreamResponse:
        if isinstance(exc, HttpProcessingError) and 400 <= status < 500:
            message = refusal(exc)        # not the parser's message: it quotes the request's line back
        return super().handle_error(request, status, exc, message)


class HttpServer(web.Server):
    """``web.Server`` whose connections are :class:`HttpConnection`."""

    def __call__(self) -> RequestHandler:
        return HttpConnection(self, loop=self._loop, **self._kwargs)


class HttpRunner(web.AppRunner):
    """``web.AppRunner`` serving the application through :class:`HttpServer`."""

    __slots__ = ()

    async def _make_server(self) -> web.Server:
        made = await super()._make_server()
        return HttpServer(made.request_handler, request_factory=made.request_factory,
                          handler_cancellation=made.handler_cancellation, loop=made._loop, **made._kwargs)
