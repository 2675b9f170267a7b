"""From an :class:`~callgate.exchange.Exchange` to what the console stores (pure functions).

The hook turns each exchange into its :func:`capture` (the only work on the answer path); the flush
packs a batch of captures into one :class:`Packed` batch (:func:`pack`), the store's row.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from operator import itemgetter
from typing import Any, NamedTuple

import msgspec
import orjson

from callgate.calls import Answered, Ended, Incoming, MenuInput, Notice
from callgate.exchange import Exchange

#: A callback's summary, as stored in its batch's ``summaries`` (one list per callback, in this order) and as the
#: store gives it back (with its ``id``).  ``trace`` is a list of ``[plugin, hook, status, verdict, ms]``.
SUMMARY = ("received_at", "generation", "event", "kind", "call_key", "callid", "caller", "callee", "status",
           "decision", "deciding_plugin", "reason", "summary", "trace")
#: The rest of a callback, in its batch's ``details``: ``headers`` a list of ``[name, value]``, ``body`` and
#: ``answer`` the bytes sent and answered.
DETAILS = ("problem", "ms", "headers", "body", "answer")
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


def capture(exchange: Exchange) -> tuple[Any, ...]:
    """What the console keeps of ``exchange``: its :data:`SUMMARY` then its :data:`DETAILS`.  Strings, numbers,
    bytes and tuples of them only, never the call, its decision or its outcomes: the garbage collector stops
    tracking such a tuple the first time it sees it, so thousands of captures waiting for the flush are not walked
    again and again."""
    call = exchange.call
    caller, callee = parties(exchange)
    plugin, reason = deciding(exchange)
    trace = tuple([(o.plugin, o.hook, o.status, o.verdict, o.elapsed_ms) for o in exchange.outcomes])
    callid = getattr(call, "callid", None) if call is not None else None
    key = getattr(call, "key", None) if call is not None else None
    return (exchange.received_at, exchange.generation, exchange.event, kind(exchange), key, callid, caller, callee,
            exchange.status, decision(exchange), plugin, reason, exchange.summary, trace,
            exchange.problem, exchange.ms, tuple(exchange.headers.items()), exchange.body, exchange.answer)


class Packed(NamedTuple):
    """A batch of captures as the store writes it: one row of ``console_batches``."""

    #: How many callbacks.
    size: int
    first_at: float
    last_at: float
    #: Every call key in the batch, one per line: the store's quick test of "may this batch hold the call?" (a
    #: match is then checked exactly; a v2 key holds its callId).
    calls: str
    #: Every caller and callee in the batch, one per line, case folded (the same, for a search by number).
    numbers: str
    #: The callbacks' :data:`SUMMARY` values, one list each, as MessagePack.
    summaries: bytes
    #: Their :data:`DETAILS`, as MessagePack: a list of ``[problem, ms, body, answer]`` and the JSON text of the list
    #: of their headers.
    details: bytes


_summary = itemgetter(slice(0, len(SUMMARY)))
_details = itemgetter(*(len(SUMMARY) + DETAILS.index(name) for name in ("problem", "ms", "body", "answer")))
_headers = itemgetter(len(SUMMARY) + DETAILS.index("headers"))
_received_at, _call_key, _caller, _callee = (itemgetter(SUMMARY.index(name))
                                             for name in ("received_at", "call_key", "caller", "callee"))
#: ``enc_hook=str``: a plugin's verdict in a trace could be a ``str`` subclass, which msgspec does not take as is.
_encode = msgspec.msgpack.Encoder(enc_hook=str).encode


def pack(captures: Sequence[tuple[Any, ...]]) -> Packed:
    """One batch of :func:`capture` tuples, packed (MessagePack: msgspec writes a batch of callbacks as one value
    several times faster than the JSON text of each, and keeps bytes as bytes).  Off the answer path, but on the
    same CPU: the per-callback work is left to C (``map``, ``itemgetter``, ``join``) where it can be.  The headers go
    in as one JSON text for the batch: their names are aiohttp's ``istr``, which orjson writes as the strings they
    are and msgspec only through a Python call per name (25k instructions a callback under callgrind)."""
    times = list(map(_received_at, captures))
    return Packed(len(captures), min(times), max(times),
                  "\n".join(filter(None, map(_call_key, captures))),
                  "\n".join(filter(None, [*map(_caller, captures), *map(_callee, captures)])).casefold(),
                  _encode(list(map(_summary, captures))),
                  _encode((list(map(_details, captures)), orjson.dumps(list(map(_headers, captures))))))


class Stored(msgspec.Struct, array_like=True, frozen=True, gc=False):
    """A callback's summary as a read decodes it (the :data:`SUMMARY` values, in order).  Not tracked by the garbage
    collector and its trace left packed (``msgspec.Raw``) until asked for: a search or the stats decode every
    summary in their time range, 100,000 in a full store, and 100,000 tracked lists would have the collector
    walk them again and again (8 us a summary instead of under 1)."""

    received_at: float
    generation: str
    event: str
    kind: str
    call_key: str | None
    callid: str | None
    caller: str | None
    callee: str | None
    status: int
    decision: str | None
    deciding_plugin: str | None
    reason: str | None
    summary: str
    trace: msgspec.Raw

    def as_dict(self, callback_id: int) -> dict[str, Any]:
        """By field name, with its ``id`` and its trace (a list of ``[plugin, hook, status, verdict, ms]``)."""
        fields = msgspec.structs.asdict(self)
        fields["trace"] = self.plugin_trace()
        return {"id": callback_id, **fields}

    def plugin_trace(self) -> list[list[Any]]:
        return _decode_trace(self.trace)


_decode_stored = msgspec.msgpack.Decoder(list[Stored]).decode
_decode_trace = msgspec.msgpack.Decoder(list[list[Any]]).decode


def unpack(data: bytes) -> list[Stored]:
    """A batch's callbacks' summaries, in the order they came."""
    return _decode_stored(data)


_decode_details = msgspec.msgpack.Decoder(tuple[list[tuple[str | None, float, bytes, bytes]], bytes]).decode


def details(data: bytes) -> list[dict[str, Any]]:
    """A batch's callbacks' :data:`DETAILS`, in the order they came (body and answer as text)."""
    rows, headers = _decode_details(data)
    return [{"problem": problem, "ms": ms, "headers": sent, "body": body.decode("utf-8", "replace"),
             "answer": answer.decode("utf-8", "replace")}
            for (problem, ms, body, answer), sent in zip(rows, orjson.loads(headers), strict=True)]


def minute(received_at: float) -> int:
    """Unix minutes."""
    return math.floor(received_at / 60)
