"""Structured logs: JSON lines in production, readable lines in a terminal.

The callback handler binds ``callid`` and ``sinch_event`` with structlog's
contextvars, so every line logged while a callback is handled (by the core or
a plugin using ``structlog.get_logger()``) carries them.  Nothing here ever
logs request headers or configuration values, so secrets cannot reach the logs.

The one line per callback is the hot path: ``info`` writes it as structlog would
(same keys, same values, same bytes) without structlog's processor chain when the
lines are JSON; see ``_JsonLines``.
"""

from __future__ import annotations

import asyncio
import atexit
import contextvars
import logging
import select
import sys
import time
import weakref
from collections.abc import Callable, MutableMapping
from datetime import datetime, timezone
from typing import Any, BinaryIO, Literal, TextIO

import orjson
import structlog
from structlog.contextvars import STRUCTLOG_KEY_PREFIX, bind_contextvars, reset_contextvars

from .caches import ClearingCache

LEVELS = {"debug": logging.DEBUG, "info": logging.INFO, "warning": logging.WARNING, "error": logging.ERROR}


class _DropUnwritable:
    """A log line that cannot be written (closed or full stream) is dropped: logging never breaks an answer."""

    def msg(self, message) -> None:
        try:
            super().msg(message)  # type: ignore[misc]  # a mixin: the logger class it is mixed into has msg
        except (OSError, ValueError):
            pass

    log = debug = info = warn = warning = err = error = critical = exception = fatal = msg


class SafePrintLogger(_DropUnwritable, structlog.PrintLogger):
    """Lines as text (the console renderer)."""


#: The most bytes a write() puts into a pipe whole (POSIX's PIPE_BUF: 4096 on Linux).  The workers of ``serve
#: --workers`` share the supervisor's stdout: a longer write may be cut up, and another worker's lines land inside a
#: line, so the lines kept are written in writes of whole lines no longer than this.
ATOMIC_BYTES = getattr(select, "PIPE_BUF", 512)


class LineWriter:
    """JSON lines (bytes) to a binary stream, written once per event-loop iteration.

    Inside a running event loop a line is kept, and the first line of an iteration schedules one
    write for all the lines kept before the loop looks at its sockets again: one ``write`` system
    call (per :data:`ATOMIC_BYTES`) for a burst of callbacks instead of one each, even when the stream itself is unbuffered
    (``PYTHONUNBUFFERED=1``, usual in containers, makes ``sys.stdout.buffer`` a raw file: a system
    call per ``write``).  Outside a loop every line is written at once, and lines still kept when
    the process exits are written then.  A line that cannot be written (closed or full stream) is
    dropped: logging never breaks an answer.
    """

    def __init__(self, stream: BinaryIO | _TextAsBytes) -> None:
        self._stream = stream
        self._kept: list[bytes] = []
        self._flush_loop: asyncio.AbstractEventLoop | None = None    # where the write of _kept is scheduled
        _WRITERS.add(self)

    def msg(self, message: bytes) -> None:
        self.write_line(message + b"\n")

    def write_line(self, line: bytes) -> None:
        """``line``, ending with its newline."""
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:                 # no loop here (start-up, a plugin's thread): written now
            self._write(line)
            return
        self._kept.append(line)
        if self._flush_loop is not loop:     # (a loop closed before its scheduled write ran: this one writes)
            self._flush_loop = loop
            loop.call_soon(self.flush)

    def flush(self) -> None:
        """Write the lines kept, in writes of whole lines of at most :data:`ATOMIC_BYTES` each (a longer line alone)."""
        self._flush_loop = None
        lines, self._kept = self._kept, []
        chunk: list[bytes] = []
        size = 0
        for line in lines:
            if chunk and size + len(line) > ATOMIC_BYTES:
                self._write(b"".join(chunk))
                chunk, size = [], 0
            chunk.append(line)
            size += len(line)
        self._write(b"".join(chunk))

    def _write(self, data: bytes) -> None:
        try:
            if data:
                self._stream.write(data)
            self._stream.flush()
        except (OSError, ValueError):
            pass

    log = debug = info = warn = warning = err = error = critical = exception = fatal = msg


#: Every LineWriter still in use, for the lines they keep when the process exits.
_WRITERS: weakref.WeakSet[LineWriter] = weakref.WeakSet()


@atexit.register
def _flush_writers() -> None:
    for writer in list(_WRITERS):
        writer.flush()


class UtcTimestamp:
    """``timestamp`` as ISO 8601 UTC with microseconds (``2026-11-23T09:26:53.123456Z``), the format of
    structlog's ``TimeStamper(fmt="iso", utc=True)`` at a fraction of its cost: the date and time of day
    are formatted once a second."""

    def __init__(self) -> None:
        self._second_us = -1 << 62            # the second formatted in _prefix, in microseconds
        self._prefix = ""                     # "2026-11-23T09:26:53."

    def __call__(self, logger: object, name: str, event_dict: MutableMapping[str, Any]) -> MutableMapping[str, Any]:
        event_dict["timestamp"] = self.now()
        return event_dict

    def now(self) -> str:
        us = time.time_ns() // 1000
        micro = us - self._second_us
        if not 0 <= micro < 1_000_000:        # another second (or the clock was set back)
            second, micro = divmod(us, 1_000_000)
            self._second_us = us - micro
            self._prefix = datetime.fromtimestamp(second, timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.")
        # str(1_000_000 + micro)[1:] is f"{micro:06d}" (0 <= micro < 1_000_000) for less
        return f"{self._prefix}{str(1_000_000 + micro)[1:]}Z"


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


def _structlog_var(key: str) -> contextvars.ContextVar:
    """structlog's own ContextVar for ``key``: the one ``bind_contextvars(key=...)`` sets (taken from
    the token it returns; structlog keeps one variable per key for the life of the process)."""
    tokens = bind_contextvars(**{key: None})
    reset_contextvars(**tokens)
    return tokens[key].var


#: What ``bind_contextvars(callid=..., sinch_event=...)`` sets, for the callback handler: ``set`` and
#: ``reset`` on these are the same binding at a fraction of the cost (no keyword dict, no f-strings).
CALLID = _structlog_var("callid")
SINCH_EVENT = _structlog_var("sinch_event")

_log = structlog.get_logger("callgate")


def _encodable(line: dict) -> dict:
    """``line`` with each value orjson cannot encode (a dict with non-string keys, an int beyond 64 bits,
    a cycle...) replaced by its ``repr``, so that such a value bound by a plugin costs it, not the line."""
    out = {}
    for key, value in line.items():
        try:
            orjson.dumps(value, default=str)
        except orjson.JSONEncodeError:
            try:
                value = repr(value)
            except Exception:
                value = f"<{type(value).__name__}>"
        out[key] = value
    return out


class _JsonLines:
    """``log.info(event, **fields)`` written straight to the ``LineWriter``, for JSON lines.

    The same bytes as structlog's chain that ``configure_logging`` installs, built by the same
    steps: the fields, then ``event``, then the structlog contextvars bound at that moment (as
    ``merge_contextvars``: a field already there wins), ``level``, ``timestamp`` (the chain's own
    ``UtcTimestamp``), ``format_exc_info`` (only when there is an ``exc_info``), then orjson as
    ``_orjson_dumps``.  What it skips is structlog's bound logger and the processor calls: less
    than half the instructions per line.

    Used only while structlog still has the configuration ``configure_logging`` installed: after
    another ``structlog.configure``, ``structlog.reset_defaults``, or inside
    ``structlog.testing.capture_logs`` (which edits the processor list in place), the line goes
    through structlog as any other.
    """

    def __init__(self, writer: LineWriter, enabled: bool, stamper: UtcTimestamp, processors: list) -> None:
        self._writer = writer
        self._enabled = enabled                   # the configured level lets info lines through
        self._stamp = stamper.now
        self._processors = processors             # the list handed to structlog.configure...
        self._expected = list(processors)         # ...and what it held then
        config = structlog.get_config()
        self._wrapper_class, self._logger_factory = config["wrapper_class"], config["logger_factory"]
        # ContextVar -> its key in log lines ("" for a variable that is not structlog's): the name's
        # prefix test and slice of merge_contextvars once per variable instead of once per line.
        self._keys = ClearingCache(1024)        # variables created by the thousand: keep a bound

    def info(self, event: str, /, **fields: object) -> None:
        config = structlog.get_config()
        processors = config["processors"]
        if not (processors is self._processors and processors == self._expected
                and config["wrapper_class"] is self._wrapper_class
                and config["logger_factory"] is self._logger_factory):
            _log.info(event, **fields)            # structlog was configured since: it logs
            return
        if not self._enabled:
            return
        line = fields
        line["event"] = event
        keys = self._keys
        for var, value in contextvars.copy_context().items():
            key = keys.get(var)
            if key is None:
                name = var.name
                key = keys.put(var, name[len(STRUCTLOG_KEY_PREFIX):] if name.startswith(STRUCTLOG_KEY_PREFIX) else "")
            if key and value is not Ellipsis:
                line.setdefault(key, value)
        line["level"] = "info"
        line["timestamp"] = self._stamp()
        if "exc_info" in line:
            line = dict(structlog.processors.format_exc_info(None, "info", line))
        try:
            data = orjson.dumps(line, default=str, option=orjson.OPT_APPEND_NEWLINE)
        except orjson.JSONEncodeError:            # structlog would raise here; this line never does
            data = orjson.dumps(_encodable(line), default=str, option=orjson.OPT_APPEND_NEWLINE)
        self._writer.write_line(data)


class _RecordLines(logging.Handler):
    """The standard library's records (aiohttp's, asyncpg's...) as JSON lines, through the ``LineWriter``
    structlog writes to: the same keys as structlog's lines (``event``, ``level``, ``timestamp``, the bound
    context, ``exception`` with the traceback) plus ``logger``, never a multi-line traceback between them."""

    def __init__(self, writer: LineWriter, stamper: UtcTimestamp) -> None:
        super().__init__()
        self._writer = writer
        self.setFormatter(structlog.stdlib.ProcessorFormatter(
            foreign_pre_chain=[structlog.contextvars.merge_contextvars, structlog.processors.add_log_level,
                               structlog.stdlib.add_logger_name, stamper],
            processors=[structlog.stdlib.ProcessorFormatter.remove_processors_meta,
                        structlog.processors.format_exc_info,
                        structlog.processors.JSONRenderer(serializer=_orjson_text)]))

    def emit(self, record: logging.LogRecord) -> None:
        try:
            line = self.format(record).encode() + b"\n"
        except Exception:
            self.handleError(record)
            return
        self._writer.write_line(line)


def _orjson_text(value: object, default: object = None) -> str:
    return _orjson_dumps(value).decode()


def _structlog_info(event: str, /, **fields: object) -> None:
    _log.info(event, **fields)


#: ``structlog.get_logger().info(event, **fields)``, for the line logged per callback.
#: ``configure_logging`` sets it: ``_JsonLines.info`` when lines are JSON, else structlog's;
#: so call it as ``logs.info(...)``, not through a name imported before.
info = _structlog_info


def configure_logging(fmt: Literal["auto", "json", "console"] = "auto", level: str = "info",
                      stream: TextIO | None = None, *, cache: bool = True) -> None:
    """Set up structlog (and route the standard library's logging, e.g. aiohttp's, through the same output:
    as JSON lines too when the lines are JSON).

    ``cache=False`` lets a later call reconfigure loggers already used (tests do that).
    """
    global info
    stream = stream or sys.stdout
    if fmt == "auto":
        fmt = "console" if stream.isatty() else "json"
    stamper = UtcTimestamp()
    renderer: Any
    factory: Callable[..., Any]
    if fmt == "console":
        renderer = structlog.dev.ConsoleRenderer(colors=stream.isatty())
        factory = lambda *args: SafePrintLogger(stream)  # noqa: E731
    else:  # the hot path: orjson straight to the byte stream, about twice as fast as json + print
        renderer = structlog.processors.JSONRenderer(serializer=_orjson_dumps)
        writer = LineWriter(getattr(stream, "buffer", None) or _TextAsBytes(stream))
        factory = lambda *args: writer  # noqa: E731
    processors: list[Any] = [
        structlog.contextvars.merge_contextvars,
        structlog.processors.add_log_level,
        stamper,
        structlog.processors.format_exc_info,
        renderer,
    ]
    structlog.configure(
        processors=processors,
        wrapper_class=structlog.make_filtering_bound_logger(LEVELS[level]),
        logger_factory=factory,
        cache_logger_on_first_use=cache,
    )
    info = _structlog_info if fmt == "console" else _JsonLines(writer, LEVELS[level] <= logging.INFO, stamper,
                                                               processors).info
    if fmt == "console":
        records: logging.Handler = logging.StreamHandler(stream)
        records.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    else:
        records = _RecordLines(writer, stamper)
    logging.basicConfig(level=max(LEVELS[level], logging.WARNING), handlers=[records], force=True)
