"""From an :class:`~callgate.exchange.Exchange` to what the console stores (pure functions).

The hook turns each exchange into its :func:`capture` (the only work on the answer path); the flush
packs a batch of captures into one :class:`Packed` batch (:func:`pack`), the store's row; a read decodes
a batch's summaries back into :class:`Stored` values (:func:`unpack`) and its details (:func:`details`).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from operator import attrgetter
from typing import Any, NamedTuple

import msgspec
import orjson
import zstandard

from callgate.calls import Answered, Ended, Incoming, MenuInput, Notice, call_key
from callgate.exchange import Exchange
from callgate.results import Decision, Outcome

#: The events that start a call (a row in the live view's calls in progress) and those that end it.
STARTS = frozenset({"incoming"})
ENDS = frozenset({"ended"})
DECISIONS = ("allowed", "denied", "error")
_KINDS: dict[type, str] = {Incoming: "incoming", Answered: "answered", MenuInput: "menu", Ended: "ended",
                           Notice: "notice"}


def deciding(d: Decision | None, outcomes: tuple[Outcome, ...]) -> tuple[str | None, str | None]:
    """Which plugin decided and why: the plugin whose Deny won, with its reason; for an allowed call the plugin that
    routed it, with the route's name and who allowed it and why (else those that allowed it, with their reason); for
    other events the first plugin that answered."""
    if d is not None:
        if d.allowed and d.routed_by:
            route = f"route {d.route_name}" if d.route_name else "routed"
            return d.routed_by, f"{route}; allowed by {d.decided_by}: {d.reason}" if d.reason else route
        return d.decided_by, d.reason or None
    if not outcomes:                    # most answered, menu and hangup callbacks: nothing to look through
        return None, None
    failed = [o.plugin for o in outcomes if o.status != "ok"]
    if failed:
        return ", ".join(failed), None
    return next((o.plugin for o in outcomes if o.value is not None), None), None


#: The longest event name a refused body's own ``event`` is shown by (a longer one is ``-``, as a body naming none).
MAX_EVENT_NAME = 64


def named(generation: str, body: bytes) -> tuple[str | None, str | None]:
    """The event and the call id a body callgate did not decode into a call names, each when it is JSON naming it as
    a string: ``event`` (both generations; at most :data:`MAX_EVENT_NAME` characters), and the call id (v1
    ``callid``, or ``callId`` when that is absent, as the v1 decoder reads it; v2 ``call.callId``).  A body refused
    as invalid then shows under its event, and an ignored or refused one on its call's page.  Only these bodies pay
    for the parse; one that is not JSON names nothing."""
    try:
        top = orjson.loads(body)
    except orjson.JSONDecodeError:
        return None, None
    if not isinstance(top, dict):
        return None, None
    event = top.get("event")
    if generation == "v1":
        callid = top.get("callid")
        if callid is None:
            callid = top.get("callId")      # the other spelling the decoder takes
    else:
        leg = top.get("call")
        callid = leg.get("callId") if isinstance(leg, dict) else None
    return (event if isinstance(event, str) and 0 < len(event) <= MAX_EVENT_NAME else None,
            callid if isinstance(callid, str) and callid else None)


class Stored(msgspec.Struct, array_like=True, frozen=True, gc=False):
    """A callback's summary: as its batch's ``summaries`` holds it (one list per callback, the fields in this order),
    as the hook captures it and as a read decodes it.  Not tracked by the garbage collector and its trace kept
    packed (``msgspec.Raw``: the exchange's trace, as the ``callback`` log line gives it) until asked for: on the
    answer path, the thousands of captures waiting for the flush never count towards a collection (with tuples, a young
    collection every hundred callbacks: 4 us a callback under bench/run.py's load); and a search or the stats,
    which decode every summary in their time range (100,000 in a full store), do not have the collector walk them
    again and again (8 us a summary instead of under 1).

    ``kind``: ``incoming``, ``answered``, ``menu``, ``ended``, ``notice``; ``ignored`` (an event callgate does not
    handle) or ``refused`` (a signed body that could not be decoded).  ``decision``: ``error`` (a status >= 400 or a
    problem), ``allowed`` / ``denied`` (an incoming call), or None.  ``caller`` and ``callee``: as the call names
    them (None where the event does not say); ``deciding_plugin`` and ``reason``: :func:`deciding`.  ``session``: a
    v2 call's ``sessionId``, which the legs of one interaction share (the caller's leg and the leg a ``dial``
    made, whose ``call.answered`` and ``call.hangup`` carry that leg's own ``callId``); None on v1, whose legs
    share the callid itself.  Last, with a default: a summary stored before it was added decodes without it.
    """

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
    session: str | None = None

    def as_dict(self, callback_id: int) -> dict[str, Any]:
        """By field name, with its ``id`` and its trace (:meth:`plugin_trace`)."""
        fields = msgspec.structs.asdict(self)
        fields["trace"] = self.plugin_trace()
        return {"id": callback_id, **fields}

    def plugin_trace(self) -> list[dict[str, Any]]:
        """Each plugin hook call, as the ``callback`` log line gives it: ``{"plugin", "hook", "status", "verdict",
        "ms"}``."""
        return _decode_trace(self.trace)


class Detail(msgspec.Struct, array_like=True, frozen=True, gc=False):
    """The rest of a callback but its headers, as its batch's ``details`` holds it: ``body`` and ``answer`` are the
    bytes sent and answered."""

    problem: str | None
    ms: float
    body: bytes
    answer: bytes


class Capture(msgspec.Struct, frozen=True, gc=False):
    """What the hook keeps of a callback until the flush: its summary, its detail and its headers (the JSON text of
    a list of ``[name, value]``, ``Authorization`` left out).  Three objects the garbage collector never counts,
    each referring only to strings, numbers and bytes."""

    summary: Stored
    detail: Detail
    headers: bytes


#: ``enc_hook=str``: a plugin's verdict in a trace could be a ``str`` subclass, which msgspec does not take as is.
_encode = msgspec.msgpack.Encoder(enc_hook=str).encode


def capture(exchange: Exchange) -> Capture:
    """What the console keeps of ``exchange`` (the only work on the answer path, written out in one function: each
    call saved here is paid by every callback).  The trace and the headers are packed at once (MessagePack: the
    trace the log line was written from, not the outcomes described again; and JSON with orjson, which writes
    aiohttp's ``istr`` header names as the strings they are): what packing reads dies with the request instead of
    waiting for the flush."""
    call, status, problem, decided = exchange.call, exchange.status, exchange.problem, exchange.decision
    event = exchange.event
    if call is None:
        kind, caller, callee, session = "ignored" if status < 400 else "refused", None, None, None
        body_event, callid = named(exchange.generation, exchange.body)
        key = None if callid is None else call_key(exchange.generation, callid)
        if event == "-" and body_event is not None:         # refused: the event its body names, when it names one
            event = body_event
    else:
        to = getattr(call, "to", None)
        kind, key, callid, session = _KINDS.get(type(call), "other"), call.key, call.callid, call.session_id
        caller, callee = getattr(call, "cli", None), to.endpoint if to is not None else None
    if status >= 400 or problem:
        decision: str | None = "error"
    else:
        decision = None if decided is None else "allowed" if decided.allowed else "denied"
    plugin, reason = deciding(decided, exchange.outcomes)
    trace = msgspec.Raw(_encode(exchange.trace))
    return Capture(Stored(exchange.received_at, exchange.generation, event, kind, key, callid, caller, callee,
                          status, decision, plugin, reason, exchange.summary, trace, session),
                   Detail(problem, exchange.ms, exchange.body, exchange.answer),
                   orjson.dumps(list(exchange.headers.items())))


#: zstd's level for a batch's blobs.  Level 1, its fastest standard level, makes bench/run.py's callbacks (MessagePack
#: of JSON bodies, headers and answers much alike) 19-20 times smaller for about 0.5 us a callback (python-zstandard,
#: one call per blob, thread-safe); writing the bytes saved through SQLite, its write-ahead log, the checkpoint and
#: the disk cost more than that (the writer thread under bench/run.py's load: 5.1 -> 3.9 us a request), and a full
#: store takes a tenth of the disk or less.
ZSTD_LEVEL = 1


class Packed(NamedTuple):
    """A batch of captures as the store writes it: one row of ``console_batches``."""

    #: How many callbacks.
    size: int
    first_at: float
    last_at: float
    #: Every call key and :func:`session_key` in the batch, one per line: the store's quick test of "may this batch
    #: hold the call (or the session)?" (a match is then checked exactly; a v2 key holds its callId).
    calls: str
    #: Every caller and callee in the batch, one per line, case folded (the same, for a search by number).
    numbers: str
    #: The callbacks' :class:`Stored` summaries, one list each, as MessagePack, in a zstd frame.
    summaries: bytes
    #: The rest, as MessagePack in a zstd frame: the list of their :class:`Detail` (``[problem, ms, body, answer]``)
    #: and the JSON text of the list of their headers.
    details: bytes


_summary, _detail, _headers = attrgetter("summary"), attrgetter("detail"), attrgetter("headers")
_received_at, _call_key, _caller, _callee, _session = (attrgetter(name) for name in ("received_at", "call_key",
                                                                                     "caller", "callee", "session"))


def searchable(text: str) -> str:
    """``text`` as the batches' quick-test columns hold it, and as a lookup asks for it: with every NUL as U+FFFD.
    A callback may name a NUL (a signed v1 ``cli`` is taken as sent), which a PostgreSQL text value cannot hold: the
    whole batch would be refused, and every callback in it lost.  The summaries keep the text as sent, so a match
    is still checked exactly."""
    return text.replace("\0", "\ufffd")


def session_key(session: str) -> str:
    """How a batch's :attr:`Packed.calls` names a v2 session (apart from every call key: ``v2:`` + a callId)."""
    return "v2-session:" + session


def pack(captures: Sequence[Capture]) -> Packed:
    """One batch of :func:`capture` values, packed (MessagePack: msgspec writes a batch of callbacks as one value
    several times faster than the JSON text of each, and keeps bytes as bytes) and compressed (zstd,
    :data:`ZSTD_LEVEL`).  Off the answer path, but on the same CPU: the per-callback work is left to C (``map``,
    ``attrgetter``, ``join``) where it can be."""
    summaries = list(map(_summary, captures))
    times = list(map(_received_at, summaries))
    return Packed(len(captures), min(times), max(times),
                  searchable("\n".join([*filter(None, map(_call_key, summaries)),
                                        *map(session_key, dict.fromkeys(filter(None, map(_session, summaries))))])),
                  searchable("\n".join(filter(None, [*map(_caller, summaries), *map(_callee, summaries)])).casefold()),
                  zstandard.compress(_encode(summaries), ZSTD_LEVEL),
                  zstandard.compress(_encode((list(map(_detail, captures)),
                                              b"[" + b",".join(map(_headers, captures)) + b"]")), ZSTD_LEVEL))


_decode_stored = msgspec.msgpack.Decoder(list[Stored]).decode
_decode_trace = msgspec.msgpack.Decoder(list[dict[str, Any]]).decode


def unpack(data: bytes) -> list[Stored]:
    """A batch's callbacks' summaries (:attr:`Packed.summaries`), in the order they came."""
    return _decode_stored(zstandard.decompress(data))


_decode_details = msgspec.msgpack.Decoder(tuple[list[tuple[str | None, float, bytes, bytes]], bytes]).decode


def details(data: bytes) -> list[dict[str, Any]]:
    """A batch's callbacks' details (:attr:`Packed.details`: ``problem``, ``ms``, ``headers``, ``body`` and
    ``answer``, the last two as text), in the order they came."""
    rows, headers = _decode_details(zstandard.decompress(data))
    return [{"problem": problem, "ms": ms, "headers": sent, "body": body.decode("utf-8", "replace"),
             "answer": answer.decode("utf-8", "replace")}
            for (problem, ms, body, answer), sent in zip(rows, orjson.loads(headers), strict=True)]


def minute(received_at: float) -> int:
    """Unix minutes."""
    return math.floor(received_at / 60)
