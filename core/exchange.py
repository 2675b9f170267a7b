"""One signed callback and its answer, as the ``callback_answered`` hook receives it.

Built by the HTTP handler after the answer is decided, only when an enabled plugin implements
``callback_answered`` (otherwise nothing is built), and handed to each such plugin in turn.  An
implementation must return at once (queue the work); one that raises is logged and counted
(``callgate_plugin_failures_total{hook="callback_answered"}``), and the answer, already decided, is
never changed by it.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any

import msgspec
import structlog
from multidict import CIMultiDict, CIMultiDictProxy

from .calls import CallEventType, Generation
from .results import Decision, Outcome

if TYPE_CHECKING:
    from .manager import HookImpl
    from .metrics import Metrics

__all__ = ["CREDENTIAL_HEADERS", "HOOK", "Exchange", "tell"]

log = structlog.get_logger("callgate")
HOOK = "callback_answered"

#: The request headers that carry credentials, left out of :attr:`Exchange.headers`: Sinch's signature, and the
#: credentials a proxy or a browser in front of callgate may add, which a plugin that stores headers must not keep.
CREDENTIAL_HEADERS = ("Authorization", "Proxy-Authorization", "Cookie")


class Exchange(msgspec.Struct, frozen=True, gc=False):
    """A signed v1 callback or v2 webhook, and what callgate answered.  Frozen; a msgspec Struct because it is
    built on the answer path (0.3 us, where a frozen dataclass of 13 fields takes 3 us), not tracked by the
    garbage collector (it refers to nothing that refers back to it, so it is in no cycle): a plugin that
    queues exchanges does not make every collection walk them.

    * ``received_at``: when the request was received, unix seconds.
    * ``generation``: ``"v1"`` or ``"v2"``; ``event``: the wire event name (``"ice"``, ``"call.incoming"``,
      the name as sent for an event callgate ignores, ``"-"`` for a body that could not be decoded).
    * ``call``: the neutral call (:mod:`callgate.calls`), or None when the body was ignored or refused.
    * ``headers``: the request headers as sent (a case-insensitive, read-only multidict, in order), *without* the
      credentials (:data:`CREDENTIAL_HEADERS`: ``Authorization``, ``Proxy-Authorization``, ``Cookie``).
    * ``body``: the request body (bytes); ``status`` and ``answer``: the HTTP status and body sent back.
    * ``decision``: the :class:`~callgate.results.Decision` of an incoming call (None for other events).
    * ``outcomes``: every plugin hook call of this callback, in order (plugin, hook, status ``ok`` /
      ``error`` / ``timeout``, ``verdict``, ``elapsed_ms``).
    * ``trace``: the same calls as the ``callback`` log line's ``plugins`` gives them, already worked out (a list
      of ``{"plugin", "hook", "status", "verdict", "ms"}``, ``ms`` rounded to the microsecond; empty when the
      body was ignored or refused): what to keep of the outcomes without describing each value again.  The list
      the log line was written from: read it, do not change it.
    * ``problem``: what went wrong (an invalid answer replaced, a failed recording, a refused body), or None.
    * ``summary``: the decision in a few words, as on the ``callback`` log line.
    * ``ms``: the time to answer, in milliseconds (the same figure as on the ``callback`` log line).
    """

    received_at: float
    generation: Generation
    event: str
    call: CallEventType | None
    headers: CIMultiDictProxy[str]
    body: bytes
    status: int
    answer: bytes
    decision: Decision | None
    outcomes: tuple[Outcome, ...]
    problem: str | None
    summary: str
    ms: float
    trace: list[dict[str, Any]]


def tell(impls: tuple[HookImpl, ...], metrics: Metrics, generation: Generation, event: str,
         call: CallEventType | None, headers: CIMultiDictProxy[str], body: bytes, status: int, answer: bytes,
         decision: Decision | None, outcomes: tuple[Outcome, ...], problem: str | None, summary: str,
         ms: float, trace: list[dict[str, Any]]) -> None:
    """Build the :class:`Exchange` and give it to every ``callback_answered`` implementation, in plugin order.

    ``ms`` (the time to answer in milliseconds) and ``trace`` as the ``callback`` log line gives them.  Never
    raises: an implementation that raises is logged (its exception's type and text, never the request) and
    counted, and the others still run.
    """
    sent = CIMultiDict(headers)          # a copy in C, then without the credentials (0.6 us in all)
    for name in CREDENTIAL_HEADERS:
        sent.popall(name, None)
    exchange = Exchange(time.time() - ms / 1000, generation, event, call, CIMultiDictProxy(sent), body, status,
                        answer, decision, outcomes, problem, summary, ms, trace)
    for impl in impls:
        try:
            impl.function(exchange) if impl.argnames else impl.function()
        except Exception as exc:
            # Told after the callback's log context ended: its callid and event are named here.
            log.error("plugin_failed", plugin=impl.plugin.name, hook=HOOK, status="error",
                      error=f"{type(exc).__name__}: {exc}", callid=call.callid if call is not None else None,
                      sinch_event=event, exc_info=True)
            metrics.hook_failed(impl.plugin.name, HOOK, "error")
