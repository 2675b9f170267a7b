"""Structured logs: JSON lines in production, readable lines in a terminal.

The callback handler binds ``callid`` and ``sinch_event`` with structlog's
contextvars, so every line logged while a callback is handled (by the core or
a plugin using ``structlog.get_logger()``) carries them.  Nothing here ever
logs request headers or configuration values, so secrets cannot reach the logs.
"""

from __future__ import annotations

import asyncio
import logging
import sys
import time
from datetime import datetime, timezone
from typing import BinaryIO, Literal, TextIO

import orjson
import structlog

LEVELS = {"debug": logging.DEBUG, "info": logging.INFO, "warning": logging.WARNING, "error": logging.ERROR}


class _DropUnwritable:
    """A log line that cannot be written (closed or full stream) is dropped: logging never breaks an answer."""

    def msg(self, message) -> None:
        try:
            super().msg(message)
        except (OSError, ValueError):
            pass

    log = debug = info = warn = warning = err = error = critical = exception = fatal = msg


class SafePrintLogger(_DropUnwritable, structlog.PrintLogger):
    """Lines as text (the console renderer)."""


class LineWriter:
    """JSON lines (bytes) to a binary stream, flushed once per event-loop iteration.

    Inside a running event loop the first line of an iteration schedules one flush for all the
    lines written before the loop looks at its sockets again (one ``write`` system call for a
    burst of callbacks instead of one each); outside a loop every line is flushed at once.
    A line that cannot be written (closed or full stream) is dropped: logging never breaks an
    answer.
    """

    def __init__(self, stream: BinaryIO) -> None:
        self._stream = stream
        self._flush_scheduled = False

    def msg(self, message: bytes) -> None:
        try:
            self._stream.write(message + b"\n")
        except (OSError, ValueError):
            return
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            self.flush()
            return
        if not self._flush_scheduled:
            self._flush_scheduled = True
            loop.call_soon(self.flush)

    def flush(self) -> None:
        self._flush_scheduled = False
        try:
            self._stream.flush()
        except (OSError, ValueError):
            pass

    log = debug = info = warn = warning = err = error = critical = exception = fatal = msg


class UtcTimestamp:
    """``timestamp`` as ISO 8601 UTC with microseconds (``2026-11-23T09:26:53.123456Z``), the format of
    structlog's ``TimeStamper(fmt="iso", utc=True)`` at a fifth of its cost: the date and time of day are
    formatted once a second."""

    def __init__(self) -> None:
        self._second = -1
        self._prefix = ""

    def __call__(self, logger: object, name: str, event_dict: dict) -> dict:
        now = time.time()
        second = int(now)
        if second != self._second:
            self._second, self._prefix = second, datetime.fromtimestamp(second, timezone.utc).strftime(
                "%Y-%m-%dT%H:%M:%S")
        event_dict["timestamp"] = f"{self._prefix}.{int((now - second) * 1_000_000):06d}Z"
        return event_dict


class _TextAsBytes:
    """A text stream (io.StringIO, pytest's capture) that accepts the bytes of JSON lines."""

    def __init__(self, stream: TextIO) -> None:
        self._stream = stream

    def write(self, data: bytes) -> None:
        self._stream.write(data.decode())

    def flush(self) -> None:
        self._stream.flush()


def _orjson_dumps(value: object, default: object = None) -> bytes:
    return orjson.dumps(value, default=str)


def configure_logging(fmt: Literal["auto", "json", "console"] = "auto", level: str = "info",
                      stream: TextIO | None = None, *, cache: bool = True) -> None:
    """Set up structlog (and route the standard library's logging, e.g. aiohttp's, through the same output).

    ``cache=False`` lets a later call reconfigure loggers already used (tests do that).
    """
    stream = stream or sys.stdout
    if fmt == "auto":
        fmt = "console" if stream.isatty() else "json"
    if fmt == "console":
        renderer = structlog.dev.ConsoleRenderer(colors=stream.isatty())
        factory = lambda *args: SafePrintLogger(stream)  # noqa: E731
    else:  # the hot path: orjson straight to the byte stream, about twice as fast as json + print
        renderer = structlog.processors.JSONRenderer(serializer=_orjson_dumps)
        writer = LineWriter(getattr(stream, "buffer", None) or _TextAsBytes(stream))
        factory = lambda *args: writer  # noqa: E731
    structlog.configure(
        processors=[
            structlog.contextvars.merge_contextvars,
            structlog.processors.add_log_level,
            UtcTimestamp(),
            structlog.processors.format_exc_info,
            renderer,
        ],
        wrapper_class=structlog.make_filtering_bound_logger(LEVELS[level]),
        logger_factory=factory,
        cache_logger_on_first_use=cache,
    )
    logging.basicConfig(level=max(LEVELS[level], logging.WARNING), stream=stream,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s", force=True)

