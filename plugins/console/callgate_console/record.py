"""From an :class:`~callgate.exchange.Exchange` to the row the console stores (pure functions).

The hook only queues the exchange; these run in the background flush, so the answer path pays
nothing for them.
"""

from __future__ import annotations

import math
import zlib
from typing import Any

import orjson

from callgate.calls import Answered, Ended, Incoming, MenuInput, Notice
from callgate.exchange import Exchange

#: The stored columns, in the order :func:`row` gives them (``id`` is the store's).  ``trace`` is a JSON list of
#: ``[plugin, hook, status, verdict, ms]`` (lists, not objects: a smaller row, built faster).
COLUMNS = ("received_at", "minute", "generation", "event", "kind", "call_key", "call_hash", "callid", "caller", "callee",
           "status", "decision", "deciding_plugin", "reason", "summary", "problem", "ms", "headers", "body",
           "answer", "trace")
#: The events that start a call (a row in the live view's calls in progress) and those that end it.
STARTS = frozenset({"incoming"})
ENDS = frozenset({"ended"})
DECISIONS = ("allowed", "denied", "error")
_KINDS: dict[type, str] = {Incoming: "incoming", Answered: "answered", MenuInput: "menu", Ended: "ended",
                           Notice: "notice"}


def kind(exchange: Exchange) -> str:
    """``incoming``, ``answered``, ``menu``, ``ended``, ``notice``; ``ignored`` (an event callgate does not
    handle) or ``refused`` (a signed body that could not be decoded)."""
    call = exchange.call
    if call is None:
        return "ignored" if exchange.status < 400 else "refused"
    return _KINDS.get(type(call), "other")


def decision(exchange: Exchange) -> str | None:
    """``error`` (a status >= 400 or a problem), ``allowed`` / ``denied`` (an incoming call), or None."""
    if exchange.status >= 400 or exchange.problem:
        return "error"
    if exchange.decision is not None:
        return "allowed" if exchange.decision.allowed else "denied"
    return None


def deciding(exchange: Exchange) -> tuple[str | None, str | None]:
    """Which plugin decided and why: the plugin whose Deny won, with its reason; for an allowed call the plugin that
    routed it, with the route's name and who allowed it and why (else those that allowed it, with their reason); for
    other events the first plugin that answered."""
    d = exchange.decision
    if d is not None:
        if d.allowed and d.routed_by:
            route = f"route {d.route_name}" if d.route_name else "routed"
            return d.routed_by, f"{route}; allowed by {d.decided_by}: {d.reason}" if d.reason else route
        return d.decided_by, d.reason or None
    failed = [o.plugin for o in exchange.outcomes if o.status != "ok"]
    if failed:
        return ", ".join(failed), None
    return next((o.plugin for o in exchange.outcomes if o.value is not None), None), None


def parties(exchange: Exchange) -> tuple[str | None, str | None]:
    """The caller and the callee the call names, as sent (None where this event does not say)."""
    call = exchange.call
    to = getattr(call, "to", None)
    return getattr(call, "cli", None), to.endpoint if to is not None else None


def call_hash(key: str) -> int:
    """The store's index of a call's callbacks: ``key``'s CRC-32, as a non-negative 31-bit integer (the same in every
    process and instance).  A lookup matches it and then the key itself, so two keys with one hash never mix.

    An index of the keys' text made storing a callback cost nearly twice as much (36 against 19 us of CPU in a store
    of 100,000): every batch inserts random keys all over a large index, and SQLite writes each page it touches
    again; an index of small integers has far fewer pages (docs/console.md, "Cost")."""
    return zlib.crc32(key.encode()) & 0x7FFFFFFF


def _text(data: bytes) -> str:
    return data.decode("utf-8", "replace")


def row(exchange: Exchange) -> tuple[Any, ...]:
    """The exchange as the store's columns (:data:`COLUMNS`)."""
    call = exchange.call
    caller, callee = parties(exchange)
    plugin, reason = deciding(exchange)
    trace = [[o.plugin, o.hook, o.status, o.verdict, o.elapsed_ms] for o in exchange.outcomes]
    callid = getattr(call, "callid", None) if call is not None else None
    key = getattr(call, "key", None) if call is not None else None
    return (exchange.received_at, math.floor(exchange.received_at / 60), exchange.generation, exchange.event,
            kind(exchange), key, call_hash(key) if key else None, callid, caller, callee,
            exchange.status, decision(exchange), plugin, reason, exchange.summary, exchange.problem, exchange.ms,
            _text(orjson.dumps(list(exchange.headers.items()))), _text(exchange.body), _text(exchange.answer),
            _text(orjson.dumps(trace)))
