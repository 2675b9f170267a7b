"""What each event tells us about a call, as plain JSON-ready dicts, and how those facts merge.

Events are neutral calls (:mod:`callgate.calls`) of either API generation; a call's facts are kept
by ``call.key`` (the v1 callid; ``"v2:"`` + the callid of a v2 leg).  A call's facts arrive in
pieces, possibly at different callgate instances:

* ``call``: which generation, Sinch's callid, the v2 session (every event);
* ``ice`` and ``decision`` (``call_decided``): who called whom, domain, and which plugin decided what;
* ``answer`` (``on_answer``): when the callee answered;
* ``dice`` (``on_disconnect``: v1 DICE, v2 ``call.hangup`` and end states): end time, duration,
  result, reason, Sinch's debit (v1 only) and rate, from/to, ``custom`` and call headers;
* ``cost`` (``call.notes["credit_check"]`` during ``on_disconnect``): our own price of the call;
* ``recording`` / ``transcription`` (``on_notify``): where Sinch stored them.

:func:`merge_facts` is the one rule for combining them: a section already known is kept (the first
ICE, the first DICE win: a DICE repeated by Sinch's fallback URL changes nothing), a missing one
is filled in, and a recording or transcription location replaces an older, different one.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime, timezone
from decimal import Decimal
from typing import Any

from callgate.calls import Answered, CallEvent, Ended, Header, Incoming, Money, Notice
from callgate.decisions import Conference, DigitMenu, EndCall, InAppUser, PhoneNumber, SipEndpoint
from callgate.results import Decision

Facts = dict[str, Any]

#: Sections where the first value wins.
FIRST_WINS = ("call", "ice", "decision", "answer", "dice", "cost")
#: Sections where a new, different value replaces the old one.
LATEST_WINS = ("recording", "transcription")
#: Notify types that report where a recording / a transcription is.
RECORDING_TYPES = frozenset({"recording_available", "recording_finished"})
TRANSCRIPTION_TYPES = frozenset({"transcription_available"})


def iso(moment: datetime) -> str:
    """An aware datetime as UTC ISO-8601 with a ``Z``."""
    return moment.astimezone(timezone.utc).isoformat().replace("+00:00", "Z")


def _money(money: Money | None) -> dict[str, Any] | None:
    if money is None or (money.amount is None and money.currency is None):
        return None
    return {"amount": None if money.amount is None else str(money.amount), "currency": money.currency}


def _headers(headers: tuple[Header, ...]) -> list[list[str]]:
    return [[h.key, h.value] for h in headers]


def _when(event_time: datetime | None, received: datetime) -> str:
    return iso(event_time or received)


def _iso_or_none(moment: datetime | None) -> str | None:
    return None if moment is None else iso(moment)


def call_facts(call: CallEvent, callid: str | None) -> Facts:
    """What every event says about the call itself: its generation, Sinch's callid, the v2 session."""
    return {"call": {"generation": call.generation, "callid": callid, "session_id": call.session_id}}


#: The action each kind of route becomes, per generation (what the record's ``decision.action`` says).
_ACTIONS: dict[type, tuple[str, str]] = {
    PhoneNumber: ("connectPstn", "dial"), SipEndpoint: ("connectSip", "dial"), InAppUser: ("connectMxp", "connectMxp"),
    Conference: ("connectConf", "connectConf"), DigitMenu: ("runMenu", "menu"), EndCall: ("hangup", "hangup"),
}


def decision_action(decision: Decision, generation: str) -> str | None:
    """The SVAML action the decision became, by its neutral route (``connectPstn`` in v1 is ``dial`` in v2);
    ``hangup`` when it was denied or not routed; None for a plugin's generation-specific answer."""
    route = decision.route
    if route is None:
        return "hangup" if not decision.allowed or decision.routed_by is None else None
    actions = _ACTIONS.get(type(route.to))
    if actions is None:
        return None
    return actions[1] if generation == "v2" else actions[0]


def ice_facts(call: Incoming, decision: Decision | None, received: datetime) -> Facts:
    """``call_decided``: the incoming call and what the plugins made of it."""
    facts: Facts = call_facts(call, call.callid)
    facts["ice"] = {
        "timestamp": _when(call.timestamp, received),
        "cli": call.cli,
        "user": call.user,
        "to_type": call.to.type if call.to else None,
        "to_endpoint": call.to.endpoint if call.to else None,
        "domain": call.domain,
        "origination_type": call.origination_type,
        "application_key": call.application,
        "custom": call.custom,
        "call_headers": _headers(call.headers),
        "rate": _money(call.rate),
    }
    if decision is not None:
        route = decision.route
        facts["decision"] = {
            "allowed": decision.allowed,
            "decided_by": decision.decided_by,
            "reason": decision.reason,
            "action": decision_action(decision, call.generation),
            "route": route.label if route is not None else decision.route_name,
            "routed_by": decision.routed_by,
            "cli": decision.cli,
            "max_duration": decision.max_duration,
            "outcomes": [{"plugin": o.plugin, "hook": o.hook, "verdict": o.verdict, "status": o.status}
                         for o in decision.outcomes],
        }
    return facts


def answer_facts(call: Answered, received: datetime) -> Facts:
    """``on_answer``: the callee answered (v2: this leg, the dialled one)."""
    return {**call_facts(call, call.callid), "answer": {"answered_at": _when(call.timestamp, received)}}


def _direction(call: Ended) -> str | None:
    """A v2 leg's own ``direction`` (``inbound``/``outbound``); None in v1 (the record derives it from ``to.type``)."""
    if call.generation != "v2":
        return None
    leg = call.raw.get("call") if isinstance(call.raw, Mapping) else None
    direction = leg.get("direction") if isinstance(leg, Mapping) else None
    direction = direction.lower() if isinstance(direction, str) else None
    return direction if direction in ("inbound", "outbound") else None


def dice_facts(call: Ended, received: datetime, notes: Mapping[str, Any] | None = None) -> Facts:
    """``on_disconnect``: the call (v2: this leg) ended; plus our own cost when credit_check left it in ``call.notes``.

    ``timestamp`` is when it ended: v2's ``endTime`` when sent, else the event's time, else when it was received.
    """
    facts: Facts = call_facts(call, call.callid)
    facts["dice"] = {
        "timestamp": _when(call.ended_at or call.timestamp, received),
        "received_at": iso(received),
        "reason": call.reason,
        "result": call.result,
        "duration": call.duration,
        "from": call.cli,
        "user": call.user,
        "to_type": call.to.type if call.to else None,
        "to_endpoint": call.to.endpoint if call.to else None,
        "debit": _money(call.debit),
        "rate": _money(call.rate),
        "custom": call.custom,
        "call_headers": _headers(call.headers),
        "application_key": call.application,
        "answered_at": _iso_or_none(call.answered_at),
        "direction": _direction(call),
    }
    cost = cost_facts((notes or {}).get("credit_check"))
    if cost is not None:
        facts["cost"] = cost
    return facts


def cost_facts(note: Any) -> dict[str, Any] | None:
    """credit_check's note ``{"account", "cost", "currency", "billed_seconds", "sinch_debit"}``, JSON-ready.

    Anything that is not a mapping is ignored (another plugin's business, never a reason to lose a DICE).
    """
    if not isinstance(note, Mapping):
        return None

    def text(value: Any) -> str | None:
        return None if value is None else str(value)

    billed = note.get("billed_seconds")
    return {
        "source": "credit_check",
        "account": text(note.get("account")),
        "amount": text(note.get("cost")),
        "currency": text(note.get("currency")),
        "billed_seconds": billed if isinstance(billed, int) and not isinstance(billed, bool) else None,
        "sinch_debit": text(note.get("sinch_debit")),
    }


def notify_facts(call: Notice, received: datetime) -> Facts | None:
    """``on_notify``: a recording or transcription location; None for every other notification."""
    if not call.destination:
        return None
    kind = (call.type or "").lower()
    if kind in RECORDING_TYPES:
        section = "recording"
    elif kind in TRANSCRIPTION_TYPES:
        section = "transcription"
    else:
        return None
    return {**call_facts(call, call.callid),
            section: {"location": call.destination, "notified_at": _when(call.timestamp, received), "type": kind}}


def merge_facts(old: Facts, new: Facts) -> tuple[Facts, bool]:
    """``old`` completed by ``new``; and whether anything changed."""
    merged = dict(old)
    changed = False
    for section, value in new.items():
        if value is None:
            continue
        if section in LATEST_WINS:
            current = merged.get(section)
            if current is None or current.get("location") != value.get("location"):
                merged[section] = value
                changed = True
        elif merged.get(section) is None:
            merged[section] = value
            changed = True
    return merged, changed


def decimal_or_none(value: str | None) -> Decimal | None:
    """A money amount kept as text, back to an exact Decimal (None when absent or not a number)."""
    if value is None:
        return None
    try:
        return Decimal(value)
    except ArithmeticError:
        return None
