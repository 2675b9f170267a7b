"""The per-callback log line written without structlog's processor chain (callgate.logs.info):
the same bytes as structlog's, the bound context included, and structlog's way whenever
structlog is not configured as configure_logging left it."""

import asyncio
import io
import json
import logging
import os
import subprocess
import sys
from datetime import datetime, timezone

import pytest
import structlog
from structlog.contextvars import bind_contextvars, get_contextvars, reset_contextvars
from structlog.testing import capture_logs

from callgate import logs
from callgate.logs import UtcTimestamp, configure_logging

FIELDS = {"status": 200, "decision": "allowed by default, route sweden from router -> connectPstn", "problem": None,
          "ms": 0.731, "plugins": [{"plugin": "router", "hook": "route_call", "verdict": "route sweden", "ms": 0.012}]}
NOW_NS = 1_795_000_000_123_456_789


@pytest.fixture
def json_stream(monkeypatch):
    """JSON lines at level info into a StringIO, with a fixed clock; structlog reset afterwards."""
    monkeypatch.setattr(logs.time, "time_ns", lambda: NOW_NS)
    stream = io.StringIO()
    configure_logging("json", "info", stream=stream, cache=False)
    yield stream
    structlog.reset_defaults()


def lines(stream):
    return stream.getvalue().splitlines()


def test_the_direct_line_is_structlogs_line_byte_for_byte(json_stream, monkeypatch):
    tokens = bind_contextvars(tenant="acme", status="from the context", ignored=None)
    callid, event = logs.CALLID.set("call-1"), logs.SINCH_EVENT.set("ice")
    try:
        with monkeypatch.context() as patched:
            patched.setattr(logs, "_log", None)                 # the direct path, not structlog's
            logs.info("callback", **FIELDS)
        structlog.get_logger("callgate").info("callback", **FIELDS)
    finally:
        logs.SINCH_EVENT.reset(event)
        logs.CALLID.reset(callid)
        reset_contextvars(**tokens)
    direct, chain = lines(json_stream)
    assert direct == chain
    line = json.loads(direct)
    assert line["callid"] == "call-1" and line["sinch_event"] == "ice" and line["tenant"] == "acme"
    assert line["status"] == 200                            # a field wins over the context, as merge_contextvars
    assert line["ignored"] is None and line["level"] == "info" and line["event"] == "callback"
    assert line["timestamp"] == "2026-11-18T11:06:40.123456Z"
    assert list(line)[:6] == [*FIELDS, "event"]


def test_callid_and_sinch_event_are_structlogs_own_context(json_stream):
    callid, event = logs.CALLID.set("call-2"), logs.SINCH_EVENT.set("dice")
    try:
        assert get_contextvars() == {"callid": "call-2", "sinch_event": "dice"}
        inner = bind_contextvars(callid="call-3")              # a plugin rebinding it: the same variable
        assert inner["callid"].var is logs.CALLID
        structlog.get_logger().info("plugin_line")
        reset_contextvars(**inner)
        logs.info("callback")
    finally:
        logs.SINCH_EVENT.reset(event)
        logs.CALLID.reset(callid)
    assert get_contextvars() == {}
    plugin, callback = (json.loads(line) for line in lines(json_stream))
    assert (plugin["callid"], plugin["sinch_event"]) == ("call-3", "dice")
    assert (callback["callid"], callback["sinch_event"]) == ("call-2", "dice")


def test_unbound_and_cleared_context_is_left_out(json_stream):
    tokens = bind_contextvars(tenant="acme")
    structlog.contextvars.unbind_contextvars("tenant")
    try:
        logs.info("callback", status=200)
    finally:
        reset_contextvars(**tokens)
    assert "tenant" not in json.loads(lines(json_stream)[0])


def test_the_configured_level_applies(monkeypatch):
    stream = io.StringIO()
    configure_logging("json", "warning", stream=stream, cache=False)
    try:
        logs.info("callback", **FIELDS)
        structlog.get_logger().warning("kept")
    finally:
        structlog.reset_defaults()
    assert [json.loads(line)["event"] for line in lines(stream)] == ["kept"]


def test_the_console_format_goes_through_structlog():
    stream = io.StringIO()
    configure_logging("console", "info", stream=stream, cache=False)
    try:
        logs.info("callback", status=200)
    finally:
        structlog.reset_defaults()
    out = stream.getvalue()
    assert "callback" in out and "status" in out and not out.startswith("{")


def test_structlog_configured_since_wins(json_stream):
    with capture_logs() as captured:                         # edits the processor list in place
        logs.info("callback", status=200)
    assert captured == [{"event": "callback", "status": 200, "log_level": "info"}]
    structlog.reset_defaults()
    other = io.StringIO()
    structlog.configure(logger_factory=structlog.PrintLoggerFactory(other))
    logs.info("callback", status=201)
    assert lines(json_stream) == [] and "callback" in other.getvalue()


def test_a_value_orjson_cannot_encode_never_breaks_the_line(json_stream):
    tokens = bind_contextvars(limits={1: 2}, huge=1 << 70)
    try:
        logs.info("callback", status=200)
    finally:
        reset_contextvars(**tokens)
    line = json.loads(lines(json_stream)[0])
    assert line["status"] == 200 and line["limits"] == "{1: 2}" and line["huge"] == str(1 << 70)


def test_exc_info_is_formatted_as_structlog_does(json_stream):
    try:
        raise RuntimeError("boom")
    except RuntimeError as exc:
        logs.info("callback", exc_info=exc)
        structlog.get_logger().info("callback", exc_info=exc)
    direct, chain = lines(json_stream)
    assert direct == chain and "RuntimeError: boom" in json.loads(direct)["exception"]


def test_timestamp_is_iso_utc_with_microseconds(monkeypatch):
    stamper = UtcTimestamp()
    for ns in (NOW_NS, NOW_NS + 876_543_000, NOW_NS + 1_000_000_000, NOW_NS - 5_000_000_000, 0, 999_999_999):
        monkeypatch.setattr(logs.time, "time_ns", lambda ns=ns: ns)
        expected = datetime.fromtimestamp(ns // 1000 / 1_000_000, timezone.utc)
        assert stamper.now() == expected.strftime("%Y-%m-%dT%H:%M:%S.%fZ"), ns


class RawStream(io.RawIOBase):
    """What ``sys.stdout.buffer`` is with PYTHONUNBUFFERED=1: every ``write`` goes straight to the file."""

    def __init__(self) -> None:
        self.writes: list[bytes] = []

    def writable(self) -> bool:
        return True

    def write(self, data) -> int:
        self.writes.append(bytes(data))
        return len(data)


async def test_the_lines_of_one_loop_iteration_are_one_write_even_unbuffered():
    raw = RawStream()
    writer = logs.LineWriter(raw)
    for line in (b"1\n", b"2\n", b"3\n"):
        writer.write_line(line)
    assert raw.writes == []                      # kept until the loop's next iteration
    await asyncio.sleep(0)
    assert raw.writes == [b"1\n2\n3\n"]
    writer.write_line(b"4\n")
    await asyncio.sleep(0)
    assert raw.writes == [b"1\n2\n3\n", b"4\n"]


@pytest.mark.parametrize("buffered", [False, True])
async def test_a_burst_is_written_in_whole_lines_no_write_longer_than_a_pipe_takes_whole(buffered):
    """The workers of ``serve --workers`` share one stdout: a write longer than PIPE_BUF may be cut up and another
    worker's lines land inside one of ours (seen: two JSON objects on one line).  So a burst goes out in writes of
    whole lines, each at most ``ATOMIC_BYTES``, whether the stream is raw or buffered (``sys.stdout.buffer``)."""
    raw = RawStream()
    writer = logs.LineWriter(io.BufferedWriter(raw) if buffered else raw)
    lines = [b'{"event": "callback", "n": %d, "pad": "%s"}\n' % (n, b"x" * (n % 400)) for n in range(100)]
    long_line = b'{"event": "long", "pad": "' + b"y" * 6000 + b'"}\n'
    for line in [*lines[:50], long_line, *lines[50:]]:
        writer.write_line(line)
    await asyncio.sleep(0)
    assert b"".join(raw.writes) == b"".join([*lines[:50], long_line, *lines[50:]])       # all, in order
    assert len(raw.writes) > 2 and all(write.endswith(b"\n") for write in raw.writes)
    assert [write for write in raw.writes if len(write) > logs.ATOMIC_BYTES] == [long_line]   # only the one too long


def test_outside_a_loop_a_line_is_written_at_once():
    raw = RawStream()
    logs.LineWriter(raw).write_line(b"now\n")
    assert raw.writes == [b"now\n"]


def test_a_line_kept_by_a_loop_that_stopped_is_written_by_the_next_one():
    raw = RawStream()
    writer = logs.LineWriter(raw)
    loop = asyncio.new_event_loop()
    loop.call_soon(writer.write_line, b"a\n")    # schedules the write after loop.stop: it never runs
    loop.call_soon(loop.stop)
    loop.run_forever()
    loop.close()
    assert raw.writes == []

    async def later():
        writer.write_line(b"b\n")
        await asyncio.sleep(0)
    asyncio.run(later())
    assert raw.writes == [b"a\nb\n"]


def test_lines_still_kept_at_exit_are_written():
    code = ("import asyncio, sys\n"
            "from callgate import logs\n"
            "writer = logs.LineWriter(sys.stdout.buffer)\n"
            "loop = asyncio.new_event_loop()\n"
            "loop.call_soon(writer.write_line, b'last words\\n')\n"
            "loop.call_soon(loop.stop)\n"
            "loop.run_forever()\n")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, env={**os.environ, "PYTHONUNBUFFERED": "1"},
                          timeout=60)
    assert done.returncode == 0, done.stderr
    assert done.stdout == b"last words\n"


def test_standard_library_records_are_json_lines_too(json_stream):
    """asyncpg's and aiohttp's own warnings, traceback included, as one JSON line each among callgate's."""
    tokens = bind_contextvars(callid="call-1")
    try:
        try:
            raise ConnectionRefusedError("Connect call failed ('127.0.0.1', 5432)")
        except ConnectionRefusedError:
            logging.getLogger("asyncpg.pool").warning("Failed to restore the pool connection floor; %s", "retrying",
                                                      exc_info=True)
        logging.getLogger("aiohttp.server").info("below the standard library's level: dropped")
    finally:
        reset_contextvars(**tokens)
    [line] = lines(json_stream)
    entry = json.loads(line)
    assert entry["event"] == "Failed to restore the pool connection floor; retrying"
    assert (entry["logger"], entry["level"], entry["callid"]) == ("asyncpg.pool", "warning", "call-1")
    assert entry["timestamp"] == "2026-11-18T11:06:40.123456Z"
    assert entry["exception"].startswith("Traceback") and "ConnectionRefusedError" in entry["exception"]
