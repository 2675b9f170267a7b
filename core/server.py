"""Running the server: one process, or a supervisor of several workers on one port.

Shutdown (SIGTERM or SIGINT), in this order, so nothing accepted is lost:

1. ``/readyz`` starts failing (``draining``) and, for ``[server] drain_seconds``,
   callbacks are still accepted while a load balancer notices;
2. the listening socket closes and idle keep-alive connections are closed;
3. callbacks in flight finish (up to ``shutdown_timeout_seconds``);
4. plugins shut down in reverse order: background work stops at a safe point,
   pools close (each plugin within ``manager.SHUTDOWN_SECONDS``; one that raises or hangs is logged).

A signal while the plugins start stops the start-up (``stopped_while_starting``).  Further signals while
stopping change nothing (with ``--workers`` each worker gets the supervisor's and, from a terminal or
systemd, the process group's): what bounds a stop is each plugin's ``SHUTDOWN_SECONDS``.

Workers (``--workers N``): the supervisor starts N copies of ``callgate serve``
binding the same port with SO_REUSEPORT, so the kernel spreads connections; state
is shared only through the plugins' stores.  It forwards SIGTERM/SIGINT to
them, restarts a worker that dies unexpectedly (a bounded number of times), and
gives them one Prometheus multiprocess directory so ``/metrics`` counts all.
"""

from __future__ import annotations

import asyncio
import gc
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from typing import Any

import structlog
from aiohttp import web
from aiohttp.http_exceptions import HttpProcessingError

from .app import create_app, create_ops_app
from .config import Config, ConfigError, ServerConfig
from .connections import HttpRunner
from .loops import loop_name
from .manager import SHUTDOWN_SECONDS
from .metrics import MULTIPROC_ENV
from .state import LIFECYCLE, PLUGINS

log = structlog.get_logger("callgate")
STOP_SIGNALS = (signal.SIGTERM, signal.SIGINT)
MAX_RESTARTS_PER_MINUTE = 5


async def serve(config: Config, host: str, port: int, *, reuse_port: bool = False) -> None:
    """Serve until SIGTERM/SIGINT, then drain and stop as the module docstring says."""
    server = config.server
    app = create_app(config)
    limits = http_limits(server)
    # The callback port never inflates a body (a signature covers the bytes sent; one with a Content-Encoding is
    # refused 415 by the handlers); the ops port's pages get theirs inflated, as aiohttp does by default.
    runners: list[web.AppRunner] = [HttpRunner(app, access_log=None, shutdown_timeout=server.shutdown_timeout_seconds,
                                               auto_decompress=False, **limits)]
    if server.ops_port:
        runners.append(HttpRunner(create_ops_app(app), access_log=None, **limits))
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in STOP_SIGNALS:
        loop.add_signal_handler(sig, stop.set)
    try:
        # A signal while the plugins start (one may wait long for its database) stops the start-up at once.
        starting = asyncio.ensure_future(_start(runners, host, port, reuse_port, server))
        stopping = asyncio.ensure_future(stop.wait())
        await asyncio.wait({starting, stopping}, return_when=asyncio.FIRST_COMPLETED)
        stopping.cancel()
        if not starting.done():
            starting.cancel()             # a plugin's startup() that ignores it is left behind after SHUTDOWN_SECONDS
            await asyncio.wait({starting}, timeout=SHUTDOWN_SECONDS)
            log.warning("stopped_while_starting", pid=os.getpid())
            return
        port = starting.result()
        frozen = freeze_startup_objects()
        log.info("listening", url=f"http://{host}:{port}{server.callback_path}",
                 webhook_url=f"http://{host}:{port}{server.webhook_path}", pid=os.getpid(),
                 plugins=[p.name for p in app[PLUGINS].loaded], applications=len(config.applications),
                 services=len(config.services), event_loop=loop_name(loop),
                 ops=f"http://{server.ops_host}:{server.ops_port}" if server.ops_port else "same port",
                 gc_frozen=frozen)
        await stop.wait()
        app[LIFECYCLE].draining = True
        log.info("draining", seconds=server.drain_seconds)
        await asyncio.sleep(server.drain_seconds)
    finally:
        for runner in runners:            # the callback app first: /readyz keeps saying "draining"
            await runner.cleanup()
        for sig in STOP_SIGNALS:
            loop.remove_signal_handler(sig)
    log.info("stopped", pid=os.getpid())


async def _start(runners: list[web.AppRunner], host: str, port: int, reuse_port: bool, server: ServerConfig) -> int:
    """Set the applications up (the callback app's setup starts the plugins) and listen; returns the callback port."""
    for runner in runners:
        await runner.setup()
    port = await listen(runners[0], host, port, reuse_port, "[server] port or host (callgate serve --port/--host)")
    if server.ops_port:
        await listen(runners[1], server.ops_host, server.ops_port, reuse_port, "[server] ops_port or ops_host")
    return port


def freeze_startup_objects() -> int:
    """Collect once, then move every object alive now out of the garbage collector's sight; returns how many.

    Called once the server has started (plugins started, sockets listening).  What is alive then (modules,
    classes, functions, configuration, the plugins' tables) lives as long as the process, but CPython's full
    (generation 2) collection visits every tracked object each time it runs, and under load it runs every
    second or two: in the full stack on v2, 60-90 ms with the event loop stopped.  Frozen (``gc.freeze``),
    those objects are skipped; a full collection then visits only what callbacks and background work made
    since (1-27 ms measured, busy machine).  Objects made later are collected as before.  (The v2 full
    stack's p99 tail turned out not to be these collections but the hangups' durable writes: it stayed the
    same with full collections switched off; docs/performance.md.)
    """
    gc.collect()
    gc.freeze()
    return gc.get_freeze_count()


async def listen(runner: web.AppRunner, host: str, port: int, reuse_port: bool, setting: str) -> int:
    """Start listening on host:port and return the port (the one the system chose for port 0, which the
    ``listening`` log line then names); an address that cannot be used (in use, not local, a privileged port, a
    host that does not resolve) is a ConfigError of one line naming the address and the setting to change, not a
    traceback."""
    try:
        await web.TCPSite(runner, host, port, reuse_port=reuse_port).start()
    except OSError as exc:
        reason = exc.strerror or str(exc)         # a host that does not resolve: "Name or service not known"
        raise ConfigError(f"cannot listen on {host}:{port}: {reason}; change {setting}") from None
    return int(runner.addresses[-1][1])


def http_limits(server: ServerConfig) -> dict[str, Any]:
    """aiohttp's connection settings from ``[server]``: what a slow or oversized request may hold.

    * ``keepalive_timeout``: aiohttp arms it when a connection opens and after each answer, and
      closes the connection when it fires while no whole request head has arrived: so it bounds
      both idle keep-alive connections and slow request heads (slowloris).
    * ``lingering_time``: after an answer sent without reading the whole body (413, 415, ...),
      aiohttp reads and discards the rest for this long before closing; the body timeout bounds it.
    * the request line, header lines and header count are limited by the parser (400, closed).
    """
    return {
        "keepalive_timeout": server.keepalive_timeout_seconds,
        "lingering_time": server.body_timeout_seconds,
        "max_line_size": server.max_header_bytes,
        "max_field_size": server.max_header_bytes,
        "max_headers": server.max_headers,
        "logger": HttpLayerLog(),
    }


class HttpLayerLog:
    """The logger aiohttp's connection handler uses, in callgate's structured log.

    A request the HTTP parser refuses (a line over the limit, too many headers, malformed HTTP)
    is the client's error: one warning with the status and the kind of error, never the
    exception's text (aiohttp puts the start of the offending line, e.g. an Authorization
    header, in it).  Anything else is a server error, logged with its traceback.
    """

    def debug(self, *args: object, **kwargs: object) -> None:
        pass

    info = debug

    def warning(self, msg: str, *args: object, **kwargs: object) -> None:
        log.warning("http_warning", message=_format(msg, args))

    def exception(self, msg: str, *args: object, exc_info: object = None, **kwargs: object) -> None:
        if isinstance(exc_info, HttpProcessingError) and 400 <= (exc_info.code or 0) < 500:
            log.warning("http_request_refused", status=exc_info.code, error=type(exc_info).__name__,
                        remote=args[0] if args else None)
        else:
            log.error("http_error", message=_format(msg, args),
                      exc_info=exc_info if isinstance(exc_info, BaseException) else True)

    error = exception


def _format(msg: str, args: tuple[object, ...]) -> str:
    try:
        return msg % args if args else str(msg)
    except (TypeError, ValueError):
        return str(msg)


def supervise(worker_command: list[str], workers: int) -> int:
    """Run ``workers`` copies of ``worker_command`` until SIGTERM/SIGINT; returns the exit status."""
    own_dir = None
    env = dict(os.environ)
    if not env.get(MULTIPROC_ENV):
        own_dir = env[MULTIPROC_ENV] = tempfile.mkdtemp(prefix="callgate-metrics-")
    stopping = False
    children: dict[int, subprocess.Popen] = {}
    restarts: list[float] = []

    def start(slot: int) -> None:
        children[slot] = subprocess.Popen(worker_command, env=env)

    def forward(signum: int, _frame: object) -> None:
        nonlocal stopping
        stopping = True
        for child in children.values():
            if child.poll() is None:
                child.send_signal(signum)

    previous = {sig: signal.signal(sig, forward) for sig in STOP_SIGNALS}
    status = 0
    try:
        for slot in range(workers):
            start(slot)
        log.info("workers_started", workers=workers, pids=[c.pid for c in children.values()])
        while children:
            time.sleep(0.2)
            for slot, child in list(children.items()):
                code = child.poll()
                if code is None:
                    continue
                del children[slot]
                if stopping:
                    status = max(status, code)
                    continue
                now = time.monotonic()
                restarts[:] = [t for t in restarts if now - t < 60] + [now]
                if code == 2 or len(restarts) > MAX_RESTARTS_PER_MINUTE:
                    log.error("worker_failed_stopping_all", pid=child.pid, exit_code=code)
                    forward(signal.SIGTERM, None)
                    status = max(status, code or 1)
                    continue
                log.warning("worker_died_restarting", pid=child.pid, exit_code=code)
                start(slot)
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
        if own_dir:
            shutil.rmtree(own_dir, ignore_errors=True)
    return status


def worker_command(config_path: str | None, host: str, port: int) -> list[str]:
    """The command line of one worker: ``callgate serve`` on a shared port."""
    command = [sys.executable, "-m", "callgate", "serve", "--host", host, "--port", str(port), "--reuse-port"]
    return command + (["--config", config_path] if config_path else [])
