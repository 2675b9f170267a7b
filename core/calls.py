"""The neutral call: what every call hook receives, whichever Sinch Voice API generation sent it.

Each protocol adapter (:mod:`callgate.protocols.v1`, :mod:`callgate.protocols.v2`) decodes its own
wire format into one of these frozen objects; plugins and the core see nothing else.

==================  ===================================  ================================================
neutral type        v1 callback                          v2 webhook
==================  ===================================  ================================================
:class:`Incoming`   ICE                                  ``call.incoming``
:class:`Answered`   ACE                                  ``call.answered``
:class:`MenuInput`  PIE                                  ``call.menu``
:class:`Ended`      DICE                                 ``call.hangup``, ``call.busy``, ``call.rejected``,
                                                         ``call.timeout``, ``call.failed``
:class:`Notice`     Notify                               ``call.amd.*``, ``call.recording.*``,
                                                         ``call.message.finished``
==================  ===================================  ================================================

Values are taken as each generation sends them, in one vocabulary where the two agree:

* ``generation`` is ``"v1"`` or ``"v2"``; ``event`` is the wire name (``"ice"``, ``"call.incoming"``).
* ``callid`` is the id Sinch gave the call (v1 ``callid``; v2 ``call.callId``, one per *leg*).
  ``key`` is the id to keep records by: the ``callid`` for v1, ``"v2:" + callid`` for v2, so a
  v1 and a v2 call can never collide in a plugin's store.
* ``to.type`` uses v1's words: ``did`` (a call to one of your Sinch numbers: v1 ``did``, a v2
  inbound ``PHONE`` call), ``number`` (a phone number being called: v1 ``number``, a v2 outbound
  ``PHONE`` leg), ``sip``, ``username`` and ``conference`` (v1 only), ``stream``/``voice_relay``
  (v2 only).
* ``domain`` / ``origination_type``: ``pstn``, ``mxp`` (v1), ``sip``; v2 ``SERVER`` becomes ``server``.
* ``rate`` is the per-minute rate Sinch gives (v1 ``userRate``, v2 ``callRate``); ``debit`` (what
  Sinch charged) exists only in v1.  ``result`` and ``reason`` of an :class:`Ended` are upper-case
  as each generation sends them (v1 ``ANSWERED``/``CALLERHANGUP``, v2 ``COMPLETED``/``CALLER_HANGUP``);
  ``answered`` says whether the call was answered in either vocabulary.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from typing import Any, Literal

from .drafts import positional_builder
from .phone import normalize_caller

__all__ = [
    "GENERATIONS",
    "AmdResult",
    "Answered",
    "CallEvent",
    "Callee",
    "Ended",
    "Generation",
    "Header",
    "Incoming",
    "MenuInput",
    "MenuResult",
    "Money",
    "Notice",
    "call_key",
]

Generation = Literal["v1", "v2"]
GENERATIONS: tuple[Generation, ...] = ("v1", "v2")
#: ``Ended.result`` values that mean the call was answered, in either generation's vocabulary.
ANSWERED_RESULTS = frozenset({"ANSWERED", "COMPLETED"})
#: Every ``Ended.result`` value: v1 DICE's ``result`` and v2's ``callResult`` (what a configuration keyed by the
#: result may name).
END_RESULTS = frozenset({"ANSWERED", "BUSY", "NOANSWER", "FAILED", "N/A",
                         "QUEUED", "INITIATED", "IN_PROGRESS", "COMPLETED", "REJECTED", "NO_ANSWER", "CANCEL"})

# The words of a neutral call's ``to.type``, ``domain`` and ``origination``, the same for both API generations where
# the two agree: v1 sends did/number/username/sip/conference and pstn/mxp; a v2 inbound PHONE call is ``did``
# (``number`` for a dialled leg), a SIP call ``sip``, and v2 adds ``stream``/``voice_relay`` callees and domains, and
# ``sip``/``server`` originations.  What a configuration matching on them may name (:func:`known_words`).

#: ``Callee.type`` (v1 ``to.type``; v2 ``call.to`` type as the neutral call names it).
CALLEE_TYPES = frozenset({"did", "number", "username", "sip", "conference", "stream", "voice_relay"})
#: ``domain`` (v1 ``domain``; v2 ``callType``: ``PHONE`` is ``pstn``, ``SIP`` ``sip``, ``STREAM`` ``stream``,
#: ``VOICE_RELAY`` ``voice_relay``).
DOMAINS = frozenset({"pstn", "mxp", "conference", "sip", "stream", "voice_relay"})
#: ``originationType`` (v1 ``pstn``/``mxp``; v2 ``PHONE``/``SIP``/``SERVER`` as ``pstn``/``sip``/``server``).
ORIGINATION_TYPES = frozenset({"pstn", "mxp", "sip", "server"})
#: ``MenuResult.type`` (v1 ``menuResult.type``; v2 ``call.menu`` is always ``sequence``).
MENU_RESULT_TYPES = frozenset({"sequence", "return", "timeout", "hangup", "invalidinput", "error"})


def known_words(values: Sequence[str], known: frozenset[str]) -> list[str]:
    """``values`` lower-cased and stripped, each one of ``known`` (a pydantic validator's ValueError otherwise,
    naming the value and the words it may be): a typo in a rule would otherwise make it never match."""
    cleaned = [v.strip().lower() for v in values]
    for value, original in zip(cleaned, values, strict=True):
        if value not in known:
            raise ValueError(f"{original!r} is not one of {', '.join(sorted(known))}")
    return cleaned


def call_key(generation: str, callid: str) -> str:
    """The id a plugin keeps a call's records by: ``callid`` for v1, ``"v2:" + callid`` for v2."""
    return callid if generation == "v1" else f"{generation}:{callid}"


# --------------------------------------------------------------------------- value types

@dataclass(frozen=True, slots=True)
class Callee:
    """Who was called: ``type`` lower-case (see the module docstring), ``endpoint`` as sent (a number, a SIP URI,
    a user id, a conference id)."""

    type: str | None
    endpoint: str | None


@dataclass(frozen=True, slots=True)
class Money:
    """A rate or a debit.  ``amount`` is exact (a Decimal, never a float); ``currency`` an ISO-4217 code."""

    currency: str | None
    amount: Decimal | None


@dataclass(frozen=True, slots=True)
class Header:
    """One call header (v1 ``callHeaders``; v2 SIP ``callHeaders``)."""

    key: str
    value: str


@dataclass(frozen=True, slots=True)
class AmdResult:
    """Answering-machine detection.  ``status`` lower-case (``machine``, ``human``, ``notsure``, ``beep``,
    ``unknown``, ...); ``reason`` and ``duration`` exist only in v1."""

    status: str | None
    reason: str | None
    duration: int | None


@dataclass(frozen=True, slots=True)
class MenuResult:
    """What a menu collected.

    v1 PIE ``menuResult``: ``type`` (``sequence``, ``return``, ``timeout``, ``hangup``, ``invalidinput``,
    ``error``) and ``input_method`` lower-case, ``value`` the digits or ``return(x)``'s x.  v2
    ``call.menu``: ``menu_id`` is ``menuName``, ``value`` the ``input`` without a final ``#`` (the
    terminating key of the menus callgate renders, which v1 leaves out too; ``raw`` has it), ``type`` is
    ``sequence`` (v2 reports no other kind) and ``input_method`` ``dtmf``.
    """

    menu_id: str | None
    type: str | None
    value: str | None
    input_method: str | None


# --------------------------------------------------------------------------- events

@dataclass(frozen=True, slots=True, kw_only=True)
class CallEvent:
    """What every event has.

    ``raw`` is the body as Sinch sent it (the decoded JSON object, unknown fields included).
    ``notes`` is a scratch space for the plugins handling this one callback, shared in plugin
    order: a plugin writes under its own name (``call.notes["credit_check"] = {...}``) and plugins
    after it may read that.  It starts empty for every callback.  The recording hooks run at the
    same time: there, await another plugin's note with ``callgate.wait_for_note`` (:mod:`callgate.notes`).

    ``application`` is the v1 ``applicationKey`` or the v2 ``serviceId``; ``user`` the in-app
    user who called (v1 only); ``custom`` v1's ``custom`` (v1 only); ``timestamp`` v1's
    ``timestamp`` (v2 bodies carry none: the ``x-timestamp`` of the request).
    ``session_id`` groups the legs of one v2 interaction (None in v1).
    """

    generation: Generation
    event: str
    raw: dict[str, Any] = field(repr=False, compare=False)
    notes: dict[str, Any] = field(default_factory=dict, repr=False, compare=False)
    version: int | None = None
    custom: str | None = None
    application: str | None = None
    timestamp: datetime | None = None
    user: str | None = None
    session_id: str | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class Incoming(CallEvent):
    """A call came in (v1 ICE, v2 ``call.incoming``): decide it, route it, set its caller id.

    ``cli`` is the caller as sent (v1 ``cli``; v2 ``call.from`` number or SIP URI), ``caller`` the
    same normalised (``+46701234567``, ``private``, or None).
    """

    callid: str
    call_resource_url: str | None = None
    rate: Money | None = None
    cli: str | None = None
    to: Callee | None = None
    domain: str | None = None
    origination_type: str | None = None
    duration: int | None = None
    rdnis: str | None = None
    headers: tuple[Header, ...] = ()

    @property
    def key(self) -> str:
        """The id to keep this call's records by (see :func:`call_key`)."""
        return call_key(self.generation, self.callid)

    @property
    def caller(self) -> str | None:
        """``cli`` normalised: ``"+46701234567"``, ``"private"`` for a withheld/empty one, None when absent."""
        return normalize_caller(self.cli)


@dataclass(frozen=True, slots=True, kw_only=True)
class Answered(CallEvent):
    """The callee answered a connected leg (v1 ACE; v2 ``call.answered`` of a dialled leg, whose ``callid``
    is that leg's, not the caller's).  ``amd`` is set when answering-machine detection ran (v1).  ``cli`` and
    ``to``: the leg's caller and callee as on :class:`Incoming`, when the event names them (v2; a v1 ACE names
    neither: None)."""

    callid: str
    amd: AmdResult | None = None
    conference_id: str | None = None
    cli: str | None = None
    to: Callee | None = None

    @property
    def key(self) -> str:
        return call_key(self.generation, self.callid)


@dataclass(frozen=True, slots=True, kw_only=True)
class MenuInput(CallEvent):
    """A menu produced a result (v1 PIE; v2 ``call.menu``).  ``cli`` and ``to``: the call's caller and callee as
    on :class:`Incoming`, when the event names them (v2; a v1 PIE names neither: None)."""

    callid: str
    menu_result: MenuResult
    cli: str | None = None
    to: Callee | None = None

    @property
    def key(self) -> str:
        return call_key(self.generation, self.callid)


@dataclass(frozen=True, slots=True, kw_only=True)
class Ended(CallEvent):
    """The call (v2: this leg) ended (v1 DICE; v2 ``call.hangup`` and the end states ``call.busy``,
    ``call.rejected``, ``call.timeout``, ``call.failed``).  Record it.

    ``duration`` is the talk time in seconds (v1 ``duration``, v2 ``callDurationSeconds``, 0 when
    absent); ``debit`` what Sinch charged (v1 only: v2 sends no total, compute it from ``rate``);
    ``cli`` the caller as sent (v1 ``from``, v2 ``call.from``); ``answered_at``/``ended_at`` the
    times v2 sends (None in v1).
    """

    callid: str
    reason: str | None = None
    result: str | None = None
    debit: Money | None = None
    rate: Money | None = None
    to: Callee | None = None
    duration: int | None = None
    cli: str | None = None
    headers: tuple[Header, ...] = ()
    answered_at: datetime | None = None
    ended_at: datetime | None = None

    @property
    def key(self) -> str:
        return call_key(self.generation, self.callid)

    @property
    def answered(self) -> bool:
        """Whether the call was answered (v1 ``ANSWERED``, v2 ``COMPLETED``)."""
        return self.result in ANSWERED_RESULTS


@dataclass(frozen=True, slots=True, kw_only=True)
class Notice(CallEvent):
    """Something happened during a call (v1 Notify; v2 ``call.amd.*``, ``call.recording.*``,
    ``call.message.finished``).  Sparse; ``callid`` may be absent (v1 conference recordings).

    ``type`` uses v1's words where there is one (``amd``, ``amd_beep``, ``recording_finished``,
    ``recording_available``, ``transcription_available``, ``callingerror``); the v2-only events give
    ``recording_failed`` and ``message_finished``.
    """

    callid: str | None = None
    conference_id: str | None = None
    type: str | None = None
    destination: str | None = None
    amd: AmdResult | None = None
    error_code: int | None = None
    error_msg: str | None = None

    @property
    def key(self) -> str | None:
        return None if self.callid is None else call_key(self.generation, self.callid)


CallEventType = Incoming | Answered | MenuInput | Ended | Notice


# --------------------------------------------------------------------------- builders for the protocol adapters
# The adapters build the frozen dataclasses above through positional builders (callgate.drafts), every field
# given in declaration order (CallEvent's: generation, event, raw, notes, version, custom, application,
# timestamp, user, session_id; then the class's own): an Incoming costs ~6,700 instructions so, ~40,000
# through its keyword __init__ (frozen: one object.__setattr__ per field).  tests/test_events.py and
# tests/test_v2_adapt.py check each decoded object equals the one its keyword constructor builds.

new_incoming = positional_builder(Incoming)
new_answered = positional_builder(Answered)
new_menu_input = positional_builder(MenuInput)
new_ended = positional_builder(Ended)
new_notice = positional_builder(Notice)
new_money = positional_builder(Money)
new_callee = positional_builder(Callee)
new_header = positional_builder(Header)
new_amd = positional_builder(AmdResult)
new_menu_result = positional_builder(MenuResult)
