"""The keys under which the application keeps its state (aiohttp AppKeys, not module globals)."""

from __future__ import annotations

from dataclasses import dataclass

from aiohttp import web

from .config import Config
from .manager import Plugins
from .metrics import Metrics
from .pipeline import Pipeline
from .protocols.v1.signing import Verifier

CONFIG = web.AppKey("config", Config)
PLUGINS = web.AppKey("plugins", Plugins)
PIPELINE = web.AppKey("pipeline", Pipeline)
#: None when no Sinch application is configured: every callback is then refused (401).
VERIFIER: web.AppKey[Verifier | None] = web.AppKey("verifier")
METRICS = web.AppKey("metrics", Metrics)


@dataclass
class Lifecycle:
    """Mutable process state: ``draining`` is set on SIGTERM, before the server stops accepting."""

    draining: bool = False


LIFECYCLE = web.AppKey("lifecycle", Lifecycle)
