"""The sinks: where call records go.  One module per kind; :func:`build_sender` picks one from a sink's config."""

from __future__ import annotations

import aiohttp

from ..config import FileSink, HubSpotSink, WebhookSink
from .base import Sender
from .file import FileSender
from .hubspot import HubSpotSender
from .webhook import WebhookSender

__all__ = ["FileSender", "HubSpotSender", "Sender", "WebhookSender", "build_sender"]


def build_sender(config: WebhookSink | HubSpotSink | FileSink, session: aiohttp.ClientSession) -> Sender:
    """The sender for one configured sink (HTTP sinks share the plugin's client session)."""
    if isinstance(config, WebhookSink):
        return WebhookSender(config, session)
    if isinstance(config, HubSpotSink):
        return HubSpotSender(config, session)
    if isinstance(config, FileSink):
        return FileSender(config)
    raise TypeError(f"unknown sink config {type(config).__name__}")
