"""The console plugin: records every signed callback (``callback_answered``) and serves the console's
pages on the ops port (``register_ops_routes``).

* ``callback_answered`` only turns the exchange into its row and appends it to a bounded queue
  (:mod:`.recorder`): the answer never waits for the store and is never changed by it.
* ``startup`` opens the store (creating and migrating it) and starts two background tasks: the
  flush (every ``flush_interval_ms``) and the purge (retention by age and count, every minute).
  It refuses to start when the ops application was not built (``[server] ops_port`` is 0): the
  console's pages are never served on the public callback port.
* Dry runs (``callgate simulate``): ``startup(dry_run=True)`` opens nothing and starts nothing; the
  console records nothing (``simulate`` serves no request, so the hook is not called either).
* ``collect_metrics``: the queue's depth and what was recorded, dropped (queue full), lost (a failed
  write) and how many writes failed, as ``callgate_plugin_gauge{plugin="console", name=...}``.
"""

from __future__ import annotations

import asyncio
import os
import time

import structlog
from aiohttp import web

from callgate import PluginError, hookimpl
from callgate.exchange import Exchange
from callgate.storage import redact

from . import views
from .access import Access
from .config import MIN_TOKEN_CHARS, TOKEN_ENV, ConsoleConfig
from .live import LiveFeed
from .recorder import Recorder
from .state import ConsoleState
from .store import ConsoleStore

log = structlog.get_logger("callgate.console")
NAME = "console"
#: How often the retention purge runs in each instance.
PURGE_INTERVAL_SECONDS = 60.0


class Console:
    """An operator console on the ops port: every callback, what callgate answered, and why."""

    Config = ConsoleConfig

    def __init__(self, config: ConsoleConfig) -> None:
        token = os.environ.get(TOKEN_ENV, "")
        state = None
        if not token:
            state = "is not set"
        elif len(token) < MIN_TOKEN_CHARS:
            state = f"is shorter than {MIN_TOKEN_CHARS} characters"
        elif token != token.strip():
            state = "begins or ends with whitespace, which an Authorization header does not keep"
        if state is not None:
            raise PluginError(NAME, f"the environment variable {TOKEN_ENV} {state}: set it to the console's access "
                                    f"token (at least {MIN_TOKEN_CHARS} characters, e.g. from "
                                    f"`python3 -c 'import secrets; print(secrets.token_urlsafe(24))'`)")
        self.config = config
        self.state = ConsoleState(config, Access(token, config.session_hours * 3600), Recorder(config.queue_limit),
                                  LiveFeed(self._store))
        self._stopping = asyncio.Event()
        self._tasks: list[asyncio.Task[None]] = []

    def _store(self) -> ConsoleStore | None:
        return self.state.store

    # --- lifecycle -----------------------------------------------------------------------------

    async def startup(self, dry_run: bool = False) -> None:
        if dry_run:
            return
        url = self.config.database_url.get_secret_value()
        try:
            self.state.store = await ConsoleStore.open(url)
        except Exception as exc:
            raise PluginError(NAME, f"cannot open the console's store {redact(url)}: {exc}") from None
        self._stopping = asyncio.Event()
        recorder = self.state.recorder
        self._tasks = [
            asyncio.create_task(recorder.run(self._store, self.config.flush_interval_ms / 1000, self._stopping),
                                name="console:flush"),
            asyncio.create_task(self._purge_forever(), name="console:purge"),
        ]
        log.info("console_started", database=redact(url),
                 retention_hours=self.config.retention_hours, max_callbacks=self.config.max_callbacks)

    async def shutdown(self) -> None:
        self._stopping.set()
        await self.state.feed.close()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        self._tasks = []
        if self.state.store is not None:
            await self.state.store.close()
            self.state.store = None

    async def _purge_forever(self) -> None:
        while True:
            await self.purge()
            try:
                await asyncio.wait_for(self._stopping.wait(), PURGE_INTERVAL_SECONDS)
                return
            except TimeoutError:
                continue

    async def purge(self) -> int:
        """Apply the retention now (``retention_hours``, ``max_callbacks``); returns how many were removed."""
        store = self.state.store
        if store is None:
            return 0
        try:
            removed = await store.purge(time.time() - self.config.retention_hours * 3600, self.config.max_callbacks)
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            log.error("console_purge_failed", error=f"{type(exc).__name__}: {exc}")
            return 0
        if removed:
            log.info("console_purged", removed=removed)
        return removed

    # --- hooks ---------------------------------------------------------------------------------

    @hookimpl
    def callback_answered(self, exchange: Exchange) -> None:
        self.state.recorder.add(exchange)

    @hookimpl
    def register_ops_routes(self, app: web.Application) -> None:
        views.register(app, self.state)

    @hookimpl
    def collect_metrics(self) -> dict[str, float]:
        return {**self.state.recorder.metrics(), "streams": self.state.feed.streams,
                "stream_events_dropped": self.state.feed.dropped}
