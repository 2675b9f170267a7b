"""The keys under which the application keeps its state (aiohttp AppKeys, not module globals)."""

from __future__ import annotations

from dataclasses import dataclass

from aiohttp import web

from .config import Config
from .endpoints import Endpoint
from .manager import Plugins
from .metrics import Metrics
from .pipeline import Pipeline

CONFIG = web.AppKey("config", Config)
PLUGINS = web.AppKey("plugins", Plugins)
PIPELINE = web.AppKey("pipeline", Pipeline)
#: The v1 callback path and the v2 webhook path: each with its verifier (None when no application / no
#: service is configured: every POST there is then refused, 401), decoder and safe answers.
CALLBACK = web.AppKey("callback_endpoint", Endpoint)
WEBHOOK = web.AppKey("webhook_endpoint", Endpoint)
METRICS = web.AppKey("metrics", Metrics)


@dataclass
class Lifecycle:
    """Mutable process state: ``draining`` is set on SIGTERM, before the server stops accepting."""

    draining: bool = False


LIFECYCLE = web.AppKey("lifecycle", Lifecycle)
