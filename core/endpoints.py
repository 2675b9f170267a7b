"""The two signed paths, v1 callbacks and v2 webhooks: what the one handler body needs to know of each.

:class:`Endpoint` is a small per-generation object: which path is signed, which verifier checks it,
how a body is decoded and what an ignored event is answered.  (The answers themselves, the safe ones
when callgate fails and the not-recorded ones included, are the pipeline's, by the call's generation.)
:func:`callback_endpoint` and :func:`webhook_endpoint` build them for one configuration; the handler
(:mod:`callgate.handlers`) runs the same checks, in the same order, on both.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime

from .calls import CallEventType, Generation
from .config import ENV_KEY, ENV_SECRET, ENV_SERVICE_ID, ENV_SERVICE_SECRET, Config, ConfigError
from .protocols.errors import UnknownEvent
from .protocols.signing_common import SchemeVerifier
from .protocols.v1.decode import decode_event as decode_v1_call
from .protocols.v1.signing import Verifier
from .protocols.v2.adapt import UnhandledCustomEvent
from .protocols.v2.adapt import decode_event as decode_v2_call
from .protocols.v2.decode import UnknownCallEvent
from .protocols.v2.render import RECORDED
from .protocols.v2.signing import ServiceVerifier
from .responses import ACK

__all__ = ["NO_COMMANDS", "Endpoint", "IgnoredEvent", "build_service_verifier", "build_verifier",
           "callback_endpoint", "decode_callback", "decode_webhook", "webhook_endpoint"]

#: The v2 answer that does nothing: to an ignored event (as to an end event that was recorded).
NO_COMMANDS = RECORDED


class IgnoredEvent(Exception):
    """A signed body callgate answers with the endpoint's ``ignored_body`` and a warning, without any plugin:
    an unknown event (v1), an unknown ``call.*`` event or a custom ``call.webhook.<name>`` event (v2).

    ``event`` is the name as sent; ``log_event`` the warning's name (``unknown_event_ignored``, ...); ``callid`` the
    leg's, when the body was decoded far enough to know it (a custom event's).
    """

    def __init__(self, event: str, log_event: str, callid: str | None = None) -> None:
        super().__init__(event)
        self.event = event
        self.log_event = log_event
        self.callid = callid


@dataclass(frozen=True, slots=True)
class Endpoint:
    """One generation's signed path, as the shared handler sees it."""

    generation: Generation
    #: The path the app serves, and the one that goes into the signature (differs behind a rewriting proxy).
    path: str
    signed_path: str
    #: None when nothing of this generation is configured: every POST is then refused (401 ``unsigned_reason``).
    verifier: SchemeVerifier | None
    #: The refusal when ``verifier`` is None: its ``reason`` and what to set.
    unsigned_reason: str
    unsigned_message: str
    #: A verified body and its ``x-timestamp`` (parsed by the verifier) -> the call the pipeline answers; raises
    #: EventError (400) or IgnoredEvent.
    decode: Callable[[bytes, datetime | None], CallEventType]
    #: The 200 body of an ignored event.
    ignored_body: bytes

    @property
    def configured(self) -> bool:
        """Whether a signer of this generation (an application, a service) is configured."""
        return self.verifier is not None


# --------------------------------------------------------------------------- verifiers

def build_verifier(config: Config) -> Verifier | None:
    """The v1 ``Application`` verifier of ``[[applications]]`` (None when there is none); ConfigError if a
    secret is not Base64."""
    if not config.applications:
        return None
    try:
        return Verifier(config.application_secrets(), window_seconds=config.signing.window_seconds)
    except ValueError as exc:
        raise ConfigError(f"{config.source}: applications: {exc}") from None


def build_service_verifier(config: Config) -> ServiceVerifier | None:
    """The v2 ``service`` verifier of ``[[services]]`` (None when there is none); ConfigError if a secret is
    not Base64."""
    if not config.services:
        return None
    try:
        return ServiceVerifier(config.service_secrets(), window_seconds=config.signing.window_seconds)
    except ValueError as exc:
        raise ConfigError(f"{config.source}: services: {exc}") from None


# --------------------------------------------------------------------------- v1

def decode_callback(body: bytes, x_timestamp: datetime | None = None) -> CallEventType:
    """The neutral call of a v1 callback body (its time is the body's ``timestamp``); an unknown event raises
    IgnoredEvent."""
    try:
        return decode_v1_call(body)
    except UnknownEvent as exc:
        raise IgnoredEvent(exc.event, "unknown_event_ignored") from None


def callback_endpoint(config: Config) -> Endpoint:
    """The v1 callback path (``[server] callback_path``), verified with ``[[applications]]``."""
    server = config.server
    return Endpoint(
        generation="v1", path=server.callback_path, signed_path=server.signed_path,
        verifier=build_verifier(config), unsigned_reason="no_application",
        unsigned_message=f"no Sinch application is configured: set {ENV_KEY} and {ENV_SECRET}, or "
                         f"[[applications]] in config.toml",
        decode=decode_callback, ignored_body=ACK)


# --------------------------------------------------------------------------- v2

def decode_webhook(body: bytes, x_timestamp: datetime | None = None) -> CallEventType:
    """The neutral call of a v2 webhook (its time: the request's ``x-timestamp``, as the verifier parsed it; the
    body has none); a custom event or an unknown ``call.*`` one raises IgnoredEvent."""
    try:
        return decode_v2_call(body, timestamp=x_timestamp)
    except UnhandledCustomEvent as exc:
        raise IgnoredEvent(exc.event, "custom_event_ignored", exc.callid) from None
    except UnknownCallEvent as exc:
        raise IgnoredEvent(exc.event, "unknown_event_ignored") from None


def webhook_endpoint(config: Config) -> Endpoint:
    """The v2 webhook path (``[server] webhook_path``), verified with ``[[services]]``."""
    server = config.server
    return Endpoint(
        generation="v2", path=server.webhook_path, signed_path=server.signed_webhook_path,
        verifier=build_service_verifier(config), unsigned_reason="no_service",
        unsigned_message=f"no Sinch Voice v2 service is configured: set {ENV_SERVICE_ID} and "
                         f"{ENV_SERVICE_SECRET}, or [[services]] in config.toml",
        decode=decode_webhook, ignored_body=NO_COMMANDS)
