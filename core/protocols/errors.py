"""The errors every protocol adapter raises for a body it cannot read, with one set of codes for both generations."""

from __future__ import annotations

__all__ = ["CALLID_MAX", "MAX_DEPTH", "SECONDS_MAX", "EventError", "UnknownEvent", "clip", "may_nest_too_deep"]

#: Objects and arrays nested deeper than this are refused (a Sinch event nests 3 levels).  Without
#: a limit of its own, how deep a body may nest would depend on the interpreter's recursion limit
#: and on the stack depth where it is decoded, and a plugin walking ``raw`` recursively could fail.
MAX_DEPTH = 64
#: The longest call id, in both generations (v1 ``callid``, v2 ``callId`` and ``sessionId``; Sinch's are about 40
#: characters): plugins send it in HTTP headers (a CRM delivery's ``Idempotency-Key``).
CALLID_MAX = 256
#: The longest duration a body may give, in seconds (v1 ``duration``, v2 ``callDurationSeconds``): 68 years, where a
#: call lasts at most 4 hours, so that no store's integer overflows on it and nothing bills a time no call can last.
SECONDS_MAX = 2 ** 31 - 1


def may_nest_too_deep(body: bytes) -> bool:
    """Whether the JSON text ``body`` has more than :data:`MAX_DEPTH` ``{`` and ``[`` in all: only then can it nest
    deeper, and only then do the decoders look at its depth.

    A Sinch body seldom has a ``[``: looking for one (``find``, a ``memchr``) costs less than counting them (a
    byte-by-byte loop), about 2k instructions less per v2 callback than two counts.
    """
    braces = body.count(b"{")
    return braces > MAX_DEPTH or (body.find(b"[") >= 0 and braces + body.count(b"[") > MAX_DEPTH)


def clip(value: str, limit: int = 64) -> str:
    """``value``, cut to ``limit`` characters (with ``...``) for a message."""
    return value if len(value) <= limit else value[:limit] + "..."


class EventError(ValueError):
    """The body is not a Sinch Voice event callgate can read.

    ``code`` is one of ``invalid_json``, ``not_an_object``, ``missing_event``,
    ``invalid_field`` and ``unknown_event`` (see :class:`UnknownEvent`).
    """

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


class UnknownEvent(EventError):
    """The body is a JSON object whose ``event`` is not one the generation knows (v1: ice/ace/pie/dice/notify; v2:
    a ``call.*`` event; ``expected`` says which, in the message).

    ``event`` is the value as sent (a newer Sinch event, or another product's webhook).
    """

    def __init__(self, event: str, expected: str = "one of ice, ace, pie, dice, notify") -> None:
        super().__init__("unknown_event", f"unknown event {clip(event)!r}: expected {expected}")
        self.event = event
